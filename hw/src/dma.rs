//! `DmaUnit`: one LOAD or STORE engine (timing rules D1-D3 and X1; the model is
//! `npukit_sim::dma` and `dma_request` / `apply_grant` / `apply_response` /
//! `completes_now` in `npukit_sim::model`).
//!
//! ```text
//!  issue, desc ─► job registers ─► next beat (va, len, local) ─► Tlb ─► range check
//!                 (pos, row, rows left,        │                   │        │
//!                  local pos, outstanding)     │              req_* (data beat or PTE read)
//!  resp_* ─► LOAD: lm_wr_* (bytes of the beat) │              fault_* (XLAT_*, ADDR_RANGE)
//!            PTE: entry into the Tlb           └─ STORE: lm_rd_* ─► req_wdata/req_wmask
//! ```
//!
//! A job moves `rows` rows of `row_bytes` bytes. Each row is cut at `B`-aligned
//! device addresses, and beats are requested in row order (D1). A job issued at
//! the edge ending cycle `t` offers its first request in `t + 1`, and the next
//! one in the cycle after the previous was accepted (D2). With translation on,
//! a beat whose page is not in the cache is preceded by its own PTE read. A
//! translation fault, or a physical beat (or PTE read) outside device memory,
//! is signalled on `fault` in the cycle the request would have been offered,
//! with no request. The job completes (`done`) in the cycle after its last
//! response arrived (D3); `req_valid` is already low in that cycle.
//!
//! Every output is decided from the state at the start of the cycle (G1) and
//! the inputs of the cycle; state changes only at a clock edge with `enable`
//! (or `clear` / `tlb_flush`, which act at any edge).
//!
//! # Parameters (fixed at construction, `localparam`s in the Verilog)
//!
//! `is_store` (the STORE engine: writes device memory, reads local memory,
//! translates for writing) and `B` = `dma.beat_bytes` (a power of two, 8..=64).
//!
//! # Inputs
//!
//! | Port | Width | Meaning |
//! |------|-------|---------|
//! | `clock` | 1 | clock |
//! | `enable` | 1 | this edge is a simulated cycle of a running (not halted) device; the top need not gate it by this cycle's fault (G3: the device then halts, and only `clear` leaves the halt) |
//! | `clear` | 1 | device reset at this edge (any edge): drop the job, empty the translation cache |
//! | `tlb_flush` | 1 | empty the translation cache at this edge (any edge): MMIO write to CONTROL / XLAT_* |
//! | `issue` | 1 | start `desc` at this edge (only when `busy = 0` or `done = 1`; needs `enable`) |
//! | `desc` | 256 | the validated LOAD/STORE descriptor, word 0 in bits 31:0 |
//! | `issue_index` | 32 | its ring index |
//! | `xlat_en` | 1 | CONTROL.XLAT_EN |
//! | `xlat_base` | 64 | XLAT_BASE |
//! | `xlat_pages` | 32 | XLAT_PAGES |
//! | `mem_size` | 64 | device memory size in bytes |
//! | `grant` | 1 | the port accepts this unit's request this cycle (ignored when `req_valid = 0`) |
//! | `resp_valid` | 1 | a response to this unit is delivered this cycle |
//! | `resp_tag` | 56 | the `req_tag` of the request it answers |
//! | `resp_data` | 512 | read data: the whole beat, byte 0 (at the beat-aligned address) in bits 7:0 |
//! | `lm_rd_data` | 512 | STORE: local memory bytes from `lm_rd_addr` (byte 0 in bits 7:0), combinational |
//!
//! # Outputs
//!
//! | Port | Width | Meaning |
//! |------|-------|---------|
//! | `busy` | 1 | holds a job at the start of the cycle |
//! | `done` | 1 | the job completes in this cycle (every beat granted and answered) |
//! | `index` | 32 | ring index of the job (for events and `ERR_DESC`) |
//! | `req_valid` | 1 | a request is offered this cycle |
//! | `req_pte` | 1 | it is a translation-table read (`MemKind::Pte`), else a data beat (`Read` for LOAD, `Write` for STORE) |
//! | `req_addr` | 64 | physical address, aligned to `B` |
//! | `req_wdata` | 512 | STORE beat: byte `i` goes to `req_addr + i` (the beat's bytes at its offset, other bytes 0) |
//! | `req_wmask` | 64 | STORE beat: byte enables (0 for PTE reads and LOAD beats) |
//! | `req_tag` | 56 | returned on `resp_tag` (layout: `TAG_*` below) |
//! | `req_bytes` | 8 | data bytes of the beat (PERF_DMA_*_BYTES); 0 for a PTE read |
//! | `fault` | 1 | a fault is detected this cycle (no request is offered) |
//! | `fault_code` | 8 | `ADDR_RANGE` (8), `XLAT_FAULT` (9) or `XLAT_WRITE` (10) |
//! | `fault_addr` | 64 | `ERR_ADDR`: the physical address (ADDR_RANGE: of the beat's first byte, or of the PTE) or the device address (XLAT_*) |
//! | `lm_wr` | 1 | LOAD: write `lm_wr_len` bytes into local memory at this edge (gated by `enable`) |
//! | `lm_wr_acc` | 1 | into the accumulator memory (else the scratchpad) |
//! | `lm_wr_addr` | 32 | local byte address |
//! | `lm_wr_len` | 8 | bytes, 1..=B |
//! | `lm_wr_data` | 512 | byte 0 goes to `lm_wr_addr` |
//! | `lm_rd_acc` | 1 | STORE: read the accumulator memory (else the scratchpad) |
//! | `lm_rd_addr` | 32 | STORE: local byte address of the beat offered now |
//!
//! Combinational paths from inputs to outputs: `lm_rd_data` -> `req_wdata`;
//! `enable`, `resp_*` -> `lm_wr*`. `req_*`, `fault*`, `done`, `busy` depend
//! on the state and the configuration inputs (`xlat_*`, `mem_size`) only, so
//! the top may compute `grant` and `enable` from them.
//!
//! The translation cache is a [`Tlb`] child; it persists across jobs, as in the
//! model.

