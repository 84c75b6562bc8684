//! `npukit-hwgen [--out DIR] [--root DIR]`: writes the generated Verilog of every
//! variant and `variants.json` into `DIR` (default `<root>/rtl/generated`).

use std::path::PathBuf;
use std::process::ExitCode;

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = Some(args.next().ok_or("--out needs a directory")?.into()),
            "--root" => root = args.next().ok_or("--root needs a directory")?.into(),
            "-h" | "--help" => {
                println!("usage: npukit-hwgen [--out DIR] [--root WORKSPACE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    let out = out.unwrap_or_else(|| root.join("rtl/generated"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let files = npukit_hw::gen::all_files(&root).map_err(|e| e.to_string())?;
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
