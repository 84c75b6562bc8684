//! `npukit run`: compile a workload, simulate it on the model, check the result
//! against the CPU reference bit for bit, write traces and a report.

use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use npukit_compiler::profile::{LayerTime, Profiler};
use npukit_compiler::{Compiled, Tensor, Workload};
use npukit_sim::run::{self, RingRun};
use npukit_sim::{Counters, Device, ModelDevice, NpuConfig, VecMemory};
use npukit_traces::RunStats;

/// What `npukit run` was asked to do.
#[derive(Debug)]
pub struct RunArgs {
    pub workload: Option<PathBuf>,
    pub config: NpuConfig,
    pub config_name: String,
    pub out: PathBuf,
    pub max_cycles: u64,
    pub trace: bool,
}

/// Cycles simulated between progress updates.
const CHUNK: u64 = 2_000_000;

/// Events kept for trace.json and trace.vcd (the first ones of the run): a
/// ResNet-sized run has hundreds of millions, which would not fit in memory.
const TRACE_EVENTS: usize = 4_000_000;

/// One layer's measured figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: &'static str,
    pub descriptors: usize,
    pub first_cycle: u64,
    pub last_cycle: u64,
    /// Cycles the layer adds to the run (the layers' cycles add up to the run's).
    pub cycles: u64,
    pub macs: u64,
    pub mac_utilisation: f64,
    pub dram_bytes: u64,
    /// "compute" or "memory": which roofline bound is higher for the layer.
    pub bound: &'static str,
}

fn layer_reports(c: &Compiled, times: &[LayerTime], cfg: &NpuConfig) -> Vec<LayerReport> {
    let peak = cfg.peak_macs_per_cycle() as f64;
    c.layers
        .iter()
        .zip(times)
        .enumerate()
        .map(|(i, (l, t))| {
            let cycles = t.cycles.max(1);
            let compute_cycles = l.macs as f64 / peak;
            let memory_cycles = l.dram_bytes as f64 / cfg.dram.bytes_per_cycle as f64;
            LayerReport {
                name: l.name.clone(),
                op: l.op,
                descriptors: c
                    .desc_layer
                    .iter()
                    .filter(|&&d| d == Some(i as u32))
                    .count(),
                first_cycle: t.first,
                last_cycle: t.last,
                cycles,
                macs: l.macs,
                mac_utilisation: l.macs as f64 / (cycles as f64 * peak),
                dram_bytes: l.dram_bytes,
                bound: if compute_cycles >= memory_cycles {
                    "compute"
                } else {
                    "memory"
                },
            }
        })
        .collect()
}

/// The reference check: every output equal, bit for bit.
fn check(c: &Compiled, mem: &VecMemory, reference: &[(String, Tensor)]) -> Result<Vec<String>> {
    let mut lines = vec![];
    for (name, want) in reference {
        let got = npukit_compiler::read_output(c, mem, name)?;
        if got.shape != want.shape {
            bail!(
                "output `{name}`: NPU shape {:?}, reference shape {:?}",
                got.shape,
                want.shape
            );
        }
        let diffs = (0..want.len())
            .filter(|&i| got.get(i) != want.get(i))
            .count();
        if let Some((i, g, w)) = got.first_difference(want) {
            let cols = want.shape.last().copied().unwrap_or(1).max(1);
            bail!(
                "output `{name}` differs from the CPU reference in {diffs} of {} elements; \
                 first at [{}, {}]: NPU {g}, reference {w}",
                want.len(),
                i / cols,
                i % cols
            );
        }
        lines.push(format!(
            "{name} {:?} {} bit-exact ({} elements)",
            want.shape,
            want.dtype(),
            want.len()
        ));
    }
    Ok(lines)
}

fn progress() -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} simulating: {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb
}

