//! The checker itself: two identical models agree on the whole corpus; a
//! model with one perturbed timing parameter, and the deliberately broken RTL
//! variant (`npu_4x4_offbyone`), are caught at their first divergent event,
//! and the report names its cycle, unit and event kind.

mod common;

use npukit_rtl::corpus::{self, Case, Expect};
use npukit_rtl::lockstep::DivergenceKind;
use npukit_rtl::{variant, Lockstep, LockstepOptions};
use npukit_sim::{Event, ModelDevice, NpuConfig};

type Model = ModelDevice<Vec<(u64, Event)>>;

fn pair(a: &NpuConfig, b: &NpuConfig) -> Lockstep<Model, Model> {
    Lockstep::new(
        ModelDevice::with_sink(a, Vec::new()),
        ModelDevice::with_sink(b, Vec::new()),
        LockstepOptions {
            names: ["model".into(), "perturbed".into()],
            keep_events: true,
            ..LockstepOptions::default()
        },
    )
}

/// The events of `case` on the model alone.
#[allow(clippy::unwrap_used)]
fn model_events(case: &Case, cfg: &NpuConfig) -> Vec<(u64, Event)> {
    let cfg = case.config(cfg);
    let mut ls = pair(&cfg, &cfg);
    corpus::run(&mut ls, case).unwrap();
    ls.all_events()[0].to_vec()
}

#[test]
fn identical_models_agree_on_the_whole_corpus() {
    for cfg in [
        NpuConfig::default(),
        common_cfg(4, 4, 16384, 4096),
        common_cfg(8, 8, 65536, 16384),
    ] {
        let mut cases = corpus::handwritten(&cfg);
        cases.extend((0..20).map(|s| corpus::random(&cfg, s)));
        for case in &cases {
            let c = case.config(&cfg);
            let mut ls = pair(&c, &c);
            let out = corpus::run(&mut ls, case).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert!(out.events > 0, "{}: no events compared", case.name);
            if case.expect == Expect::Complete {
                assert!(out.result.is_ok(), "{}: {:?}", case.name, out.result);
            }
        }
    }
}

fn common_cfg(rows: u32, cols: u32, spad: u32, acc: u32) -> NpuConfig {
    let mut c = NpuConfig::default();
    c.array.rows = rows;
    c.array.cols = cols;
    c.memory.spad_bytes = spad;
    c.memory.acc_bytes = acc;
    c
}

