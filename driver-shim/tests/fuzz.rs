//! Random ioctls through the raw path never crash the shim and fail only with
//! documented errnos; afterwards every file still runs a job bit-exact.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_shim::uapi::*;
use npukit_shim::{Errno, XorShift as Rng};

/// A struct field: small values most of the time, so that validation goes deep.
fn field(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0 => 0,
        1 => rng.below(8),
        2 => rng.below(8) * 32,
        3 => rng.below(1 << 16),
        4 => rng.next_u64(),
        5 => 4096 * rng.below(4),
        6 => (1 << 32) + 4096 * rng.below(64),
        _ => rng.below(64),
    }
}

#[test]
fn random_ioctls_fail_cleanly_and_the_shim_keeps_working() {
    let s = shim_with(|o| {
        o.max_jobs = 8;
        o.watchdog_cycles = 100_000;
        o.mem_bytes = 16 << 20;
    });
    let files: Vec<_> = (0..3).map(|_| s.open().unwrap()).collect();
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut scratch = [0u64; 64];
    for (i, w) in scratch.iter_mut().enumerate() {
        // As __u32 handles: 1, 2, 3, ... (some exist, some do not).
        *w = (2 * i as u64 + 1) | (2 * i as u64 + 2) << 32;
    }
    let scratch_ptr = scratch.as_mut_ptr() as u64;
    let allowed = [
        Errno::EINVAL,
        Errno::ENOENT,
        Errno::EFAULT,
        Errno::ENOMEM,
        Errno::EBUSY,
        Errno::ETIMEDOUT,
        Errno::ENOTTY,
    ];
    let reqs = KNOWN_IOCTLS.map(|k| k.0);
    let mut ok = 0;
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..20_000 {
        let f = &files[rng.below(3) as usize];
        let req = if rng.below(16) == 0 {
            rng.next_u64() as u32
        } else {
            reqs[rng.below(reqs.len() as u64) as usize]
        };
        let mut arg = [0u64; 8];
        for w in arg.iter_mut() {
            *w = field(&mut rng);
        }
        // Pointer fields get harmless values only: NULL, unmapped, or scratch.
        let ptr = |r: &mut Rng| match r.below(3) {
            0 => 0,
            1 => 0xDEAD_0000_0000,
            _ => scratch_ptr,
        };
        match req {
            DRM_IOCTL_VERSION => {
                for k in [3, 5, 7] {
                    arg[k] = ptr(&mut rng);
                }
                for k in [2, 4, 6] {
                    arg[k] %= 64;
                }
            }
            DRM_IOCTL_NPUKIT_SUBMIT => {
                if rng.below(4) != 0 {
                    // Mostly well-formed: small handle, zero flags and pad,
                    // aligned offset and length, handles from the scratch list.
                    arg[0] = 1 + rng.below(8);
                    arg[1] = 32 * rng.below(4);
                    arg[2] = 32 * (1 + rng.below(8));
                    arg[4] = rng.below(4);
                }
                arg[3] = ptr(&mut rng);
                arg[4] &= 0xFFFF_FFFF_0000_000F; // bo_count < 16
            }
            DRM_IOCTL_NPUKIT_WAIT => {
                if rng.below(4) != 0 {
                    arg[0] = 1 + rng.below(8);
                    arg[4] = 0;
                }
                // An absolute deadline close to now, so waits stay short.
                arg[1] = npukit_shim::api::monotonic_ns().wrapping_add(rng.below(2_000_000) as i64)
                    as u64;
            }
            DRM_IOCTL_NPUKIT_JOB_STATS => arg[0] = rng.below(10),
            _ => {}
        }
        let argp = match rng.below(40) {
            0 => 0,
            _ => arg.as_mut_ptr() as u64,
        };
        let r = f.ioctl(req, argp);
        *seen
            .entry((ioctl_name(req).unwrap_or("?"), r.err().map(|e| e.name())))
            .or_insert(0) += 1;
        match r {
            Ok(()) => ok += 1,
            Err(e) => assert!(allowed.contains(&e), "ioctl {req:#x} #{i}: {e}"),
        }
    }
    assert!(ok > 1000, "some random calls succeed: {ok}");
    for name in [
        "DRM_IOCTL_NPUKIT_SUBMIT",
        "DRM_IOCTL_NPUKIT_WAIT",
        "DRM_IOCTL_NPUKIT_BO_CREATE",
        "DRM_IOCTL_NPUKIT_JOB_STATS",
    ] {
        let n = seen.get(&(name, None)).copied().unwrap_or(0);
        assert!(n >= 10, "{name} succeeded {n} times: {seen:?}");
    }
    s.drain(1_000_000);
    for f in &files {
        Gemm::new(f, 8, 16, 16, 42).run_and_check(f);
    }
}
