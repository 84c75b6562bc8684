//! `Tlb`: a one-entry translation cache (timing rule X1; the model is
//! `npukit_sim::xlat::Tlb`). The command processor and each DMA unit own one.
//!
//! ```text
//!            va, write ──►┌───────────────┐──► phys_valid, phys
//!   xlat_en/base/pages ──►│ entry (vpn,   │──► read_valid, read_addr, read_vpn
//!          pte_granted ──►│  pte) pending │──► waiting
//! pte_valid/vpn/entry ──►└───────────────┘──► fault, fault_code, fault_addr
//! ```
//!
//! The outputs are the translation of `va` in this cycle, decided from the
//! state at the start of the cycle (G1), exactly one of them set:
//!
//! * translation off: `phys = va`;
//! * `va` at or beyond `xlat_pages` pages: `XLAT_FAULT` at `va`, without a read;
//! * the cached entry is `va`'s page: a bad entry (VALID clear or a reserved bit
//!   11:2 set) faults `XLAT_FAULT`, a write through an entry without WRITE
//!   faults `XLAT_WRITE` (both at `va`), otherwise `phys` = page | offset.
//!   Since the entry is installed at the edge ending the cycle its read's
//!   response arrives, a bad entry faults in the cycle after it arrived;
//! * a table read is in flight: `waiting`;
//! * otherwise the entry must be read: `read_addr = xlat_base + vpn * 8`
//!   (64-bit wrapping), `read_vpn` its page number (below `xlat_pages`, so it
//!   fits 32 bits). The owner range-checks the read and offers it.
//!
//! # Inputs
//!
//! | Port | Width | Meaning |
//! |------|-------|---------|
//! | `clock` | 1 | clock |
//! | `enable` | 1 | this edge is an active cycle (cycle edge, no fault, not halted) |
//! | `clear` | 1 | device reset at this edge, even when `enable = 0`: empty the cache and forget any read in flight (reset drops it) |
//! | `flush` | 1 | empty the cache at this edge, even when `enable = 0` (MMIO write to CONTROL / XLAT_*); a read in flight becomes stale |
//! | `xlat_en` | 1 | CONTROL.XLAT_EN |
//! | `xlat_base` | 64 | XLAT_BASE |
//! | `xlat_pages` | 32 | XLAT_PAGES |
//! | `va` | 64 | the device address to translate this cycle |
//! | `write` | 1 | the access writes |
//! | `pte_granted` | 1 | the table read offered this cycle was accepted: a read is in flight from the next cycle |
//! | `pte_valid` | 1 | the response to a table read of this cache is consumed this cycle |
//! | `pte_vpn` | 32 | the page number that read was for (carried in the request's tag) |
//! | `pte_entry` | 64 | the entry read |
//!
//! # Outputs (combinational)
//!
//! | Port | Width | Meaning |
//! |------|-------|---------|
//! | `phys_valid` | 1 | `phys` is the translation of `va` |
//! | `phys` | 64 | physical address |
//! | `read_valid` | 1 | the entry must be read first |
//! | `read_addr` | 64 | physical address of the entry (`xlat_base + vpn * 8`) |
//! | `read_vpn` | 32 | its page number (tag it, return it on `pte_vpn`) |
//! | `waiting` | 1 | a table read is in flight |
//! | `fault` | 1 | the access faults |
//! | `fault_code` | 8 | `XLAT_FAULT` (9) or `XLAT_WRITE` (10) |
//! | `fault_addr` | 64 | the faulting device address (`va`) |
//!
//! At an enabled edge, `pte_granted` sets the in-flight flag and a consumed
//! response installs (`pte_vpn`, `pte_entry`) and clears it (in that order, as
//! the model applies the grant before the response). A flush empties the entry;
//! a read still in flight is marked stale, and its response only clears the
//! in-flight flag without installing the entry (X1), so the next access reads
//! the table again. `clear` (device reset) forgets everything, in-flight
//! read included (the reset drops it from the port).

use npukit_abi::ErrorCode;
use rust_hdl::prelude::*;

/// Reserved entry bits 11:2 (must be zero in a valid entry).
pub const PTE_RESERVED: u64 = 0xFFC;

