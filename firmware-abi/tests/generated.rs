//! The generated files: freshness of the checked-in copies (golden tests with
//! `NPUKIT_BLESS=1`), and the C header checked by a C compiler against the Rust
//! encoder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use npukit_abi::desc::{deps, Act, Dma, Fence, Matmul, Op, LAYOUTS};
use npukit_abi::{gen, Descriptor};

fn workspace_root() -> PathBuf {
    // Cargo also sets the variable when running the test; prefer that, so a test
    // binary reused from another checkout still checks this one.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.join("..")
}

fn blessing() -> bool {
    std::env::var_os("NPUKIT_BLESS").is_some_and(|v| v == "1")
}

/// Compares `path` (relative to the workspace root) with `expected`, or rewrites
/// it when blessing.
fn check_golden(rel: &str, expected: &str) {
    let path = workspace_root().join(rel);
    if blessing() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create folder");
        }
        std::fs::write(&path, expected).expect("write golden file");
        eprintln!("blessed {rel}");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let diff = similar::TextDiff::from_lines(actual.as_str(), expected)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{rel} (checked in)"),
                &format!("{rel} (generated)"),
            )
            .to_string();
        panic!(
            "{rel} is stale: it differs from what firmware-abi/src/gen.rs generates.\n{diff}\n\
             If the change is intended, regenerate it with:\n    \
             NPUKIT_BLESS=1 cargo test -p npukit-abi --test generated\n"
        );
    }
}

#[test]
fn c_header_is_fresh() {
    check_golden(gen::HEADER_PATH, &gen::c_header());
}

#[test]
fn abi_markdown_is_fresh() {
    check_golden(gen::MARKDOWN_PATH, &gen::abi_markdown());
}

/// A fresh, empty folder for one test, under the system temp folder.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("npukit-abi-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

fn have_cc() -> bool {
    let found = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("notice: no `cc` on PATH; skipping the C compile check");
    }
    found
}

