//! `NpuTop`: the whole NPU with the harness port contract of `docs/rtl.md`.
//!
//! ```text
//!  mmio_* ──> regs ──> cmdproc: fetch buffer ─> decode ─> dispatch ──┐
//!                         │ FENCE (drain, writeback, IRQ)            │
//!                         v                                          v
//!              load queue     compute queue     store queue   (queue_depth each)
//!                  │               │                 │
//!               DmaUnit ──tok──> Compute ──tok──> DmaUnit      (4 token counters)
//!                  │               │ spad/acc        │
//!                  └──── port arbiter: cmd > store > load ────> req_* / resp_*
//!  faults (G3 order), deadlock (E1), watchdog (E2), counters (P1), irq, ev_*
//! ```
//!
//! The block is a rust-hdl `LogicBlock` whose ports are exactly those of
//! `docs/rtl.md`. What is rust-hdl logic (`#[hdl_gen]` blocks, simulated by
//! rust-hdl's simulator in their block tests and generated from the same
//! source) and what is Verilog text:
//!
//! * rust-hdl logic, as child blocks: the register file with the MMIO read
//!   mux, the IRQ line, the error latch, the performance counters, the
//!   watchdog and the IRQ and error event ports ([`Regs`], `regs`), descriptor decode and validation
//!   ([`Decode`], `dec`), the FENCE state machine with its writeback offer
//!   and PTE read ([`Fence`], `fence`), the fault priority of G3 with the
//!   deadlock rule E1 ([`Faults`], `faults`), the three unit queues ([`UnitQueue`], `lq`, `cq`,
//!   `sq`), their issue rule and the four token counters ([`Tokens`], `tok`), the memory-port
//!   arbiter and the request mux ([`Port`], `port`), the translation
//!   caches ([`Tlb`], `cptlb` and one inside each DMA unit), the LOAD and
//!   STORE engines ([`DmaUnit`]) and, inside [`Compute`], the processing
//!   elements of the MAC array, the skew and deskew lines, the activation
//!   lanes, the descriptor control (`Ctl`) and the lane pipeline's control
//!   (`LaneCtl`, `LaneAddr`);
//! * Verilog text generated per configuration from Rust (one function per
//!   concern in `top/*.rs`): the command
//!   processor's fetch buffer with its fetch requests, dispatch, and the
//!   command processor's port offer (the `fence` block's, else a fetch), the
//!   descriptor each unit executes, the other event
//!   ports, and the wiring of the children; and, inside [`Compute`], the
//!   MATMUL sequencing and the two memories (`Verilog::Custom` mirrored by a
//!   hand-written Rust `update()`, see `compute.rs`).
//!
//! The top's own `update()` is empty, so rust-hdl's simulator cannot run the
//! whole NPU: it is verified against the model in lockstep under Verilator
//! (`npukit-rtl`, `hw/tests/top_lockstep.rs`), its children by their block
//! tests.
//!
//! Edge protocol: a rising edge with `advance = 1` is one simulated cycle; a
//! rising edge with `advance = 0, mmio_we = 1` applies one register write; no
//! other edge changes state.

use rust_hdl::prelude::*;

use crate::compute::{Compute, ComputeParams};
use crate::decode::{Decode, DecodeLimits};
use crate::dma::DmaUnit;
use crate::faults::Faults;
use crate::fence::Fence;
use crate::gen::Params;
use crate::port::Port;
use crate::queue::UnitQueue;
use crate::regs::Regs;
use crate::tokens::Tokens;
use crate::xlat::Tlb;

mod body;
mod units;

