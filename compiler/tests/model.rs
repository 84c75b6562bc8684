//! Compiled programs run on the cycle-accurate model and match the CPU
//! reference bit for bit: MLPs and GEMMs of awkward shapes on square and
//! non-square arrays, tiny local memories, and unusual memory-system settings.

mod common;

use common::*;
use npukit_compiler::{builtin_example, parse_workload};
use npukit_sim::NpuConfig;

#[test]
fn builtin_example_runs_bit_exact() {
    let (c, out) = run_and_check(&builtin_example(), &NpuConfig::default());
    assert!(out.cycles > 0);
    assert_eq!(c.outputs[0].name, "logits");
}

fn arrays() -> Vec<(&'static str, NpuConfig)> {
    vec![
        ("16x16", NpuConfig::default()),
        ("4x8", cfg(4, 8, 16 << 10, 4 << 10)),
        ("8x4", cfg(8, 4, 16 << 10, 4 << 10)),
        ("32x32", cfg(32, 32, 256 << 10, 64 << 10)),
    ]
}

#[test]
fn mlps_on_square_and_non_square_arrays() {
    let nets: &[(usize, &[usize], bool, i32)] = &[
        (7, &[37, 19, 5], true, 3),
        (33, &[100, 64, 33, 9], true, -128),
        (1, &[16, 16], false, 0),
        (20, &[5, 70, 3], true, 127),
    ];
    for (name, c) in arrays() {
        for (i, &(batch, dims, relu, zp)) in nets.iter().enumerate() {
            let w = parse_workload(&mlp_json(
                &format!("mlp{i}-{name}"),
                batch,
                dims,
                relu,
                zp,
                i as u64 + 1,
            ))
            .unwrap();
            run_and_check(&w, &c);
        }
    }
}

#[test]
fn gemms_int32_and_int8_on_all_arrays() {
    let shapes = [
        (1, 1, 1),
        (7, 5, 3),
        (33, 17, 19),
        (100, 300, 70),
        (16, 64, 48),
    ];
    for (name, c) in arrays() {
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            let w = parse_workload(&gemm_json(
                &format!("gemm{i}-{name}"),
                m,
                k,
                n,
                None,
                10 + i as u64,
            ))
            .unwrap();
            run_and_check(&w, &c);
            let scale = (k as f64).sqrt() * 74.0 * 74.0 / 50.0;
            let w = parse_workload(&gemm_json(
                &format!("gemm8-{i}-{name}"),
                m,
                k,
                n,
                Some(scale),
                20 + i as u64,
            ))
            .unwrap();
            run_and_check(&w, &c);
        }
    }
}

#[test]
fn tiny_local_memories_force_many_tiles() {
    // Scratchpad and accumulator a few weight tiles big: single rows, single
    // buffers, streamed inputs.
    let cases = [
        cfg(4, 4, 64, 64),
        cfg(4, 8, 160, 96),
        cfg(8, 4, 256, 128),
        cfg(16, 16, 600, 256),
    ];
    for (i, c) in cases.iter().enumerate() {
        let w = parse_workload(&mlp_json(
            &format!("tiny-mlp{i}"),
            13,
            &[45, 23, 7],
            true,
            5,
            3,
        ))
        .unwrap();
        let (cc, _) = run_and_check(&w, c);
        assert!(
            cc.layers
                .iter()
                .all(|l| l.tiling.is_some_and(|t| t.m_tile < 13)),
            "{:?}",
            cc.layers
        );
        let w = parse_workload(&gemm_json(&format!("tiny-gemm{i}"), 21, 30, 11, None, 4)).unwrap();
        run_and_check(&w, c);
    }
}

#[test]
fn int32_output_with_bias_and_input_zero_point() {
    // A dense layer with an int32 output: the output tile is preloaded with the
    // bias folded with the input zero point.
    let json = r#"{
        "name": "dense-int32", "batch": 19,
        "input": {"name": "x", "features": 40, "quant": {"scale": 0.1, "zero_point": -17},
                  "data": {"random": {"seed": 5}}},
        "layers": [
            {"op": "gemm", "name": "g1", "out_features": 21, "weights": {"random": {"seed": 6}},
             "bias": {"random": {"seed": 7}}, "output": {"scale": 40, "zero_point": 1}, "relu": true},
            {"op": "dense", "name": "g2", "out_features": 35, "weights": {"random": {"seed": 8}},
             "bias": {"random": {"seed": 9, "range": [-100000, 100000]}}, "output": {"dtype": "int32"}}
        ]}"#;
    let w = parse_workload(json).unwrap();
    for (_, c) in arrays() {
        check_all_strategies(&w, &c);
    }
    check_all_strategies(&w, &cfg(4, 4, 128, 64));
}

#[test]
fn memory_system_variants() {
    let w = parse_workload(&mlp_json("mem", 30, &[50, 40, 12], true, -3, 9)).unwrap();
    let g = parse_workload(&gemm_json("memg", 30, 50, 40, None, 9)).unwrap();
    let mut variants = Vec::new();
    for beat in [8, 64] {
        let mut c = NpuConfig::default();
        c.dma.beat_bytes = beat;
        variants.push(c);
    }
    let mut c = NpuConfig::default();
    c.dram.latency = 1;
    c.dram.max_outstanding = 1;
    c.dram.bytes_per_cycle = 1;
    variants.push(c);
    // The shallowest queues and fetch buffer: still no deadlock.
    let mut c = cfg(4, 8, 512, 256);
    c.cmdproc.queue_depth = 1;
    c.cmdproc.fetch_depth = 1;
    variants.push(c);
    let mut c = NpuConfig::default();
    c.cmdproc.queue_depth = 256;
    c.cmdproc.fetch_depth = 64;
    variants.push(c);
    for c in &variants {
        check_all_strategies(&w, c);
        check_all_strategies(&g, c);
    }
}

#[test]
fn programs_longer_than_the_ring_run_through_ring_refill() {
    // mlp-small is a few hundred descriptors; a ring of 8 holds 7 at a time.
    let mut c = NpuConfig::default();
    c.cmdproc.max_ring = 8;
    let w = builtin_example();
    let (cc, out) = run_and_check(&w, &c);
    assert!(cc.program.len() > 50, "{}", cc.program.len());
    assert!(out.cycles > 0);
}
