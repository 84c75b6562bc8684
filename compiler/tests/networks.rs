//! The networks under workloads/ (a small CNN, ResNet-18, MobileNetV2, a
//! transformer block's matmuls) run bit-exact against the CPU reference on
//! 8x8, 16x16 and 32x32 arrays; with unlimited DRAM bandwidth no conv or
//! matmul layer keeps the compute unit longer than its unoverlapped work.
//!
//! These are the suite's expensive tests (ResNet-18 is 1.8 GMAC, tens of
//! millions of simulated cycles on 8x8); each network is one test so the two
//! CI cores run them in parallel.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use npukit_abi::desc::Op;
use npukit_compiler::profile::Profiler;
use npukit_compiler::{compile, load_image, load_workload, read_output, reference, Workload};
use npukit_sim::mac::matmul_latency;
use npukit_sim::run::{ring_entries, run_program};
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn config(name: &str) -> NpuConfig {
    NpuConfig::load(&path(&format!("configs/{name}.toml"))).unwrap()
}

fn configs() -> Vec<(&'static str, NpuConfig)> {
    vec![
        ("8x8", config("8x8")),
        ("16x16", config("default")),
        ("32x32", config("32x32")),
    ]
}

/// Compiles and runs `w` on every array size and checks every output.
fn bit_exact_everywhere(file: &str) {
    let w =
        load_workload(&path(&format!("workloads/{file}.json"))).unwrap_or_else(|e| panic!("{e}"));
    let want = reference(&w).unwrap();
    for (cname, cfg) in configs() {
        let c = compile(&w, &cfg).unwrap_or_else(|e| panic!("{file} on {cname}: {e}"));
        let mut mem = VecMemory::new(c.mem_bytes as usize);
        load_image(&c, &mut mem).unwrap();
        let mut dev = ModelDevice::new(&cfg);
        let out = run_program(&mut dev, &mut mem, c.ring_base, c.program.descs(), 1 << 34)
            .unwrap_or_else(|e| panic!("{file} on {cname}: {e}"));
        assert_eq!(dev.tokens(), [0; 4], "{file} on {cname}: tokens left over");
        assert_eq!(out.counters.macs, c.macs(), "{file} on {cname}");
        for (name, t) in &want {
            let got = read_output(&c, &mem, name).unwrap();
            assert_eq!(got.shape, t.shape, "{file} on {cname}: {name}");
            if let Some((i, g, r)) = got.first_difference(t) {
                panic!("{file} on {cname}: output {name} differs at element {i}: npu {g}, reference {r}");
            }
        }
        // From the run's counters: MACs done over MACs the array could do.
        let util =
            out.counters.macs as f64 / (out.cycles as f64 * cfg.peak_macs_per_cycle() as f64);
        println!(
            "{file} on {cname}: {} descriptors, {} cycles, MAC utilisation {:.2}%",
            c.program.len(),
            out.cycles,
            100.0 * util
        );
        if let Some(&(_, _, min)) = MIN_UTILISATION
            .iter()
            .find(|(f, n, _)| *f == file && *n == cname)
        {
            assert!(
                util >= min,
                "{file} on {cname} (configs/default.toml: default DRAM model, no weight double-buffering): \
                 MAC utilisation {:.2}% < {:.0}%",
                100.0 * util,
                100.0 * min
            );
        }
    }
}

/// Utilisation over the whole network the schedule must reach (issue #7:
/// ResNet-18 on 16x16 with the default DRAM model keeps the array >= 60% busy).
const MIN_UTILISATION: &[(&str, &str, f64)] = &[("resnet18", "16x16", 0.60)];

#[test]
fn cnn_28_bit_exact_on_8x8_16x16_32x32() {
    bit_exact_everywhere("cnn-28");
}

#[test]
fn resnet18_bit_exact_on_8x8_16x16_32x32() {
    bit_exact_everywhere("resnet18");
}

#[test]
fn mobilenetv2_bit_exact_on_8x8_16x16_32x32() {
    bit_exact_everywhere("mobilenetv2");
}

