//! Verilates every checked-in RTL variant and compiles the C++ wrapper
//! (`csrc/wrapper.cpp`) once per variant.
//!
//! * The variants come from `rtl/generated/variants.json` (or the file named by
//!   the `NPUKIT_RTL_VARIANTS` environment variable): a JSON array (or an object
//!   with a `variants` array) of `{name, file, rows, cols, spad_bytes,
//!   acc_bytes, beat_bytes, fetch_depth, queue_depth, max_ring, fault}` and,
//!   optionally, `dataflow` (`"weight-stationary"`, the default, or
//!   `"output-stationary"`) and `weight_double_buffer` (default false).
//! * With `verilator` on `PATH` (and `NPUKIT_RTL_NO_VERILATOR` unset), each
//!   variant is Verilated into `OUT_DIR/<name>/` and linked in; the crate is
//!   built with `--cfg npukit_verilator`. A variant that fails to Verilate is
//!   left out with a cargo warning, and `RtlDevice::new` reports the log.
//! * Without Verilator the crate still builds; `RtlDevice::new` then says how
//!   to install it.
//!
//! The generated Rust table is `OUT_DIR/variants.rs`, included by `src/variant.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One variant as described by variants.json.
#[derive(Debug, Clone)]
struct Variant {
    name: String,
    file: PathBuf,
    fields: [(&'static str, u64); 8],
    /// `array.dataflow` (`weight-stationary` when absent).
    dataflow: String,
    /// `array.weight_double_buffer` (false when absent).
    weight_double_buffer: bool,
    fault: Option<String>,
}

const FIELDS: [&str; 8] = [
    "rows",
    "cols",
    "spad_bytes",
    "acc_bytes",
    "beat_bytes",
    "fetch_depth",
    "queue_depth",
    "max_ring",
];

fn main() {
    if let Err(e) = run() {
        // A broken description must not break the workspace build: the crate
        // then has no variants, and RtlDevice::new reports this message.
        println!("cargo:warning=npukit-rtl: {e}");
        write_table(&[], &[], Some(&e));
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
}

fn find_on_path(exe: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}

fn run() -> Result<(), String> {
    println!("cargo:rustc-check-cfg=cfg(npukit_verilator)");
    println!("cargo:rustc-check-cfg=cfg(npukit_no_verilator_feature)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/wrapper.cpp");
    println!("cargo:rerun-if-env-changed=NPUKIT_RTL_VARIANTS");
    println!("cargo:rerun-if-env-changed=NPUKIT_RTL_NO_VERILATOR");
    println!("cargo:rerun-if-env-changed=NPUKIT_RTL_OPT");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let json_path = match std::env::var_os("NPUKIT_RTL_VARIANTS") {
        Some(p) => PathBuf::from(p),
        None => manifest.join("generated").join("variants.json"),
    };
    println!("cargo:rerun-if-changed={}", json_path.display());
    // Also rerun when the folder changes (variants.json appearing later).
    if let Some(dir) = json_path.parent() {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let mut variants = if json_path.is_file() {
        read_variants(&json_path, &manifest)?
    } else {
        Vec::new()
    };
    // The bring-up stub (tests/stub/): the port list with trivial behaviour,
    // to test the wrapper and the harness plumbing without the real RTL.
    let stub = manifest.join("tests").join("stub").join("variants.json");
    println!("cargo:rerun-if-changed={}", stub.display());
    if stub.is_file() && variants.iter().all(|v| v.name != "npu_stub") {
        variants.extend(read_variants(&stub, &manifest)?);
    }
    for v in &variants {
        println!("cargo:rerun-if-changed={}", v.file.display());
    }
    let verilator = find_on_path("verilator");
    match &verilator {
        // Rebuild when Verilator is installed or updated.
        Some(p) => println!("cargo:rerun-if-changed={}", p.display()),
        None => println!("cargo:rerun-if-changed=/usr/bin/verilator"),
    }
    let disabled = std::env::var_os("NPUKIT_RTL_NO_VERILATOR").is_some();
    let feature = std::env::var_os("CARGO_FEATURE_VERILATOR").is_some();
    let (Some(verilator), false, true) = (verilator, disabled, feature) else {
        let why = if !feature {
            "npukit-rtl was built without its `verilator` feature"
        } else if disabled {
            "Verilator use disabled by NPUKIT_RTL_NO_VERILATOR at build time"
        } else {
            "`verilator` was not on PATH when npukit-rtl was built"
        };
        if !feature {
            println!("cargo:rustc-cfg=npukit_no_verilator_feature");
        }
        let failures: Vec<Option<String>> = variants.iter().map(|_| Some(why.into())).collect();
        write_table(&variants, &failures, None);
        return Ok(());
    };
    let include = verilator_include(&verilator)?;
    let mut failures = Vec::new();
    let mut built_any = false;
    for v in &variants {
        match build_variant(&verilator, &include, v) {
            Ok(()) => {
                failures.push(None);
                built_any = true;
            }
            Err(e) => {
                println!(
                    "cargo:warning=npukit-rtl: variant {} left out: {}",
                    v.name,
                    e.lines().next().unwrap_or("")
                );
                failures.push(Some(e));
            }
        }
    }
    if built_any {
        build_runtime(&include)?;
        println!("cargo:rustc-cfg=npukit_verilator");
    }
    write_table(&variants, &failures, None);
    Ok(())
}

fn read_variants(path: &Path, manifest: &Path) -> Result<Vec<Variant>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = match &json {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(o) => match o.get("variants") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            _ => return Err(format!("{}: no `variants` array", path.display())),
        },
        _ => return Err(format!("{}: expected an array of variants", path.display())),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let root = manifest.parent().unwrap_or(manifest);
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let what = |f: &str| format!("{}: variant {i}: field `{f}`", path.display());
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| what("name") + " missing or not a string")?
            .to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(what("name") + " must be letters, digits and `_`");
        }
        let file = v
            .get("file")
            .and_then(|n| n.as_str())
            .ok_or_else(|| what("file") + " missing or not a string")?;
        let file = [dir.join(file), root.join(file), manifest.join(file)]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| what("file") + &format!(" {file}: no such file"))?;
        let mut fields = [("", 0u64); 8];
        for (slot, f) in fields.iter_mut().zip(FIELDS) {
            let val = v
                .get(f)
                .and_then(|n| n.as_u64())
                .ok_or_else(|| what(f) + " missing or not an unsigned integer")?;
            *slot = (f, val);
        }
        let dataflow = match v.get("dataflow") {
            None => "weight-stationary".to_string(),
            Some(serde_json::Value::String(d))
                if d == "weight-stationary" || d == "output-stationary" =>
            {
                d.clone()
            }
            Some(_) => {
                return Err(
                    what("dataflow") + " must be \"weight-stationary\" or \"output-stationary\""
                )
            }
        };
        let weight_double_buffer = match v.get("weight_double_buffer") {
            None => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(what("weight_double_buffer") + " must be true or false"),
        };
        let fault = match v.get("fault") {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => None,
            Some(serde_json::Value::String(s)) if s.is_empty() => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        out.push(Variant {
            name,
            file,
            fields,
            dataflow,
            weight_double_buffer,
            fault,
        });
    }
    Ok(out)
}

