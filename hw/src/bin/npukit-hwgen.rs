//! `npukit-hwgen [--out DIR] [--root DIR]`: writes the generated Verilog of every
//! checked-in variant and `variants.json` into `DIR` (default
//! `<root>/rtl/generated`).
//!
//! `npukit-hwgen --config FILE --name NAME [--inject FAULT] [--out DIR]` writes
//! one variant for any configuration instead (with `variants.json` listing only
//! it), e.g. for co-simulating a beat width no checked-in variant has.
//! `--inject dispatch-late` adds the deliberate off-by-one of
//! `npu_4x4_offbyone.v`.

use std::path::PathBuf;
use std::process::ExitCode;

use npukit_hw::gen::{self, Inject, Params, Variant};
use npukit_sim::NpuConfig;

const USAGE: &str = "usage: npukit-hwgen [--out DIR] [--root WORKSPACE]\n       npukit-hwgen --config FILE --name NAME [--inject dispatch-late] [--out DIR]";

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut name: Option<String> = None;
    let mut inject: Option<Inject> = None;
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--out" => out = Some(value("a directory")?.into()),
            "--root" => root = value("a directory")?.into(),
            "--config" => config = Some(value("a TOML file")?.into()),
            "--name" => name = Some(value("a variant name")?),
            "--inject" => {
                let v = value("a fault name")?;
                inject = Some(Inject::from_name(&v).ok_or_else(|| {
                    let known: Vec<&str> = Inject::ALL.iter().map(|i| i.name()).collect();
                    format!("unknown fault `{v}` (known: {})", known.join(", "))
                })?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let out = out.unwrap_or_else(|| root.join("rtl/generated"));
    let files = match (config, name) {
        (None, None) if inject.is_none() => gen::all_files(&root).map_err(|e| e.to_string())?,
        (Some(c), Some(n)) => {
            let cfg = NpuConfig::load(&c).map_err(|e| format!("{}: {e}", c.display()))?;
            let v = Variant {
                name: n,
                params: Params {
                    inject,
                    ..Params::from_config(&cfg)
                },
            };
            let text = gen::verilog(&v.params).map_err(|e| e.to_string())?;
            vec![
                (v.file(), text),
                ("variants.json".to_string(), gen::variants_json(&[v])),
            ]
        }
        _ => {
            return Err(format!(
                "--config, --name and --inject go together\n{USAGE}"
            ))
        }
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, text) in files {
        let path = out.join(&name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("npukit-hwgen: {e}");
            ExitCode::FAILURE
        }
    }
}
