//! The model on random descriptor streams: whatever the ring holds, the
//! device ends within a bounded number of cycles, either idle with the ring
//! consumed or halted with a documented error code. Never a panic, never a
//! hang (the cycle bound), never an error code outside the ABI.
//!
//! Input: byte 0 picks the mode (raw bytes or structured descriptors),
//! translation on/off and the configuration; byte 1 the translation
//! table's holes; then up to 64 descriptors of 32 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npukit_abi::{regs, xlat, ErrorCode, DESC_BYTES};
use npukit_fuzz::{model_config, shape_descriptor};
use npukit_sim::{Device, DeviceMemory, ModelDevice, VecMemory};

/// Device memory of the fuzzed model (small: one allocation per input).
const MEM: u64 = 1 << 20;
const RING_BASE: u64 = 0x1000;
const XLAT_BASE: u64 = 0xF_0000;
/// The model's own watchdog: no descriptor completing for this long is an error.
const WATCHDOG: u32 = 50_000;
/// No legitimate run of 64 descriptors on these configurations comes near
/// this (the longest descriptor moves a whole 4 KiB scratchpad a byte per
/// request, ~20k cycles); reaching it without an end is a hang.
const MAX_CYCLES: u64 = 4_000_000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 + DESC_BYTES {
        return;
    }
    let (mode, holes) = (data[0], data[1]);
    let structured = mode & 1 != 0;
    let translate = mode & 2 != 0;
    let cfg = model_config(mode >> 2, MEM);
    let mut ring: Vec<[u8; DESC_BYTES]> = data[2..]
        .chunks_exact(DESC_BYTES)
        .take(64)
        .map(|c| {
            let mut b = [0u8; DESC_BYTES];
            b.copy_from_slice(c);
            if structured {
                shape_descriptor(&mut b, MEM);
            }
            b
        })
        .collect();
    let n = ring.len() as u32;
    let size = (n + 1).next_power_of_two().max(2);
    ring.resize(size as usize, [0; DESC_BYTES]);

    let mut mem = VecMemory::new(MEM as usize);
    for (i, d) in ring.iter().enumerate() {
        mem.write(RING_BASE + (i * DESC_BYTES) as u64, d);
    }
    let pages = (MEM / xlat::PAGE_BYTES) as u32;
    if translate {
        for p in 0..pages as u64 {
            let pte = match (p % 8) as u8 {
                x if x == holes % 8 => 0,
                x if x == (holes >> 3) % 8 => xlat::pte(p * xlat::PAGE_BYTES, false),
                _ => xlat::pte(p * xlat::PAGE_BYTES, true),
            };
            mem.write(XLAT_BASE + p * 8, &pte.to_le_bytes());
        }
    }
    let mut dev = ModelDevice::new(&cfg);
    dev.mmio_write(regs::RING_BASE_LO, RING_BASE as u32);
    dev.mmio_write(regs::RING_BASE_HI, 0);
    dev.mmio_write(regs::RING_SIZE, size);
    dev.mmio_write(regs::RING_TAIL, n);
    dev.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
    dev.mmio_write(regs::WATCHDOG, WATCHDOG);
    let mut ctl = regs::CONTROL_RUN;
    if translate {
        dev.mmio_write(regs::XLAT_BASE_LO, XLAT_BASE as u32);
        dev.mmio_write(regs::XLAT_BASE_HI, 0);
        dev.mmio_write(regs::XLAT_PAGES, pages);
        ctl |= regs::CONTROL_XLAT_EN;
    }
    dev.mmio_write(regs::CONTROL, ctl);

    loop {
        let now = dev.cycle();
        dev.run_until(&mut mem, now + 65_536, false);
        let st = dev.mmio_read(regs::STATUS);
        if st & regs::STATUS_HALTED != 0 {
            let code = dev.mmio_read(regs::ERR_CODE);
            let known = ErrorCode::from_u32(code);
            assert!(
                known.is_some_and(|c| c != ErrorCode::None),
                "halted with error code {code}, not an ABI error"
            );
            assert_ne!(
                dev.mmio_read(regs::IRQ_STATUS) & regs::IRQ_ERROR,
                0,
                "halted without raising the error interrupt"
            );
            return;
        }
        if st & regs::STATUS_BUSY == 0 && dev.mmio_read(regs::RING_HEAD) == n {
            return;
        }
        assert!(
            dev.cycle() < MAX_CYCLES,
            "no end after {} cycles: status {st:#x}, head {} of {n}",
            dev.cycle(),
            dev.mmio_read(regs::RING_HEAD)
        );
    }
});
