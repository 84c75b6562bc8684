//! Runs small programs on the model and checks every output: Perfetto JSON (read
//! back and checked against the events), VCD (parsed back with the `vcd` crate),
//! stats.json and the event summary (cross-checked against the counters), and a
//! golden Perfetto file (`NPUKIT_BLESS=1` rewrites it; a mismatch prints a diff).

use std::path::PathBuf;

use npukit_abi::desc::{deps, Act, Dma, Fence, Matmul, Op};
use npukit_abi::{Descriptor, ErrorCode};
use npukit_sim::run::{run_program, RunError};
use npukit_sim::{Counters, Engine, Event, ModelDevice, NpuConfig, VecMemory};
use npukit_traces::read::{read_perfetto, read_vcd, PerfettoInfo, VcdInfo};
use npukit_traces::{slices, summarize, write_perfetto, write_stats_json, write_vcd, RunStats};
use serde_json::Value;

type Events = Vec<(u64, Event)>;

fn dma(local: u32, dram: u64, rows: u16, row_bytes: u16, acc: bool) -> Dma {
    Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride: row_bytes as u32,
        local_stride: row_bytes as u32,
        acc,
    }
}

/// LOAD A, LOAD W, MATMUL, ACT, STORE, FENCE, chained by tokens.
fn program() -> Vec<Descriptor> {
    vec![
        Descriptor::new(Op::Load(dma(0, 0x1000, 4, 16, false))),
        Descriptor::new(Op::Load(dma(256, 0x2000, 16, 16, false))).with_deps(deps::SIGNAL_NEXT),
        Descriptor::new(Op::Matmul(Matmul {
            a: 0,
            w: 256,
            out: 0,
            m: 4,
            k: 16,
            n: 16,
            accumulate: false,
        }))
        .with_deps(deps::WAIT_PREV),
        Descriptor::new(Op::Act(Act {
            src: 0,
            dst: 1024,
            bias: None,
            rows: 4,
            cols: 16,
            multiplier: 1 << 30,
            shift: 8,
            zero_point: 0,
            relu: true,
            qtab: None,
        }))
        .with_deps(deps::SIGNAL_NEXT),
        Descriptor::new(Op::Store(dma(1024, 0x3000, 4, 16, false))).with_deps(deps::WAIT_PREV),
        Descriptor::new(Op::Fence(Fence {
            seq: 1,
            writeback: Some(0x4000),
            irq: true,
        })),
    ]
}

fn memory() -> VecMemory {
    let mut mem = VecMemory::new(1 << 20);
    for i in 0..64 {
        mem.bytes_mut()[0x1000 + i] = (i as i8 - 30) as u8;
    }
    for i in 0..256 {
        mem.bytes_mut()[0x2000 + i] = (i % 7) as u8;
    }
    mem
}

/// Runs `prog`; returns the events, the counters, and the run's error if it halted.
fn run(cfg: &NpuConfig, prog: &[Descriptor]) -> (Events, Counters, Option<RunError>) {
    let mut dev = ModelDevice::with_sink(cfg, Vec::new());
    let mut mem = memory();
    let res = run_program(&mut dev, &mut mem, 0, prog, 1_000_000);
    let counters = dev.counters();
    if let Ok(o) = &res {
        assert_eq!(o.counters, counters);
    }
    (dev.into_sink(), counters, res.err())
}

struct Outputs {
    json: Vec<u8>,
    perfetto: PerfettoInfo,
    vcd_text: Vec<u8>,
    vcd: VcdInfo,
}

fn outputs(events: &Events, cfg: &NpuConfig) -> Outputs {
    let mut json = Vec::new();
    write_perfetto(events, cfg, &mut json).expect("write_perfetto");
    let perfetto = read_perfetto(&json).unwrap_or_else(|e| {
        panic!("{e}\n{}", String::from_utf8_lossy(&json));
    });
    let mut vcd_text = Vec::new();
    write_vcd(events, cfg, &mut vcd_text).expect("write_vcd");
    let vcd = read_vcd(&vcd_text).unwrap_or_else(|e| {
        panic!("{e}\n{}", String::from_utf8_lossy(&vcd_text));
    });
    Outputs {
        json,
        perfetto,
        vcd_text,
        vcd,
    }
}

fn count(events: &Events, f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|(_, e)| f(e)).count()
}

const UNIT_TRACKS: [&str; 4] = ["cmd", "load", "compute", "store"];

