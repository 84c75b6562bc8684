//! Helpers shared by the fuzz targets.

pub mod ioctl_ops;
pub mod proto;

use npukit_abi::desc::{Layout, Opcode};
use npukit_abi::DESC_BYTES;
use npukit_compiler::{compile, load_image, read_output, reference, Workload};
use npukit_sim::run::run_program;
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};

/// What the importer targets (`workload`, `onnx`) require of a workload that
/// imported: it compiles for a 4x4 NPU or fails with an error; a compiled
/// program passes the ABI's own validation; a small one runs on the model
/// and matches the CPU reference bit for bit.
pub fn check_workload(w: &Workload) {
    let mut cfg = NpuConfig::default();
    cfg.array.rows = 4;
    cfg.array.cols = 4;
    cfg.memory.spad_bytes = 16384;
    cfg.memory.acc_bytes = 4096;
    let Ok(c) = compile(w, &cfg) else {
        return;
    };
    let lim = npukit_abi::Limits {
        rows: 4,
        cols: 4,
        spad_bytes: 16384,
        acc_bytes: 4096,
    };
    if let Err((i, e)) = c.program.validate(&lim) {
        panic!("the compiler emitted an invalid descriptor {i}: {e}");
    }
    if c.macs() > 1 << 16 || c.mem_bytes > 8 << 20 || c.program.len() > 2000 {
        return;
    }
    let want = reference(w).expect("a workload that compiles has a reference result");
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut mem).expect("the image fits the memory it asked for");
    let mut dev = ModelDevice::new(&cfg);
    run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        50_000_000,
    )
    .unwrap_or_else(|e| panic!("a compiled program failed on the model: {e}"));
    for (name, t) in want {
        let got = read_output(&c, &mem, &name).expect("every reference output is placed");
        assert_eq!(got, t, "output {name} differs from the CPU reference");
    }
}

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
