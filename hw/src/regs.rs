//! `Regs`: the MMIO register file of `NpuTop` — the registers of
//! `npukit_abi::regs` that are the device's own (not the command processor's
//! `RING_HEAD`), the combinational read mux (G2), the interrupt line, the
//! performance counters (P1), the error latch (G3), the memory requests in
//! flight, the watchdog (E2) and the IRQ and error event ports. The model is
//! `ModelDevice`'s register accesses and the counter and fault parts of its
//! cycle.
//!
//! ```text
//!  mmio_we, mmio_addr, mmio_wdata ───────►┌───────────────────────┐──► mmio_rdata, irq
//!  advance, go, halt + f_code/desc/addr ─►│ CONTROL IRQ_* RING_*  │──► run, running, xlat_en, halted
//!  grant, resp, rd/wr + len, busy/stall ─►│ XLAT_* WATCHDOG ERR_* │──► ring_*, tail, xlat_*, inflight
//!  macs, done_n, fence_done/irq/seqv ────►│ FENCE_SEQ PERF_*      │──► clear, flush, wd
//!  head, fetch_ptr, work ────────────────►└───────────────────────┘──► ev_irq*, ev_error, ev_err_*
//! ```
//!
//! # Edges
//!
//! * A **cycle edge** (`advance`): time (`PERF_CYCLES`) counts and a pending
//!   MMIO-raised error event is reported on `ev_*` and dropped. If `halt` (a fault detected in
//!   this cycle, G3), the device halts: `ERR_CODE/DESC/ADDR` latch
//!   `f_code/f_desc/f_addr`, `IRQ_ERROR` is raised, the requests in flight are
//!   forgotten, and no counter counts. Otherwise, if `go` (the cycle happens):
//!   the in-flight count follows `grant` and `resp`; `PERF_MEM_BEATS` counts a
//!   `grant`, `PERF_DMA_RD/WR_BYTES` a granted LOAD read (`rd`) or STORE write
//!   (`wr`) of `rd_len`/`wr_len` bytes; `PERF_MACS` adds `job_macs` when `macs`
//!   (a MATMUL completes); `PERF_DESC_DONE` adds `done_n` and a completion
//!   restarts the watchdog; busy, token-stall and memory-stall counters count
//!   their inputs (P1); a FENCE completing (`fence_done`) sets `FENCE_SEQ` to
//!   `fence_seqv` and, with `fence_irq`, raises `IRQ_FENCE`.
//! * An **MMIO write edge** (`mmio_we` without `advance`, G2): the write of
//!   `mmio_wdata` to `mmio_addr` as `docs/abi.md` says: `CONTROL.RESET` zeroes
//!   everything but time (`clear`); `CONTROL` keeps RUN and XLAT_EN, and RUN
//!   0->1 restarts the watchdog and checks the ring (`BAD_RING` halts the
//!   device and is reported at the next cycle edge on `ev_*`); `IRQ_STATUS` is
//!   write-1-to-clear; `RING_BASE/SIZE` are ignored while RUN is set and clear
//!   `RING_TAIL`; a `RING_TAIL` write restarts the watchdog and, running, with
//!   a tail past the ring, faults `BAD_RING`; `WATCHDOG` writes restart it;
//!   writes to `CONTROL` and `XLAT_*` flush the translation caches (`flush`).
//!
//! Every output is decided from the state (G1) and, for `mmio_rdata`, `clear`,
//! `flush` and `wd`, this cycle's inputs. `mmio_rdata` is the register at
//! `mmio_addr` (0 for an offset with none; `ERR_*` read 0 unless halted);
//! `irq` is `IRQ_STATUS & IRQ_MASK != 0`; `wd` is E2: `WATCHDOG = w > 0`, the
//! device still busy after this cycle's response (`fetch_ptr != RING_TAIL`
//! while running, `work`, or a request in flight) and `now >= p + w`.
//! The `ev_*` outputs are the IRQ and error events of a cycle edge (`halt`,
//! a FENCE with its IRQ flag, or the pending MMIO-raised BAD_RING).
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `clock` | in | 1 | clock |
//! | `advance`, `mmio_we`, `mmio_addr`, `mmio_wdata` | in | 1, 1, 12, 32 | the top's MMIO ports (`docs/rtl.md`) |
//! | `halt` | in | 1 | a fault is detected in this cycle (the device acts, G3) |
//! | `f_code`, `f_desc`, `f_addr` | in | 8, 32, 64 | the fault's ERR_CODE, ERR_DESC, ERR_ADDR |
//! | `go` | in | 1 | this cycle happens (the device acts, no fault) |
//! | `grant`, `resp` | in | 1 | a request is accepted; a response is due |
//! | `rd`, `rd_len` | in | 1, 8 | the granted request is a LOAD data read of `rd_len` bytes |
//! | `wr`, `wr_len` | in | 1, 8 | the granted request is a STORE data write of `wr_len` bytes |
//! | `busy_<u>` | in | 1 | unit `l`/`c`/`s` holds a descriptor at the end of the cycle |
//! | `tstall_<u>`, `mstall_l`, `mstall_s` | in | 1 | token stall; memory stall (P1) |
//! | `macs`, `job_macs` | in | 1, 64 | a MATMUL of `job_macs` MACs completes |
//! | `done_n` | in | 3 | descriptors completed in this cycle |
//! | `fence_done`, `fence_irq`, `fence_seqv` | in | 1, 1, 32 | a FENCE completes, its IRQ flag and sequence number |
//! | `head`, `fetch_ptr` | in | 32 | RING_HEAD; the next ring index to fetch |
//! | `work` | in | 1 | the fetch buffer, a FENCE, a queue or a unit holds work |
//! | `mmio_rdata`, `irq` | out | 32, 1 | the read mux; the interrupt line |
//! | `run`, `running`, `xlat_en`, `halted` | out | 1 | CONTROL.RUN; RUN and not halted; CONTROL.XLAT_EN; halted |
//! | `ring_base`, `ring_size`, `tail` | out | 64, 32, 32 | RING_BASE, RING_SIZE, RING_TAIL |
//! | `xlat_base`, `xlat_pages` | out | 64, 32 | XLAT_BASE, XLAT_PAGES |
//! | `inflight` | out | 32 | memory requests accepted and not yet answered |
//! | `clear`, `flush` | out | 1 | device reset; translation-cache flush (at this MMIO write edge) |
//! | `wd` | out | 1 | the watchdog fires in this cycle (E2) |
//! | `ev_irq`, `ev_irq_status` | out | 1, 2 | interrupt causes raised at this edge; IRQ_STATUS after raising them |
//! | `ev_error`, `ev_err_code`, `ev_err_desc`, `ev_err_addr` | out | 1, 8, 32, 64 | the device halts at this edge, with ERR_* (`f_*` unless an MMIO-raised BAD_RING is reported) |

