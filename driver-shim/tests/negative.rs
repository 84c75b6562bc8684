//! Every bad input returns its documented errno through the raw ioctl path
//! (request number + user pointer, as the syscall), and the shim keeps working
//! afterwards: each test ends by running a GEMM bit-exact in the same file.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_shim::uapi::*;
use npukit_shim::{Errno, File};

fn ioctl<T>(f: &File, req: u32, arg: &mut T) -> Result<(), Errno> {
    f.ioctl(req, arg as *mut T as u64)
}

fn still_works(f: &File) {
    Gemm::new(f, 8, 16, 16, 99).run_and_check(f);
}

#[test]
fn handle_zero_and_unknown_handles() {
    let s = shim();
    let f = s.open().unwrap();
    let mut i = BoInfo::default();
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_BO_INFO, &mut i),
        Err(Errno::ENOENT)
    );
    i.handle = 12345;
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_BO_INFO, &mut i),
        Err(Errno::ENOENT)
    );
    let mut sub = Submit {
        cmd_handle: 0,
        cmd_length: 32,
        ..Submit::default()
    };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_SUBMIT, &mut sub),
        Err(Errno::ENOENT)
    );
    // A good command BO but an unknown handle in the BO list.
    let cmd = f.create_bo(4096, 0).unwrap();
    let list = [cmd.handle, 777];
    sub.cmd_handle = cmd.handle;
    sub.bo_handles = list.as_ptr() as u64;
    sub.bo_count = 2;
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_SUBMIT, &mut sub),
        Err(Errno::ENOENT)
    );
    // GEM_CLOSE of an unknown handle is EINVAL, as in the DRM core.
    let mut c = DrmGemClose { handle: 0, pad: 0 };
    assert_eq!(ioctl(&f, DRM_IOCTL_GEM_CLOSE, &mut c), Err(Errno::EINVAL));
    // WAIT / JOB_STATS on a sequence number never issued.
    let mut w = Wait {
        seq: 42,
        ..Wait::default()
    };
    assert_eq!(ioctl(&f, DRM_IOCTL_NPUKIT_WAIT, &mut w), Err(Errno::ENOENT));
    let mut js = JobStats {
        seq: 0,
        ..JobStats::default()
    };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_JOB_STATS, &mut js),
        Err(Errno::ENOENT)
    );
    still_works(&f);
}

#[test]
fn another_contexts_handles_and_jobs_are_not_visible() {
    let s = shim();
    let a = s.open().unwrap();
    let b = s.open().unwrap();
    let ga = Gemm::new(&a, 8, 16, 16, 1);
    let seq = ga.submit(&a);
    // b's handle namespace is its own: a's handles do not exist there...
    let mut i = BoInfo {
        handle: ga.a.handle,
        ..BoInfo::default()
    };
    assert_eq!(
        ioctl(&b, DRM_IOCTL_NPUKIT_BO_INFO, &mut i),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        b.submit_job(ga.cmd.handle, 0, ga.len, &[]),
        Err(Errno::ENOENT)
    );
    // ...and neither are a's jobs.
    let mut w = Wait {
        seq,
        timeout_ns: i64::MAX,
        ..Wait::default()
    };
    assert_eq!(ioctl(&b, DRM_IOCTL_NPUKIT_WAIT, &mut w), Err(Errno::ENOENT));
    // b cannot close a's BO.
    let mut c = DrmGemClose {
        handle: ga.out.handle,
        pad: 0,
    };
    assert_eq!(ioctl(&b, DRM_IOCTL_GEM_CLOSE, &mut c), Err(Errno::EINVAL));
    // b cannot map a's BO.
    assert_eq!(b.mmap(ga.out.mmap_offset, 4096).err(), Some(Errno::EINVAL));
    assert_eq!(a.wait_job(seq, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(ga.result(&a), ga.expect);
    still_works(&a);
    still_works(&b);
}

#[test]
fn null_and_bad_user_pointers_are_efault() {
    let s = shim();
    let f = s.open().unwrap();
    for req in [
        DRM_IOCTL_NPUKIT_GET_PARAM,
        DRM_IOCTL_NPUKIT_BO_CREATE,
        DRM_IOCTL_NPUKIT_SUBMIT,
        DRM_IOCTL_NPUKIT_WAIT,
        DRM_IOCTL_VERSION,
        DRM_IOCTL_GEM_CLOSE,
    ] {
        assert_eq!(f.ioctl(req, 0), Err(Errno::EFAULT), "{:?}", ioctl_name(req));
        assert_eq!(f.ioctl(req, 16), Err(Errno::EFAULT));
    }
    // SUBMIT whose BO list pointer is NULL.
    let g = Gemm::new(&f, 8, 16, 16, 2);
    let mut sub = Submit {
        cmd_handle: g.cmd.handle,
        cmd_length: g.len,
        bo_handles: 0,
        bo_count: 3,
        ..Submit::default()
    };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_SUBMIT, &mut sub),
        Err(Errno::EFAULT)
    );
    // VERSION with a length but no buffer.
    let mut v = DrmVersion {
        name_len: 8,
        ..DrmVersion::default()
    };
    assert_eq!(ioctl(&f, DRM_IOCTL_VERSION, &mut v), Err(Errno::EFAULT));
    still_works(&f);
}

