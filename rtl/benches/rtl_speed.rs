//! RTL speed: Verilated cycles per second on 8x8 and 16x16, and the model's
//! speed on the same workload with the identical cycle count (the model/RTL
//! ratio). Throughput is in simulated cycles ("elements") per second.
//!
//! `cargo bench -p npukit-rtl --bench rtl_speed`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use npukit_compiler::Compiled;
use npukit_rtl::{variant, RtlDevice};
use npukit_sim::run::run_program;
use npukit_sim::{Device, ModelDevice, NpuConfig, VecMemory};

/// Runs the compiled program on `dev` from a fresh memory; returns the cycles.
fn run(dev: &mut dyn Device, c: &Compiled) -> u64 {
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    npukit_compiler::load_image(c, &mut mem).unwrap();
    run_program(dev, &mut mem, c.ring_base, c.program.descs(), 1 << 34)
        .unwrap()
        .cycles
}

fn bench(cr: &mut Criterion) {
    if !variant::verilator_available() {
        eprintln!("rtl_speed: {}", npukit_rtl::RtlError::NoVerilator);
        return;
    }
    let w = npukit_compiler::builtin_example();
    for name in ["npu_8x8", "npu_16x16"] {
        let Some(info) = variant::all().find(|v| v.name == name) else {
            eprintln!("rtl_speed: no variant {name}");
            continue;
        };
        let cfg = info.apply(&NpuConfig::default());
        let c = npukit_compiler::compile(&w, &cfg).unwrap();
        // Identical cycle counts on both, checked once.
        let rtl_cycles = run(&mut RtlDevice::new(&cfg).unwrap(), &c);
        let model_cycles = run(&mut ModelDevice::new(&cfg), &c);
        assert_eq!(
            rtl_cycles, model_cycles,
            "{name}: model and RTL cycle counts differ"
        );
        let mut g = cr.benchmark_group(format!("mlp-small on {name}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(rtl_cycles));
        g.bench_function("rtl", |b| {
            b.iter(|| run(&mut RtlDevice::new(&cfg).unwrap(), &c))
        });
        g.bench_function("model", |b| b.iter(|| run(&mut ModelDevice::new(&cfg), &c)));
        g.bench_function("model, every cycle stepped", |b| {
            b.iter(|| {
                let mut m = ModelDevice::new(&cfg);
                m.set_skip(false);
                run(&mut m, &c)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