/// The NPU top level. Field names are the Verilog port names.
#[derive(Debug, LogicBlock)]
pub struct NpuTop {
    pub clock: Signal<In, Clock>,
    pub advance: Signal<In, Bit>,
    pub mmio_we: Signal<In, Bit>,
    pub mmio_addr: Signal<In, Bits<12>>,
    pub mmio_wdata: Signal<In, Bits<32>>,
    pub mmio_rdata: Signal<Out, Bits<32>>,
    pub mem_size: Signal<In, Bits<64>>,
    pub port_ready: Signal<In, Bit>,
    pub resp_valid: Signal<In, Bit>,
    pub resp_tag: Signal<In, Bits<64>>,
    pub resp_data: Signal<In, Bits<512>>,
    pub req_valid: Signal<Out, Bit>,
    pub req_write: Signal<Out, Bit>,
    pub req_addr: Signal<Out, Bits<64>>,
    pub req_wdata: Signal<Out, Bits<512>>,
    pub req_wmask: Signal<Out, Bits<64>>,
    pub req_who: Signal<Out, Bits<2>>,
    pub req_kind: Signal<Out, Bits<3>>,
    pub req_tag: Signal<Out, Bits<64>>,
    pub irq: Signal<Out, Bit>,
    pub ev_resp: Signal<Out, Bit>,
    pub ev_dispatch: Signal<Out, Bit>,
    pub ev_dispatch_unit: Signal<Out, Bits<2>>,
    pub ev_dispatch_index: Signal<Out, Bits<32>>,
    pub ev_dispatch_desc: Signal<Out, Bits<256>>,
    pub ev_issue: Signal<Out, Bits<3>>,
    pub ev_issue_index: Signal<Out, Bits<96>>,
    pub ev_issue_opcode: Signal<Out, Bits<24>>,
    pub ev_done: Signal<Out, Bits<4>>,
    pub ev_done_index: Signal<Out, Bits<128>>,
    pub ev_done_opcode: Signal<Out, Bits<32>>,
    pub ev_tok_push: Signal<Out, Bits<4>>,
    pub ev_tok_pop: Signal<Out, Bits<4>>,
    pub ev_fence: Signal<Out, Bit>,
    pub ev_fence_index: Signal<Out, Bits<32>>,
    pub ev_fence_seq: Signal<Out, Bits<32>>,
    pub ev_irq: Signal<Out, Bit>,
    pub ev_irq_status: Signal<Out, Bits<32>>,
    pub ev_error: Signal<Out, Bit>,
    pub ev_err_code: Signal<Out, Bits<8>>,
    pub ev_err_desc: Signal<Out, Bits<32>>,
    pub ev_err_addr: Signal<Out, Bits<64>>,
    /// The register file, counters, IRQ, error latch and watchdog.
    pub regs: Regs,
    /// The command processor's translation cache (FENCE writeback).
    pub cptlb: Tlb,
    /// Descriptor decode and validation at the dispatch point.
    pub dec: Decode,
    /// The FENCE: drain, writeback and its PTE read, completion.
    pub fence: Fence,
    /// The faults of a cycle in G3 order, deadlock (E1).
    pub faults: Faults,
    /// The load, compute and store queues (dispatch to issue).
    pub lq: UnitQueue,
    pub cq: UnitQueue,
    pub sq: UnitQueue,
    /// The issue rule (U1) and the token counters (U2).
    pub tok: Tokens,
    /// The memory-port arbiter (M1) and the request mux.
    pub port: Port,
    /// The compute unit and the local memories.
    pub compute: Compute,
    /// The LOAD engine.
    pub load: DmaUnit,
    /// The STORE engine.
    pub store: DmaUnit,
    /// The configuration the Verilog is generated for (not hardware).
    pub params: Params,
}

impl NpuTop {
    /// The top level for one variant.
    pub fn new(params: Params) -> Result<Self, String> {
        let compute = Compute::new(ComputeParams {
            rows: params.rows,
            cols: params.cols,
            spad_bytes: params.spad_bytes,
            acc_bytes: params.acc_bytes,
            beat_bytes: params.beat_bytes,
            dataflow: params.dataflow,
            weight_double_buffer: params.weight_double_buffer,
        })
        .map_err(|e| e.to_string())?;
        Ok(NpuTop {
            clock: Default::default(),
            advance: Default::default(),
            mmio_we: Default::default(),
            mmio_addr: Default::default(),
            mmio_wdata: Default::default(),
            mmio_rdata: Default::default(),
            mem_size: Default::default(),
            port_ready: Default::default(),
            resp_valid: Default::default(),
            resp_tag: Default::default(),
            resp_data: Default::default(),
            req_valid: Default::default(),
            req_write: Default::default(),
            req_addr: Default::default(),
            req_wdata: Default::default(),
            req_wmask: Default::default(),
            req_who: Default::default(),
            req_kind: Default::default(),
            req_tag: Default::default(),
            irq: Default::default(),
            ev_resp: Default::default(),
            ev_dispatch: Default::default(),
            ev_dispatch_unit: Default::default(),
            ev_dispatch_index: Default::default(),
            ev_dispatch_desc: Default::default(),
            ev_issue: Default::default(),
            ev_issue_index: Default::default(),
            ev_issue_opcode: Default::default(),
            ev_done: Default::default(),
            ev_done_index: Default::default(),
            ev_done_opcode: Default::default(),
            ev_tok_push: Default::default(),
            ev_tok_pop: Default::default(),
            ev_fence: Default::default(),
            ev_fence_index: Default::default(),
            ev_fence_seq: Default::default(),
            ev_irq: Default::default(),
            ev_irq_status: Default::default(),
            ev_error: Default::default(),
            ev_err_code: Default::default(),
            ev_err_desc: Default::default(),
            ev_err_addr: Default::default(),
            regs: Regs::new(&params)?,
            cptlb: Tlb::default(),
            dec: Decode::new(DecodeLimits {
                rows: params.rows,
                cols: params.cols,
                spad_bytes: params.spad_bytes,
                acc_bytes: params.acc_bytes,
            })?,
            fence: Fence::new(params.beat_bytes)?,
            faults: Faults::new(),
            lq: UnitQueue::new(params.queue_depth)?,
            cq: UnitQueue::new(params.queue_depth)?,
            sq: UnitQueue::new(params.queue_depth)?,
            tok: Tokens::default(),
            port: Port::new(params.beat_bytes)?,
            load: DmaUnit::new(false, params.beat_bytes).map_err(|e| e.to_string())?,
            store: DmaUnit::new(true, params.beat_bytes).map_err(|e| e.to_string())?,
            compute,
            params,
        })
    }
}

