//! ResNet-18 (workloads/resnet18.json, ImageNet shapes) through the
//! cycle-accurate model on the default 16x16 NPU: the host time of one whole
//! run (the compiled program fed through the ring, ~13 M simulated cycles),
//! compilation and the memory image excluded. Criterion's throughput line reads
//! as simulated cycles per second.
//!
//! Run: `cargo bench -p npukit-compiler --bench resnet18` (figures in
//! docs/performance.md).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use npukit_compiler::{compile, load_image, load_workload};
use npukit_sim::run::run_program;
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};

fn resnet18(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/resnet18.json");
    let w = load_workload(&path).expect("workloads/resnet18.json loads");
    let cfg = NpuConfig::default();
    let prog = compile(&w, &cfg).expect("ResNet-18 compiles for 16x16");
    let mut mem = VecMemory::new(prog.mem_bytes as usize);
    load_image(&prog, &mut mem).expect("the image fits");
    let mut dev = ModelDevice::new(&cfg);
    let cycles = run_program(
        &mut dev,
        &mut mem.clone(),
        prog.ring_base,
        prog.program.descs(),
        1 << 34,
    )
    .expect("ResNet-18 runs")
    .cycles;
    let mut g = c.benchmark_group("resnet18");
    g.sample_size(10);
    g.throughput(Throughput::Elements(cycles));
    g.bench_function("model_16x16", |b| {
        b.iter_batched(
            || (ModelDevice::new(&cfg), mem.clone()),
            |(mut dev, mut m)| {
                run_program(
                    &mut dev,
                    &mut m,
                    prog.ring_base,
                    prog.program.descs(),
                    1 << 34,
                )
                .expect("ResNet-18 runs")
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, resnet18);
criterion_main!(benches);
