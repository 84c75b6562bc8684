//! `Fence`: the command processor's FENCE (docs/timing.md, rule F4 and the
//! FENCE paragraph): drain, the optional sequence-number writeback with its
//! translation (PTE) read, and completion. The model is `FenceOp` /
//! `FencePhase` of `npukit_sim::cmdproc` and the command processor's part of
//! `ModelDevice::plan`.
//!
//! ```text
//!  start, desc, index ─►┌──────────────────────┐──► active, draining, done
//!  idle (queues, units)►│ DRAIN ─► WRITE ─► ACK │──► req, kind, addr, own, wdata, wmask
//!  granted, resp      ─►│                      │──► decided, fault, fault_code, fault_addr
//!  tlb_* (cptlb)      ─►└──────────────────────┘──► index, seq, irq, va
//! ```
//!
//! Outputs come from the state at the start of the cycle (G1):
//!
//! * a FENCE dispatched (`start`, with its raw descriptor and ring index)
//!   drains: `draining` until `idle` (every queue empty and every unit idle at
//!   the start of a cycle); without WRITEBACK it completes (`done`) in that
//!   cycle, with WRITEBACK it moves to WRITE;
//! * in WRITE the command processor decides its port offer (`decided`) from
//!   the translation cache (`tlb_*`, a [`crate::xlat::Tlb`] on the FENCE
//!   address): a translated address offers the 4-byte write (kind 4, the
//!   sequence number placed in the beat: `wdata`, `wmask`) or, past
//!   `mem_size`, faults `ADDR_RANGE`; a PTE read to make offers kind 1 (its
//!   tag carries the page number and the entry's offset in the beat) or, past
//!   `mem_size`, faults `ADDR_RANGE`; a translation fault is the cache's.
//!   All range checks are 65-bit sums (a range past 2^64 faults);
//! * the write granted (`granted` with kind 4) moves to ACK; its response
//!   (`resp`) completes the FENCE (`done`).
//!
//! `done` is gated by `enable`; at an edge with `enable` (a simulated cycle
//! without a fault, G3) the state moves; `clear` (device reset) drops the
//! FENCE at any edge. `index`, `seq`, `irq` and `va` are the FENCE's ring
//! index, sequence number, IRQ flag and device address.
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `clock`, `enable`, `clear` | in | 1 | clock; the cycle happens; device reset |
//! | `start` | in | 1 | a FENCE dispatches in this cycle |
//! | `start_desc`, `start_index` | in | 256, 32 | its raw descriptor and ring index |
//! | `idle` | in | 1 | every queue empty and every unit idle |
//! | `granted` | in | 1 | the command processor's offer is granted (M1) |
//! | `resp` | in | 1 | the FENCE write's response is consumed in this cycle |
//! | `mem_size` | in | 64 | device memory size |
//! | `tlb_phys_valid`, `tlb_phys` | in | 1, 64 | the cache translates the FENCE address |
//! | `tlb_read_valid`, `tlb_read_addr`, `tlb_read_vpn` | in | 1, 64, 32 | a PTE read to make |
//! | `tlb_fault`, `tlb_fault_code`, `tlb_fault_addr` | in | 1, 8, 64 | a translation fault |
//! | `active`, `draining` | out | 1 | a FENCE is in progress; it is in DRAIN |
//! | `done` | out | 1 | it completes in this cycle |
//! | `decided` | out | 1 | in WRITE, the offer or the fault below replaces the fetch |
//! | `req`, `kind`, `addr`, `own` | out | 1, 3, 64, 56 | the offer (kind 4 write or 1 PTE read) |
//! | `wdata`, `wmask` | out | 512, 64 | the write's beat data and byte enables |
//! | `fault`, `fault_code`, `fault_addr` | out | 1, 8, 64 | the offer faults instead |
//! | `index`, `seq`, `irq`, `va` | out | 32, 32, 1, 64 | the FENCE's fields |

use npukit_abi::ErrorCode;
use rust_hdl::prelude::*;

use crate::port::KIND_FENCE_WRITE;

/// `MemKind::Pte` on `req_kind`.
pub const KIND_PTE: u64 = 1;

/// The FENCE phases (`phase`): DRAIN, WRITE (offering the writeback or its
/// PTE read), ACK (the write granted, waiting for its response).
pub const PHASE_DRAIN: u64 = 0;
pub const PHASE_WRITE: u64 = 1;
pub const PHASE_ACK: u64 = 2;