#[test]
fn a_perturbed_dram_latency_is_caught_at_the_first_response() {
    let cfg = NpuConfig::default();
    let case = corpus::handwritten(&cfg)
        .into_iter()
        .find(|c| c.name == "nop_and_fence")
        .unwrap();
    let base = case.config(&cfg);
    let (first_resp, _) = model_events(&case, &cfg)
        .into_iter()
        .find(|(_, e)| matches!(e, Event::MemResp { .. }))
        .unwrap();
    let mut slow = base.clone();
    slow.dram.latency += 1;
    let dir = std::env::temp_dir().join(format!("npukit-checker-{}", std::process::id()));
    let mut ls_opts = LockstepOptions {
        names: ["model".into(), "perturbed".into()],
        keep_events: true,
        trace_dir: Some(dir.clone()),
        ..LockstepOptions::default()
    };
    ls_opts.history = 3;
    let mut ls = Lockstep::new(
        ModelDevice::with_sink(&base, Vec::new()),
        ModelDevice::with_sink(&slow, Vec::new()),
        ls_opts,
    );
    let err = corpus::run(&mut ls, &case).unwrap_err();
    let d = ls.divergence().expect("a divergence");
    assert_eq!(d.cycle, first_resp);
    assert_eq!(d.unit, "cmd");
    assert_eq!(d.event_kind, "MemResp");
    match &d.kind {
        DivergenceKind::Events { a, b, first } => {
            assert!(matches!(a[*first], Event::MemResp { .. }));
            assert!(b
                .get(*first)
                .is_none_or(|e| !matches!(e, Event::MemResp { .. })));
        }
        other => panic!("expected an event divergence, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "DIVERGENCE at cycle {first_resp}: unit cmd, MemResp"
        )),
        "{text}"
    );
    assert!(text.contains("perturbed"), "{text}");
    assert!(text.contains("last 3 matching events"), "{text}");
    // Both sides' Perfetto traces were written.
    assert_eq!(d.traces.len(), 2, "{text}");
    for t in &d.traces {
        let json = std::fs::read(t).unwrap();
        npukit_traces::read::read_perfetto(&json).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_perturbed_queue_depth_names_the_unit_and_its_descriptor() {
    let cfg = NpuConfig::default();
    let case = corpus::handwritten(&cfg)
        .into_iter()
        .find(|c| c.name == "double_buffered_pipeline")
        .unwrap();
    let base = case.config(&cfg);
    let mut other = base.clone();
    other.dram.max_outstanding = 1;
    let mut ls = pair(&base, &other);
    let err = corpus::run(&mut ls, &case).unwrap_err().to_string();
    let d = ls.divergence().expect("a divergence");
    assert!(
        ["cmd", "load", "compute", "store"].contains(&d.unit.as_str()),
        "{err}"
    );
    assert!(
        err.contains(&format!("DIVERGENCE at cycle {}", d.cycle)),
        "{err}"
    );
    assert!(err.contains("in flight on"), "{err}");
    assert!(!d.recent.is_empty(), "{err}");
}

#[test]
fn the_broken_variant_is_caught_at_its_first_late_dispatch() {
    common::require_rtl();
    let Some(bad) = variant::all().find(|v| v.fault.is_some() && v.name != "npu_stub") else {
        panic!("rtl/generated/variants.json lists no deliberately broken variant");
    };
    assert_eq!(bad.name, "npu_4x4_offbyone");
    let cfg = bad.apply(&NpuConfig::default());
    let case = corpus::handwritten(&cfg)
        .into_iter()
        .find(|c| c.name == "load_store_spad_unaligned_strided")
        .unwrap();
    // The model's first dispatch: where a late dispatch first shows.
    let (cycle, unit) = model_events(&case, &cfg)
        .into_iter()
        .find_map(|(c, e)| match e {
            Event::Dispatch { unit, .. } => Some((c, unit)),
            _ => None,
        })
        .unwrap();
    let c = case.config(&cfg);
    let mut ls =
        npukit_rtl::lockstep::model_vs_rtl(&c, Some(bad.name), None, LockstepOptions::default())
            .unwrap();
    let err = corpus::run(&mut ls, &case)
        .expect_err("the broken variant must diverge")
        .to_string();
    let d = ls.divergence().expect("a divergence");
    assert_eq!(
        (d.cycle, d.unit.as_str(), d.event_kind.as_str()),
        (cycle, unit.name(), "Dispatch"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "DIVERGENCE at cycle {cycle}: unit {}, Dispatch",
            unit.name()
        )),
        "{err}"
    );
}

#[test]
fn fuzzed_programs_reach_completion_and_many_error_paths() {
    // The fuzz generator checks itself: over 200 seeds on the model, some
    // programs complete and at least five different error codes occur.
    let cfg = common_cfg(8, 8, 65536, 16384);
    let mut done = 0;
    let mut codes = std::collections::BTreeSet::new();
    let mut cycles = 0;
    for s in 0..200 {
        let case = corpus::fuzz(&cfg, s);
        let c = case.config(&cfg);
        let mut ls = pair(&c, &c);
        let out = corpus::run(&mut ls, &case).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        cycles += out.cycles;
        match out.result {
            Ok(_) => done += 1,
            Err(npukit_sim::run::RunError::Device { code, .. }) => {
                codes.insert(code as u32);
            }
            Err(e) => panic!("{}: {e}", case.name),
        }
    }
    eprintln!("fuzz: {done} of 200 complete, error codes {codes:?}, {cycles} cycles");
    assert!(done >= 20, "only {done} of 200 fuzzed programs complete");
    assert!(codes.len() >= 5, "error codes seen: {codes:?}");
}

