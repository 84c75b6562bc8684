//! Helpers shared by the fuzz targets.

pub mod ioctl_ops;

use npukit_abi::desc::{Layout, Opcode};
use npukit_abi::DESC_BYTES;
use npukit_sim::NpuConfig;

/// A small configuration for the model target, picked by `pick`: 4x4 with
/// a 4 KiB scratchpad and 2 KiB of accumulators, with 32- or 8-byte beats,
/// or 8x4 with 64-byte beats; device memory `mem` bytes.
pub fn model_config(pick: u8, mem: u64) -> NpuConfig {
    let mut c = NpuConfig::default();
    c.memory.spad_bytes = 4096;
    c.memory.acc_bytes = 2048;
    c.dram.size_bytes = mem;
    c.cmdproc.max_ring = 128;
    let (rows, cols, beat) = match pick % 3 {
        0 => (4, 4, 32),
        1 => (4, 4, 8),
        _ => (8, 4, 64),
    };
    c.array.rows = rows;
    c.array.cols = cols;
    c.dma.beat_bytes = beat;
    c.validate().expect("the fuzz configurations are valid");
    c
}

fn word(b: &[u8; DESC_BYTES], w: usize) -> u32 {
    u32::from_le_bytes([b[4 * w], b[4 * w + 1], b[4 * w + 2], b[4 * w + 3]])
}

fn set_word(b: &mut [u8; DESC_BYTES], w: usize, v: u32) {
    b[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
}

/// Turns 32 random bytes into a descriptor that decodes (a defined opcode,
/// no reserved bits) with fields folded near the limits of
/// [`model_config`]: local addresses and sizes below 8 KiB, device
/// addresses within `mem` plus a page, high address words mostly zero. The
/// fuzzer then spends its time past decoding, in the units.
pub fn shape_descriptor(b: &mut [u8; DESC_BYTES], mem: u64) {
    let opcodes: Vec<Opcode> = (0..=u8::MAX).filter_map(Opcode::from_u8).collect();
    let op = opcodes[b[0] as usize % opcodes.len()];
    let w0 = word(b, 0) & 0xFF00 | op as u32;
    set_word(b, 0, w0);
    let layout = Layout::of(op);
    for w in 1..8u8 {
        let v = word(b, w as usize) & layout.used_mask(w);
        set_word(b, w as usize, v);
    }
    for &(name, w, shift, width, _) in layout.fields {
        if width < 16 {
            continue;
        }
        let w = w as usize;
        let mask = if width == 32 {
            u32::MAX
        } else {
            ((1u32 << width) - 1) << shift
        };
        let raw = (word(b, w) & mask) >> shift;
        let folded = if name.ends_with("_hi") {
            if raw & 0xFF == 0xFF {
                raw
            } else {
                0
            }
        } else if name.ends_with("_lo") || name == "dram" {
            raw % (mem as u32 + 4096)
        } else if raw & 0xF000_0000 == 0xF000_0000 {
            raw
        } else {
            raw % 8192
        };
        set_word(b, w, word(b, w) & !mask | (folded << shift) & mask);
    }
}