/// The FENCE engine. See the module documentation.
#[derive(LogicBlock, Debug)]
pub struct Fence {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub start: Signal<In, Bit>,
    pub start_desc: Signal<In, Bits<256>>,
    pub start_index: Signal<In, Bits<32>>,
    pub idle: Signal<In, Bit>,
    pub granted: Signal<In, Bit>,
    pub resp: Signal<In, Bit>,
    pub mem_size: Signal<In, Bits<64>>,
    pub tlb_phys_valid: Signal<In, Bit>,
    pub tlb_phys: Signal<In, Bits<64>>,
    pub tlb_read_valid: Signal<In, Bit>,
    pub tlb_read_addr: Signal<In, Bits<64>>,
    pub tlb_read_vpn: Signal<In, Bits<32>>,
    pub tlb_fault: Signal<In, Bit>,
    pub tlb_fault_code: Signal<In, Bits<8>>,
    pub tlb_fault_addr: Signal<In, Bits<64>>,
    pub active: Signal<Out, Bit>,
    pub draining: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    pub decided: Signal<Out, Bit>,
    pub req: Signal<Out, Bit>,
    pub kind: Signal<Out, Bits<3>>,
    pub addr: Signal<Out, Bits<64>>,
    pub own: Signal<Out, Bits<56>>,
    pub wdata: Signal<Out, Bits<512>>,
    pub wmask: Signal<Out, Bits<64>>,
    pub fault: Signal<Out, Bit>,
    pub fault_code: Signal<Out, Bits<8>>,
    pub fault_addr: Signal<Out, Bits<64>>,
    pub index: Signal<Out, Bits<32>>,
    pub seq: Signal<Out, Bits<32>>,
    pub irq: Signal<Out, Bit>,
    pub va: Signal<Out, Bits<64>>,
    beat_mask: Constant<Bits<64>>,
    kind_write: Constant<Bits<3>>,
    kind_pte: Constant<Bits<3>>,
    code_range: Constant<Bits<8>>,
    four_bytes: Constant<Bits<64>>,
    ph_drain: Constant<Bits<2>>,
    ph_write: Constant<Bits<2>>,
    ph_ack: Constant<Bits<2>>,
    // The FENCE in progress.
    on: DFF<Bit>,
    phase: DFF<Bits<2>>,
    f_index: DFF<Bits<32>>,
    f_seq: DFF<Bits<32>>,
    f_va: DFF<Bits<64>>,
    f_wb: DFF<Bit>,
    f_irq: DFF<Bit>,
    // This cycle's decisions.
    drained: Signal<Local, Bit>,
    fin: Signal<Local, Bit>,
    off: Signal<Local, Bits<64>>,
    phys_end: Signal<Local, Bits<65>>,
    read_end: Signal<Local, Bits<65>>,
    size65: Signal<Local, Bits<65>>,
    is_write: Signal<Local, Bit>,
    unused_desc: Signal<Local, Bit>,
}

impl Fence {
    /// The FENCE engine for `beat_bytes`-byte beats (a power of two, 8..=64).
    pub fn new(beat_bytes: u32) -> Result<Self, String> {
        if !(8..=64).contains(&beat_bytes) || !beat_bytes.is_power_of_two() {
            return Err(format!(
                "dma.beat_bytes {beat_bytes} must be a power of two in 8..=64"
            ));
        }
        Ok(Fence {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            start: Default::default(),
            start_desc: Default::default(),
            start_index: Default::default(),
            idle: Default::default(),
            granted: Default::default(),
            resp: Default::default(),
            mem_size: Default::default(),
            tlb_phys_valid: Default::default(),
            tlb_phys: Default::default(),
            tlb_read_valid: Default::default(),
            tlb_read_addr: Default::default(),
            tlb_read_vpn: Default::default(),
            tlb_fault: Default::default(),
            tlb_fault_code: Default::default(),
            tlb_fault_addr: Default::default(),
            active: Default::default(),
            draining: Default::default(),
            done: Default::default(),
            decided: Default::default(),
            req: Default::default(),
            kind: Default::default(),
            addr: Default::default(),
            own: Default::default(),
            wdata: Default::default(),
            wmask: Default::default(),
            fault: Default::default(),
            fault_code: Default::default(),
            fault_addr: Default::default(),
            index: Default::default(),
            seq: Default::default(),
            irq: Default::default(),
            va: Default::default(),
            beat_mask: Constant::new((beat_bytes as u64 - 1).into()),
            kind_write: Constant::new(KIND_FENCE_WRITE.into()),
            kind_pte: Constant::new(KIND_PTE.into()),
            code_range: Constant::new((ErrorCode::AddrRange as u64).into()),
            four_bytes: Constant::new(0xF_u64.into()),
            ph_drain: Constant::new(PHASE_DRAIN.into()),
            ph_write: Constant::new(PHASE_WRITE.into()),
            ph_ack: Constant::new(PHASE_ACK.into()),
            on: Default::default(),
            phase: Default::default(),
            f_index: Default::default(),
            f_seq: Default::default(),
            f_va: Default::default(),
            f_wb: Default::default(),
            f_irq: Default::default(),
            drained: Default::default(),
            fin: Default::default(),
            off: Default::default(),
            phys_end: Default::default(),
            read_end: Default::default(),
            size65: Default::default(),
            is_write: Default::default(),
            unused_desc: Default::default(),
        })
    }
}

// The logic is two `always @(*)` blocks, as in `Regs`: the view of the
// state (the offer, from the state and the inputs that do not depend on it)
// and the next state (from the cycle's decisions, which do: `enable`,
// `start`, `granted`, `resp`). In one block Verilator would see a
// combinational loop through the top's plan (offer -> fault priority ->
// `enable`).

mod half {
    use super::Fence;
    use rust_hdl::prelude::*;

