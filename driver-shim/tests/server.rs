//! The device server (`npukit serve`, [`npukit_shim::Server`]): the C
//! examples run unmodified on one device shared by several processes
//! (`NPUKIT_SERVER`), ioctls through the server answer exactly as the
//! in-process device does, a client that dies is cleaned up, and a client
//! cannot map or reach another context's memory.
#![allow(clippy::unwrap_used)]

mod common;
use common::c_examples::*;
use common::*;

use std::path::PathBuf;

use npukit_shim::uapi::*;
use npukit_shim::{Accel, Client, Errno, Ioctl, Options, Server, Shim, Usage};

fn socket(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}.sock", std::process::id()))
}

fn opts() -> Options {
    Options {
        mem_bytes: 16 << 20,
        watchdog_cycles: 20_000,
        ..Options::default()
    }
}

fn idle(u: &Usage) -> bool {
    (u.contexts, u.objects, u.mappings, u.jobs_pending) == (0, 0, 0, 0)
        && u.free_bytes == u.total_bytes
}

/// Waits (a few seconds at most) until the served device holds nothing.
fn settles(s: &Server) -> Usage {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let u = s.shim().usage();
        if idle(&u) && s.sessions() == 0 || std::time::Instant::now() > end {
            return u;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_c_examples_share_one_device_through_the_server() {
    let path = socket("c-examples");
    let server = Server::start(&path, opts()).unwrap();
    let sock = path.to_str().unwrap();
    let mut expected_jobs = 0;
    for (name, want, jobs) in [("gemm", "ok", 0), ("mt", "bit-exact", 36), ("mp", "ok", 0)] {
        let exe = build_example(name);
        let out = run_preloaded(&exe, &[("NPUKIT_SERVER", sock)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} on the server failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(want), "{name}: {stdout}");
        expected_jobs += jobs;
    }
    assert!(server.shim().jobs_accepted() >= expected_jobs);
    let u = settles(&server);
    assert!(idle(&u), "left behind: {u:?}");
    assert!(server.connections() >= 3);
    // discover.c scripts "2:hang" through debugfs: device-wide job numbers
    // count every client's jobs, so it gets a fresh server.
    let path = socket("discover");
    let server = Server::start(&path, opts()).unwrap();
    let out = run_preloaded(
        &build_example("discover"),
        &[("NPUKIT_SERVER", path.to_str().unwrap())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "discover: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok"), "{stdout}");
    // debugfs status came from the server's device.
    assert!(server.shim().jobs_accepted() >= 2);
}

#[test]
fn processes_run_at_once_on_the_one_device() {
    // Three copies of the multi-process example (each forking three
    // children) at the same time: 12 processes on one device and ring.
    let path = socket("many");
    let server = Server::start(&path, opts()).unwrap();
    let exe = build_example("mp");
    let kids: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(&exe)
                .env("LD_PRELOAD", preload_lib())
                .env("NPUKIT_SERVER", &path)
                .output()
        })
        .collect();
    for k in kids {
        let out = k.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let u = settles(&server);
    assert!(idle(&u), "{u:?}");
    assert!(u.jobs_accepted >= 3 * 3, "{u:?}");
}

/// A deterministic random ioctl sequence (requests, struct contents, the
/// BO handle list, deadlines either past or far away), run on `f`; the
/// result and output bytes of every call.
fn ioctl_script(f: &dyn Ioctl, seed: u64) -> Vec<(u32, Result<(), Errno>, Vec<u64>)> {
    let mut rng = npukit_shim::XorShift::new(seed);
    let mut rnd = move || rng.next_u64();
    let reqs = KNOWN_IOCTLS.map(|k| k.0);
    let mut handles = [0u32; 8];
    let mut strings = [0u8; 96];
    let mut log = Vec::new();
    for _ in 0..3000 {
        let r = rnd();
        let req = if r % 17 == 0 {
            rnd() as u32
        } else {
            reqs[(r % 9) as usize]
        };
        let mut arg = [0u64; 8];
        for w in arg.iter_mut() {
            *w = match rnd() % 6 {
                0 => 0,
                1 => rnd() % 8,
                2 => 32 * (rnd() % 8),
                3 => 4096 * (rnd() % 4),
                4 => (1 << 32) + 4096 * (rnd() % 512),
                _ => rnd() % 64,
            };
        }
        for h in handles.iter_mut() {
            *h = (rnd() % 12) as u32;
        }
        match req {
            DRM_IOCTL_VERSION => {
                for (k, off) in [(3, 0), (5, 32), (7, 64)] {
                    arg[k] = match rnd() % 3 {
                        0 => 0,
                        1 => 0xDEAD_0000_0000,
                        _ => strings.as_mut_ptr() as u64 + off,
                    };
                    arg[k - 1] %= 40;
                }
            }
            DRM_IOCTL_NPUKIT_SUBMIT => {
                arg[0] = 1 + rnd() % 8;
                arg[1] = 32 * (rnd() % 2);
                arg[2] = 32 * (1 + rnd() % 4);
                arg[3] = if rnd() % 5 == 0 {
                    0xDEAD_0000_0000
                } else {
                    handles.as_ptr() as u64
                };
                arg[4] = rnd() % 9;
            }
            DRM_IOCTL_NPUKIT_WAIT => {
                arg[0] = 1 + rnd() % 8;
                arg[1] = if rnd() % 2 == 0 { 1 } else { i64::MAX as u64 };
                arg[4] = 0;
            }
            DRM_IOCTL_NPUKIT_JOB_STATS => arg[0] = rnd() % 10,
            _ => {}
        }
        let argp = if rnd() % 50 == 0 {
            0
        } else {
            arg.as_mut_ptr() as u64
        };
        let res = f.ioctl(req, argp);
        let mut out = arg.to_vec();
        if req == DRM_IOCTL_VERSION {
            // The pointers differ between runs; the strings must not.
            out = vec![arg[0], arg[1], arg[2], arg[4], arg[6]];
            out.extend(strings.iter().map(|&b| b as u64));
            strings = [0; 96];
        }
        if req == DRM_IOCTL_NPUKIT_SUBMIT {
            out[3] = 0;
        }
        log.push((req, res, out));
    }
    log
}

#[test]
fn ioctls_through_the_server_answer_as_the_in_process_device() {
    let local = Shim::new(opts()).unwrap();
    let lf = local.open().unwrap();
    let path = socket("ioctls");
    let server = Server::start(&path, opts()).unwrap();
    let client = Client::connect(&path).unwrap();
    let rf = client.open().unwrap();
    let a = ioctl_script(&lf, 0x1234_5678_9ABC_DEF1);
    let b = ioctl_script(&rf, 0x1234_5678_9ABC_DEF1);
    let ok = a.iter().filter(|x| x.1.is_ok()).count();
    assert!(ok > 500, "the script does real work: {ok} calls succeeded");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            x, y,
            "call {i} differs between the in-process device and the server"
        );
    }
    drop(rf);
    drop(client);
    assert!(idle(&settles(&server)));
}

