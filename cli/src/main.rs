//! The `npukit` command.

mod compile;
mod cosim;
mod explore;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use npukit_abi::asm;
use npukit_abi::program::Program;
use npukit_sim::NpuConfig;

#[derive(Parser, Debug)]
#[command(
    name = "npukit",
    version,
    about = "NPU co-design kit: a cycle-accurate model, its ABI and tools"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Compile a workload, simulate it on the model, check it bit-exact against
    /// the CPU reference, and write stats, traces and a summary.
    Run {
        /// Workload (JSON); the built-in example network when omitted.
        workload: Option<PathBuf>,
        /// Hardware configuration (TOML); built-in defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output folder for stats.json, trace.json, trace.vcd, summary.txt, config.toml.
        #[arg(long, default_value = "npukit-out")]
        out: PathBuf,
        /// Give up after this many simulated cycles.
        #[arg(long, default_value_t = 10_000_000_000)]
        max_cycles: u64,
        /// Skip writing trace.json and trace.vcd.
        #[arg(long)]
        no_trace: bool,
    },
    /// Run the model and the Verilated RTL in lockstep on a workload (JSON), a
    /// hand-written program (.s), the hand-written corpus or random programs;
    /// stop at the first divergence with a report (exit code 1).
    Cosim {
        /// Workload (JSON) or program (.s assembly); the built-in example
        /// network when omitted.
        input: Option<PathBuf>,
        /// Hardware configuration (TOML): selects the RTL variant; its [dram]
        /// and [clock] parts are used as given.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run this RTL variant by name (e.g. npu_4x4_offbyone) instead of the
        /// one matching the configuration.
        #[arg(long)]
        variant: Option<String>,
        /// Run constrained-random programs instead of INPUT.
        #[arg(long)]
        random: bool,
        /// Run the hand-written corpus (every opcode and error path) instead of INPUT.
        #[arg(long, conflicts_with = "random")]
        corpus: bool,
        /// First random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of random programs.
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Write a VCD of every RTL signal to FILE (one per program with several).
        #[arg(long)]
        vcd: Option<PathBuf>,
        /// Output folder for the divergence report and both sides' Perfetto traces.
        #[arg(long, default_value = "npukit-out/cosim")]
        out: PathBuf,
        /// Device memory for a .s program, in bytes.
        #[arg(long, default_value_t = 16 << 20)]
        mem_bytes: u64,
        /// Give up after this many simulated cycles (per program).
        #[arg(long, default_value_t = 100_000_000)]
        max_cycles: u64,
    },
    /// Sweep configuration fields x workloads in parallel; write results.csv,
    /// results.json, summary.md and report.html with plots (docs/explore.md).
    /// `npukit explore merge DIR...` joins the shards of a sweep.
    Explore(explore::ExploreArgs),
    /// Compile a workload (JSON or ONNX) and write the command stream
    /// (program.bin, program.s), the memory image (memory.bin) and a
    /// per-layer schedule summary (schedule.txt, schedule.json), without simulating.
    Compile {
        workload: PathBuf,
        /// Hardware configuration (TOML); built-in defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "npukit-out/compile")]
        out: PathBuf,
    },
    /// Show a hardware configuration with derived figures.
    Info {
        /// Hardware configuration (TOML); built-in defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the resolved configuration as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Assemble a text command stream into a binary ring image (32 bytes per descriptor).
    Asm {
        input: PathBuf,
        /// Output file; defaults to INPUT with the extension `.bin`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also validate every descriptor against this configuration's limits.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Disassemble a binary ring image to the text format (stdout).
    Disasm { input: PathBuf },
    /// Host one device for many processes on a Unix socket: a driver started
    /// with NPUKIT_SERVER=SOCKET (LD_PRELOAD library or Rust API) uses it.
    /// The device comes from the NPUKIT_* variables (docs/driver.md); runs
    /// until killed. Needs the `serve` feature.
    Serve {
        /// The socket to listen on (replaced if it exists).
        #[arg(default_value = "npukit.sock")]
        socket: PathBuf,
    },
}

#[cfg(not(feature = "serve"))]
fn serve(_socket: &Path) -> Result<()> {
    anyhow::bail!(
        "this npukit was built without the device server; build it with \
         cargo build --release -p npukit --features serve"
    )
}

#[cfg(feature = "serve")]
fn serve(socket: &Path) -> Result<()> {
    let opts = npukit_shim::Options::from_env()?;
    let server = npukit_shim::Server::start(socket, opts)?;
    let (_, mem) = server.shim().memory_range();
    println!(
        "npukit serve: one device ({} MiB of device memory) on {}; clients: NPUKIT_SERVER={}",
        mem >> 20,
        socket.display(),
        socket.display()
    );
    server.wait();
    Ok(())
}

/// Loads a workload: JSON, or ONNX by the `.onnx` extension.
pub fn load_any(path: &Path) -> Result<npukit_compiler::Workload> {
    Ok(npukit_compiler::load_workload(path)?)
}

fn load_config(path: Option<&Path>) -> Result<NpuConfig> {
    match path {
        Some(p) => Ok(NpuConfig::load(p)?),
        None => Ok(NpuConfig::default()),
    }
}

fn info(cfg: &NpuConfig, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(cfg)?);
        return Ok(());
    }
    let mhz = cfg.clock.freq_mhz as f64;
    let peak = cfg.peak_macs_per_cycle();
    let kib = |b: u64| b as f64 / 1024.0;
    println!("npukit NPU configuration");
    println!(
        "  MAC array        {} x {} ({} PEs, {}{})",
        cfg.array.rows,
        cfg.array.cols,
        peak,
        cfg.array.dataflow,
        if cfg.array.weight_double_buffer {
            ", weight double-buffering"
        } else {
            ""
        }
    );
    println!("  clock            {} MHz", cfg.clock.freq_mhz);
    println!(
        "  peak             {} MAC/cycle = {:.1} GMAC/s = {:.1} TOPS (int8, 2 ops/MAC)",
        peak,
        peak as f64 * mhz / 1e3,
        2.0 * peak as f64 * mhz / 1e6
    );
    println!(
        "  scratchpad       {:.0} KiB (int8)",
        kib(cfg.memory.spad_bytes as u64)
    );
    println!(
        "  accumulators     {:.0} KiB ({} int32)",
        kib(cfg.memory.acc_bytes as u64),
        cfg.memory.acc_bytes / 4
    );
    println!(
        "  memory port      {} B/beat, {} B/cycle = {:.1} GB/s, latency {} cycles, {} outstanding",
        cfg.dma.beat_bytes,
        cfg.dram.bytes_per_cycle,
        cfg.dram.bytes_per_cycle as f64 * mhz / 1e3,
        cfg.dram.latency,
        cfg.dram.max_outstanding
    );
    println!(
        "  device memory    {:.0} MiB",
        cfg.dram.size_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "  command proc.    fetch {} ahead, unit queues {} deep, ring up to {} descriptors",
        cfg.cmdproc.fetch_depth, cfg.cmdproc.queue_depth, cfg.cmdproc.max_ring
    );
    let ridge = peak as f64 / cfg.dram.bytes_per_cycle as f64;
    println!("  roofline ridge   {ridge:.1} MAC/byte (below it a layer is memory-bound)");
    let a = &cfg.array;
    let formula = match (a.dataflow, a.weight_double_buffer) {
        (npukit_sim::Dataflow::OutputStationary, _) => "ceil(M / R) * max(R, C) + R + C + 1",
        (_, true) => "2R + C + M - 2, R + C + M - 1 with the weights loaded ahead",
        (_, false) => "2R + C + M - 2",
    };
    println!(
        "  fold latency     {} cycles for a {}-row MATMUL ({formula})",
        npukit_sim::mac::fold_latency(a, a.rows, 0),
        a.rows
    );
    if a.weight_double_buffer {
        println!(
            "                   {} cycles with its weights loaded during the previous fold",
            npukit_sim::mac::fold_latency(a, a.rows, a.rows as u64)
        );
    }
    Ok(())
}

