//! A whole network compiled by `npukit-compiler` runs through the shim: the
//! program (hundreds of descriptors with dependency tokens) is fed through a
//! small ring as it drains, with the image in one BO, and the outputs match
//! the CPU reference bit for bit.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_abi::desc::Op;
use npukit_abi::program::Program;
use npukit_compiler::{builtin_example, compile, load_image, read_output, reference};
use npukit_shim::uapi::{status, JobStats};
use npukit_sim::run::run_program;
use npukit_sim::{Device, ModelDevice, NpuConfig, VecMemory};

/// The program with every device address moved by `base` (the compiler lays
/// out memory from address 0; the BO starts at `base`).
fn relocate(p: &Program, base: u64) -> Program {
    p.descs()
        .iter()
        .map(|d| {
            let mut d = *d;
            match &mut d.op {
                Op::Load(x) | Op::Store(x) => x.dram += base,
                Op::Fence(f) => f.writeback = f.writeback.map(|a| a + base),
                _ => {}
            }
            d
        })
        .collect()
}

#[test]
fn compiled_mlp_through_a_16_entry_ring_matches_the_reference() {
    run_mlp(16);
}

#[test]
fn compiled_mlp_through_the_smallest_ring() {
    run_mlp(2);
}

#[test]
fn with_a_ring_that_holds_the_program_the_timing_is_the_direct_runs_plus_the_fence() {
    let w = builtin_example();
    let cfg = NpuConfig::default();
    let c = compile(&w, &cfg).unwrap();
    // The same program run directly, with an identity translation table (the
    // shim always translates, and each page's first use costs a table read).
    let pages = c.mem_bytes / 4096;
    let table = c.mem_bytes;
    let mut mem = VecMemory::new((c.mem_bytes + pages * 8).next_multiple_of(4096) as usize);
    load_image(&c, &mut mem).unwrap();
    for p in 0..pages {
        let e = npukit_abi::xlat::pte(p * 4096, true);
        mem.store(table + p * 8, &e.to_le_bytes()).unwrap();
    }
    let mut dev = ModelDevice::new(&cfg);
    dev.mmio_write(npukit_abi::regs::XLAT_BASE_LO, table as u32);
    dev.mmio_write(npukit_abi::regs::XLAT_PAGES, pages as u32);
    dev.mmio_write(npukit_abi::regs::CONTROL, npukit_abi::regs::CONTROL_XLAT_EN);
    let direct = run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        10_000_000,
    )
    .unwrap()
    .cycles;
    // Through the shim: the same cycles, plus the driver's FENCE behind the
    // program's last one (2 cycles on the model today).
    let through_shim = run_mlp(1024);
    assert!(
        (direct + 1..=direct + 4).contains(&through_shim),
        "direct {direct} cycles, through the shim {through_shim}"
    );
}

/// Runs the example MLP through the shim with a ring of `ring` descriptors;
/// the job's cycles.
fn run_mlp(ring: u32) -> u64 {
    let w = builtin_example();
    let cfg = NpuConfig::default();
    let c = compile(&w, &cfg).unwrap();
    let s = shim_with(|o| o.ring_size = ring);
    let f = s.open().unwrap();

    // The image in one BO, at the compiler's addresses relative to its start.
    let mut img = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut img).unwrap();
    let data = f.create_bo(c.mem_bytes, 0).unwrap();
    f.bo_write(data.handle, 0, img.bytes()).unwrap();

    let prog = relocate(&c.program, data.device_addr).encode();
    assert!(prog.len() / 32 > 100, "a program much longer than the ring");
    let cmd = f.create_bo(prog.len() as u64, 0).unwrap();
    f.bo_write(cmd.handle, 0, &prog).unwrap();
    let seq = f
        .submit_job(cmd.handle, 0, prog.len() as u64, &[data.handle])
        .unwrap();
    let wr = f.wait_job(seq, 120 * SEC).unwrap();
    assert_eq!(wr.status, status::OK, "{wr:?}");

    f.bo_read(data.handle, 0, img.bytes_mut()).unwrap();
    for (name, want) in reference(&w).unwrap() {
        assert_eq!(read_output(&c, &img, &name).unwrap(), want, "output {name}");
    }
    let mut js = JobStats {
        seq,
        ..JobStats::default()
    };
    f.job_stats(&mut js).unwrap();
    assert_eq!(js.macs, c.macs());
    assert_eq!(js.descs, c.program.len() as u64 + 1);
    js.cycles
}