fn verilator_include(verilator: &Path) -> Result<PathBuf, String> {
    let out = Command::new(verilator)
        .arg("--getenv")
        .arg("VERILATOR_ROOT")
        .output()
        .map_err(|e| format!("running {} --getenv: {e}", verilator.display()))?;
    let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let inc = PathBuf::from(&root).join("include");
    if inc.join("verilated.h").is_file() {
        return Ok(inc);
    }
    let fallback = PathBuf::from("/usr/share/verilator/include");
    if fallback.join("verilated.h").is_file() {
        return Ok(fallback);
    }
    Err(format!(
        "verilated.h not found under VERILATOR_ROOT={root:?} or /usr/share/verilator"
    ))
}

/// The C++ optimisation level of the Verilated model (`NPUKIT_RTL_OPT`,
/// default `-O2`; Verilator's own default is `-Os`).
fn opt() -> String {
    std::env::var("NPUKIT_RTL_OPT").unwrap_or_else(|_| "-O2".into())
}

fn build_variant(verilator: &Path, include: &Path, v: &Variant) -> Result<(), String> {
    let obj = out_dir().join(&v.name);
    let class = format!("V{}", v.name);
    let jobs = std::env::var("NUM_JOBS").unwrap_or_else(|_| "2".into());
    let opt = opt();
    // Skip Verilator when this variant's inputs are unchanged since the last
    // build in this OUT_DIR (a change to one variant rebuilds only that one).
    let stamp = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(&v.file)
            .map_err(|e| format!("{}: {e}", v.file.display()))?
            .hash(&mut h);
        std::fs::read("csrc/wrapper.cpp")
            .unwrap_or_default()
            .hash(&mut h);
        std::fs::read("build.rs").unwrap_or_default().hash(&mut h);
        opt.hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let stamp_file = obj.join("npukit.stamp");
    let lib = format!("npukit_{}_model", v.name);
    let wrapper = format!("npukit_{}_wrapper", v.name);
    let cached = std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
        && out_dir().join(format!("lib{lib}.a")).is_file()
        && out_dir().join(format!("lib{wrapper}.a")).is_file();
    // A cache shared by every profile of this target dir (check, dev, test):
    // <target>/npukit-rtl-verilated/<name>-<stamp>/.
    let shared = shared_cache().map(|d| d.join(format!("{}-{stamp}", v.name)));
    let from_shared = !cached
        && shared.as_ref().is_some_and(|d| {
            [&lib, &wrapper].iter().all(|l| {
                let f = format!("lib{l}.a");
                std::fs::copy(d.join(&f), out_dir().join(&f)).is_ok()
            })
        });
    if cached || from_shared {
        println!("cargo:rustc-link-search=native={}", out_dir().display());
        println!("cargo:rustc-link-lib=static={wrapper}");
        println!("cargo:rustc-link-lib=static={lib}");
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&obj);
    std::fs::create_dir_all(&obj).map_err(|e| e.to_string())?;
    let out = Command::new(verilator)
        .args(["--cc", "--build", "-j", &jobs, "--trace"])
        .args(["-Wall", "-Wno-DECLFILENAME", "-Wno-WIDTH", "-Wno-fatal"])
        .args(["--prefix", &class, "--top-module", "top", "-Mdir"])
        .arg(&obj)
        .arg("-MAKEFLAGS")
        .arg(format!("OPT_FAST={opt} OPT_SLOW=-O1 OPT_GLOBAL={opt}"))
        .arg(&v.file)
        .output()
        .map_err(|e| format!("running verilator: {e}"))?;
    if !out.status.success() {
        let log = format!(
            "verilator failed on {} ({}):\n{}{}",
            v.file.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let log: String = log.lines().take(40).collect::<Vec<_>>().join("\n");
        return Err(log);
    }
    let lint = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("%Warning"))
        .count();
    if lint > 0 {
        println!(
            "cargo:warning=npukit-rtl: {} has {lint} Verilator lint warning(s) \
             (verilator --lint-only -Wall -Wno-DECLFILENAME -Wno-WIDTH {})",
            v.name,
            v.file.display()
        );
    }
    // rustc links `lib<name>.a`; Verilator writes `V<name>__ALL.a`.
    std::fs::copy(
        obj.join(format!("{class}__ALL.a")),
        out_dir().join(format!("lib{lib}.a")),
    )
    .map_err(|e| format!("copying {class}__ALL.a: {e}"))?;
    cc::Build::new()
        .cpp(true)
        .file("csrc/wrapper.cpp")
        .include(include)
        .include(include.join("vltstd"))
        .include(&obj)
        .define("NPU_PREFIX", format!("npukit_{}", v.name).as_str())
        .define("NPU_CLASS", class.as_str())
        .define("NPU_HEADER", format!("\"{class}.h\"").as_str())
        .defines()
        .flag_if_supported("-faligned-new")
        .opt_level(2)
        .cargo_metadata(false)
        .try_compile(&wrapper)
        .map_err(|e| format!("compiling the wrapper: {e}"))?;
    std::fs::write(&stamp_file, &stamp).map_err(|e| e.to_string())?;
    if let Some(d) = shared {
        if std::fs::create_dir_all(&d).is_ok() {
            for l in [&lib, &wrapper] {
                let f = format!("lib{l}.a");
                let _ = std::fs::copy(out_dir().join(&f), d.join(&f));
            }
        }
    }
    println!("cargo:rustc-link-search=native={}", out_dir().display());
    println!("cargo:rustc-link-lib=static={wrapper}");
    println!("cargo:rustc-link-lib=static={lib}");
    Ok(())
}