#[test]
fn version_reports_npukit_and_sizes_buffers() {
    let s = shim();
    let f = s.open().unwrap();
    let mut v = DrmVersion::default();
    ioctl(&f, DRM_IOCTL_VERSION, &mut v).unwrap();
    assert_eq!(v.name_len, 6);
    let mut name = [0u8; 6];
    let mut date = [0u8; 3];
    v.name = name.as_mut_ptr() as u64;
    v.date = date.as_mut_ptr() as u64;
    v.date_len = 3;
    // desc_len still holds the full length from the first call, with no buffer.
    assert_eq!(ioctl(&f, DRM_IOCTL_VERSION, &mut v), Err(Errno::EFAULT));
    v.desc_len = 0;
    v.date_len = 3;
    ioctl(&f, DRM_IOCTL_VERSION, &mut v).unwrap();
    assert_eq!(&name, b"npukit");
    assert_eq!(v.date_len, 8, "full length returned");
    assert_eq!(&date, b"202");
    assert_eq!(v.version_major, 1);
}

#[test]
fn misaligned_and_out_of_range_command_ranges_are_einval() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 3);
    let h = g.handles();
    for (off, len) in [
        (16, 32),            // misaligned offset
        (0, 48),             // length not a multiple of 32
        (0, 0),              // empty
        (0, 8192),           // beyond the 4 KiB command BO
        (4096, 32),          // starts at the end
        (u64::MAX - 31, 32), // offset + length overflows
    ] {
        assert_eq!(
            f.submit_job(g.cmd.handle, off, len, &h),
            Err(Errno::EINVAL),
            "offset {off} length {len}"
        );
    }
    still_works(&f);
}

#[test]
fn oversized_and_zero_bo_sizes_and_bad_flags() {
    let s = shim();
    let f = s.open().unwrap();
    let mem = f.param(param::MEM_BYTES).unwrap();
    assert_eq!(f.create_bo(0, 0).err(), Some(Errno::EINVAL));
    assert_eq!(f.create_bo(mem + 1, 0).err(), Some(Errno::EINVAL));
    assert_eq!(f.create_bo(u64::MAX, 0).err(), Some(Errno::EINVAL));
    assert_eq!(f.create_bo(4096, 0x80).err(), Some(Errno::EINVAL));
    // Fits in principle, not after the translation tables and other BOs: ENOMEM.
    let big = f.create_bo(mem / 2 + 4096, 0).unwrap();
    assert_eq!(f.create_bo(mem / 2 + 4096, 0).err(), Some(Errno::ENOMEM));
    f.gem_close(&DrmGemClose {
        handle: big.handle,
        pad: 0,
    })
    .unwrap();
    // Too many BOs in one SUBMIT.
    let cmd = f.create_bo(4096, 0).unwrap();
    let list = vec![cmd.handle; 5000];
    assert_eq!(f.submit_job(cmd.handle, 0, 32, &list), Err(Errno::EINVAL));
    still_works(&f);
}

#[test]
fn out_of_range_mmap_is_einval() {
    let s = shim();
    let f = s.open().unwrap();
    let b = f.create_bo(8192, 0).unwrap();
    assert!(f.mmap(b.mmap_offset, 8192).is_ok());
    assert!(f.mmap(b.mmap_offset + 4096, 4096).is_ok());
    assert_eq!(f.mmap(b.mmap_offset, 8193).err(), Some(Errno::EINVAL));
    assert_eq!(
        f.mmap(b.mmap_offset + 4096, 8192).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(f.mmap(b.mmap_offset + 1, 4096).err(), Some(Errno::EINVAL));
    assert_eq!(f.mmap(b.mmap_offset, 0).err(), Some(Errno::EINVAL));
    assert_eq!(f.mmap(0, 4096).err(), Some(Errno::EINVAL));
    assert_eq!(f.mmap(!4095, 4096).err(), Some(Errno::EINVAL));
    // Writing through a mapping lands in the BO.
    let p = f.mmap(b.mmap_offset, 4096).unwrap();
    unsafe { p.add(5).write(0xAB) };
    let mut x = [0u8; 1];
    f.bo_read(b.handle, 5, &mut x).unwrap();
    assert_eq!(x[0], 0xAB);
    still_works(&f);
}

#[test]
fn double_close_is_einval_and_closed_handles_vanish() {
    let s = shim();
    let f = s.open().unwrap();
    let b = f.create_bo(4096, 0).unwrap();
    let mut c = DrmGemClose {
        handle: b.handle,
        pad: 0,
    };
    ioctl(&f, DRM_IOCTL_GEM_CLOSE, &mut c).unwrap();
    assert_eq!(ioctl(&f, DRM_IOCTL_GEM_CLOSE, &mut c), Err(Errno::EINVAL));
    let mut i = BoInfo {
        handle: b.handle,
        ..BoInfo::default()
    };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_BO_INFO, &mut i),
        Err(Errno::ENOENT)
    );
    assert_eq!(f.mmap(b.mmap_offset, 4096).err(), Some(Errno::EINVAL));
    still_works(&f);
}