use rust_hdl::prelude::*;

use npukit_abi::regs as r;

use crate::gen::Params;

/// The register file. See the module documentation.
#[derive(LogicBlock, Debug)]
pub struct Regs {
    pub clock: Signal<In, Clock>,
    pub advance: Signal<In, Bit>,
    pub mmio_we: Signal<In, Bit>,
    pub mmio_addr: Signal<In, Bits<12>>,
    pub mmio_wdata: Signal<In, Bits<32>>,
    pub halt: Signal<In, Bit>,
    pub f_code: Signal<In, Bits<8>>,
    pub f_desc: Signal<In, Bits<32>>,
    pub f_addr: Signal<In, Bits<64>>,
    pub go: Signal<In, Bit>,
    pub grant: Signal<In, Bit>,
    pub resp: Signal<In, Bit>,
    pub rd: Signal<In, Bit>,
    pub rd_len: Signal<In, Bits<8>>,
    pub wr: Signal<In, Bit>,
    pub wr_len: Signal<In, Bits<8>>,
    pub busy_l: Signal<In, Bit>,
    pub busy_c: Signal<In, Bit>,
    pub busy_s: Signal<In, Bit>,
    pub tstall_l: Signal<In, Bit>,
    pub tstall_c: Signal<In, Bit>,
    pub tstall_s: Signal<In, Bit>,
    pub mstall_l: Signal<In, Bit>,
    pub mstall_s: Signal<In, Bit>,
    pub macs: Signal<In, Bit>,
    pub job_macs: Signal<In, Bits<64>>,
    pub done_n: Signal<In, Bits<3>>,
    pub fence_done: Signal<In, Bit>,
    pub fence_irq: Signal<In, Bit>,
    pub fence_seqv: Signal<In, Bits<32>>,
    pub head: Signal<In, Bits<32>>,
    pub fetch_ptr: Signal<In, Bits<32>>,
    pub work: Signal<In, Bit>,
    pub mmio_rdata: Signal<Out, Bits<32>>,
    pub irq: Signal<Out, Bit>,
    pub run: Signal<Out, Bit>,
    pub running: Signal<Out, Bit>,
    pub xlat_en: Signal<Out, Bit>,
    pub halted: Signal<Out, Bit>,
    pub ring_base: Signal<Out, Bits<64>>,
    pub ring_size: Signal<Out, Bits<32>>,
    pub tail: Signal<Out, Bits<32>>,
    pub xlat_base: Signal<Out, Bits<64>>,
    pub xlat_pages: Signal<Out, Bits<32>>,
    pub inflight: Signal<Out, Bits<32>>,
    pub clear: Signal<Out, Bit>,
    pub flush: Signal<Out, Bit>,
    pub wd: Signal<Out, Bit>,
    pub ev_irq: Signal<Out, Bit>,
    pub ev_irq_status: Signal<Out, Bits<2>>,
    pub ev_error: Signal<Out, Bit>,
    pub ev_err_code: Signal<Out, Bits<8>>,
    pub ev_err_desc: Signal<Out, Bits<32>>,
    pub ev_err_addr: Signal<Out, Bits<64>>,
    // Register offsets (`npukit_abi::regs`), the counters' window
    // (PERF_CYCLES up to PERF_MEM_BEATS' high word) and field values.
    a_id: Constant<Bits<12>>,
    a_version: Constant<Bits<12>>,
    a_caps: Constant<Bits<12>>,
    a_array_shape: Constant<Bits<12>>,
    a_spad_bytes: Constant<Bits<12>>,
    a_acc_bytes: Constant<Bits<12>>,
    a_beat_bytes: Constant<Bits<12>>,
    a_control: Constant<Bits<12>>,
    a_status: Constant<Bits<12>>,
    a_irq_status: Constant<Bits<12>>,
    a_irq_mask: Constant<Bits<12>>,
    a_ring_base_lo: Constant<Bits<12>>,
    a_ring_base_hi: Constant<Bits<12>>,
    a_ring_size: Constant<Bits<12>>,
    a_ring_head: Constant<Bits<12>>,
    a_ring_tail: Constant<Bits<12>>,
    a_fence_seq: Constant<Bits<12>>,
    a_err_code: Constant<Bits<12>>,
    a_err_desc: Constant<Bits<12>>,
    a_err_addr_lo: Constant<Bits<12>>,
    a_err_addr_hi: Constant<Bits<12>>,
    a_xlat_base_lo: Constant<Bits<12>>,
    a_xlat_base_hi: Constant<Bits<12>>,
    a_xlat_pages: Constant<Bits<12>>,
    a_watchdog: Constant<Bits<12>>,
    a_max_ring: Constant<Bits<12>>,
    a_queue_depth: Constant<Bits<12>>,
    a_perf_first: Constant<Bits<12>>,
    a_perf_end: Constant<Bits<12>>,
    control_keep: Constant<Bits<32>>,
    irq_fence: Constant<Bits<2>>,
    irq_error: Constant<Bits<2>>,
    bad_ring: Constant<Bits<8>>,
    // The read-only values of this variant.
    id: Constant<Bits<32>>,
    version: Constant<Bits<32>>,
    caps: Constant<Bits<32>>,
    shape: Constant<Bits<32>>,
    spad: Constant<Bits<32>>,
    acc: Constant<Bits<32>>,
    beat: Constant<Bits<32>>,
    max_ring: Constant<Bits<32>>,
    queue_depth: Constant<Bits<32>>,
    // State (all zero at power-up, as a fresh ModelDevice).
    now: DFF<Bits<64>>,
    reset_cycle: DFF<Bits<64>>,
    last_progress: DFF<Bits<64>>,
    control: DFF<Bits<32>>,
    irq_st: DFF<Bits<2>>,
    irq_mask: DFF<Bits<2>>,
    ring_base_r: DFF<Bits<64>>,
    ring_size_r: DFF<Bits<32>>,
    tail_r: DFF<Bits<32>>,
    xlat_base_r: DFF<Bits<64>>,
    xlat_pages_r: DFF<Bits<32>>,
    watchdog: DFF<Bits<32>>,
    fence_seq: DFF<Bits<32>>,
    err: DFF<Bit>,
    err_code: DFF<Bits<8>>,
    err_desc: DFF<Bits<32>>,
    err_addr: DFF<Bits<64>>,
    inflight_r: DFF<Bits<32>>,
    mev_r: DFF<Bit>,
    mev_code_r: DFF<Bits<8>>,
    mev_desc_r: DFF<Bits<32>>,
    mev_addr_r: DFF<Bits<64>>,
    mev_irq_r: DFF<Bits<2>>,
    // PERF_* but PERF_CYCLES, in register order.
    load_busy: DFF<Bits<64>>,
    load_token_stall: DFF<Bits<64>>,
    load_mem_stall: DFF<Bits<64>>,
    compute_busy: DFF<Bits<64>>,
    compute_token_stall: DFF<Bits<64>>,
    store_busy: DFF<Bits<64>>,
    store_token_stall: DFF<Bits<64>>,
    store_mem_stall: DFF<Bits<64>>,
    macs_r: DFF<Bits<64>>,
    rd_bytes: DFF<Bits<64>>,
    wr_bytes: DFF<Bits<64>>,
    desc_done: DFF<Bits<64>>,
    mem_beats: DFF<Bits<64>>,
    // Combinational values of this cycle.
    run_l: Signal<Local, Bit>,
    running_l: Signal<Local, Bit>,
    cycles: Signal<Local, Bits<64>>,
    pending: Signal<Local, Bit>,
    busy: Signal<Local, Bit>,
    inflight_after: Signal<Local, Bits<32>>,
    ring_ok: Signal<Local, Bit>,
    bad_tail: Signal<Local, Bit>,
    perf: Signal<Local, Bits<64>>,
    in_perf: Signal<Local, Bit>,
    mmio_write: Signal<Local, Bit>,
}