use std::fmt;

use npukit_abi::ErrorCode;
use rust_hdl::prelude::*;

use crate::xlat::Tlb;

/// Tag bit 0: the request is a PTE read.
pub const TAG_PTE: usize = 0;
/// Tag bits 6:1: the byte offset of the data (or PTE) within the beat.
pub const TAG_OFF: usize = 1;
/// Tag bits 13:7: data bytes of the beat (1..=64); 0 for a PTE read.
pub const TAG_LEN: usize = 7;
/// Tag bits 46:15: the local byte address of the beat's first byte, or the
/// page number of a PTE read. Bits 14 and 55:47 are zero.
pub const TAG_ADDR: usize = 15;
/// Width of the unit's own tag.
pub const TAG_BITS: usize = 56;

/// A beat width the unit cannot be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBeatBytes(pub u32);

impl fmt::Display for BadBeatBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DmaUnit: beat_bytes = {} must be a power of two from 8 to 64",
            self.0
        )
    }
}

impl std::error::Error for BadBeatBytes {}

/// One LOAD or STORE engine. See the module documentation for its ports.
#[derive(LogicBlock, Debug)]
pub struct DmaUnit {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub tlb_flush: Signal<In, Bit>,
    pub issue: Signal<In, Bit>,
    pub desc: Signal<In, Bits<256>>,
    pub issue_index: Signal<In, Bits<32>>,
    pub xlat_en: Signal<In, Bit>,
    pub xlat_base: Signal<In, Bits<64>>,
    pub xlat_pages: Signal<In, Bits<32>>,
    pub mem_size: Signal<In, Bits<64>>,
    pub grant: Signal<In, Bit>,
    pub resp_valid: Signal<In, Bit>,
    pub resp_tag: Signal<In, Bits<56>>,
    pub resp_data: Signal<In, Bits<512>>,
    pub lm_rd_data: Signal<In, Bits<512>>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    pub index: Signal<Out, Bits<32>>,
    pub req_valid: Signal<Out, Bit>,
    pub req_pte: Signal<Out, Bit>,
    pub req_addr: Signal<Out, Bits<64>>,
    pub req_wdata: Signal<Out, Bits<512>>,
    pub req_wmask: Signal<Out, Bits<64>>,
    pub req_tag: Signal<Out, Bits<56>>,
    pub req_bytes: Signal<Out, Bits<8>>,
    pub fault: Signal<Out, Bit>,
    pub fault_code: Signal<Out, Bits<8>>,
    pub fault_addr: Signal<Out, Bits<64>>,
    pub lm_wr: Signal<Out, Bit>,
    pub lm_wr_acc: Signal<Out, Bit>,
    pub lm_wr_addr: Signal<Out, Bits<32>>,
    pub lm_wr_len: Signal<Out, Bits<8>>,
    pub lm_wr_data: Signal<Out, Bits<512>>,
    pub lm_rd_acc: Signal<Out, Bit>,
    pub lm_rd_addr: Signal<Out, Bits<32>>,
    tlb: Tlb,
    // The job.
    busy_r: DFF<Bit>,
    index_r: DFF<Bits<32>>,
    acc_r: DFF<Bit>,
    /// Device address of the next byte to request.
    pos: DFF<Bits<64>>,
    /// Device address of the current row's first byte, and one past its last.
    row_start: DFF<Bits<64>>,
    row_end: DFF<Bits<64>>,
    /// Rows not yet fully requested, the current one included.
    rows_left: DFF<Bits<16>>,
    row_bytes: DFF<Bits<16>>,
    dram_stride: DFF<Bits<32>>,
    local_stride: DFF<Bits<32>>,
    /// Local address of the current row's first byte, and of the next byte.
    local_row: DFF<Bits<32>>,
    local_pos: DFF<Bits<32>>,
    /// Every beat has been granted.
    issued_all: DFF<Bit>,
    /// Beats granted whose response has not arrived.
    outstanding: DFF<Bits<32>>,
    // Combinational values of the cycle.
    active: Signal<Local, Bit>,
    off: Signal<Local, Bits<64>>,
    rem_beat: Signal<Local, Bits<64>>,
    rem_row: Signal<Local, Bits<64>>,
    len: Signal<Local, Bits<64>>,
    mem65: Signal<Local, Bits<65>>,
    data_end: Signal<Local, Bits<65>>,
    pte_end: Signal<Local, Bits<65>>,
    data_ok: Signal<Local, Bit>,
    pte_ok: Signal<Local, Bit>,
    offer_data: Signal<Local, Bit>,
    offer_pte: Signal<Local, Bit>,
    grant_data: Signal<Local, Bit>,
    new_pos: Signal<Local, Bits<64>>,
    next_row_start: Signal<Local, Bits<64>>,
    next_local_row: Signal<Local, Bits<32>>,
    wshift: Signal<Local, Bits<9>>,
    rsp_pte: Signal<Local, Bit>,
    rsp_data: Signal<Local, Bit>,
    rsp_shift: Signal<Local, Bits<9>>,
    rsp_bytes: Signal<Local, Bits<512>>,
    /// A reduction of the input bits the unit does not need (the opcode,
    /// dependency flags and word 7 of the descriptor, the tag bits it never
    /// sets) and of the cache's `waiting` output: Verilator skips `*unused*`
    /// names in its UNUSED lint.
    unused_inputs: Signal<Local, Bit>,
    // Parameters.
    is_store: Constant<Bit>,
    beat: Constant<Bits<64>>,
    beat_mask: Constant<Bits<64>>,
    align_mask: Constant<Bits<64>>,
    ones: Constant<Bits<64>>,
    code_range: Constant<Bits<8>>,
}