/// The trace events (not metadata) of a written Perfetto file.
fn trace_events(json: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(json).expect("JSON");
    v["traceEvents"].as_array().expect("traceEvents").clone()
}

/// Total cycles a 1-bit VCD signal is high (1 cycle = 1 time unit at 1 GHz).
fn high_time(v: &VcdInfo, path: &str) -> u64 {
    let ch = &v.changes[path];
    let mut total = 0;
    for (i, &(t, val)) in ch.iter().enumerate() {
        if val == 1 {
            let end = ch[i + 1..]
                .iter()
                .find(|c| c.1 == 0)
                .map(|c| c.0)
                .expect("pulse or busy never returns to 0");
            total += end - t;
        }
    }
    total
}

#[test]
fn perfetto_has_a_slice_per_completion_and_the_expected_tracks() {
    let cfg = NpuConfig::default();
    let (events, counters, err) = run(&cfg, &program());
    assert!(err.is_none(), "{err:?}");
    let out = outputs(&events, &cfg);
    let p = &out.perfetto;
    assert_eq!(p.display_time_unit.as_deref(), Some("ns"));
    assert_eq!(p.processes.values().collect::<Vec<_>>(), ["npu"]);
    assert_eq!(
        p.threads.values().map(String::as_str).collect::<Vec<_>>(),
        ["cmd", "load", "compute", "store", "memory port"]
    );
    let completes = count(&events, |e| matches!(e, Event::Complete { .. }));
    assert_eq!(completes, 6);
    assert_eq!(p.slices_on(&UNIT_TRACKS), completes);
    assert_eq!(counters.desc_done as usize, completes);
    for (name, n) in [
        ("LOAD", 2),
        ("MATMUL", 1),
        ("ACT", 1),
        ("STORE", 1),
        ("FENCE", 1),
    ] {
        assert_eq!(
            p.slice_names.get(name),
            Some(&n),
            "{name}: {:?}",
            p.slice_names
        );
    }
    assert!(p.slices_on(&["memory port"]) >= 1);
    for c in [
        "load queue depth",
        "compute queue depth",
        "store queue depth",
        "memory outstanding",
        "tokens load->compute count",
        "tokens compute->load count",
        "tokens compute->store count",
        "tokens store->compute count",
        "MAC utilisation",
    ] {
        assert!(p.counters.contains(c), "no counter {c}: {:?}", p.counters);
    }
    assert_eq!(p.instants, ["FENCE seq=1", "IRQ"]);
    // 1 GHz: 1 cycle = 1 ns = 0.001 µs; the trace ends at the last event.
    let last = events.last().unwrap().0;
    assert!(
        (p.end_us - last as f64 / 1000.0).abs() < 1e-9,
        "{}",
        p.end_us
    );

    // The MATMUL slice: timing from Issue/Complete, fields from the descriptor.
    let issue = events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::Issue {
                    unit: Engine::Compute,
                    index: 2,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    let done = events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::Complete {
                    unit: Engine::Compute,
                    index: 2,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    let evs = trace_events(&out.json);
    let mm = evs.iter().find(|e| e["name"] == "MATMUL").unwrap();
    assert_eq!(mm["ph"], "X");
    assert_eq!(mm["tid"], 3);
    assert_eq!(mm["args"]["index"], 2);
    assert_eq!(mm["args"]["cycle"], issue);
    assert_eq!(mm["args"]["end_cycle"], done);
    assert_eq!(mm["args"]["cycles"], done - issue);
    assert_eq!(mm["args"]["fields"]["m"], 4);
    assert_eq!(mm["args"]["fields"]["k"], 16);
    assert_eq!(mm["args"]["deps"], serde_json::json!(["WAIT_PREV"]));
    assert!(mm["args"]["text"].as_str().unwrap().starts_with("MATMUL "));
    assert!((mm["ts"].as_f64().unwrap() - issue as f64 / 1000.0).abs() < 1e-12);
    assert!((mm["dur"].as_f64().unwrap() - (done - issue) as f64 / 1000.0).abs() < 1e-12);
    let util = 4.0 * 16.0 * 16.0 / (256.0 * (done - issue) as f64);
    assert_eq!(mm["args"]["mac_utilisation"].as_f64().unwrap(), util);

    // The MAC counter steps to the MATMUL's utilisation at its issue and back to
    // 0 at its completion (the ACT that follows does no MACs).
    let mac: Vec<(f64, f64)> = evs
        .iter()
        .filter(|e| e["name"] == "MAC")
        .map(|e| {
            (
                e["ts"].as_f64().unwrap() * 1000.0,
                e["args"]["utilisation"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(mac.len(), 3, "{mac:?}");
    assert_eq!(mac[1].1, util);
    assert!((mac[1].0 - issue as f64).abs() < 1e-6);
    assert_eq!(mac[2].1, 0.0);
    assert!((mac[2].0 - done as f64).abs() < 1e-6);

    // Counters end where the device ends: nothing queued, in flight or pending.
    for name in ["load queue", "memory", "tokens load->compute"] {
        let last = evs.iter().rfind(|e| e["name"] == name).unwrap();
        let v = last["args"].as_object().unwrap().values().next().unwrap();
        assert_eq!(v.as_u64(), Some(0), "{name}");
    }

    // Deterministic.
    let mut again = Vec::new();
    write_perfetto(&events, &cfg, &mut again).unwrap();
    assert_eq!(again, out.json);
}

#[test]
fn vcd_parses_back_and_matches_the_counters() {
    let cfg = NpuConfig::default();
    let (events, counters, _) = run(&cfg, &program());
    let out = outputs(&events, &cfg);
    let v = &out.vcd;
    assert_eq!(v.timescale, Some((1, vcd::TimescaleUnit::NS)));
    for (path, width) in [
        ("npu.cmd.busy", 1),
        ("npu.load.busy", 1),
        ("npu.load.opcode", 8),
        ("npu.load.index", 32),
        ("npu.load.queue", 8),
        ("npu.compute.queue", 8),
        ("npu.store.queue", 8),
        ("npu.mem_req", 1),
        ("npu.mem_resp", 1),
        ("npu.mem_write", 1),
        ("npu.mem_outstanding", 16),
        ("npu.tokens.load_to_compute", 8),
        ("npu.tokens.compute_to_store", 8),
        ("npu.irq", 1),
        ("npu.error", 8),
    ] {
        assert_eq!(v.widths.get(path), Some(&width), "{path}");
    }
    assert!(!v.widths.contains_key("npu.cmd.queue"));
    // Busy time per unit is the busy counter; pulse time is one cycle per event.
    assert_eq!(high_time(v, "npu.load.busy"), counters.load_busy);
    assert_eq!(high_time(v, "npu.compute.busy"), counters.compute_busy);
    assert_eq!(high_time(v, "npu.store.busy"), counters.store_busy);
    let reqs = count(&events, |e| matches!(e, Event::MemReq { .. }));
    assert_eq!(reqs as u64, counters.mem_beats);
    assert_eq!(high_time(v, "npu.mem_req"), reqs as u64);
    let resps = count(&events, |e| matches!(e, Event::MemResp { .. }));
    assert_eq!(high_time(v, "npu.mem_resp"), resps as u64);
    let writes = count(
        &events,
        |e| matches!(e, Event::MemReq { kind, .. } if kind.is_write()),
    );
    assert_eq!(high_time(v, "npu.mem_write"), writes as u64);
    assert_eq!(high_time(v, "npu.irq"), 1);
    // Signals change only at event cycles, or the cycle after one (pulses falling).
    let cycles: std::collections::BTreeSet<u64> = events.iter().map(|e| e.0).collect();
    for t in &v.times {
        assert!(
            *t == 0 || cycles.contains(t) || cycles.contains(&(t - 1)),
            "change at {t}"
        );
    }
    // The MATMUL shows on the compute unit while it runs.
    let issue = events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::Issue {
                    unit: Engine::Compute,
                    index: 2,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    assert_eq!(v.value_at("npu.compute.opcode", issue), Some(3));
    assert_eq!(v.value_at("npu.compute.index", issue), Some(2));
    assert_eq!(v.value_at("npu.compute.busy", issue), Some(1));
    assert_eq!(v.value_at("npu.compute.busy", issue - 1), Some(0));
    let end = *v.times.last().unwrap();
    for (path, want) in [
        ("npu.mem_outstanding", 0),
        ("npu.load.queue", 0),
        ("npu.tokens.load_to_compute", 0),
        ("npu.fence_seq", 1),
        ("npu.irq_status", 1),
        ("npu.error", 0),
        ("npu.cmd.opcode", 7),
    ] {
        assert_eq!(v.value_at(path, end), Some(want), "{path}");
    }
    let mut again = Vec::new();
    write_vcd(&events, &cfg, &mut again).unwrap();
    assert_eq!(again, out.vcd_text);
}

#[test]
fn vcd_uses_picoseconds_when_a_cycle_is_not_whole_nanoseconds() {
    let mut cfg = NpuConfig::default();
    cfg.clock.freq_mhz = 300;
    let (events, _, _) = run(&cfg, &program());
    let v = outputs(&events, &cfg).vcd;
    assert_eq!(v.timescale, Some((1, vcd::TimescaleUnit::PS)));
    let done = events.last().unwrap().0;
    // 300 MHz: 3333.33 ps per cycle, rounded to the nearest picosecond.
    let t = (done as u128 * 1_000_000 + 150) / 300;
    assert_eq!(v.value_at("npu.irq", t as u64), Some(1));
    assert_eq!(v.value_at("npu.irq", t as u64 - 1), Some(0));
}

#[test]
fn summary_matches_the_counters_and_stats_json_has_every_field() {
    let cfg = NpuConfig::default();
    let (events, counters, _) = run(&cfg, &program());
    let s = summarize(&events);
    assert_eq!(s.unit(Engine::Load).busy_cycles, counters.load_busy);
    assert_eq!(s.unit(Engine::Compute).busy_cycles, counters.compute_busy);
    assert_eq!(s.unit(Engine::Store).busy_cycles, counters.store_busy);
    assert_eq!(s.completed(), counters.desc_done);
    assert_eq!(s.mem_requests, counters.mem_beats);
    assert_eq!(s.mem_responses, counters.mem_beats);
    assert_eq!(s.macs, counters.macs);
    assert_eq!(s.unit(Engine::Load).completed, 2);
    assert_eq!(s.unit(Engine::Compute).completed, 2);
    assert_eq!(s.unit(Engine::Store).completed, 1);
    assert_eq!(s.unit(Engine::Cmd).completed, 1);
    assert!(s.units.iter().all(|u| u.unfinished == 0));
    assert_eq!((s.fences, s.irqs, s.errors), (1, 1, 0));
    assert_eq!(s.token_pushes, s.token_pops);

    let stats = RunStats::new(
        "tiny",
        "LOAD LOAD MATMUL ACT STORE FENCE",
        &cfg,
        &counters,
        0.5,
    );
    let mut out = Vec::new();
    write_stats_json(&stats, &mut out).unwrap();
    let j: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["workload"], "tiny");
    assert_eq!(j["cycles"], counters.cycles);
    for (name, v) in counters.named() {
        assert_eq!(j["counters"][name], v, "{name}");
    }
    assert_eq!(j["counters"].as_object().unwrap().len(), 14);
    let back: NpuConfig = serde_json::from_value(j["config"].clone()).unwrap();
    assert_eq!(back, cfg);
    assert_eq!(
        j["time_us"].as_f64().unwrap(),
        counters.cycles as f64 / 1000.0
    );
    assert_eq!(j["wall_s"], 0.5);
    assert_eq!(
        j["sim_cycles_per_s"].as_f64().unwrap(),
        counters.cycles as f64 * 2.0
    );
    let util = counters.macs as f64 / (counters.cycles as f64 * 256.0);
    assert_eq!(j["mac_utilisation"].as_f64().unwrap(), util);
    assert_eq!(
        j["macs_per_cycle"].as_f64().unwrap(),
        counters.macs as f64 / counters.cycles as f64
    );
    assert_eq!(j["dram_read_bytes"], counters.dma_rd_bytes);
    assert_eq!(j["dram_write_bytes"], counters.dma_wr_bytes);
    assert_eq!(j["busy_cycles"]["compute"], counters.compute_busy);
    assert_eq!(
        j["busy_fraction"]["load"].as_f64().unwrap(),
        counters.load_busy as f64 / counters.cycles as f64
    );
    assert_eq!(
        j["stall_cycles"]["load"]["token_cycles"],
        counters.load_token_stall
    );
    assert_eq!(
        j["stall_cycles"]["store"]["mem_cycles"],
        counters.store_mem_stall
    );
    assert!(j["stall_cycles"]["compute"].get("mem_cycles").is_none());
    // No wall time, no speed (and no non-finite number in the JSON).
    let s0 = RunStats::new("tiny", "", &cfg, &counters, 0.0);
    assert_eq!(s0.sim_cycles_per_s, None);
}

#[test]
fn a_halted_run_shows_the_error_and_the_unfinished_descriptor() {
    let cfg = NpuConfig::default();
    // The second LOAD reads past the end of the 1 MiB device memory.
    let prog = vec![
        Descriptor::new(Op::Load(dma(0, 0x1000, 4, 16, false))),
        Descriptor::new(Op::Load(dma(256, 0x10_0000 - 64, 16, 16, false))),
        Descriptor::new(Op::Fence(Fence {
            seq: 1,
            writeback: None,
            irq: true,
        })),
    ];
    let (events, _, err) = run(&cfg, &prog);
    assert!(
        matches!(
            err,
            Some(RunError::Device {
                code: ErrorCode::AddrRange,
                index: 1,
                ..
            })
        ),
        "{err:?}"
    );
    let out = outputs(&events, &cfg);
    let p = &out.perfetto;
    assert_eq!(p.instants, ["ERROR ADDR_RANGE", "IRQ"]);
    // Slices for every completion, plus the LOAD cut short and the FENCE still
    // draining, both closed at the last event and marked unfinished.
    let completes = count(&events, |e| matches!(e, Event::Complete { .. }));
    let all = slices(&events);
    let open: Vec<_> = all.iter().filter(|s| !s.finished).collect();
    assert_eq!(open.len(), 2, "{open:?}");
    assert_eq!(p.slices_on(&UNIT_TRACKS), completes + open.len());
    let evs = trace_events(&out.json);
    let unfinished = evs
        .iter()
        .filter(|e| e["args"]["unfinished"] == true)
        .count();
    assert!(unfinished >= 2);
    let v = &out.vcd;
    let end = *v.times.last().unwrap();
    assert_eq!(
        v.value_at("npu.error", end),
        Some(ErrorCode::AddrRange as u64)
    );
    // The halt drops the requests in flight.
    assert_eq!(v.value_at("npu.mem_outstanding", end), Some(0));
    assert_eq!(summarize(&events).errors, 1);
}

// ---- golden file ----

/// A 4x4 array with a short memory latency: few events, a small golden file.
fn tiny_config() -> NpuConfig {
    let mut cfg = NpuConfig::default();
    cfg.array.rows = 4;
    cfg.array.cols = 4;
    cfg.dma.beat_bytes = 16;
    cfg.dram.latency = 4;
    cfg.dram.bytes_per_cycle = 16;
    cfg.clock.freq_mhz = 500;
    cfg.validate().expect("tiny config");
    cfg
}

fn tiny_program() -> Vec<Descriptor> {
    vec![
        Descriptor::new(Op::Load(dma(0, 0x1000, 2, 4, false))),
        Descriptor::new(Op::Load(dma(16, 0x2000, 4, 4, false))).with_deps(deps::SIGNAL_NEXT),
        Descriptor::new(Op::Matmul(Matmul {
            a: 0,
            w: 16,
            out: 0,
            m: 2,
            k: 4,
            n: 4,
            accumulate: false,
        }))
        .with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        Descriptor::new(Op::Store(dma(0, 0x3000, 2, 16, true))).with_deps(deps::WAIT_PREV),
        Descriptor::new(Op::Nop),
        Descriptor::new(Op::Fence(Fence {
            seq: 9,
            writeback: None,
            irq: true,
        })),
    ]
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("NPUKIT_BLESS").is_some_and(|v| v == "1") {
        let dir = path.parent().expect("golden dir");
        std::fs::create_dir_all(dir).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with NPUKIT_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual);
        panic!(
            "{} differs from the output (rerun with NPUKIT_BLESS=1 to accept):\n{}",
            path.display(),
            diff.unified_diff()
                .context_radius(2)
                .header("expected", "actual")
        );
    }
}

#[test]
fn golden_tiny_perfetto() {
    let cfg = tiny_config();
    let (events, counters, err) = run(&cfg, &tiny_program());
    assert!(err.is_none(), "{err:?}");
    let out = outputs(&events, &cfg);
    assert_eq!(
        out.perfetto.slices_on(&UNIT_TRACKS),
        counters.desc_done as usize
    );
    assert_eq!(out.perfetto.slice_names.get("NOP"), Some(&1));
    golden("tiny.perfetto.json", &String::from_utf8(out.json).unwrap());
}