impl Logic for NpuTop {
    // The behaviour lives in the generated Verilog only (see the module docs).
    fn update(&mut self) {}

    fn connect(&mut self) {
        self.mmio_rdata.connect();
        self.req_valid.connect();
        self.req_write.connect();
        self.req_addr.connect();
        self.req_wdata.connect();
        self.req_wmask.connect();
        self.req_who.connect();
        self.req_kind.connect();
        self.req_tag.connect();
        self.irq.connect();
        self.ev_resp.connect();
        self.ev_dispatch.connect();
        self.ev_dispatch_unit.connect();
        self.ev_dispatch_index.connect();
        self.ev_dispatch_desc.connect();
        self.ev_issue.connect();
        self.ev_issue_index.connect();
        self.ev_issue_opcode.connect();
        self.ev_done.connect();
        self.ev_done_index.connect();
        self.ev_done_opcode.connect();
        self.ev_tok_push.connect();
        self.ev_tok_pop.connect();
        self.ev_fence.connect();
        self.ev_fence_index.connect();
        self.ev_fence_seq.connect();
        self.ev_irq.connect();
        self.ev_irq_status.connect();
        self.ev_error.connect();
        self.ev_err_code.connect();
        self.ev_err_desc.connect();
        self.ev_err_addr.connect();
        // The children's inputs are driven by the Verilog body.
        self.regs.clock.connect();
        self.regs.advance.connect();
        self.regs.mmio_we.connect();
        self.regs.mmio_addr.connect();
        self.regs.mmio_wdata.connect();
        self.regs.halt.connect();
        self.regs.f_code.connect();
        self.regs.f_desc.connect();
        self.regs.f_addr.connect();
        self.regs.go.connect();
        self.regs.grant.connect();
        self.regs.resp.connect();
        self.regs.rd.connect();
        self.regs.rd_len.connect();
        self.regs.wr.connect();
        self.regs.wr_len.connect();
        self.regs.busy_l.connect();
        self.regs.busy_c.connect();
        self.regs.busy_s.connect();
        self.regs.tstall_l.connect();
        self.regs.tstall_c.connect();
        self.regs.tstall_s.connect();
        self.regs.mstall_l.connect();
        self.regs.mstall_s.connect();
        self.regs.macs.connect();
        self.regs.job_macs.connect();
        self.regs.done_n.connect();
        self.regs.fence_done.connect();
        self.regs.fence_irq.connect();
        self.regs.fence_seqv.connect();
        self.regs.head.connect();
        self.regs.fetch_ptr.connect();
        self.regs.work.connect();
        self.cptlb.clock.connect();
        self.cptlb.enable.connect();
        self.cptlb.clear.connect();
        self.cptlb.flush.connect();
        self.cptlb.xlat_en.connect();
        self.cptlb.xlat_base.connect();
        self.cptlb.xlat_pages.connect();
        self.cptlb.va.connect();
        self.cptlb.write.connect();
        self.cptlb.pte_granted.connect();
        self.cptlb.pte_valid.connect();
        self.cptlb.pte_vpn.connect();
        self.cptlb.pte_entry.connect();
        self.dec.desc.connect();
        self.dec.paddr.connect();
        self.fence.clock.connect();
        self.fence.enable.connect();
        self.fence.clear.connect();
        self.fence.start.connect();
        self.fence.start_desc.connect();
        self.fence.start_index.connect();
        self.fence.idle.connect();
        self.fence.granted.connect();
        self.fence.resp.connect();
        self.fence.mem_size.connect();
        self.fence.tlb_phys_valid.connect();
        self.fence.tlb_phys.connect();
        self.fence.tlb_read_valid.connect();
        self.fence.tlb_read_addr.connect();
        self.fence.tlb_read_vpn.connect();
        self.fence.tlb_fault.connect();
        self.fence.tlb_fault_code.connect();
        self.fence.tlb_fault_addr.connect();
        self.faults.cp_fault.connect();
        self.faults.cp_code.connect();
        self.faults.cp_index.connect();
        self.faults.cp_addr.connect();
        self.faults.disp_fault.connect();
        self.faults.disp_code.connect();
        self.faults.disp_index.connect();
        self.faults.disp_addr.connect();
        self.faults.store_fault.connect();
        self.faults.store_code.connect();
        self.faults.store_addr.connect();
        self.faults.load_fault.connect();
        self.faults.load_code.connect();
        self.faults.load_addr.connect();
        self.faults.l_job.connect();
        self.faults.c_job.connect();
        self.faults.s_job.connect();
        self.faults.disp.connect();
        self.faults.responding.connect();
        self.faults.inflight.connect();
        self.faults.active.connect();
        self.faults.fence_active.connect();
        self.faults.fence_draining.connect();
        self.faults.head_full.connect();
        self.faults.head_bad.connect();
        self.faults.q_valid.connect();
        self.faults.q_ready.connect();
        self.faults.l_head.connect();
        self.faults.c_head.connect();
        self.faults.s_head.connect();
        self.faults.wd.connect();
        self.faults.head.connect();
        self.faults.over.connect();
        self.lq.clock.connect();
        self.lq.enable.connect();
        self.lq.clear.connect();
        self.lq.push.connect();
        self.lq.push_index.connect();
        self.lq.push_desc.connect();
        self.lq.pop.connect();
        self.cq.clock.connect();
        self.cq.enable.connect();
        self.cq.clear.connect();
        self.cq.push.connect();
        self.cq.push_index.connect();
        self.cq.push_desc.connect();
        self.cq.pop.connect();
        self.sq.clock.connect();
        self.sq.enable.connect();
        self.sq.clear.connect();
        self.sq.push.connect();
        self.sq.push_index.connect();
        self.sq.push_desc.connect();
        self.sq.pop.connect();
        self.tok.clock.connect();
        self.tok.enable.connect();
        self.tok.clear.connect();
        self.tok.l_head.connect();
        self.tok.c_head.connect();
        self.tok.s_head.connect();
        self.tok.l_deps.connect();
        self.tok.c_deps.connect();
        self.tok.s_deps.connect();
        self.tok.l_active.connect();
        self.tok.c_active.connect();
        self.tok.s_active.connect();
        self.tok.l_done.connect();
        self.tok.c_done.connect();
        self.tok.s_done.connect();
        self.tok.l_job.connect();
        self.tok.c_job.connect();
        self.tok.s_job.connect();
        self.port.go.connect();
        self.port.ready.connect();
        self.port.cp_req.connect();
        self.port.cp_kind.connect();
        self.port.cp_addr.connect();
        self.port.cp_own.connect();
        self.port.cp_wdata.connect();
        self.port.cp_wmask.connect();
        self.port.store_req.connect();
        self.port.store_kind.connect();
        self.port.store_addr.connect();
        self.port.store_own.connect();
        self.port.store_wdata.connect();
        self.port.store_wmask.connect();
        self.port.load_req.connect();
        self.port.load_kind.connect();
        self.port.load_addr.connect();
        self.port.load_own.connect();
        self.compute.clock.connect();
        self.compute.enable.connect();
        self.compute.clear.connect();
        self.compute.issue.connect();
        self.compute.desc.connect();
        self.compute.head_ready.connect();
        self.compute.dma_wr.connect();
        self.compute.dma_wr_acc.connect();
        self.compute.dma_wr_addr.connect();
        self.compute.dma_wr_len.connect();
        self.compute.dma_wr_data.connect();
        self.compute.dma_rd_acc.connect();
        self.compute.dma_rd_addr.connect();
        self.load.clock.connect();
        self.store.clock.connect();
        self.load.enable.connect();
        self.store.enable.connect();
        self.load.clear.connect();
        self.store.clear.connect();
        self.load.tlb_flush.connect();
        self.store.tlb_flush.connect();
        self.load.issue.connect();
        self.store.issue.connect();
        self.load.desc.connect();
        self.store.desc.connect();
        self.load.issue_index.connect();
        self.store.issue_index.connect();
        self.load.xlat_en.connect();
        self.store.xlat_en.connect();
        self.load.xlat_base.connect();
        self.store.xlat_base.connect();
        self.load.xlat_pages.connect();
        self.store.xlat_pages.connect();
        self.load.mem_size.connect();
        self.store.mem_size.connect();
        self.load.grant.connect();
        self.store.grant.connect();
        self.load.resp_valid.connect();
        self.store.resp_valid.connect();
        self.load.resp_tag.connect();
        self.store.resp_tag.connect();
        self.load.resp_data.connect();
        self.store.resp_data.connect();
        self.load.lm_rd_data.connect();
        self.store.lm_rd_data.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(body::body(&self.params))
    }
}
