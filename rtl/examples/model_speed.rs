//! The model alone on the `rtl_speed` workload (the built-in example network
//! compiled for a variant), for profilers: `valgrind --tool=callgrind` counts
//! instructions exactly, where wall-clock benches on a shared machine are noisy.
//! `--rtl` runs the Verilated RTL instead (the same run, device construction
//! included, as in the bench), so both sides can be counted the same way.
//!
//! `cargo run --release -p npukit-rtl --example model_speed -- npu_8x8 [RUNS] [--step] [--rtl] [--counters]`

use npukit_rtl::variant;
use npukit_sim::run::run_program;
use npukit_sim::{Device, ModelDevice, NpuConfig, VecMemory};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("npu_8x8", String::as_str);
    let runs: u32 = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let step = args.iter().any(|a| a == "--step");
    let rtl = args.iter().any(|a| a == "--rtl");
    let info = variant::all()
        .find(|v| v.name == name)
        .ok_or_else(|| format!("no variant {name}"))?;
    let cfg = info.apply(&NpuConfig::default());
    let c = npukit_compiler::compile(&npukit_compiler::builtin_example(), &cfg)?;
    let mut cycles = 0;
    let mut counters = Default::default();
    for _ in 0..runs {
        let mut dev: Box<dyn Device> = if rtl {
            Box::new(npukit_rtl::RtlDevice::new(&cfg)?)
        } else {
            let mut m = ModelDevice::new(&cfg);
            m.set_skip(!step);
            Box::new(m)
        };
        let mut mem = VecMemory::new(c.mem_bytes as usize);
        npukit_compiler::load_image(&c, &mut mem)?;
        let out = run_program(
            dev.as_mut(),
            &mut mem,
            c.ring_base,
            c.program.descs(),
            1 << 34,
        )?;
        (cycles, counters) = (out.cycles, out.counters);
    }
    println!("{name}: {cycles} cycles per run, {runs} runs");
    if args.iter().any(|a| a == "--counters") {
        println!("{counters:?}");
    }
    Ok(())
}