impl DmaUnit {
    /// The LOAD (`is_store = false`) or STORE engine for beats of `beat_bytes`
    /// bytes (a power of two from 8 to 64).
    pub fn new(is_store: bool, beat_bytes: u32) -> Result<DmaUnit, BadBeatBytes> {
        if !beat_bytes.is_power_of_two() || !(8..=64).contains(&beat_bytes) {
            return Err(BadBeatBytes(beat_bytes));
        }
        let b = beat_bytes as u64;
        Ok(DmaUnit {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            tlb_flush: Default::default(),
            issue: Default::default(),
            desc: Default::default(),
            issue_index: Default::default(),
            xlat_en: Default::default(),
            xlat_base: Default::default(),
            xlat_pages: Default::default(),
            mem_size: Default::default(),
            grant: Default::default(),
            resp_valid: Default::default(),
            resp_tag: Default::default(),
            resp_data: Default::default(),
            lm_rd_data: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            index: Default::default(),
            req_valid: Default::default(),
            req_pte: Default::default(),
            req_addr: Default::default(),
            req_wdata: Default::default(),
            req_wmask: Default::default(),
            req_tag: Default::default(),
            req_bytes: Default::default(),
            fault: Default::default(),
            fault_code: Default::default(),
            fault_addr: Default::default(),
            lm_wr: Default::default(),
            lm_wr_acc: Default::default(),
            lm_wr_addr: Default::default(),
            lm_wr_len: Default::default(),
            lm_wr_data: Default::default(),
            lm_rd_acc: Default::default(),
            lm_rd_addr: Default::default(),
            tlb: Tlb::default(),
            busy_r: Default::default(),
            index_r: Default::default(),
            acc_r: Default::default(),
            pos: Default::default(),
            row_start: Default::default(),
            row_end: Default::default(),
            rows_left: Default::default(),
            row_bytes: Default::default(),
            dram_stride: Default::default(),
            local_stride: Default::default(),
            local_row: Default::default(),
            local_pos: Default::default(),
            issued_all: Default::default(),
            outstanding: Default::default(),
            active: Default::default(),
            off: Default::default(),
            rem_beat: Default::default(),
            rem_row: Default::default(),
            len: Default::default(),
            mem65: Default::default(),
            data_end: Default::default(),
            pte_end: Default::default(),
            data_ok: Default::default(),
            pte_ok: Default::default(),
            offer_data: Default::default(),
            offer_pte: Default::default(),
            grant_data: Default::default(),
            new_pos: Default::default(),
            next_row_start: Default::default(),
            next_local_row: Default::default(),
            wshift: Default::default(),
            rsp_pte: Default::default(),
            rsp_data: Default::default(),
            rsp_shift: Default::default(),
            rsp_bytes: Default::default(),
            unused_inputs: Default::default(),
            is_store: Constant::new(is_store),
            beat: Constant::new(b.into()),
            beat_mask: Constant::new((b - 1).into()),
            align_mask: Constant::new((!(b - 1)).into()),
            ones: Constant::new(u64::MAX.into()),
            code_range: Constant::new((ErrorCode::AddrRange as u64).into()),
        })
    }
}