#[test]
fn nonzero_reserved_fields_are_einval() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 4);
    let mut p = GetParam {
        param: param::DEVICE_ID,
        index: 1,
        value: 0,
    };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_GET_PARAM, &mut p),
        Err(Errno::EINVAL)
    );
    let h = g.handles();
    let base = Submit {
        cmd_handle: g.cmd.handle,
        cmd_length: g.len,
        bo_handles: h.as_ptr() as u64,
        bo_count: 3,
        ..Submit::default()
    };
    let mut s1 = Submit { flags: 1, ..base };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_SUBMIT, &mut s1),
        Err(Errno::EINVAL)
    );
    let mut s2 = Submit { pad: 1, ..base };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_SUBMIT, &mut s2),
        Err(Errno::EINVAL)
    );
    let mut c = DrmGemClose {
        handle: g.a.handle,
        pad: 1,
    };
    assert_eq!(ioctl(&f, DRM_IOCTL_GEM_CLOSE, &mut c), Err(Errno::EINVAL));
    let mut ok = base;
    ioctl(&f, DRM_IOCTL_NPUKIT_SUBMIT, &mut ok).unwrap();
    let mut w = Wait {
        seq: ok.seq,
        timeout_ns: i64::MAX,
        pad: 1,
        ..Wait::default()
    };
    assert_eq!(ioctl(&f, DRM_IOCTL_NPUKIT_WAIT, &mut w), Err(Errno::EINVAL));
    w.pad = 0;
    ioctl(&f, DRM_IOCTL_NPUKIT_WAIT, &mut w).unwrap();
    assert_eq!(w.status, status::OK);
    still_works(&f);
}

#[test]
fn unknown_ioctls_are_enotty_and_unknown_caps_einval() {
    let s = shim();
    let f = s.open().unwrap();
    let mut x = [0u64; 8];
    let arg = x.as_mut_ptr() as u64;
    for req in [
        0u32,
        0xC010_6450,                            // 'd' driver range, nr 0x50: not ours
        DRM_IOCTL_NPUKIT_GET_PARAM ^ (1 << 16), // right nr, wrong size
        0x5401,                                 // TCGETS
    ] {
        assert_eq!(f.ioctl(req, arg), Err(Errno::ENOTTY), "{req:#x}");
    }
    let mut c = DrmGetCap {
        capability: 0x1234,
        value: 7,
    };
    assert_eq!(ioctl(&f, DRM_IOCTL_GET_CAP, &mut c), Err(Errno::EINVAL));
    c.capability = DRM_CAP_SYNCOBJ;
    ioctl(&f, DRM_IOCTL_GET_CAP, &mut c).unwrap();
    assert_eq!(c.value, 0);
    still_works(&f);
}

#[test]
fn job_stats_of_a_running_job_is_ebusy() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 5);
    let seq = g.submit(&f);
    let mut js = JobStats {
        seq,
        ..JobStats::default()
    };
    assert_eq!(
        ioctl(&f, DRM_IOCTL_NPUKIT_JOB_STATS, &mut js),
        Err(Errno::EBUSY)
    );
    f.wait_job(seq, 30 * SEC).unwrap();
    ioctl(&f, DRM_IOCTL_NPUKIT_JOB_STATS, &mut js).unwrap();
    assert_eq!(js.macs, 8 * 16 * 16);
}

#[test]
fn closing_a_bo_in_use_keeps_it_until_the_job_ends() {
    let s = shim();
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 6);
    let seq = g.submit(&f);
    for h in [g.a.handle, g.w.handle, g.cmd.handle] {
        f.gem_close(&DrmGemClose { handle: h, pad: 0 }).unwrap();
    }
    assert_eq!(f.wait_job(seq, 30 * SEC).unwrap().status, status::OK);
    assert_eq!(g.result(&f), g.expect);
    still_works(&f);
}
