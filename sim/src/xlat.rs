//! Address translation: each requester (command processor, load, store) has a
//! one-entry translation cache. A device address whose page is not cached costs
//! one translation-table read on the memory port (a `Pte` request); the entry is
//! checked when it is used, so a bad entry faults in the cycle after it arrives.
//! The caches are emptied by reset and by any write to `CONTROL`, `XLAT_BASE_*`
//! or `XLAT_PAGES`. A table read in flight at such a flush is discarded when it
//! arrives (its entry may predate the driver's change); the requester then reads
//! the table again. So a requester never has more than one table read in flight.

use npukit_abi::xlat::{PAGE_SHIFT, PTE_ADDR_MASK, PTE_BYTES, PTE_VALID, PTE_WRITE};
use npukit_abi::ErrorCode;

/// Translation registers as the device sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XlatRegs {
    pub enabled: bool,
    pub base: u64,
    pub pages: u32,
}

/// One requester's translation cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tlb {
    /// Cached (virtual page number, raw entry).
    pub entry: Option<(u64, u64)>,
    /// A table read is in flight.
    pub pending: bool,
    /// The read in flight was issued before a flush: drop its entry.
    pub stale: bool,
}

/// The outcome of translating one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xlat {
    /// The physical address.
    Phys(u64),
    /// The entry must be read first, from this physical address.
    ReadPte { pte_addr: u64, vpn: u64 },
    /// A table read is in flight.
    Wait,
    /// The access faults.
    Fault(ErrorCode, u64),
}

const PTE_RESERVED: u64 = 0xFFC;

impl Tlb {
    /// Empties the cache (an MMIO write to `CONTROL` or `XLAT_*`). A read in
    /// flight stays in flight, marked stale.
    pub fn flush(&mut self) {
        self.entry = None;
        self.stale = self.pending;
    }

    /// A table read's response arrives: install its entry unless stale.
    pub fn arrive(&mut self, vpn: u64, pte: u64) {
        self.pending = false;
        if self.stale {
            self.stale = false;
        } else {
            self.entry = Some((vpn, pte));
        }
    }

    pub fn translate(&self, regs: &XlatRegs, va: u64, write: bool) -> Xlat {
        if !regs.enabled {
            return Xlat::Phys(va);
        }
        let vpn = va >> PAGE_SHIFT;
        if vpn >= regs.pages as u64 {
            return Xlat::Fault(ErrorCode::XlatFault, va);
        }
        match self.entry {
            Some((v, pte)) if v == vpn => {
                if pte & PTE_VALID == 0 || pte & PTE_RESERVED != 0 {
                    Xlat::Fault(ErrorCode::XlatFault, va)
                } else if write && pte & PTE_WRITE == 0 {
                    Xlat::Fault(ErrorCode::XlatWrite, va)
                } else {
                    Xlat::Phys((pte & PTE_ADDR_MASK) | (va & !PTE_ADDR_MASK))
                }
            }
            _ if self.pending => Xlat::Wait,
            _ => Xlat::ReadPte {
                pte_addr: regs.base.wrapping_add(vpn * PTE_BYTES),
                vpn,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npukit_abi::xlat::pte;

    #[test]
    fn translate_paths() {
        let regs = XlatRegs {
            enabled: true,
            base: 0x1000,
            pages: 4,
        };
        let mut t = Tlb::default();
        assert_eq!(
            t.translate(&regs, 0x2345, false),
            Xlat::ReadPte {
                pte_addr: 0x1010,
                vpn: 2
            }
        );
        assert_eq!(
            t.translate(&regs, 0x4000, false),
            Xlat::Fault(ErrorCode::XlatFault, 0x4000)
        );
        t.pending = true;
        assert_eq!(t.translate(&regs, 0x2345, false), Xlat::Wait);
        t = Tlb {
            entry: Some((2, pte(0x9000, false))),
            pending: false,
            stale: false,
        };
        assert_eq!(t.translate(&regs, 0x2345, false), Xlat::Phys(0x9345));
        assert_eq!(
            t.translate(&regs, 0x2345, true),
            Xlat::Fault(ErrorCode::XlatWrite, 0x2345)
        );
        t.entry = Some((2, 0x9000));
        assert_eq!(
            t.translate(&regs, 0x2345, false),
            Xlat::Fault(ErrorCode::XlatFault, 0x2345)
        );
        let off = XlatRegs {
            enabled: false,
            ..regs
        };
        assert_eq!(t.translate(&off, 0x2345, true), Xlat::Phys(0x2345));
    }
}