/// `<target dir>/npukit-rtl-verilated`, from OUT_DIR
/// (`<target>/<profile>/build/npukit-rtl-<hash>/out`).
fn shared_cache() -> Option<PathBuf> {
    let out = out_dir();
    Some(out.ancestors().nth(4)?.join("npukit-rtl-verilated"))
}

trait Defines {
    fn defines(&mut self) -> &mut Self;
}

impl Defines for cc::Build {
    fn defines(&mut self) -> &mut Self {
        self.define("VM_COVERAGE", "0")
            .define("VM_SC", "0")
            .define("VM_TRACE", "1")
            .define("VM_TRACE_FST", "0")
            .define("VM_TRACE_VCD", "1")
            .warnings(false)
    }
}

/// Verilator's runtime, once for all variants.
fn build_runtime(include: &Path) -> Result<(), String> {
    let lib = out_dir().join("libnpukit_verilated.a");
    if lib.is_file() {
        println!("cargo:rustc-link-lib=static=npukit_verilated");
        println!("cargo:rustc-link-lib=dylib=stdc++");
        println!("cargo:rustc-link-lib=dylib=pthread");
        return Ok(());
    }
    cc::Build::new()
        .cpp(true)
        .files(
            [
                "verilated.cpp",
                "verilated_vcd_c.cpp",
                "verilated_threads.cpp",
            ]
            .map(|f| include.join(f)),
        )
        .include(include)
        .include(include.join("vltstd"))
        .defines()
        .flag_if_supported("-faligned-new")
        .opt_level(2)
        .cargo_metadata(false)
        .try_compile("npukit_verilated")
        .map_err(|e| format!("compiling the Verilator runtime: {e}"))?;
    println!("cargo:rustc-link-lib=static=npukit_verilated");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    println!("cargo:rustc-link-lib=dylib=pthread");
    Ok(())
}

