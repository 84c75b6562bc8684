//! `include/npukit_accel.h` against `src/uapi.rs`: a C program compiled with
//! `cc -std=c11 -Wall -Wextra -Werror` prints every struct size, field offset,
//! ioctl number and constant; each must equal the Rust value.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use npukit_shim::uapi::{self, *};

macro_rules! layout {
    ($out:ident, $c:literal, $t:ty, [$($f:ident),*]) => {
        $out.push((format!("sizeof {}", $c), size_of::<$t>() as u64));
        $( $out.push((format!("offsetof {}.{}", $c, stringify!($f)), offset_of!($t, $f) as u64)); )*
    };
}

/// Everything the header must agree on, as (key, value).
fn expected() -> Vec<(String, u64)> {
    let mut v = Vec::new();
    layout!(
        v,
        "struct drm_version",
        DrmVersion,
        [
            version_major,
            version_minor,
            version_patchlevel,
            name_len,
            name,
            date_len,
            date,
            desc_len,
            desc
        ]
    );
    layout!(v, "struct drm_gem_close", DrmGemClose, [handle, pad]);
    layout!(v, "struct drm_get_cap", DrmGetCap, [capability, value]);
    layout!(
        v,
        "struct drm_npukit_get_param",
        GetParam,
        [param, index, value]
    );
    layout!(
        v,
        "struct drm_npukit_bo_create",
        BoCreate,
        [size, flags, handle, device_addr, mmap_offset]
    );
    layout!(
        v,
        "struct drm_npukit_bo_info",
        BoInfo,
        [handle, flags, size, device_addr, mmap_offset]
    );
    layout!(
        v,
        "struct drm_npukit_submit",
        Submit,
        [cmd_handle, flags, cmd_offset, cmd_length, bo_handles, bo_count, pad, seq]
    );
    layout!(
        v,
        "struct drm_npukit_wait",
        Wait,
        [seq, timeout_ns, status, error_code, fault_addr, fault_desc, pad]
    );
    layout!(
        v,
        "struct drm_npukit_job_stats",
        JobStats,
        [
            seq,
            start_cycle,
            end_cycle,
            cycles,
            macs,
            dma_read_bytes,
            dma_write_bytes,
            descs
        ]
    );
    for (name, req) in IOCTLS {
        v.push((name.to_string(), *req as u64));
    }
    for (name, p) in param::ALL {
        v.push((format!("DRM_NPUKIT_PARAM_{name}"), *p as u64));
    }
    let consts: &[(&str, u64)] = &[
        ("DRM_COMMAND_BASE", DRM_COMMAND_BASE as u64),
        ("DRM_CAP_PRIME", DRM_CAP_PRIME),
        ("DRM_CAP_SYNCOBJ", DRM_CAP_SYNCOBJ),
        ("DRM_CAP_SYNCOBJ_TIMELINE", DRM_CAP_SYNCOBJ_TIMELINE),
        ("DRM_NPUKIT_PLATFORM_MODEL", platform::MODEL),
        ("DRM_NPUKIT_PLATFORM_RTL", platform::RTL),
        ("DRM_NPUKIT_PLATFORM_LOCKSTEP", platform::LOCKSTEP),
        ("DRM_NPUKIT_BO_READONLY", BO_READONLY as u64),
        ("DRM_NPUKIT_BO_FLAGS", BO_FLAGS as u64),
        ("DRM_NPUKIT_JOB_STATUS_OK", status::OK as u64),
        ("DRM_NPUKIT_JOB_STATUS_ERROR", status::ERROR as u64),
        ("DRM_NPUKIT_JOB_STATUS_ABORTED", status::ABORTED as u64),
        ("DRM_NPUKIT_ERR_HANG", uapi::err::HANG as u64),
        ("DRM_NPUKIT_ERR_RESET", uapi::err::RESET as u64),
        ("DRM_NPUKIT_ERR_DATA", uapi::err::DATA as u64),
        ("DRM_NPUKIT_ERR_LOST", uapi::err::LOST as u64),
    ];
    for (n, val) in consts {
        v.push((n.to_string(), *val));
    }
    v
}

#[allow(clippy::unwrap_used)]
/// The C program: one `printf("key=value")` line per expected entry.
fn c_source(keys: &[(String, u64)]) -> String {
    let mut s = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"npukit_accel.h\"\nint main(void) {\n",
    );
    for (k, _) in keys {
        let expr = if let Some(t) = k.strip_prefix("sizeof ") {
            format!("sizeof({t})")
        } else if let Some(tf) = k.strip_prefix("offsetof ") {
            let (t, f) = tf.split_once('.').unwrap();
            format!("offsetof({t}, {f})")
        } else {
            k.clone()
        };
        s += &format!("\tprintf(\"%s=%llu\\n\", \"{k}\", (unsigned long long)({expr}));\n");
    }
    s += "\treturn 0;\n}\n";
    s
}

#[test]
fn header_matches_rust_definitions() {
    let keys = expected();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uapi_header");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("check.c");
    let exe = dir.join("check");
    std::fs::write(&src, c_source(&keys)).unwrap();
    let inc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-I")
        .arg(&inc)
        .output()
        .expect("cc must be installed");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let got: BTreeMap<String, u64> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let mut bad = Vec::new();
    for (k, want) in &keys {
        let have = got[k];
        if have != *want {
            bad.push(format!("{k}: header {have:#x}, Rust {want:#x}"));
        }
    }
    assert!(
        bad.is_empty(),
        "header and Rust disagree:\n{}",
        bad.join("\n")
    );
}

#[test]
fn header_is_idempotent_and_pedantic_clean() {
    // The header must also compile after <drm/drm.h>-style guards and with -pedantic.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uapi_header_pedantic");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("p.c");
    std::fs::write(
        &src,
        "#include \"npukit_accel.h\"\n#include \"npukit_accel.h\"\nint main(void) { struct drm_npukit_wait w = {0}; return (int)w.pad; }\n",
    )
    .unwrap();
    let inc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Command::new("cc")
        .args([
            "-std=c11",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
            "-o",
        ])
        .arg(dir.join("p.o"))
        .arg(&src)
        .arg("-I")
        .arg(&inc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
