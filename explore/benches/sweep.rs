//! The README's example sweep (`sweeps/example.toml`, 36 points) from an empty
//! cache to a written report: `cargo bench -p npukit-explore --bench sweep`.
//! The target is under 2 minutes on the 2-core development machine.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use npukit_explore::{EnergyTable, Options, Sweep};

fn example_sweep(c: &mut Criterion) {
    let sweep = Sweep::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../sweeps/example.toml"))
        .expect("the example sweep loads");
    let out = std::env::temp_dir().join(format!("npukit-bench-sweep-{}", std::process::id()));
    let opts = Options {
        out: out.clone(),
        cache: None,
        shard: None,
        energy: EnergyTable::builtin(),
        jobs: None,
        progress: false,
    };
    let mut g = c.benchmark_group("explore");
    g.sample_size(10);
    g.bench_function("example sweep, empty cache, all cores", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&out);
            },
            |()| {
                let o = npukit_explore::run(&sweep, &opts).expect("the sweep runs");
                assert_eq!(o.summary.simulated, sweep.points.len());
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("example sweep, every point cached", |b| {
        npukit_explore::run(&sweep, &opts).expect("the sweep runs");
        b.iter(|| {
            let o = npukit_explore::run(&sweep, &opts).expect("the sweep runs");
            assert_eq!(o.summary.simulated, 0);
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&out);
}

criterion_group!(benches, example_sweep);
criterion_main!(benches);
