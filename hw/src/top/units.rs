//! Wiring of the child blocks: the register file (`regs`, a
//! [`crate::regs::Regs`]), the command processor's translation cache
//! (`cptlb`, a [`crate::xlat::Tlb`]), the descriptor decoder (`dec`, a
//! [`crate::decode::Decode`]), the FENCE engine (`fence`, a
//! [`crate::fence::Fence`]), the fault priority (`faults`, a
//! [`crate::faults::Faults`]), the unit queues (`lq`, `cq`, `sq`, each a
//! [`crate::queue::UnitQueue`]), the issue rule and token counters
//! (`tok`, a [`crate::tokens::Tokens`]), the compute unit (`compute`) and the
//! two DMA units (`load`, `store`).
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
    s += TOKENS;
    s += REGS;
    s
}

const CPTLB: &str = r#"
// ---- the command processor's translation cache (FENCE writeback) ----
assign cptlb$clock = clock;
assign cptlb$enable = w_act;
assign cptlb$clear = w_clear;
assign cptlb$flush = w_flush;
assign cptlb$xlat_en = w_xlat_en;
assign cptlb$xlat_base = r_xlat_base;
assign cptlb$xlat_pages = r_xlat_pages;
assign cptlb$va = r_fence_addr;
assign cptlb$write = 1'b1;
assign cptlb$pte_granted = w_act && port_ready && cp_req && cp_kind == K_PTE;
assign cptlb$pte_valid = w_act && resp_valid && w_resp_who == 2'd0 && w_resp_kind == K_PTE;
assign cptlb$pte_vpn = w_resp_vpn;
assign cptlb$pte_entry = resp_data[{w_resp_off, 3'd0} +: 64];
"#;

/// Descriptor decode and validation ([`crate::decode::Decode`]) of the fetch
/// buffer's head, and the FENCE fields the command processor latches.
pub(super) const DECODE: &str = r#"
// ---- descriptor decode and validation of the fetch buffer's head: the `dec` block ----
wire [255:0] dec_bytes = f_bytes[r_f_rd];
assign dec$desc = dec_bytes;
assign dec$paddr = f_addr[r_f_rd];
wire dec_bad = dec$bad;
wire [7:0] dec_code = dec$code;
wire [63:0] dec_addr = dec$addr;
wire [1:0] dec_unit = dec$unit;
"#;

/// The unit queues ([`crate::queue::UnitQueue`]): `lq` (load), `cq`
/// (compute), `sq` (store); dispatch pushes the fetch buffer's head, a unit
/// pops its head when it issues.
pub(super) const QUEUES: &str = r#"
// ---- unit queues (load 0, compute 1, store 2): the `lq`, `cq`, `sq` blocks ----
assign lq$clock = clock;
assign cq$clock = clock;
assign sq$clock = clock;
assign lq$enable = w_go;
assign cq$enable = w_go;
assign sq$enable = w_go;
assign lq$clear = w_clear;
assign cq$clear = w_clear;
assign sq$clear = w_clear;
assign lq$push = w_disp_unit && dec_unit == 2'd1;
assign cq$push = w_disp_unit && dec_unit == 2'd2;
assign sq$push = w_disp_unit && dec_unit == 2'd3;
assign lq$push_index = f_index[r_f_rd];
assign cq$push_index = f_index[r_f_rd];
assign sq$push_index = f_index[r_f_rd];
assign lq$push_desc = dec_bytes;
assign cq$push_desc = dec_bytes;
assign sq$push_desc = dec_bytes;
assign lq$pop = issue[0];
assign cq$pop = issue[1];
assign sq$pop = issue[2];
wire [31:0] qh_index [0:2];
wire [255:0] qh_desc [0:2];
assign qh_index[0] = lq$head_index;
assign qh_index[1] = cq$head_index;
assign qh_index[2] = sq$head_index;
assign qh_desc[0] = lq$head_desc;
assign qh_desc[1] = cq$head_desc;
assign qh_desc[2] = sq$head_desc;
wire [2:0] qh_valid = {sq$valid, cq$valid, lq$valid};
wire [2:0] q_room = {sq$room, cq$room, lq$room};
// the queues' entry counts (for inspection)
wire unused_queues = ^{lq$count, cq$count, sq$count};
"#;

/// The FENCE ([`crate::fence::Fence`]): drain, writeback with its PTE read
/// through `cptlb`, completion.
pub(super) const FENCE: &str = r#"
// ---- the FENCE (F4): the `fence` block ----
assign fence$clock = clock;
assign fence$enable = w_go;
assign fence$clear = w_clear;
assign fence$start = w_disp_fence;
assign fence$start_desc = dec_bytes;
assign fence$start_index = f_index[r_f_rd];
assign fence$idle = w_queues_empty && r_active == 3'd0;
assign fence$granted = g_cp;
assign fence$resp = w_resp_fence;
assign fence$mem_size = mem_size;
assign fence$tlb_phys_valid = cptlb$phys_valid;
assign fence$tlb_phys = cptlb$phys;
assign fence$tlb_read_valid = cptlb$read_valid;
assign fence$tlb_read_addr = cptlb$read_addr;
assign fence$tlb_read_vpn = cptlb$read_vpn;
assign fence$tlb_fault = cptlb$fault;
assign fence$tlb_fault_code = cptlb$fault_code;
assign fence$tlb_fault_addr = cptlb$fault_addr;
"#;

/// The faults of the cycle in G3 order with E1 and U2
/// ([`crate::faults::Faults`]), and whether the cycle happens.
pub(super) const FAULTS: &str = r#"
// ---- faults of this cycle in G3 order, with E1 and U2: the `faults` block ----
assign faults$cp_fault = cp_fault;
assign faults$cp_code = cp_code;
assign faults$cp_index = cp_fidx;
assign faults$cp_addr = cp_faddr;
assign faults$disp_fault = disp_fault;
assign faults$disp_code = dec_code;
assign faults$disp_index = f_index[r_f_rd];
assign faults$disp_addr = dec_addr;
assign faults$store_fault = store_fault;
assign faults$store_code = store_fcode;
assign faults$store_addr = store_faddr;
assign faults$load_fault = load_fault;
assign faults$load_code = load_fcode;
assign faults$load_addr = load_faddr;
assign faults$l_job = r_job_index[0];
assign faults$c_job = r_job_index[1];
assign faults$s_job = r_job_index[2];
assign faults$disp = disp;
assign faults$responding = resp_valid;
assign faults$inflight = r_inflight;
assign faults$active = r_active;
assign faults$fence_active = r_fence;
assign faults$fence_draining = fence$draining;
assign faults$head_full = w_head_full;
assign faults$head_bad = dec_bad;
assign faults$q_valid = qh_valid;
assign faults$q_ready = qh_ready;
assign faults$l_head = qh_index[0];
assign faults$c_head = qh_index[1];
assign faults$s_head = qh_index[2];
assign faults$wd = regs$wd;
assign faults$head = r_head;
assign faults$over = over_q;
wire f_any = faults$any;
wire [7:0] f_code = faults$code;
wire [31:0] f_idx = faults$index;
wire [63:0] f_addr_v = faults$addr;
wire w_go = w_act && !f_any;                  // the cycle happens (G3)
"#;

/// The issue rule and the token counters ([`crate::tokens::Tokens`]).
const TOKENS: &str = r#"
// ---- the issue rule (U1) and the token counters (U2) ----
assign tok$clock = clock;
assign tok$enable = w_act;
assign tok$clear = w_clear;
assign tok$l_head = qh_valid[0];
assign tok$c_head = qh_valid[1];
assign tok$s_head = qh_valid[2];
assign tok$l_deps = qh_desc[0][11:8];
assign tok$c_deps = qh_desc[1][11:8];
assign tok$s_deps = qh_desc[2][11:8];
assign tok$l_active = r_active[0];
assign tok$c_active = r_active[1];
assign tok$s_active = r_active[2];
assign tok$l_done = load_done;
assign tok$c_done = cmp_done;
assign tok$s_done = store_done;
assign tok$l_job = r_job_deps[0];
assign tok$c_job = r_job_deps[1];
assign tok$s_job = r_job_deps[2];
"#;

const COMPUTE: &str = r#"
// ---- the compute unit ----
wire cmp_done = compute$done;
assign compute$clock = clock;
assign compute$enable = w_act;
assign compute$clear = w_clear;
assign compute$issue = w_act && issue[1];
assign compute$desc = qh_desc[1];
assign compute$head_ready = qh_valid[1] && qh_ready[1];
"#;

/// The DMA units: `load` (who 1) and `store` (who 2), sharing the compute
/// unit's local-memory ports (LOAD writes, STORE reads).
const DMA: &str = r#"
// ---- DMA units ----
assign load$clock = clock;
assign store$clock = clock;
assign load$enable = w_act;
assign store$enable = w_act;
assign load$clear = w_clear;
assign store$clear = w_clear;
assign load$tlb_flush = w_flush;
assign store$tlb_flush = w_flush;
assign load$issue = w_act && issue[0];
assign store$issue = w_act && issue[2];
assign load$desc = qh_desc[0];
assign store$desc = qh_desc[2];
assign load$issue_index = qh_index[0];
assign store$issue_index = qh_index[2];
assign load$xlat_en = w_xlat_en;
assign store$xlat_en = w_xlat_en;
assign load$xlat_base = r_xlat_base;
assign store$xlat_base = r_xlat_base;
assign load$xlat_pages = r_xlat_pages;
assign store$xlat_pages = r_xlat_pages;
assign load$mem_size = mem_size;
assign store$mem_size = mem_size;
// M1: the store is granted when it offers and the command processor does not;
// the load when neither does (each unit ANDs this with its own offer)
assign store$grant = w_act && port_ready && !cp_req;
assign load$grant = w_act && port_ready && !cp_req && !store$req_valid;
assign load$resp_valid = w_act && resp_valid && w_resp_who == 2'd1;
assign store$resp_valid = w_act && resp_valid && w_resp_who == 2'd2;
assign load$resp_tag = resp_tag[63:8];
assign store$resp_tag = resp_tag[63:8];
assign load$resp_data = resp_data;
assign store$resp_data = resp_data;
assign load$lm_rd_data = 512'd0;
assign store$lm_rd_data = compute$dma_rd_data;
assign compute$dma_wr = load$lm_wr;
assign compute$dma_wr_acc = load$lm_wr_acc;
assign compute$dma_wr_addr = load$lm_wr_addr;
assign compute$dma_wr_len = load$lm_wr_len;
assign compute$dma_wr_data = load$lm_wr_data;
assign compute$dma_rd_acc = store$lm_rd_acc;
assign compute$dma_rd_addr = store$lm_rd_addr;
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

/// The register file, the counters, the IRQ line and the watchdog
/// ([`crate::regs::Regs`]).
const REGS: &str = r#"
// ---- the register file (G2), counters (P1), IRQ, error latch (G3), watchdog (E2) ----
assign regs$clock = clock;
assign regs$advance = advance;
assign regs$mmio_we = mmio_we;
assign regs$mmio_addr = mmio_addr;
assign regs$mmio_wdata = mmio_wdata;
assign regs$halt = w_act && f_any;
assign regs$f_code = f_code;
assign regs$f_desc = f_idx;
assign regs$f_addr = f_addr_v;
assign regs$go = w_go;
assign regs$grant = w_grant;
assign regs$resp = resp_valid;
assign regs$rd = g_load && load_kind == K_READ;
assign regs$rd_len = load_len;
assign regs$wr = g_store && store_kind == K_WRITE;
assign regs$wr_len = store_len;
assign regs$busy_l = issue[0] || (r_active[0] && !complete[0]);
assign regs$busy_c = issue[1] || (r_active[1] && !complete[1]);
assign regs$busy_s = issue[2] || (r_active[2] && !complete[2]);
assign regs$tstall_l = tstall[0];
assign regs$tstall_c = tstall[1];
assign regs$tstall_s = tstall[2];
assign regs$mstall_l = denied_load;
assign regs$mstall_s = denied_store;
assign regs$macs = complete[1] && r_job_op[1] == 8'd3;
assign regs$job_macs = r_job_macs;
assign regs$done_n = n_done;
assign regs$fence_done = w_fence_done;
assign regs$fence_irq = r_fence_irq;
assign regs$fence_seqv = r_fence_seqv;
assign regs$head = r_head;
assign regs$fetch_ptr = r_fetch_ptr;
assign regs$work = r_f_count != 0 || r_fence || !w_queues_empty || r_active != 3'd0;
"#;