/// Runs the program to completion (refilling the ring when the program is
/// longer than it), with a progress spinner on long runs.
fn simulate(
    dev: &mut dyn Device,
    mem: &mut VecMemory,
    c: &Compiled,
    max_cycles: u64,
) -> Result<(u64, Counters)> {
    let mut ring = RingRun::start(dev, mem, c.ring_base, c.program.descs())?;
    let pb = progress();
    loop {
        let left = max_cycles.saturating_sub(ring.cycles());
        match ring.run_for(dev, mem, CHUNK.min(left)) {
            Ok(true) => break,
            Ok(false) => {
                if ring.cycles() >= max_cycles {
                    pb.finish_and_clear();
                    bail!(
                        "no completion after {} cycles (--max-cycles); descriptor {} of {}",
                        ring.cycles(),
                        ring.head(dev),
                        c.program.len()
                    );
                }
                pb.set_message(format!(
                    "{} Mcycles, descriptor {} of {}",
                    ring.cycles() / 1_000_000,
                    ring.head(dev),
                    c.program.len()
                ));
                pb.tick();
            }
            Err(e) => {
                pb.finish_and_clear();
                return Err(e).context("the NPU stopped with an error");
            }
        }
    }
    pb.finish_and_clear();
    Ok((ring.cycles(), run::read_counters(dev)))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn summary(
    w: &Workload,
    args: &RunArgs,
    stats: &RunStats,
    c: &Compiled,
    layers: &[LayerReport],
    checks: &[String],
) -> String {
    let cfg = &args.config;
    let k = &stats.counters;
    let get = |n: &str| k.get(n).copied().unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "npukit run: {} on {} ({}x{} array, {} MHz)",
        w.name, args.config_name, cfg.array.rows, cfg.array.cols, cfg.clock.freq_mhz
    );
    if let Some(d) = &w.description {
        let _ = writeln!(s, "  {d}");
    }
    let _ = writeln!(
        s,
        "  program          {} descriptors, {} layer{}",
        c.program.len(),
        c.layers.len(),
        if c.layers.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "  cycles           {} ({:.2} us at {} MHz)",
        stats.cycles, stats.time_us, cfg.clock.freq_mhz
    );
    let _ = writeln!(
        s,
        "  MACs             {} ({:.1} MAC/cycle of {} peak)",
        stats.macs,
        stats.macs_per_cycle,
        cfg.peak_macs_per_cycle()
    );
    let _ = writeln!(s, "  MAC utilisation  {}", pct(stats.mac_utilisation));
    let _ = writeln!(
        s,
        "  DRAM             {} bytes read, {} bytes written, {} beats",
        stats.dram_read_bytes, stats.dram_write_bytes, stats.mem_beats
    );
    let _ = writeln!(
        s,
        "  busy             load {}, compute {}, store {}",
        pct(stats.busy_fraction.load),
        pct(stats.busy_fraction.compute),
        pct(stats.busy_fraction.store)
    );
    let _ = writeln!(
        s,
        "  stalls (cycles)  load: token {} memory {} | compute: token {} | store: token {} memory {}",
        get("PERF_LOAD_TOKEN_STALL"),
        get("PERF_LOAD_MEM_STALL"),
        get("PERF_COMPUTE_TOKEN_STALL"),
        get("PERF_STORE_TOKEN_STALL"),
        get("PERF_STORE_MEM_STALL")
    );
    if let Some(r) = stats.sim_cycles_per_s {
        let _ = writeln!(
            s,
            "  simulation       {:.3} s wall, {:.1} Mcycles/s",
            stats.wall_s,
            r / 1e6
        );
    }
    if !layers.is_empty() {
        let _ = writeln!(s, "  layers:");
        let _ = writeln!(
            s,
            "    {:<14} {:>10} {:>12} {:>8} {:>12}  bound",
            "name", "cycles", "MACs", "util", "DRAM bytes"
        );
        for l in layers {
            let _ = writeln!(
                s,
                "    {:<14} {:>10} {:>12} {:>8} {:>12}  {}",
                l.name,
                l.cycles,
                l.macs,
                pct(l.mac_utilisation),
                l.dram_bytes,
                l.bound
            );
        }
    }
    let _ = writeln!(
        s,
        "  reference check  PASS: every output equals the CPU reference bit for bit"
    );
    for line in checks {
        let _ = writeln!(s, "    {line}");
    }
    s
}

