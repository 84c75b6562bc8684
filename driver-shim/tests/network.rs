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
use npukit_sim::{NpuConfig, VecMemory};

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
    let w = builtin_example();
    let cfg = NpuConfig::default();
    let c = compile(&w, &cfg).unwrap();
    let s = shim_with(|o| o.ring_size = 16);
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
}