impl Regs {
    /// The register file of a variant: the read-only values it reports
    /// (`CAPS`, `ARRAY_SHAPE`, memory sizes, `MAX_RING`, `QUEUE_DEPTH`).
    pub fn new(p: &Params) -> Result<Self, String> {
        let (rows, cols) = (p.rows, p.cols);
        if rows == 0 || rows > 0xFFFF || cols == 0 || cols > 0xFFFF {
            return Err(format!(
                "array {rows}x{cols}: ARRAY_SHAPE holds 1..=65535 rows and columns"
            ));
        }
        let k = |v: u32| Constant::new((v as u64).into());
        let a = |v: u32| Constant::new((v as u64).into());
        Ok(Regs {
            clock: Default::default(),
            advance: Default::default(),
            mmio_we: Default::default(),
            mmio_addr: Default::default(),
            mmio_wdata: Default::default(),
            halt: Default::default(),
            f_code: Default::default(),
            f_desc: Default::default(),
            f_addr: Default::default(),
            go: Default::default(),
            grant: Default::default(),
            resp: Default::default(),
            rd: Default::default(),
            rd_len: Default::default(),
            wr: Default::default(),
            wr_len: Default::default(),
            busy_l: Default::default(),
            busy_c: Default::default(),
            busy_s: Default::default(),
            tstall_l: Default::default(),
            tstall_c: Default::default(),
            tstall_s: Default::default(),
            mstall_l: Default::default(),
            mstall_s: Default::default(),
            macs: Default::default(),
            job_macs: Default::default(),
            done_n: Default::default(),
            fence_done: Default::default(),
            fence_irq: Default::default(),
            fence_seqv: Default::default(),
            head: Default::default(),
            fetch_ptr: Default::default(),
            work: Default::default(),
            mmio_rdata: Default::default(),
            irq: Default::default(),
            run: Default::default(),
            running: Default::default(),
            xlat_en: Default::default(),
            halted: Default::default(),
            ring_base: Default::default(),
            ring_size: Default::default(),
            tail: Default::default(),
            xlat_base: Default::default(),
            xlat_pages: Default::default(),
            inflight: Default::default(),
            clear: Default::default(),
            flush: Default::default(),
            wd: Default::default(),
            ev_irq: Default::default(),
            ev_irq_status: Default::default(),
            ev_error: Default::default(),
            ev_err_code: Default::default(),
            ev_err_desc: Default::default(),
            ev_err_addr: Default::default(),
            a_id: a(r::ID),
            a_version: a(r::VERSION),
            a_caps: a(r::CAPS),
            a_array_shape: a(r::ARRAY_SHAPE),
            a_spad_bytes: a(r::SPAD_BYTES),
            a_acc_bytes: a(r::ACC_BYTES),
            a_beat_bytes: a(r::BEAT_BYTES),
            a_control: a(r::CONTROL),
            a_status: a(r::STATUS),
            a_irq_status: a(r::IRQ_STATUS),
            a_irq_mask: a(r::IRQ_MASK),
            a_ring_base_lo: a(r::RING_BASE_LO),
            a_ring_base_hi: a(r::RING_BASE_HI),
            a_ring_size: a(r::RING_SIZE),
            a_ring_head: a(r::RING_HEAD),
            a_ring_tail: a(r::RING_TAIL),
            a_fence_seq: a(r::FENCE_SEQ),
            a_err_code: a(r::ERR_CODE),
            a_err_desc: a(r::ERR_DESC),
            a_err_addr_lo: a(r::ERR_ADDR_LO),
            a_err_addr_hi: a(r::ERR_ADDR_HI),
            a_xlat_base_lo: a(r::XLAT_BASE_LO),
            a_xlat_base_hi: a(r::XLAT_BASE_HI),
            a_xlat_pages: a(r::XLAT_PAGES),
            a_watchdog: a(r::WATCHDOG),
            a_max_ring: a(r::MAX_RING),
            a_queue_depth: a(r::QUEUE_DEPTH),
            a_perf_first: a(r::PERF_CYCLES),
            a_perf_end: a(r::PERF_MEM_BEATS + 8),
            // RUN and XLAT_EN stay set; RESET acts and reads 0
            control_keep: k(r::CONTROL_RUN | r::CONTROL_XLAT_EN),
            irq_fence: Constant::new((r::IRQ_FENCE as u64).into()),
            irq_error: Constant::new((r::IRQ_ERROR as u64).into()),
            bad_ring: Constant::new((npukit_abi::ErrorCode::BadRing as u64).into()),
            id: k(npukit_abi::DEVICE_ID),
            version: k(npukit_abi::abi_version()),
            caps: k(p.caps()),
            shape: k((cols << 16) | rows),
            spad: k(p.spad_bytes),
            acc: k(p.acc_bytes),
            beat: k(p.beat_bytes),
            max_ring: k(p.max_ring),
            queue_depth: k(p.queue_depth),
            now: Default::default(),
            reset_cycle: Default::default(),
            last_progress: Default::default(),
            control: Default::default(),
            irq_st: Default::default(),
            irq_mask: Default::default(),
            ring_base_r: Default::default(),
            ring_size_r: Default::default(),
            tail_r: Default::default(),
            xlat_base_r: Default::default(),
            xlat_pages_r: Default::default(),
            watchdog: Default::default(),
            fence_seq: Default::default(),
            err: Default::default(),
            err_code: Default::default(),
            err_desc: Default::default(),
            err_addr: Default::default(),
            inflight_r: Default::default(),
            mev_r: Default::default(),
            mev_code_r: Default::default(),
            mev_desc_r: Default::default(),
            mev_addr_r: Default::default(),
            mev_irq_r: Default::default(),
            load_busy: Default::default(),
            load_token_stall: Default::default(),
            load_mem_stall: Default::default(),
            compute_busy: Default::default(),
            compute_token_stall: Default::default(),
            store_busy: Default::default(),
            store_token_stall: Default::default(),
            store_mem_stall: Default::default(),
            macs_r: Default::default(),
            rd_bytes: Default::default(),
            wr_bytes: Default::default(),
            desc_done: Default::default(),
            mem_beats: Default::default(),
            run_l: Default::default(),
            running_l: Default::default(),
            cycles: Default::default(),
            pending: Default::default(),
            busy: Default::default(),
            inflight_after: Default::default(),
            ring_ok: Default::default(),
            bad_tail: Default::default(),
            perf: Default::default(),
            in_perf: Default::default(),
            mmio_write: Default::default(),
        })
    }
}