#[test]
fn random_programs_use_translation_and_complete() {
    let cfg = NpuConfig::default();
    let mut xlat = 0;
    for s in 0..40 {
        let case = corpus::random(&cfg, s);
        let events = model_events(&case, &cfg);
        let ptes = events
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Event::MemReq {
                        kind: npukit_sim::MemKind::Pte,
                        ..
                    }
                )
            })
            .count();
        if case.name.ends_with("_xlat") {
            xlat += 1;
            assert!(ptes > 0, "{}: no translation-table reads", case.name);
        } else {
            assert_eq!(ptes, 0, "{}", case.name);
        }
    }
    assert!(
        (5..=25).contains(&xlat),
        "{xlat} of 40 random programs translate"
    );
}

/// The MATMUL chains of the corpus exercise rule C1b on a double-buffered
/// configuration: some folds have their weights loaded before they issue
/// (faster than C1a), the one after the ACT does not (exactly C1a); on an
/// output-stationary configuration every fold takes C1c's latency.
#[test]
fn matmul_chains_exercise_the_array_options() {
    use npukit_abi::Opcode;
    for (r, c) in [(4u32, 4u32), (8, 8)] {
        let base = common_cfg(r, c, 16384 * r / 4 * r / 4, 4096 * r / 4 * r / 4);
        let (rr, cc) = (r as u64, c as u64);
        for df in [
            npukit_sim::Dataflow::WeightStationary,
            npukit_sim::Dataflow::OutputStationary,
        ] {
            let mut cfg = base.clone();
            cfg.array.dataflow = df;
            cfg.array.weight_double_buffer = df == npukit_sim::Dataflow::WeightStationary;
            let (mut faster, mut full) = (0, 0);
            for case in corpus::handwritten(&cfg)
                .iter()
                .filter(|c| c.name == "matmul_chain" || c.name.starts_with("matmul_weights_during"))
            {
                let ev = model_events(case, &cfg);
                let ms: std::collections::HashMap<u32, u64> = ev
                    .iter()
                    .filter_map(|(_, e)| match e {
                        Event::Dispatch { index, desc, .. } => match desc.op {
                            npukit_abi::desc::Op::Matmul(m) => Some((*index, m.m as u64)),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect();
                let at =
                    |f: &dyn Fn(&Event) -> Option<u32>| -> std::collections::HashMap<u32, u64> {
                        ev.iter()
                            .filter_map(|(t, e)| f(e).map(|i| (i, *t)))
                            .collect()
                    };
                let issue = at(&|e| match e {
                    Event::Issue {
                        index,
                        opcode: Opcode::Matmul,
                        ..
                    } => Some(*index),
                    _ => None,
                });
                let done = at(&|e| match e {
                    Event::Complete {
                        index,
                        opcode: Opcode::Matmul,
                        ..
                    } => Some(*index),
                    _ => None,
                });
                assert!(ms.len() >= 6, "{}", case.name);
                for (i, m) in &ms {
                    let lat = done[i] - issue[i];
                    if cfg.array.weight_double_buffer {
                        let c1a = 2 * rr + cc + m - 2;
                        assert!(lat <= c1a && lat + rr > c1a, "{} #{i}: {lat}", case.name);
                        faster += (lat < c1a) as u32;
                        full += (lat == c1a) as u32;
                    } else {
                        assert_eq!(
                            lat,
                            m.div_ceil(rr) * rr.max(cc) + rr + cc + 1,
                            "{} #{i}",
                            case.name
                        );
                    }
                }
            }
            if cfg.array.weight_double_buffer {
                assert!(
                    faster >= 5 && full >= 2,
                    "{r}x{c}: {faster} hidden loads, {full} unhidden"
                );
            }
        }
    }
}
