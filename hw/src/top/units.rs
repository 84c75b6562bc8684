//! Wiring of the child blocks: the command processor's translation cache
//! (`cptlb`, a [`crate::xlat::Tlb`]), the compute unit (`compute`) and the two
//! DMA units (`load`, `store`).
//!
//! Each DMA unit presents to the top, from the state at the start of the cycle:
//! `<u>_req` (a request to offer), `<u>_kind` (`MemKind` code), `<u>_addr`
//! (physical, exact), `<u>_own` (56 bits for the tag), `<u>_len`, for STORE
//! `store_wdata`/`store_wmask` (placed in the beat), `<u>_fault` with
//! `<u>_fcode`/`<u>_faddr`, and `<u>_done` (its descriptor completes now).

use crate::gen::Params;

pub(super) fn wiring(_p: &Params) -> String {
    let mut s = String::from(CPTLB);
    s += COMPUTE;
    s += DMA;
    s
}

const CPTLB: &str = r#"
// ---- the command processor's translation cache (FENCE writeback) ----
always @(*) begin
   cptlb$clock = clock;
   cptlb$enable = w_go;
   cptlb$flush = w_flush;
   cptlb$xlat_en = w_xlat_en;
   cptlb$xlat_base = r_xlat_base;
   cptlb$xlat_pages = r_xlat_pages;
   cptlb$va = r_fence_addr;
   cptlb$write = 1'b1;
   cptlb$pte_granted = w_grant && g_cp && cp_kind == K_PTE;
   cptlb$pte_valid = w_resp_cp_pte;
   cptlb$pte_vpn = w_resp_vpn;
   cptlb$pte_entry = resp_data[{w_resp_off, 3'd0} +: 64];
end
"#;

const COMPUTE: &str = r#"
// ---- the compute unit ----
wire cmp_done = compute$done;
always @(*) begin
   compute$clock = clock;
   compute$enable = w_go;
   compute$clear = w_clear;
   compute$issue = w_issue[1];
   compute$desc = qh_desc[1];
end
"#;

/// The DMA units: `load` (who 1) and `store` (who 2), sharing the compute
/// unit's local-memory ports (LOAD writes, STORE reads).
const DMA: &str = r#"
// ---- DMA units ----
always @(*) begin
   load$clock = clock;              store$clock = clock;
   load$enable = w_go;              store$enable = w_go;
   load$clear = w_clear;            store$clear = w_clear;
   load$tlb_flush = w_flush;        store$tlb_flush = w_flush;
   load$issue = w_issue[0];         store$issue = w_issue[2];
   load$desc = qh_desc[0];          store$desc = qh_desc[2];
   load$issue_index = qh_index[0];  store$issue_index = qh_index[2];
   load$xlat_en = w_xlat_en;        store$xlat_en = w_xlat_en;
   load$xlat_base = r_xlat_base;    store$xlat_base = r_xlat_base;
   load$xlat_pages = r_xlat_pages;  store$xlat_pages = r_xlat_pages;
   load$mem_size = mem_size;        store$mem_size = mem_size;
   load$grant = w_grant && g_load;  store$grant = w_grant && g_store;
   load$resp_valid = w_take && w_resp_who == 2'd1;
   store$resp_valid = w_take && w_resp_who == 2'd2;
   load$resp_tag = resp_tag[63:8];  store$resp_tag = resp_tag[63:8];
   load$resp_data = resp_data;      store$resp_data = resp_data;
   load$lm_rd_data = 512'd0;        store$lm_rd_data = compute$dma_rd_data;
   compute$dma_wr = load$lm_wr;
   compute$dma_wr_acc = load$lm_wr_acc;
   compute$dma_wr_addr = load$lm_wr_addr;
   compute$dma_wr_len = load$lm_wr_len;
   compute$dma_wr_data = load$lm_wr_data;
   compute$dma_rd_acc = store$lm_rd_acc;
   compute$dma_rd_addr = store$lm_rd_addr;
end
wire load_req = load$req_valid, store_req = store$req_valid;
wire [2:0] load_kind = load$req_pte ? K_PTE : K_READ;
wire [2:0] store_kind = store$req_pte ? K_PTE : K_WRITE;
wire [63:0] load_addr = load$req_addr, store_addr = store$req_addr;
wire [55:0] load_own = load$req_tag, store_own = store$req_tag;
wire [7:0] load_len = load$req_bytes, store_len = store$req_bytes;
wire [511:0] store_wdata = store$req_wdata;
wire [63:0] store_wmask = store$req_wmask;
wire load_fault = load$fault, store_fault = store$fault;
wire [7:0] load_fcode = load$fault_code, store_fcode = store$fault_code;
wire [63:0] load_faddr = load$fault_addr, store_faddr = store$fault_addr;
wire load_done = load$done, store_done = store$done;
// the units' own copies of what the top tracks, and the LOAD's unused write data path
wire unused_dma = ^{load$busy, store$busy, load$index, store$index, load$req_wdata, load$req_wmask,
   store$lm_wr, store$lm_wr_acc, store$lm_wr_addr, store$lm_wr_len, store$lm_wr_data, load$lm_rd_acc, load$lm_rd_addr};
"#;