// The logic is two `always @(*)` blocks: the view of the state (outputs,
// read mux, watchdog, from the registers and the inputs that do not depend
// on them) and the next state (from the cycle's decisions, which do). In one
// block Verilator would see a combinational loop through the top's plan
// (`running` -> fetch -> `grant` -> the block).

mod half {
    use super::Regs;
    use rust_hdl::prelude::*;

    use crate::halves::{NextState, View};

    // The outputs: decided from the state and the inputs that do not depend on it.
    impl View for Regs {
        #[hdl_gen]
        fn update(&mut self) {
            // ---- state views ----
            self.run_l.next = self.control.q.val().get_bit(0);
            self.running_l.next = self.run_l.val() & !self.err.q.val();
            self.cycles.next = self.now.q.val() - self.reset_cycle.q.val();
            // work the device still has: the ring to fetch (running), or held work
            self.pending.next = (self.running_l.val()
                & (self.fetch_ptr.val() != self.tail_r.q.val()))
                | self.work.val();
            // STATUS.BUSY, from the state at the end of the last cycle
            self.busy.next =
                !self.err.q.val() & (self.pending.val() | self.inflight_r.q.val().any());
            // E2: busy after this cycle's response is delivered, and `w` cycles
            // since the last progress
            self.inflight_after.next = self.inflight_r.q.val();
            if self.resp.val() {
                self.inflight_after.next = self.inflight_r.q.val() - 1_u64;
            }
            self.wd.next = self.watchdog.q.val().any()
                & (self.pending.val() | self.inflight_after.val().any())
                & (self.now.q.val()
                    >= (self.last_progress.q.val() + bit_cast::<64, 32>(self.watchdog.q.val())));
            // BAD_RING at RUN 0->1: RING_SIZE a power of two in 2..=MAX_RING,
            // RING_BASE 32-byte aligned, RING_TAIL < RING_SIZE
            self.ring_ok.next = (self.ring_size_r.q.val() >= 2_u64)
                & (self.ring_size_r.q.val() <= self.max_ring.val())
                & !(self.ring_size_r.q.val() & (self.ring_size_r.q.val() - 1_u64)).any()
                & !self.ring_base_r.q.val().get_bits::<5>(0).any()
                & (self.tail_r.q.val() < self.ring_size_r.q.val());
            // a doorbell past the ring while running
            self.bad_tail.next = self.run_l.val()
                & (self.mmio_wdata.val() >= self.ring_size_r.q.val())
                & !self.err.q.val();
            // ---- outputs from the state ----
            self.run.next = self.run_l.val();
            self.running.next = self.running_l.val();
            self.xlat_en.next = self.control.q.val().get_bit(2);
            self.halted.next = self.err.q.val();
            self.ring_base.next = self.ring_base_r.q.val();
            self.ring_size.next = self.ring_size_r.q.val();
            self.tail.next = self.tail_r.q.val();
            self.xlat_base.next = self.xlat_base_r.q.val();
            self.xlat_pages.next = self.xlat_pages_r.q.val();
            self.inflight.next = self.inflight_r.q.val();
            self.irq.next = (self.irq_st.q.val() & self.irq_mask.q.val()).any();
            // ---- MMIO read (combinational, G2) ----
            self.perf.next = self.cycles.val();
            if self.mmio_addr.val().get_bits::<4>(3) == 1_u64 {
                self.perf.next = self.load_busy.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 2_u64 {
                self.perf.next = self.load_token_stall.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 3_u64 {
                self.perf.next = self.load_mem_stall.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 4_u64 {
                self.perf.next = self.compute_busy.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 5_u64 {
                self.perf.next = self.compute_token_stall.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 6_u64 {
                self.perf.next = self.store_busy.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 7_u64 {
                self.perf.next = self.store_token_stall.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 8_u64 {
                self.perf.next = self.store_mem_stall.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 9_u64 {
                self.perf.next = self.macs_r.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 10_u64 {
                self.perf.next = self.rd_bytes.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 11_u64 {
                self.perf.next = self.wr_bytes.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 12_u64 {
                self.perf.next = self.desc_done.q.val();
            }
            if self.mmio_addr.val().get_bits::<4>(3) == 13_u64 {
                self.perf.next = self.mem_beats.q.val();
            }
            self.in_perf.next = (self.mmio_addr.val() >= self.a_perf_first.val())
                & (self.mmio_addr.val() < self.a_perf_end.val())
                & !self.mmio_addr.val().get_bits::<2>(0).any();
            self.mmio_rdata.next = 0.into();
            if self.mmio_addr.val() == self.a_id.val() {
                self.mmio_rdata.next = self.id.val();
            } else if self.mmio_addr.val() == self.a_version.val() {
                self.mmio_rdata.next = self.version.val();
            } else if self.mmio_addr.val() == self.a_caps.val() {
                self.mmio_rdata.next = self.caps.val();
            } else if self.mmio_addr.val() == self.a_array_shape.val() {
                self.mmio_rdata.next = self.shape.val();
            } else if self.mmio_addr.val() == self.a_spad_bytes.val() {
                self.mmio_rdata.next = self.spad.val();
            } else if self.mmio_addr.val() == self.a_acc_bytes.val() {
                self.mmio_rdata.next = self.acc.val();
            } else if self.mmio_addr.val() == self.a_beat_bytes.val() {
                self.mmio_rdata.next = self.beat.val();
            } else if self.mmio_addr.val() == self.a_control.val() {
                self.mmio_rdata.next = self.control.q.val();
            } else if self.mmio_addr.val() == self.a_status.val() {
                self.mmio_rdata.next = (bit_cast::<32, 1>(self.err.q.val().into()) << 1_u64)
                    | bit_cast::<32, 1>(self.busy.val().into());
            } else if self.mmio_addr.val() == self.a_irq_status.val() {
                self.mmio_rdata.next = bit_cast::<32, 2>(self.irq_st.q.val());
            } else if self.mmio_addr.val() == self.a_irq_mask.val() {
                self.mmio_rdata.next = bit_cast::<32, 2>(self.irq_mask.q.val());
            } else if self.mmio_addr.val() == self.a_ring_base_lo.val() {
                self.mmio_rdata.next = self.ring_base_r.q.val().get_bits::<32>(0);
            } else if self.mmio_addr.val() == self.a_ring_base_hi.val() {
                self.mmio_rdata.next = self.ring_base_r.q.val().get_bits::<32>(32);
            } else if self.mmio_addr.val() == self.a_ring_size.val() {
                self.mmio_rdata.next = self.ring_size_r.q.val();
            } else if self.mmio_addr.val() == self.a_ring_head.val() {
                self.mmio_rdata.next = self.head.val();
            } else if self.mmio_addr.val() == self.a_ring_tail.val() {
                self.mmio_rdata.next = self.tail_r.q.val();
            } else if self.mmio_addr.val() == self.a_fence_seq.val() {
                self.mmio_rdata.next = self.fence_seq.q.val();
            } else if self.mmio_addr.val() == self.a_err_code.val() {
                if self.err.q.val() {
                    self.mmio_rdata.next = bit_cast::<32, 8>(self.err_code.q.val());
                }
            } else if self.mmio_addr.val() == self.a_err_desc.val() {
                if self.err.q.val() {
                    self.mmio_rdata.next = self.err_desc.q.val();
                }
            } else if self.mmio_addr.val() == self.a_err_addr_lo.val() {
                if self.err.q.val() {
                    self.mmio_rdata.next = self.err_addr.q.val().get_bits::<32>(0);
                }
            } else if self.mmio_addr.val() == self.a_err_addr_hi.val() {
                if self.err.q.val() {
                    self.mmio_rdata.next = self.err_addr.q.val().get_bits::<32>(32);
                }
            } else if self.mmio_addr.val() == self.a_xlat_base_lo.val() {
                self.mmio_rdata.next = self.xlat_base_r.q.val().get_bits::<32>(0);
            } else if self.mmio_addr.val() == self.a_xlat_base_hi.val() {
                self.mmio_rdata.next = self.xlat_base_r.q.val().get_bits::<32>(32);
            } else if self.mmio_addr.val() == self.a_xlat_pages.val() {
                self.mmio_rdata.next = self.xlat_pages_r.q.val();
            } else if self.mmio_addr.val() == self.a_watchdog.val() {
                self.mmio_rdata.next = self.watchdog.q.val();
            } else if self.mmio_addr.val() == self.a_max_ring.val() {
                self.mmio_rdata.next = self.max_ring.val();
            } else if self.mmio_addr.val() == self.a_queue_depth.val() {
                self.mmio_rdata.next = self.queue_depth.val();
            } else if self.in_perf.val() {
                if self.mmio_addr.val().get_bit(2) {
                    self.mmio_rdata.next = self.perf.val().get_bits::<32>(32);
                } else {
                    self.mmio_rdata.next = self.perf.val().get_bits::<32>(0);
                }
            }
            // ---- MMIO write side effects on the other blocks ----
            self.mmio_write.next = !self.advance.val() & self.mmio_we.val();
            // the device reset (CONTROL.RESET)
            self.clear.next = self.mmio_write.val()
                & (self.mmio_addr.val() == self.a_control.val())
                & self.mmio_wdata.val().get_bit(1);
            // the translation caches are emptied by writes to CONTROL and XLAT_*
            self.flush.next = self.mmio_write.val()
                & ((self.mmio_addr.val() == self.a_control.val())
                    | (self.mmio_addr.val() == self.a_xlat_base_lo.val())
                    | (self.mmio_addr.val() == self.a_xlat_base_hi.val())
                    | (self.mmio_addr.val() == self.a_xlat_pages.val()));
        }
    }

    // The next state, at a cycle edge or an MMIO write edge.
    impl NextState for Regs {
        #[hdl_gen]
        fn update(&mut self) {
            dff_setup!(
                self,
                clock,
                now,
                reset_cycle,
                last_progress,
                control,
                irq_st,
                irq_mask,
                ring_base_r,
                ring_size_r,
                tail_r,
                xlat_base_r,
                xlat_pages_r,
                watchdog,
                fence_seq,
                err,
                err_code,
                err_desc,
                err_addr,
                inflight_r,
                mev_r,
                mev_code_r,
                mev_desc_r,
                mev_addr_r,
                mev_irq_r,
                load_busy,
                load_token_stall,
                load_mem_stall,
                compute_busy,
                compute_token_stall,
                store_busy,
                store_token_stall,
                store_mem_stall,
                macs_r,
                rd_bytes,
                wr_bytes,
                desc_done,
                mem_beats
            );
            // ---- the IRQ and error events of this edge (the top's ev_* ports) ----
            self.ev_irq.next = (self.fence_done.val() & self.fence_irq.val()) | self.halt.val();
            self.ev_irq_status.next = self.irq_st.q.val();
            if self.halt.val() {
                self.ev_irq_status.next = self.irq_st.q.val() | self.irq_error.val();
            }
            if self.fence_done.val() & self.fence_irq.val() {
                self.ev_irq_status.next = self.irq_st.q.val() | self.irq_fence.val();
            }
            if self.halt.val() & self.fence_done.val() & self.fence_irq.val() {
                self.ev_irq_status.next =
                    self.irq_st.q.val() | self.irq_error.val() | self.irq_fence.val();
            }
            self.ev_error.next = self.halt.val();
            self.ev_err_code.next = self.f_code.val();
            self.ev_err_desc.next = self.f_desc.val();
            self.ev_err_addr.next = self.f_addr.val();
            // a BAD_RING raised by an MMIO write: at the next cycle edge
            if self.advance.val() & self.mev_r.q.val() {
                self.ev_irq.next = true;
                self.ev_irq_status.next = self.mev_irq_r.q.val();
                self.ev_error.next = true;
                self.ev_err_code.next = self.mev_code_r.q.val();
                self.ev_err_desc.next = self.mev_desc_r.q.val();
                self.ev_err_addr.next = self.mev_addr_r.q.val();
            }
            // ======== the clock edge ========
            if self.advance.val() {
                self.now.d.next = self.now.q.val() + 1_u64;
                self.mev_r.d.next = false;
                if self.halt.val() {
                    // G3: halt, latch, raise IRQ_ERROR; nothing else counts
                    self.err.d.next = true;
                    self.err_code.d.next = self.f_code.val();
                    self.err_desc.d.next = self.f_desc.val();
                    self.err_addr.d.next = self.f_addr.val();
                    self.irq_st.d.next = self.irq_st.q.val() | self.irq_error.val();
                    self.inflight_r.d.next = 0.into();
                } else if self.go.val() {
                    if self.grant.val() & !self.resp.val() {
                        self.inflight_r.d.next = self.inflight_r.q.val() + 1_u64;
                    }
                    if self.resp.val() & !self.grant.val() {
                        self.inflight_r.d.next = self.inflight_r.q.val() - 1_u64;
                    }
                    if self.grant.val() {
                        self.mem_beats.d.next = self.mem_beats.q.val() + 1_u64;
                        if self.rd.val() {
                            self.rd_bytes.d.next =
                                self.rd_bytes.q.val() + bit_cast::<64, 8>(self.rd_len.val());
                        }
                        if self.wr.val() {
                            self.wr_bytes.d.next =
                                self.wr_bytes.q.val() + bit_cast::<64, 8>(self.wr_len.val());
                        }
                    }
                    if self.macs.val() {
                        self.macs_r.d.next = self.macs_r.q.val() + self.job_macs.val();
                    }
                    if self.done_n.val().any() {
                        self.desc_done.d.next =
                            self.desc_done.q.val() + bit_cast::<64, 3>(self.done_n.val());
                        self.last_progress.d.next = self.now.q.val();
                    }
                    if self.fence_done.val() {
                        self.fence_seq.d.next = self.fence_seqv.val();
                        if self.fence_irq.val() {
                            self.irq_st.d.next = self.irq_st.q.val() | self.irq_fence.val();
                        }
                    }
                    // P1: unit state after this cycle
                    if self.busy_l.val() {
                        self.load_busy.d.next = self.load_busy.q.val() + 1_u64;
                    }
                    if self.busy_c.val() {
                        self.compute_busy.d.next = self.compute_busy.q.val() + 1_u64;
                    }
                    if self.busy_s.val() {
                        self.store_busy.d.next = self.store_busy.q.val() + 1_u64;
                    }
                    if self.tstall_l.val() {
                        self.load_token_stall.d.next = self.load_token_stall.q.val() + 1_u64;
                    }
                    if self.tstall_c.val() {
                        self.compute_token_stall.d.next = self.compute_token_stall.q.val() + 1_u64;
                    }
                    if self.tstall_s.val() {
                        self.store_token_stall.d.next = self.store_token_stall.q.val() + 1_u64;
                    }
                    if self.mstall_l.val() {
                        self.load_mem_stall.d.next = self.load_mem_stall.q.val() + 1_u64;
                    }
                    if self.mstall_s.val() {
                        self.store_mem_stall.d.next = self.store_mem_stall.q.val() + 1_u64;
                    }
                }
            } else if self.mmio_we.val() {
                if self.mmio_addr.val() == self.a_control.val() {
                    if self.mmio_wdata.val().get_bit(1) {
                        // CONTROL.RESET: everything but time itself starts afresh
                        self.reset_cycle.d.next = self.now.q.val();
                        self.last_progress.d.next = self.now.q.val();
                        self.control.d.next = 0.into();
                        self.irq_st.d.next = 0.into();
                        self.irq_mask.d.next = 0.into();
                        self.ring_base_r.d.next = 0.into();
                        self.ring_size_r.d.next = 0.into();
                        self.tail_r.d.next = 0.into();
                        self.xlat_base_r.d.next = 0.into();
                        self.xlat_pages_r.d.next = 0.into();
                        self.watchdog.d.next = 0.into();
                        self.fence_seq.d.next = 0.into();
                        self.err.d.next = false;
                        self.err_code.d.next = 0.into();
                        self.err_desc.d.next = 0.into();
                        self.err_addr.d.next = 0.into();
                        self.inflight_r.d.next = 0.into();
                        self.load_busy.d.next = 0.into();
                        self.load_token_stall.d.next = 0.into();
                        self.load_mem_stall.d.next = 0.into();
                        self.compute_busy.d.next = 0.into();
                        self.compute_token_stall.d.next = 0.into();
                        self.store_busy.d.next = 0.into();
                        self.store_token_stall.d.next = 0.into();
                        self.store_mem_stall.d.next = 0.into();
                        self.macs_r.d.next = 0.into();
                        self.rd_bytes.d.next = 0.into();
                        self.wr_bytes.d.next = 0.into();
                        self.desc_done.d.next = 0.into();
                        self.mem_beats.d.next = 0.into();
                    } else {
                        self.control.d.next = self.mmio_wdata.val() & self.control_keep.val();
                        if !self.run_l.val() & self.mmio_wdata.val().get_bit(0) & !self.err.q.val()
                        {
                            // E2: RUN 0->1 restarts the watchdog
                            self.last_progress.d.next = self.now.q.val();
                            if !self.ring_ok.val() {
                                self.err.d.next = true;
                                self.err_code.d.next = self.bad_ring.val();
                                self.err_desc.d.next = self.tail_r.q.val();
                                self.err_addr.d.next = self.ring_base_r.q.val();
                                self.irq_st.d.next = self.irq_st.q.val() | self.irq_error.val();
                                self.inflight_r.d.next = 0.into();
                                self.mev_r.d.next = true;
                                self.mev_code_r.d.next = self.bad_ring.val();
                                self.mev_desc_r.d.next = self.tail_r.q.val();
                                self.mev_addr_r.d.next = self.ring_base_r.q.val();
                                self.mev_irq_r.d.next = self.irq_st.q.val() | self.irq_error.val();
                            }
                        }
                    }
                }
                if self.mmio_addr.val() == self.a_irq_status.val() {
                    self.irq_st.d.next =
                        self.irq_st.q.val() & !self.mmio_wdata.val().get_bits::<2>(0);
                }
                if self.mmio_addr.val() == self.a_irq_mask.val() {
                    self.irq_mask.d.next = self.mmio_wdata.val().get_bits::<2>(0);
                }
                // the ring's registers are ignored while RUN is set
                if !self.run_l.val() {
                    if self.mmio_addr.val() == self.a_ring_base_lo.val() {
                        self.ring_base_r.d.next = (self.ring_base_r.q.val()
                            & 0xFFFF_FFFF_0000_0000_u64)
                            | bit_cast::<64, 32>(self.mmio_wdata.val());
                        self.tail_r.d.next = 0.into();
                    }
                    if self.mmio_addr.val() == self.a_ring_base_hi.val() {
                        self.ring_base_r.d.next = (self.ring_base_r.q.val() & 0xFFFF_FFFF_u64)
                            | (bit_cast::<64, 32>(self.mmio_wdata.val()) << 32_u64);
                        self.tail_r.d.next = 0.into();
                    }
                    if self.mmio_addr.val() == self.a_ring_size.val() {
                        self.ring_size_r.d.next = self.mmio_wdata.val();
                        self.tail_r.d.next = 0.into();
                    }
                }
                if self.mmio_addr.val() == self.a_ring_tail.val() {
                    // the doorbell restarts the watchdog (E2)
                    self.tail_r.d.next = self.mmio_wdata.val();
                    self.last_progress.d.next = self.now.q.val();
                    if self.bad_tail.val() {
                        self.err.d.next = true;
                        self.err_code.d.next = self.bad_ring.val();
                        self.err_desc.d.next = self.mmio_wdata.val();
                        self.err_addr.d.next = self.ring_base_r.q.val();
                        self.irq_st.d.next = self.irq_st.q.val() | self.irq_error.val();
                        self.inflight_r.d.next = 0.into();
                        self.mev_r.d.next = true;
                        self.mev_code_r.d.next = self.bad_ring.val();
                        self.mev_desc_r.d.next = self.mmio_wdata.val();
                        self.mev_addr_r.d.next = self.ring_base_r.q.val();
                        self.mev_irq_r.d.next = self.irq_st.q.val() | self.irq_error.val();
                    }
                }
                if self.mmio_addr.val() == self.a_xlat_base_lo.val() {
                    // 8-byte aligned: bits 2:0 read as zero
                    self.xlat_base_r.d.next = (self.xlat_base_r.q.val()
                        & 0xFFFF_FFFF_0000_0000_u64)
                        | bit_cast::<64, 32>(self.mmio_wdata.val() & 0xFFFF_FFF8_u64);
                }
                if self.mmio_addr.val() == self.a_xlat_base_hi.val() {
                    self.xlat_base_r.d.next = (self.xlat_base_r.q.val() & 0xFFFF_FFFF_u64)
                        | (bit_cast::<64, 32>(self.mmio_wdata.val()) << 32_u64);
                }
                if self.mmio_addr.val() == self.a_xlat_pages.val() {
                    self.xlat_pages_r.d.next = self.mmio_wdata.val();
                }
                if self.mmio_addr.val() == self.a_watchdog.val() {
                    self.watchdog.d.next = self.mmio_wdata.val();
                    self.last_progress.d.next = self.now.q.val();
                }
            }
        }
    }
}

crate::halves::logic_from_halves!(Regs);
