use npukit_abi::desc::{deps, Dma, Fence, Matmul, Op};
use npukit_abi::Descriptor;
use npukit_sim::run::run_program;
use npukit_sim::*;

#[test]
fn load_matmul_store() {
    let cfg = NpuConfig::default();
    let mut dev = ModelDevice::with_sink(&cfg, Vec::new());
    let mut mem = VecMemory::new(1 << 20);
    // A: 4x16 at 0x1000, W: 16x16 at 0x2000
    for i in 0..64 {
        mem.bytes_mut()[0x1000 + i] = (i as i8 - 30) as u8;
    }
    for i in 0..256 {
        mem.bytes_mut()[0x2000 + i] = (i % 7) as u8;
    }
    let ld = |local, dram, rows, rb| {
        Descriptor::new(Op::Load(Dma {
            local,
            dram,
            rows,
            row_bytes: rb,
            dram_stride: rb as u32,
            local_stride: rb as u32,
            acc: false,
        }))
    };
    let prog = vec![
        ld(0, 0x1000, 4, 16),
        ld(256, 0x2000, 16, 16).with_deps(deps::SIGNAL_NEXT),
        Descriptor::new(Op::Matmul(Matmul {
            a: 0,
            w: 256,
            out: 0,
            m: 4,
            k: 16,
            n: 16,
            accumulate: false,
        }))
        .with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        Descriptor::new(Op::Store(Dma {
            local: 0,
            dram: 0x3000,
            rows: 4,
            row_bytes: 64,
            dram_stride: 64,
            local_stride: 64,
            acc: true,
        }))
        .with_deps(deps::WAIT_PREV),
        Descriptor::new(Op::Fence(Fence {
            seq: 7,
            writeback: Some(0x4000),
            irq: true,
        })),
    ];
    let out = run_program(&mut dev, &mut mem, 0, &prog, 100_000).unwrap();
    for i in 0..4 {
        for j in 0..16 {
            let mut s = 0i32;
            for k in 0..16 {
                s += (i as i32 * 16 + k - 30) * ((k * 16 + j as i32) % 7);
            }
            let a = 0x3000 + (i * 16 + j) * 4;
            let got = i32::from_le_bytes(mem.bytes()[a..a + 4].try_into().unwrap());
            assert_eq!(got, s, "({i},{j})");
        }
    }
    assert_eq!(&mem.bytes()[0x4000..0x4004], &7u32.to_le_bytes());
    let events = dev.into_sink();
    for (c, e) in &events {
        println!("{c:5} {e:?}");
    }
    println!("{out:?}");
}