#[test]
fn transformer_block_bit_exact_on_8x8_16x16_32x32() {
    bit_exact_everywhere("transformer-block");
}

/// The default 16x16 NPU with a memory system that never limits: one-cycle
/// latency, 64-byte beats, far more bandwidth and outstanding requests than
/// the port can use.
fn unlimited_dram() -> NpuConfig {
    let mut c = NpuConfig::default();
    c.dma.beat_bytes = 64;
    c.dram.latency = 1;
    c.dram.bytes_per_cycle = 4096;
    c.dram.max_outstanding = 1 << 10;
    c.validate().unwrap();
    c
}

/// With unlimited DRAM bandwidth, every conv and matmul layer keeps the
/// compute unit no longer than its unoverlapped work: its folds x
/// (2R + C + M - 2) plus the activation unit's cycles for its ACTs (C2 runs
/// on the same compute unit, so it can never overlap a fold).
fn compute_bound_holds(w: &Workload) -> Vec<String> {
    let cfg = unlimited_dram();
    let c = compile(w, &cfg).unwrap();
    let (r, cols) = (cfg.array.rows, cfg.array.cols);
    // A layer's MATMUL/ACT/ADD descriptors from its first to its last in ring
    // order, and every compute descriptor between them (the compute unit runs
    // them in ring order: a relay or a pooling step of a neighbouring layer
    // may sit in between).
    let descs = c.program.descs();
    let latency = |op: &Op| match op {
        Op::Matmul(m) => matmul_latency(r, cols, m.m as u32),
        Op::Act(a) => npukit_sim::act::act_latency(cols, a),
        Op::Add(a) => npukit_sim::act::elementwise_latency(cols, a.len),
        Op::Max(m) => npukit_sim::act::elementwise_latency(cols, m.len),
        _ => 0,
    };
    let work = |op: &Op| matches!(op, Op::Matmul(_) | Op::Act(_) | Op::Add(_));
    let mut range = vec![(usize::MAX, 0usize); c.layers.len()];
    for (i, (d, l)) in descs.iter().zip(&c.desc_layer).enumerate() {
        if let (Some(l), true) = (l, work(&d.op)) {
            let e = &mut range[*l as usize];
            *e = (e.0.min(i), e.1.max(i + 1));
        }
    }
    let bound: Vec<u64> = range
        .iter()
        .map(|&(a, b)| descs[a.min(b)..b].iter().map(|d| latency(&d.op)).sum())
        .collect();
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut mem).unwrap();
    let ring = ring_entries(c.program.len(), cfg.cmdproc.max_ring);
    let mut dev =
        ModelDevice::with_sink(&cfg, Profiler::new(&c.desc_layer, c.layers.len(), ring, 0));
    run_program(&mut dev, &mut mem, c.ring_base, c.program.descs(), 1 << 34).unwrap();
    let times = dev.into_sink().layers();
    let mut checked = 0;
    let mut over = Vec::new();
    for ((l, t), b) in c.layers.iter().zip(&times).zip(&bound) {
        if !matches!(l.op, "conv2d" | "dense" | "matmul") {
            continue;
        }
        println!(
            "{} {}: compute span {} cycles, unoverlapped bound {b}, layer cycles {}",
            w.name, l.name, t.compute_span, t.cycles
        );
        if t.compute_span > *b {
            over.push(format!(
                "{} {}: {} cycles > bound {b}",
                w.name, l.name, t.compute_span
            ));
        }
        checked += 1;
    }
    assert!(checked > 0);
    over
}

#[test]
fn unlimited_bandwidth_layers_stay_within_the_weight_stationary_count() {
    let mut over = Vec::new();
    for f in ["cnn-28", "resnet18", "mobilenetv2", "transformer-block"] {
        over.extend(compute_bound_holds(
            &load_workload(&path(&format!("workloads/{f}.json"))).unwrap(),
        ));
    }
    assert!(over.is_empty(), "{}", over.join("\n"));
}