    use crate::halves::{NextState, View};

    // The outputs but `done`: the offer, from the state.
    impl View for Fence {
        #[hdl_gen]
        fn update(&mut self) {
            self.active.next = self.on.q.val();
            self.draining.next = self.on.q.val() & (self.phase.q.val() == self.ph_drain.val());
            self.index.next = self.f_index.q.val();
            self.seq.next = self.f_seq.q.val();
            self.irq.next = self.f_irq.q.val();
            self.va.next = self.f_va.q.val();
            // DRAIN: every queue empty and every unit idle at the start of the cycle.
            self.drained.next =
                self.on.q.val() & (self.phase.q.val() == self.ph_drain.val()) & self.idle.val();
            // The offer in WRITE: the write, else the PTE read, else the cache's fault.
            self.decided.next = false;
            self.req.next = false;
            self.kind.next = 0.into();
            self.addr.next = 0.into();
            self.own.next = 0.into();
            self.fault.next = false;
            self.fault_code.next = 0.into();
            self.fault_addr.next = 0.into();
            self.size65.next = bit_cast::<65, 64>(self.mem_size.val());
            self.phys_end.next = bit_cast::<65, 64>(self.tlb_phys.val()) + 4_u64;
            self.read_end.next = bit_cast::<65, 64>(self.tlb_read_addr.val()) + 8_u64;
            if self.on.q.val() & (self.phase.q.val() == self.ph_write.val()) {
                if self.tlb_phys_valid.val() {
                    self.decided.next = true;
                    if self.phys_end.val() > self.size65.val() {
                        self.fault.next = true;
                        self.fault_code.next = self.code_range.val();
                        self.fault_addr.next = self.tlb_phys.val();
                    } else {
                        self.req.next = true;
                        self.kind.next = self.kind_write.val();
                        self.addr.next = self.tlb_phys.val();
                    }
                } else if self.tlb_read_valid.val() {
                    self.decided.next = true;
                    if self.read_end.val() > self.size65.val() {
                        self.fault.next = true;
                        self.fault_code.next = self.code_range.val();
                        self.fault_addr.next = self.tlb_read_addr.val();
                    } else {
                        self.req.next = true;
                        self.kind.next = self.kind_pte.val();
                        self.addr.next = self.tlb_read_addr.val();
                        self.own.next = (bit_cast::<56, 32>(self.tlb_read_vpn.val()) << 6_u64)
                            | bit_cast::<56, 64>(self.tlb_read_addr.val() & self.beat_mask.val());
                    }
                } else if self.tlb_fault.val() {
                    self.decided.next = true;
                    self.fault.next = true;
                    self.fault_code.next = self.tlb_fault_code.val();
                    self.fault_addr.next = self.tlb_fault_addr.val();
                }
            }
            // The write: the sequence number at its offset in the beat.
            self.off.next = self.tlb_phys.val() & self.beat_mask.val();
            self.wdata.next = bit_cast::<512, 32>(self.f_seq.q.val()) << (self.off.val() << 3_u64);
            self.wmask.next = self.four_bytes.val() << self.off.val();
        }
    }

    // The next state and `done`, from this cycle's decisions.
    impl NextState for Fence {
        #[hdl_gen]
        fn update(&mut self) {
            dff_setup!(self, clock, on, phase, f_index, f_seq, f_va, f_wb, f_irq);
            self.is_write.next = self.req.val() & (self.kind.val() == self.kind_write.val());
            // Completion: drained without WRITEBACK, or the write's response.
            self.fin.next = (self.drained.val() & !self.f_wb.q.val()) | self.resp.val();
            self.done.next = self.enable.val() & self.fin.val();
            if self.enable.val() {
                if self.granted.val() & self.is_write.val() {
                    self.phase.d.next = self.ph_ack.val();
                }
                if self.drained.val() & self.f_wb.q.val() {
                    self.phase.d.next = self.ph_write.val();
                }
                if self.fin.val() {
                    self.on.d.next = false;
                }
                if self.start.val() {
                    // Word 0 bit 12 IRQ, bit 13 WRITEBACK; word 1 the sequence
                    // number; words 2-3 the address.
                    self.on.d.next = true;
                    self.phase.d.next = self.ph_drain.val();
                    self.f_index.d.next = self.start_index.val();
                    self.f_seq.d.next = self.start_desc.val().get_bits::<32>(32);
                    self.f_va.d.next = self.start_desc.val().get_bits::<64>(64);
                    self.f_wb.d.next = self.start_desc.val().get_bit(13);
                    self.f_irq.d.next = self.start_desc.val().get_bit(12);
                }
            }
            self.unused_desc.next = self.start_desc.val().get_bits::<12>(0).xor()
                ^ self.start_desc.val().get_bits::<2>(14).xor()
                ^ self.start_desc.val().get_bits::<16>(16).xor()
                ^ self.start_desc.val().get_bits::<128>(128).xor();
            if self.clear.val() {
                self.on.d.next = false;
                self.phase.d.next = self.ph_drain.val();
            }
        }
    }
}

crate::halves::logic_from_halves!(Fence);