/// Writes `OUT_DIR/variants.rs`: the variant table and the extern declarations.
fn write_table(variants: &[Variant], failures: &[Option<String>], error: Option<&str>) {
    let mut s = String::new();
    let _ = writeln!(s, "// Generated by rtl/build.rs. Do not edit.");
    let _ = writeln!(
        s,
        "/// Why no variant could be described (variants.json unreadable), if so."
    );
    let _ = writeln!(s, "pub(crate) const TABLE_ERROR: Option<&str> = {error:?};");
    for (v, fail) in variants.iter().zip(failures) {
        if fail.is_some() {
            continue;
        }
        let p = format!("npukit_{}", v.name);
        let _ = writeln!(
            s,
            "extern \"C\" {{\n\
             fn {p}_create(vcd: *const std::os::raw::c_char) -> *mut std::ffi::c_void;\n\
             fn {p}_destroy(h: *mut std::ffi::c_void);\n\
             fn {p}_cycle(h: *mut std::ffi::c_void, i: *const crate::ffi::NpuIn, o: *mut crate::ffi::NpuOut);\n\
             fn {p}_mmio_write(h: *mut std::ffi::c_void, addr: u32, data: u32);\n\
             fn {p}_mmio_read(h: *mut std::ffi::c_void, addr: u32) -> u32;\n\
             fn {p}_irq(h: *mut std::ffi::c_void) -> u8;\n\
             fn {p}_flush(h: *mut std::ffi::c_void);\n}}"
        );
    }
    let _ = writeln!(
        s,
        "/// Every variant of variants.json, built or not.\n\
         pub(crate) static VARIANTS: &[crate::variant::VariantEntry] = &["
    );
    for (v, fail) in variants.iter().zip(failures) {
        let p = format!("npukit_{}", v.name);
        let f = |k: usize| v.fields[k].1;
        let api = match fail {
            None => format!(
                "Ok(crate::ffi::Api {{ create: {p}_create, destroy: {p}_destroy, \
                 cycle: {p}_cycle, mmio_write: {p}_mmio_write, mmio_read: {p}_mmio_read, irq: {p}_irq, flush: {p}_flush }})"
            ),
            Some(e) => format!("Err({e:?})"),
        };
        let _ = writeln!(
            s,
            "crate::variant::VariantEntry {{ info: crate::variant::VariantInfo {{ name: {:?}, file: {:?}, \
             rows: {}, cols: {}, spad_bytes: {}, acc_bytes: {}, beat_bytes: {}, fetch_depth: {}, \
             queue_depth: {}, max_ring: {}, dataflow: npukit_sim::Dataflow::{}, \
             weight_double_buffer: {}, fault: {:?} }}, api: {api} }},",
            v.name,
            v.file.display().to_string(),
            f(0),
            f(1),
            f(2),
            f(3),
            f(4),
            f(5),
            f(6),
            f(7),
            if v.dataflow == "output-stationary" {
                "OutputStationary"
            } else {
                "WeightStationary"
            },
            v.weight_double_buffer,
            v.fault
        );
    }
    let _ = writeln!(s, "];");
    let _ = std::fs::write(out_dir().join("variants.rs"), s);
}