fn write_file(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let p = dir.join(name);
    let file = std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
    let mut w = BufWriter::new(file);
    f(&mut w).with_context(|| format!("writing {}", p.display()))?;
    std::io::Write::flush(&mut w).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

pub fn run(args: RunArgs) -> Result<()> {
    let cfg = &args.config;
    let w = match &args.workload {
        Some(p) => npukit_compiler::load_workload(p)?,
        None => npukit_compiler::builtin_example(),
    };
    let c = npukit_compiler::compile(&w, cfg)?;
    let reference = npukit_compiler::reference(&w)?;
    if c.mem_bytes > cfg.dram.size_bytes {
        bail!(
            "the workload needs {} bytes of device memory; dram.size_bytes is {}",
            c.mem_bytes,
            cfg.dram.size_bytes
        );
    }
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    npukit_compiler::load_image(&c, &mut mem)?;

    let wall = Instant::now();
    let ring = run::ring_entries(c.program.len(), cfg.cmdproc.max_ring);
    let cap = if args.trace { TRACE_EVENTS } else { 0 };
    let profiler = Profiler::new(&c.desc_layer, c.layers.len(), ring, cap);
    let mut dev = ModelDevice::with_sink(cfg, profiler);
    let (_, counters) = simulate(&mut dev, &mut mem, &c, args.max_cycles)?;
    let wall_s = wall.elapsed().as_secs_f64();
    let profiler = dev.into_sink();
    let events = &profiler.trace;

    let checks = check(&c, &mem, &reference)?;
    let layers = layer_reports(&c, &profiler.layers(), cfg);
    let stats = RunStats::new(
        &w.name,
        w.description.as_deref().unwrap_or(""),
        cfg,
        &counters,
        wall_s,
    );
    let text = summary(&w, &args, &stats, &c, &layers, &checks);
    print!("{text}");

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut written = vec![];
    written.push(write_file(&args.out, "stats.json", |f| {
        let mut v = serde_json::to_value(&stats).map_err(std::io::Error::other)?;
        v["layers"] = serde_json::to_value(&layers).map_err(std::io::Error::other)?;
        serde_json::to_writer_pretty(&mut *f, &v).map_err(std::io::Error::other)?;
        std::io::Write::write_all(f, b"\n")
    })?);
    written.push(write_file(&args.out, "config.toml", |f| {
        std::io::Write::write_all(f, cfg.to_toml().as_bytes())
    })?);
    written.push(write_file(&args.out, "summary.txt", |f| {
        std::io::Write::write_all(f, text.as_bytes())
    })?);
    if args.trace {
        written.push(write_file(&args.out, "trace.json", |f| {
            npukit_traces::write_perfetto(events, cfg, f)
        })?);
        written.push(write_file(&args.out, "trace.vcd", |f| {
            npukit_traces::write_vcd(events, cfg, f)
        })?);
    }
    println!(
        "  wrote            {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.trace && profiler.dropped > 0 {
        println!(
            "  the traces hold the first {TRACE_EVENTS} events; {} later events were not kept",
            profiler.dropped
        );
    }
    if args.trace {
        println!("  open trace.json in https://ui.perfetto.dev, trace.vcd in Surfer or GTKWave");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference check fails, naming the output and the element, when one
    /// byte of the NPU's output differs.
    #[test]
    fn check_catches_a_single_wrong_element() {
        let cfg = NpuConfig::default();
        let w = npukit_compiler::builtin_example();
        let c = npukit_compiler::compile(&w, &cfg).unwrap();
        let reference = npukit_compiler::reference(&w).unwrap();
        let mut mem = VecMemory::new(c.mem_bytes as usize);
        npukit_compiler::load_image(&c, &mut mem).unwrap();
        let mut dev = ModelDevice::new(&cfg);
        simulate(&mut dev, &mut mem, &c, 10_000_000).unwrap();
        assert_eq!(check(&c, &mem, &reference).unwrap().len(), reference.len());

        let out = &c.outputs[0];
        let addr = out.offset(1, 2);
        let b = mem.load(addr, 1).unwrap()[0];
        mem.store(addr, &[b.wrapping_add(1)]).unwrap();
        let e = check(&c, &mem, &reference).unwrap_err().to_string();
        assert!(
            e.contains(&out.name) && e.contains("[1, 2]") && e.contains("1 of"),
            "{e}"
        );
    }
}