/// The one-entry translation cache. See the module documentation for ports.
#[derive(LogicBlock, Debug)]
pub struct Tlb {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub flush: Signal<In, Bit>,
    pub xlat_en: Signal<In, Bit>,
    pub xlat_base: Signal<In, Bits<64>>,
    pub xlat_pages: Signal<In, Bits<32>>,
    pub va: Signal<In, Bits<64>>,
    pub write: Signal<In, Bit>,
    pub pte_granted: Signal<In, Bit>,
    pub pte_valid: Signal<In, Bit>,
    pub pte_vpn: Signal<In, Bits<32>>,
    pub pte_entry: Signal<In, Bits<64>>,
    pub phys_valid: Signal<Out, Bit>,
    pub phys: Signal<Out, Bits<64>>,
    pub read_valid: Signal<Out, Bit>,
    pub read_addr: Signal<Out, Bits<64>>,
    pub read_vpn: Signal<Out, Bits<32>>,
    pub waiting: Signal<Out, Bit>,
    pub fault: Signal<Out, Bit>,
    pub fault_code: Signal<Out, Bits<8>>,
    pub fault_addr: Signal<Out, Bits<64>>,
    entry_valid: DFF<Bit>,
    entry_vpn: DFF<Bits<32>>,
    entry_pte: DFF<Bits<64>>,
    pending: DFF<Bit>,
    stale: DFF<Bit>,
    vpn: Signal<Local, Bits<64>>,
    pages: Signal<Local, Bits<64>>,
    hit: Signal<Local, Bit>,
    code_fault: Constant<Bits<8>>,
    code_write: Constant<Bits<8>>,
    reserved: Constant<Bits<64>>,
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            flush: Default::default(),
            xlat_en: Default::default(),
            xlat_base: Default::default(),
            xlat_pages: Default::default(),
            va: Default::default(),
            write: Default::default(),
            pte_granted: Default::default(),
            pte_valid: Default::default(),
            pte_vpn: Default::default(),
            pte_entry: Default::default(),
            phys_valid: Default::default(),
            phys: Default::default(),
            read_valid: Default::default(),
            read_addr: Default::default(),
            read_vpn: Default::default(),
            waiting: Default::default(),
            fault: Default::default(),
            fault_code: Default::default(),
            fault_addr: Default::default(),
            entry_valid: Default::default(),
            entry_vpn: Default::default(),
            entry_pte: Default::default(),
            pending: Default::default(),
            stale: Default::default(),
            vpn: Default::default(),
            pages: Default::default(),
            hit: Default::default(),
            code_fault: Constant::new((ErrorCode::XlatFault as u64).into()),
            code_write: Constant::new((ErrorCode::XlatWrite as u64).into()),
            reserved: Constant::new(PTE_RESERVED.into()),
        }
    }
}

impl Logic for Tlb {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            entry_valid,
            entry_vpn,
            entry_pte,
            pending,
            stale
        );
        self.vpn.next = self.va.val() >> 12;
        self.pages.next = bit_cast::<64, 32>(self.xlat_pages.val());
        self.hit.next = self.entry_valid.q.val()
            & (bit_cast::<64, 32>(self.entry_vpn.q.val()) == self.vpn.val());
        self.phys_valid.next = false;
        self.phys.next = self.va.val();
        self.read_valid.next = false;
        self.read_addr.next = self.xlat_base.val() + (self.vpn.val() << 3);
        self.read_vpn.next = bit_cast::<32, 64>(self.vpn.val());
        self.waiting.next = false;
        self.fault.next = false;
        self.fault_code.next = self.code_fault.val();
        self.fault_addr.next = self.va.val();
        if !self.xlat_en.val() {
            self.phys_valid.next = true;
        } else if self.vpn.val() >= self.pages.val() {
            self.fault.next = true;
        } else if self.hit.val() {
            if !self.entry_pte.q.val().get_bit(0)
                | (self.entry_pte.q.val() & self.reserved.val()).any()
            {
                self.fault.next = true;
            } else if self.write.val() & !self.entry_pte.q.val().get_bit(1) {
                self.fault.next = true;
                self.fault_code.next = self.code_write.val();
            } else {
                self.phys_valid.next = true;
                self.phys.next =
                    ((self.entry_pte.q.val() >> 12) << 12) | (self.va.val() & 0xFFF_u64);
            }
        } else if self.pending.q.val() {
            self.waiting.next = true;
        } else {
            self.read_valid.next = true;
        }
        if self.enable.val() {
            if self.pte_granted.val() {
                self.pending.d.next = true;
            }
            if self.pte_valid.val() {
                self.pending.d.next = false;
                self.stale.d.next = false;
                if !self.stale.q.val() {
                    self.entry_valid.d.next = true;
                    self.entry_vpn.d.next = self.pte_vpn.val();
                    self.entry_pte.d.next = self.pte_entry.val();
                }
            }
        }
        if self.flush.val() {
            self.entry_valid.d.next = false;
            self.stale.d.next = self.pending.q.val();
        }
        if self.clear.val() {
            self.entry_valid.d.next = false;
            self.pending.d.next = false;
            self.stale.d.next = false;
        }
    }
}