fn assemble(input: &Path, output: Option<&Path>, config: Option<&Path>) -> Result<()> {
    let src =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let prog = asm::assemble(&src).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    if let Some(c) = config {
        let cfg = load_config(Some(c))?;
        if let Err((i, e)) = prog.validate(&cfg.limits()) {
            bail!("{}: descriptor {i}: {e}", input.display());
        }
    }
    let out = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| input.with_extension("bin"));
    std::fs::write(&out, prog.encode()).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{}: {} descriptors -> {}",
        input.display(),
        prog.len(),
        out.display()
    );
    Ok(())
}

fn disassemble(input: &Path) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let prog = Program::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    print!("{}", asm::disassemble(&prog));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Run {
            workload,
            config,
            out,
            max_cycles,
            no_trace,
        } => load_config(config.as_deref()).and_then(|cfg| {
            run::run(run::RunArgs {
                workload: workload.clone(),
                config_name: config
                    .as_ref()
                    .map_or("built-in defaults".to_string(), |p| p.display().to_string()),
                config: cfg,
                out: out.clone(),
                max_cycles: *max_cycles,
                trace: !no_trace,
            })
        }),
        Cmd::Cosim {
            input,
            config,
            variant,
            random,
            corpus,
            seed,
            count,
            vcd,
            out,
            mem_bytes,
            max_cycles,
        } => match load_config(config.as_deref()).map(|cfg| cosim::CosimArgs {
            input: input.clone(),
            config: cfg,
            variant: variant.clone(),
            random: *random,
            corpus: *corpus,
            seed: *seed,
            count: *count,
            vcd: vcd.clone(),
            out: out.clone(),
            mem_bytes: *mem_bytes,
            max_cycles: *max_cycles,
        }) {
            Ok(args) => match cosim::cosim(&args) {
                Ok(()) => Ok(()),
                Err(cosim::CosimFailure::Diverged) => return ExitCode::from(1),
                Err(cosim::CosimFailure::Error(e)) => Err(e),
            },
            Err(e) => Err(e),
        },
        Cmd::Explore(a) => explore::explore(a),
        Cmd::Compile {
            workload,
            config,
            out,
        } => load_config(config.as_deref()).and_then(|cfg| compile::compile(workload, &cfg, out)),
        Cmd::Info { config, json } => load_config(config.as_deref()).and_then(|c| info(&c, *json)),
        Cmd::Asm {
            input,
            output,
            config,
        } => assemble(input, output.as_deref(), config.as_deref()),
        Cmd::Disasm { input } => disassemble(input),
        Cmd::Serve { socket } => serve(socket),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("npukit: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