/// Writes the generated header and `main.c` into `dir`, runs `cc` with `args`
/// and panics with the compiler's output if it fails.
fn cc(dir: &Path, source: &str, args: &[&str]) {
    std::fs::write(dir.join("npukit_abi.h"), gen::c_header()).expect("write header");
    std::fs::write(dir.join("main.c"), source).expect("write main.c");
    let out = Command::new("cc")
        .current_dir(dir)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-I.",
        ])
        .args(args)
        .arg("main.c")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {args:?} failed in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_header_compiles() {
    if !have_cc() {
        return;
    }
    // One function per struct that sets every member; -Wpadded proves that no
    // struct relies on compiler padding.
    let mut c = String::from("#include \"npukit_abi.h\"\n#include <string.h>\n\n");
    for l in LAYOUTS {
        let op = l.opcode.mnemonic();
        let s = op.to_ascii_lowercase();
        let _ = writeln!(c, "unsigned fill_{s}(union npu_desc *u);");
        let _ = writeln!(c, "unsigned fill_{s}(union npu_desc *u)\n{{");
        let _ = writeln!(c, "\tstruct npu_desc_{s} d;\n\tmemset(&d, 0, sizeof d);");
        let _ = writeln!(c, "\td.word0 = NPU_DESC_WORD0(NPU_OP_{op}, 0, 0);");
        for f in l.fields {
            let _ = writeln!(c, "\td.{} = 1;", f.0);
        }
        let _ = writeln!(c, "\tu->{s} = d;");
        let _ = writeln!(
            c,
            "\treturn (unsigned)sizeof d + (u->words[0] & NPU_DESC_OPCODE_MASK);\n}}\n"
        );
    }
    let dir = scratch_dir("compile");
    cc(&dir, &c, &["-Wpadded", "-c", "-o", "main.o"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every descriptor of the cross-check (a label, the C struct's name), with the C
/// statements that fill the same descriptor through the header's struct members
/// and macros.
fn cross_check_cases() -> Vec<(&'static str, &'static str, Descriptor, String)> {
    let mm = Matmul {
        a: 0x10,
        w: 0x400,
        out: 0x80,
        m: 7,
        k: 16,
        n: 8,
        accumulate: true,
    };
    let act = Act {
        src: 0x100,
        dst: 0x200,
        bias: Some(0x40),
        rows: 3,
        cols: 5,
        multiplier: -1_234_567,
        shift: 31,
        zero_point: -7,
        relu: true,
        qtab: None,
    };
    let act_pc = Act {
        bias: None,
        multiplier: 0,
        shift: 0,
        qtab: Some(0x7F0),
        ..act
    };
    let dma = Dma {
        local: 0x20,
        dram: 0x1_2345_6780,
        rows: 4,
        row_bytes: 64,
        dram_stride: 256,
        local_stride: 64,
        acc: true,
    };
    let fence = Fence {
        seq: 0xDEAD_BEEF,
        writeback: Some(0x8_0000_1000),
        irq: true,
    };
    let wb = fence.writeback.unwrap_or(0);
    vec![
        (
            "matmul",
            "matmul",
            Descriptor::new(Op::Matmul(mm)).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
            format!(
                "d.word0 = NPU_DESC_WORD0(NPU_OP_MATMUL, NPU_DEP_WAIT_PREV | NPU_DEP_SIGNAL_NEXT, \
                 NPU_FLAG_MATMUL_ACCUMULATE);\n\
                 d.a = {}u; d.w = {}u; d.out = {}u; d.m = {}; d.k = {}; d.n = {};",
                mm.a, mm.w, mm.out, mm.m, mm.k, mm.n
            ),
        ),
        (
            "act",
            "act",
            Descriptor::new(Op::Act(act)).with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV),
            format!(
                "d.word0 = NPU_DESC_WORD0(NPU_OP_ACT, NPU_DEP_WAIT_PREV | NPU_DEP_SIGNAL_PREV, \
                 NPU_FLAG_ACT_RELU | NPU_FLAG_ACT_BIAS);\n\
                 d.src = {}u; d.dst = {}u; d.bias = {}u; d.rows = {}; d.cols = {};\n\
                 d.multiplier = {}; d.shift = {}; d.zero_point = {};",
                act.src,
                act.dst,
                act.bias.unwrap_or(0),
                act.rows,
                act.cols,
                act.multiplier,
                act.shift,
                act.zero_point
            ),
        ),
        (
            "act_per_channel",
            "act",
            Descriptor::new(Op::Act(act_pc)).with_deps(deps::WAIT_PREV),
            format!(
                "d.word0 = NPU_DESC_WORD0(NPU_OP_ACT, NPU_DEP_WAIT_PREV, \
                 NPU_FLAG_ACT_RELU | NPU_FLAG_ACT_PER_CHANNEL);\n\
                 d.src = {}u; d.dst = {}u; d.rows = {}; d.cols = {};\n\
                 d.zero_point = {}; d.qtab = {}u;",
                act_pc.src,
                act_pc.dst,
                act_pc.rows,
                act_pc.cols,
                act_pc.zero_point,
                act_pc.qtab.unwrap_or(0)
            ),
        ),
        (
            "load",
            "load",
            Descriptor::new(Op::Load(dma)).with_deps(deps::WAIT_NEXT | deps::SIGNAL_NEXT),
            format!(
                "d.word0 = NPU_DESC_WORD0(NPU_OP_LOAD, NPU_DEP_WAIT_NEXT | NPU_DEP_SIGNAL_NEXT, \
                 NPU_FLAG_LOAD_ACC);\n\
                 d.local = {}u; d.dram_lo = 0x{:08X}u; d.dram_hi = 0x{:08X}u;\n\
                 d.rows = {}; d.row_bytes = {}; d.dram_stride = {}u; d.local_stride = {}u;",
                dma.local,
                dma.dram as u32,
                (dma.dram >> 32) as u32,
                dma.rows,
                dma.row_bytes,
                dma.dram_stride,
                dma.local_stride
            ),
        ),
        (
            "fence",
            "fence",
            Descriptor::new(Op::Fence(fence)),
            format!(
                "d.word0 = NPU_DESC_WORD0(NPU_OP_FENCE, 0, NPU_FLAG_FENCE_IRQ | NPU_FLAG_FENCE_WRITEBACK);\n\
                 d.seq = 0x{:08X}u; d.addr_lo = 0x{:08X}u; d.addr_hi = 0x{:08X}u;",
                fence.seq,
                wb as u32,
                (wb >> 32) as u32
            ),
        ),
    ]
}

fn hex_line(name: &str, bytes: &[u8]) -> String {
    let mut s = name.to_string();
    for b in bytes {
        let _ = write!(s, " {b:02x}");
    }
    s
}

#[test]
fn c_structs_encode_like_rust() {
    if !have_cc() {
        return;
    }
    let cases = cross_check_cases();
    let mut c = String::from(
        "#include \"npukit_abi.h\"\n#include <stdio.h>\n#include <string.h>\n\n\
         static void dump(const char *name, const void *p)\n{\n\
         \tconst unsigned char *b = p;\n\tint i;\n\n\tprintf(\"%s\", name);\n\
         \tfor (i = 0; i < NPU_DESC_BYTES; i++)\n\t\tprintf(\" %02x\", b[i]);\n\
         \tprintf(\"\\n\");\n}\n\nint main(void)\n{\n",
    );
    for (name, st, _, fill) in &cases {
        let _ = writeln!(
            c,
            "\t{{\n\t\tstruct npu_desc_{st} d;\n\n\t\tmemset(&d, 0, sizeof d);"
        );
        for line in fill.lines() {
            let _ = writeln!(c, "\t\t{line}");
        }
        let _ = writeln!(c, "\t\tdump(\"{name}\", &d);\n\t}}");
    }
    c.push_str("\treturn 0;\n}\n");

    let dir = scratch_dir("crosscheck");
    cc(&dir, &c, &["-o", "crosscheck"]);
    let out = Command::new(dir.join("crosscheck"))
        .output()
        .expect("run the C program");
    assert!(
        out.status.success(),
        "C program failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("C output is ASCII");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), cases.len(), "C output:\n{stdout}");
    for ((name, _, d, _), line) in cases.iter().zip(lines) {
        let bytes = d.encode();
        assert_eq!(
            Descriptor::decode(&bytes),
            Ok(*d),
            "{name}: the Rust case must be valid"
        );
        assert_eq!(
            line,
            hex_line(name, &bytes),
            "{name}: C struct bytes (left) vs Descriptor::encode (right)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
