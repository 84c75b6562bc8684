//! The per-job address-translation table.
//!
//! When `CONTROL.XLAT_EN` is set, every address in a LOAD, STORE or FENCE descriptor
//! is a device-virtual address. The table at `XLAT_BASE` (physical, 8-byte aligned)
//! holds `XLAT_PAGES` little-endian 64-bit entries, one per 4 KiB page of
//! device-virtual space, starting at device address 0:
//!
//! | bits  | meaning |
//! |-------|---------|
//! | 0     | VALID: the page is mapped |
//! | 1     | WRITE: the device may write the page |
//! | 11:2  | reserved, zero |
//! | 63:12 | physical address of the page (4 KiB aligned) |
//!
//! A device address at or beyond `XLAT_PAGES * 4096`, or whose entry is not VALID,
//! is a translation fault (`XLAT_FAULT`); a write through an entry without WRITE is
//! `XLAT_WRITE`. The ring and the table itself are always physical.

/// log2 of the translation page size.
pub const PAGE_SHIFT: u32 = 12;
/// Translation page size in bytes.
pub const PAGE_BYTES: u64 = 1 << PAGE_SHIFT;
/// Entry bit: the page is mapped.
pub const PTE_VALID: u64 = 1 << 0;
/// Entry bit: the device may write the page.
pub const PTE_WRITE: u64 = 1 << 1;
/// Entry bits holding the physical page address.
pub const PTE_ADDR_MASK: u64 = !(PAGE_BYTES - 1);
/// Size of one entry in bytes.
pub const PTE_BYTES: u64 = 8;

/// Builds an entry mapping a page at physical address `phys` (4 KiB aligned).
pub const fn pte(phys: u64, writable: bool) -> u64 {
    (phys & PTE_ADDR_MASK) | PTE_VALID | if writable { PTE_WRITE } else { 0 }
}