impl DmaUnit {
    /// Whether this is the STORE engine.
    pub fn is_store(&self) -> bool {
        self.is_store.val()
    }

    /// The beat width `B` in bytes.
    pub fn beat_bytes(&self) -> u32 {
        self.beat.val().to_u64() as u32
    }
}

impl Logic for DmaUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            busy_r,
            index_r,
            acc_r,
            pos,
            row_start,
            row_end,
            rows_left,
            row_bytes,
            dram_stride,
            local_stride,
            local_row,
            local_pos,
            issued_all,
            outstanding
        );
        // The next beat: from `pos` to the end of its B-aligned block or of
        // the row, whichever comes first (D1).
        self.active.next = self.busy_r.q.val() & !self.issued_all.q.val();
        self.off.next = self.pos.q.val() & self.beat_mask.val();
        self.rem_beat.next = self.beat.val() - self.off.val();
        self.rem_row.next = self.row_end.q.val() - self.pos.q.val();
        self.len.next = self.rem_beat.val();
        if self.rem_row.val() < self.rem_beat.val() {
            self.len.next = self.rem_row.val();
        }
        // Its translation (X1) and range checks.
        self.tlb.clock.next = self.clock.val();
        self.tlb.enable.next = self.enable.val();
        self.tlb.clear.next = self.clear.val();
        self.tlb.flush.next = self.tlb_flush.val();
        self.tlb.xlat_en.next = self.xlat_en.val();
        self.tlb.xlat_base.next = self.xlat_base.val();
        self.tlb.xlat_pages.next = self.xlat_pages.val();
        self.tlb.va.next = self.pos.q.val();
        self.tlb.write.next = self.is_store.val();
        self.mem65.next = bit_cast::<65, 64>(self.mem_size.val());
        self.data_end.next =
            bit_cast::<65, 64>(self.tlb.phys.val()) + bit_cast::<65, 64>(self.len.val());
        self.pte_end.next = bit_cast::<65, 64>(self.tlb.read_addr.val()) + 8_u64;
        self.data_ok.next = self.data_end.val() <= self.mem65.val();
        self.pte_ok.next = self.pte_end.val() <= self.mem65.val();
        self.offer_data.next = self.active.val() & self.tlb.phys_valid.val() & self.data_ok.val();
        self.offer_pte.next = self.active.val() & self.tlb.read_valid.val() & self.pte_ok.val();
        self.req_valid.next = self.offer_data.val() | self.offer_pte.val();
        self.req_pte.next = self.offer_pte.val();
        self.fault.next = self.active.val()
            & (self.tlb.fault.val()
                | (self.tlb.phys_valid.val() & !self.data_ok.val())
                | (self.tlb.read_valid.val() & !self.pte_ok.val()));
        self.fault_code.next = self.code_range.val();
        self.fault_addr.next = self.tlb.phys.val();
        if self.tlb.fault.val() {
            self.fault_code.next = self.tlb.fault_code.val();
            self.fault_addr.next = self.tlb.fault_addr.val();
        } else if self.tlb.read_valid.val() {
            self.fault_addr.next = self.tlb.read_addr.val();
        }
        // The request.
        self.req_addr.next = self.tlb.phys.val() & self.align_mask.val();
        self.req_tag.next = (bit_cast::<56, 32>(self.local_pos.q.val()) << 15_u64)
            | (bit_cast::<56, 64>(self.len.val()) << 7_u64)
            | (bit_cast::<56, 64>(self.off.val()) << 1_u64);
        self.req_bytes.next = bit_cast::<8, 64>(self.len.val());
        if self.offer_pte.val() {
            self.req_addr.next = self.tlb.read_addr.val() & self.align_mask.val();
            self.req_tag.next = (bit_cast::<56, 32>(self.tlb.read_vpn.val()) << 15_u64)
                | (bit_cast::<56, 64>(self.tlb.read_addr.val() & self.beat_mask.val()) << 1_u64)
                | 1_u64;
            self.req_bytes.next = 0.into();
        }
        self.lm_rd_acc.next = self.acc_r.q.val();
        self.lm_rd_addr.next = self.local_pos.q.val();
        self.wshift.next = bit_cast::<9, 64>(self.off.val()) << 3_u64;
        self.req_wdata.next = 0.into();
        self.req_wmask.next = 0.into();
        if self.is_store.val() & self.offer_data.val() {
            self.req_wdata.next = self.lm_rd_data.val() << self.wshift.val();
            self.req_wmask.next = (self.ones.val() << self.off.val())
                & !(self.ones.val() << (self.off.val() + self.len.val()));
        }
        self.busy.next = self.busy_r.q.val();
        self.done.next =
            self.busy_r.q.val() & self.issued_all.q.val() & (self.outstanding.q.val() == 0_u64);
        self.index.next = self.index_r.q.val();
        // The response consumed this cycle.
        self.rsp_pte.next = self.resp_tag.val().get_bit(0);
        self.rsp_data.next = self.enable.val() & self.resp_valid.val() & !self.rsp_pte.val();
        self.rsp_shift.next = bit_cast::<9, 6>(self.resp_tag.val().get_bits::<6>(1)) << 3_u64;
        self.rsp_bytes.next = self.resp_data.val() >> self.rsp_shift.val();
        self.tlb.pte_valid.next = self.resp_valid.val() & self.rsp_pte.val();
        self.tlb.pte_vpn.next = self.resp_tag.val().get_bits::<32>(15);
        self.tlb.pte_entry.next = bit_cast::<64, 512>(self.rsp_bytes.val());
        self.lm_wr.next = self.rsp_data.val() & !self.is_store.val();
        self.lm_wr_acc.next = self.acc_r.q.val();
        self.lm_wr_addr.next = self.resp_tag.val().get_bits::<32>(15);
        self.lm_wr_len.next = bit_cast::<8, 7>(self.resp_tag.val().get_bits::<7>(7));
        self.lm_wr_data.next = self.rsp_bytes.val();
        // State at the edge.
        self.grant_data.next = self.enable.val() & self.grant.val() & self.offer_data.val();
        self.tlb.pte_granted.next = self.grant.val() & self.offer_pte.val();
        self.new_pos.next = self.pos.q.val() + self.len.val();
        self.next_row_start.next =
            self.row_start.q.val() + bit_cast::<64, 32>(self.dram_stride.q.val());
        self.next_local_row.next = self.local_row.q.val() + self.local_stride.q.val();
        if self.grant_data.val() {
            self.pos.d.next = self.new_pos.val();
            self.local_pos.d.next = self.local_pos.q.val() + bit_cast::<32, 64>(self.len.val());
            if self.new_pos.val() == self.row_end.q.val() {
                if self.rows_left.q.val() == 1_u64 {
                    self.issued_all.d.next = true;
                } else {
                    self.rows_left.d.next = self.rows_left.q.val() - 1_u64;
                    self.row_start.d.next = self.next_row_start.val();
                    self.pos.d.next = self.next_row_start.val();
                    self.row_end.d.next =
                        self.next_row_start.val() + bit_cast::<64, 16>(self.row_bytes.q.val());
                    self.local_row.d.next = self.next_local_row.val();
                    self.local_pos.d.next = self.next_local_row.val();
                }
            }
        }
        if self.grant_data.val() & !self.rsp_data.val() {
            self.outstanding.d.next = self.outstanding.q.val() + 1_u64;
        }
        if self.rsp_data.val() & !self.grant_data.val() {
            self.outstanding.d.next = self.outstanding.q.val() - 1_u64;
        }
        if self.enable.val() {
            if self.busy_r.q.val() & self.issued_all.q.val() & (self.outstanding.q.val() == 0_u64) {
                self.busy_r.d.next = false;
            }
            if self.issue.val() {
                self.busy_r.d.next = true;
                self.index_r.d.next = self.issue_index.val();
                self.acc_r.d.next = self.desc.val().get_bit(12);
                self.pos.d.next = self.desc.val().get_bits::<64>(64);
                self.row_start.d.next = self.desc.val().get_bits::<64>(64);
                self.row_end.d.next = self.desc.val().get_bits::<64>(64)
                    + bit_cast::<64, 16>(self.desc.val().get_bits::<16>(144));
                self.rows_left.d.next = self.desc.val().get_bits::<16>(128);
                self.row_bytes.d.next = self.desc.val().get_bits::<16>(144);
                self.dram_stride.d.next = self.desc.val().get_bits::<32>(160);
                self.local_stride.d.next = self.desc.val().get_bits::<32>(192);
                self.local_row.d.next = self.desc.val().get_bits::<32>(32);
                self.local_pos.d.next = self.desc.val().get_bits::<32>(32);
                self.issued_all.d.next = false;
                self.outstanding.d.next = 0.into();
            }
        }
        self.unused_inputs.next = self.desc.val().get_bits::<32>(224).any()
            ^ self.desc.val().get_bits::<19>(13).any()
            ^ self.desc.val().get_bits::<12>(0).any()
            ^ self.resp_tag.val().get_bits::<9>(47).any()
            ^ self.resp_tag.val().get_bit(14)
            ^ self.tlb.waiting.val();
        if self.clear.val() {
            self.busy_r.d.next = false;
            self.issued_all.d.next = false;
            self.outstanding.d.next = 0.into();
        }
    }
}
