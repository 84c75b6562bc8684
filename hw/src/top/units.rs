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

pub(super) fn wiring(p: &Params) -> String {
    let mut s = String::from(CPTLB);
    s += COMPUTE;
    s += &DMA_STUB.replace("@BM1@", &(p.beat_bytes - 1).to_string());
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

/// Until the DMA units are integrated: they never request nor complete, and
/// the compute unit's DMA ports are idle.
const DMA_STUB: &str = r#"
// ---- DMA units (not yet integrated: idle) ----
wire load_req = 1'b0, store_req = 1'b0;
wire [2:0] load_kind = 3'd0, store_kind = 3'd0;
wire [63:0] load_addr = 64'd0, store_addr = 64'd0, load_own = 64'd0, store_own = 64'd0;
wire [7:0] load_len = 8'd0, store_len = 8'd0;
wire [511:0] store_wdata = 512'd0;
wire [63:0] store_wmask = 64'd0;
wire load_fault = 1'b0, store_fault = 1'b0;
wire [7:0] load_fcode = 8'd0, store_fcode = 8'd0;
wire [63:0] load_faddr = 64'd0, store_faddr = 64'd0;
wire load_done = 1'b0, store_done = 1'b0;
always @(*) begin
   compute$dma_wr = 1'b0;
   compute$dma_wr_acc = 1'b0;
   compute$dma_wr_addr = 32'd0;
   compute$dma_wr_len = 8'd0;
   compute$dma_wr_data = 512'd0;
   compute$dma_rd_acc = 1'b0;
   compute$dma_rd_addr = 32'd0;
end
wire unused_dma_rd = ^compute$dma_rd_data;
"#;