#[test]
fn a_client_that_dies_is_cleaned_up() {
    let path = socket("dies");
    let server = Server::start(&path, opts()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_npukit-campaign"))
        .args([
            "child-soak",
            "--seconds",
            "60",
            "--registry",
            "/nonexistent",
        ])
        .env("NPUKIT_SERVER", &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it open files, map BOs and run jobs, then kill it mid-flight.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.shim().usage().objects < 5 && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        server.shim().usage().contexts > 0,
        "the child opened the device"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let u = settles(&server);
    assert!(
        idle(&u),
        "the dead client's files, BOs and mappings are gone: {u:?}"
    );
    // And the device works for the next client.
    let client = Client::connect(&path).unwrap();
    let f = client.open().unwrap();
    let bo = f.create_bo(4096, 0).unwrap();
    let p = f.mmap(bo.mmap_offset, 4096).unwrap();
    // SAFETY: p maps the 4 KiB BO.
    unsafe { p.write(7) };
    client.munmap(p, 4096).unwrap();
}

#[test]
fn a_client_maps_only_its_own_bos() {
    let path = socket("maps");
    let _server = Server::start(&path, opts()).unwrap();
    let (c1, c2) = (
        Client::connect(&path).unwrap(),
        Client::connect(&path).unwrap(),
    );
    let (f1, f2) = (c1.open().unwrap(), c2.open().unwrap());
    let b1 = f1.create_bo(8192, 0).unwrap();
    let p1 = f1.mmap(b1.mmap_offset, 8192).unwrap();
    let secret = b"not for the other context";
    // SAFETY: p1 maps the 8 KiB BO.
    unsafe { std::ptr::copy_nonoverlapping(secret.as_ptr(), p1, secret.len()) };
    // The other client cannot map it (EINVAL: not one of its BOs) ...
    assert_eq!(f2.mmap(b1.mmap_offset, 4096), Err(Errno::EINVAL));
    // ... nor munmap the first client's mapping ...
    let base2 = c2.memory_range().0;
    let same = (base2 + (p1 as usize - c1.memory_range().0)) as *mut u8;
    assert_eq!(c2.munmap(same, 4096), Err(Errno::EINVAL));
    // ... nor read it through the device: a job of its own that copies from
    // the first client's BO faults at that address and stores nothing. (The
    // same job copies from one of its own BOs.)
    let own = f2.create_bo(4096, 0).unwrap();
    let po = f2.mmap(own.mmap_offset, 4096).unwrap();
    // SAFETY: po maps the 4 KiB BO.
    unsafe { std::ptr::copy_nonoverlapping(b"mine".as_ptr(), po, 4) };
    let dst = f2.create_bo(4096, 0).unwrap();
    let pd = f2.mmap(dst.mmap_offset, 4096).unwrap();
    let cmd = f2.create_bo(4096, 0).unwrap();
    let pc = f2.mmap(cmd.mmap_offset, 4096).unwrap();
    let copy = |from: u64| {
        let mut p = npukit_abi::program::Program::default();
        p.load_2d(0, from, 1, 32, 32)
            .deps(npukit_abi::desc::deps::SIGNAL_NEXT);
        p.max(npukit_abi::desc::Max {
            a: 0,
            b: 0,
            dst: 0,
            len: 32,
        })
        .deps(npukit_abi::desc::deps::WAIT_PREV | npukit_abi::desc::deps::SIGNAL_NEXT);
        p.store_2d(0, dst.device_addr, 1, 32, 32)
            .deps(npukit_abi::desc::deps::WAIT_PREV);
        let prog = p.encode();
        // SAFETY: pc maps the 4 KiB command BO; pd the destination.
        unsafe {
            std::ptr::copy_nonoverlapping(prog.as_ptr(), pc, prog.len());
            std::ptr::write_bytes(pd, 0, 4096);
        }
        let seq = f2
            .submit_job(cmd.handle, 0, prog.len() as u64, &[own.handle, dst.handle])
            .unwrap();
        let w = f2.wait_job(seq, 30 * SEC).unwrap();
        // SAFETY: pd maps the 4 KiB destination BO.
        (w, unsafe { std::slice::from_raw_parts(pd, 32) }.to_vec())
    };
    let (w, got) = copy(own.device_addr);
    assert_eq!(w.status, status::OK, "{w:?}");
    assert_eq!(&got[..4], b"mine");
    let (w, got) = copy(b1.device_addr);
    assert_eq!(w.status, status::ERROR);
    assert_eq!(w.error_code, npukit_abi::ErrorCode::XlatFault as u32);
    assert_eq!(w.fault_addr, b1.device_addr);
    assert!(got.iter().all(|&b| b == 0), "nothing was stored");
    // Pages of the second client's reservation that are not its BOs are
    // not mapped at all (the first client's BO is not there).
    let probe = (base2 + b1.device_addr as usize) as *const u8;
    assert!(
        !mapped(probe),
        "another context's BO is not in this process"
    );
    // The first client's own mapping still holds the secret.
    // SAFETY: p1 maps the 8 KiB BO.
    assert_eq!(
        unsafe { std::slice::from_raw_parts(p1, secret.len()) },
        secret
    );
    let _ = Accel::Remote(c1.clone()).munmap(p1, 8192);
}

/// Is the page at `p` readable in this process? (mincore fails with
/// ENOMEM for unmapped pages; a PROT_NONE page is tested by a read through
/// process_vm_readv, which fails with EFAULT instead of faulting.)
fn mapped(p: *const u8) -> bool {
    let mut b = [0u8; 1];
    npukit_shim::user::copy_from_user(p as u64, &mut b).is_ok()
}
