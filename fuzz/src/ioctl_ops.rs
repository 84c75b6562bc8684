//! The interpreter of the `ioctl` and `ioctl_server` fuzz targets: one
//! sequence of operations (opens, closes, ioctls, mmaps, munmaps on four
//! files) run against a device behind [`Dev`], with the checks of
//! `fuzz_targets/ioctl.rs`.

use std::ffi::c_void;

use npukit_abi::desc::{deps, Max};
use npukit_abi::program::Program;
use npukit_shim::uapi::*;
use npukit_shim::Usage;

/// Files the input may use (slot `FILES` is the final check's).
pub const FILES: usize = 4;

/// A device as the fuzz input drives it; results are 0 or -errno, as the
/// LD_PRELOAD entry points return them.
pub trait Dev {
    /// Opens `slot` (closed first if open); must succeed.
    fn open(&mut self, slot: usize);
    fn close(&mut self, slot: usize);
    fn ioctl(&mut self, slot: usize, req: u64, arg: u64) -> i32;
    fn mmap(&mut self, slot: usize, m: Map) -> Result<*mut c_void, i32>;
    fn munmap(&mut self, p: *mut c_void, len: usize) -> i32;
    /// What the device holds (None: not known yet).
    fn usage(&mut self) -> Option<Usage>;
}

/// The arguments of one `mmap(addr, len, PROT_READ | PROT_WRITE, flags, fd, offset)`.
#[derive(Debug, Clone, Copy)]
pub struct Map {
    pub addr: *mut c_void,
    pub len: usize,
    pub flags: i32,
    pub offset: i64,
}

/// Two pages: an argument buffer, then a PROT_NONE guard page.
struct Arena {
    base: *mut u8,
}

impl Arena {
    fn new() -> Arena {
        // SAFETY: a fresh anonymous mapping; the second page is made
        // inaccessible, so a struct that ends on it faults in the shim's
        // copy (EFAULT), not here.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(
                libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE),
                0
            );
            Arena { base: p.cast() }
        }
    }
    fn guard(&self) -> u64 {
        self.base as u64 + 4096
    }
}

struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> u32 {
        (0..4).fold(0, |a, i| a | (self.byte().unwrap_or(0) as u32) << (8 * i))
    }
    fn u64(&mut self) -> u64 {
        self.u32() as u64 | (self.u32() as u64) << 32
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

const ALLOWED: [i32; 8] = [
    libc::EINVAL,
    libc::ENOENT,
    libc::EFAULT,
    libc::ENOMEM,
    libc::EBUSY,
    libc::ETIMEDOUT,
    libc::ENOTTY,
    libc::EBADF,
];

fn check(what: &str, r: i32) {
    assert!(r == 0 || ALLOWED.contains(&-r), "{what} returned {r}");
}

/// A pointer field: NULL, unmapped, the guard page, or the scratch buffer.
fn pointer(sel: u64, arena: &Arena, scratch: u64) -> u64 {
    match sel % 4 {
        0 => 0,
        1 => 0xDEAD_0000_0000,
        2 => arena.guard(),
        _ => scratch,
    }
}

/// An ioctl of the final check, which must succeed.
fn ok<T>(dev: &mut dyn Dev, slot: usize, req: u32, arg: &mut T) {
    let r = dev.ioctl(slot, req as u64, arg as *mut T as u64);
    assert_eq!(r, 0, "ioctl {req:#x} of the final check");
}

/// After the input: a fresh file copies 256 bytes through the device bit-exact.
fn device_still_works(dev: &mut dyn Dev) {
    let slot = FILES;
    dev.open(slot);
    let bo = |dev: &mut dyn Dev, size| {
        let mut b = BoCreate {
            size,
            ..BoCreate::default()
        };
        ok(dev, slot, DRM_IOCTL_NPUKIT_BO_CREATE, &mut b);
        b
    };
    let (src, dst) = (bo(dev, 4096), bo(dev, 4096));
    let mut p = Program::default();
    // LOAD -> compute (MAX of the bytes with themselves) -> STORE.
    p.load_2d(0, src.device_addr, 1, 256, 256)
        .deps(deps::SIGNAL_NEXT);
    p.max(Max {
        a: 0,
        b: 0,
        dst: 0,
        len: 256,
    })
    .deps(deps::WAIT_PREV | deps::SIGNAL_NEXT);
    p.store_2d(0, dst.device_addr, 1, 256, 256)
        .deps(deps::WAIT_PREV);
    let prog = p.encode();
    let cmd = bo(dev, 4096);
    let map = |dev: &mut dyn Dev, b: &BoCreate| {
        let m = Map {
            addr: std::ptr::null_mut(),
            len: 4096,
            flags: libc::MAP_SHARED,
            offset: b.mmap_offset as i64,
        };
        dev.mmap(slot, m).expect("mmap of a fresh BO").cast::<u8>()
    };
    let (ps, pd, pc) = (map(dev, &src), map(dev, &dst), map(dev, &cmd));
    let pattern: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    // SAFETY: each pointer maps a whole 4 KiB BO.
    unsafe {
        std::ptr::copy_nonoverlapping(pattern.as_ptr(), ps, 256);
        std::ptr::copy_nonoverlapping(prog.as_ptr(), pc, prog.len());
    }
    let handles = [src.handle, dst.handle];
    let mut s = Submit {
        cmd_handle: cmd.handle,
        cmd_length: prog.len() as u64,
        bo_handles: handles.as_ptr() as u64,
        bo_count: 2,
        ..Submit::default()
    };
    ok(dev, slot, DRM_IOCTL_NPUKIT_SUBMIT, &mut s);
    let mut w = Wait {
        seq: s.seq,
        timeout_ns: npukit_shim::api::monotonic_ns() + 10_000_000_000,
        ..Wait::default()
    };
    ok(dev, slot, DRM_IOCTL_NPUKIT_WAIT, &mut w);
    assert_eq!(w.status, status::OK, "{w:?}");
    // SAFETY: pd maps the 4 KiB destination BO.
    let got = unsafe { std::slice::from_raw_parts(pd, 256) };
    assert_eq!(got, &pattern[..], "the device no longer copies bit-exact");
    for p in [ps, pd, pc] {
        assert_eq!(dev.munmap(p.cast(), 4096), 0);
    }
    dev.close(slot);
}

/// Runs one fuzz input against `dev`.
pub fn run(dev: &mut dyn Dev, data: &[u8]) {
    let arena = Arena::new();
    let mut scratch = vec![0u8; 4096];
    for (i, c) in scratch.chunks_exact_mut(4).enumerate() {
        // As __u32 handles: 1, 2, 3, ...
        c.copy_from_slice(&(i as u32 % 16 + 1).to_le_bytes());
    }
    let scratch_ptr = scratch.as_mut_ptr() as u64;
    let mut open = [false; FILES];
    let mut maps: Vec<(*mut c_void, usize)> = Vec::new();
    let mut inp = Input(data);
    while let Some(op) = inp.byte() {
        let slot = inp.byte().unwrap_or(0) as usize % FILES;
        match op % 8 {
            0 => {
                dev.open(slot);
                open[slot] = true;
            }
            1 => {
                dev.close(slot);
                open[slot] = false;
            }
            2 => {
                let offset = inp.u64() as i64;
                let len = inp.u32() as usize % (1 << 20);
                let flags = if inp.byte().unwrap_or(0) & 1 == 0 {
                    libc::MAP_SHARED
                } else {
                    libc::MAP_FIXED
                };
                let addr = scratch_ptr as *mut c_void;
                let m = dev.mmap(
                    slot,
                    Map {
                        addr,
                        len,
                        flags,
                        offset,
                    },
                );
                let (r, out) = match m {
                    Ok(p) => (0, p),
                    Err(e) => (e, std::ptr::null_mut()),
                };
                check("mmap", r);
                if r == 0 {
                    // The mapping is device memory: touch its ends.
                    let p = out.cast::<u8>();
                    // SAFETY: the shim mapped `len` (rounded up) bytes at p.
                    unsafe {
                        p.write_volatile(0xA5);
                        p.add(len.max(1) - 1).write_volatile(0x5A);
                    }
                    maps.push((out, len));
                }
            }
            3 => {
                if !maps.is_empty() {
                    let i = inp.byte().unwrap_or(0) as usize % maps.len();
                    let (p, len) = maps.swap_remove(i);
                    assert_eq!(dev.munmap(p, len), 0, "munmap of a mapping");
                }
            }
            _ => {
                let sel = inp.byte().unwrap_or(0);
                let known = KNOWN_IOCTLS[sel as usize % KNOWN_IOCTLS.len()].0;
                let req: u64 = match sel >> 5 {
                    0 => inp.u32() as u64,
                    1 => inp.u64(),
                    // A known number with another size or direction.
                    2 => (known ^ (inp.u32() & 0xFFFF_0000)) as u64,
                    _ => known as u64,
                };
                let size = (req as u32 >> 16 & 0x3FFF) as usize;
                let mut arg = inp.bytes(size.min(128));
                arg.resize(size.min(128), 0);
                let word = |a: &[u8], i: usize| {
                    a.get(i * 8..i * 8 + 8)
                        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
                };
                let put = |a: &mut Vec<u8>, i: usize, v: u64| {
                    if let Some(w) = a.get_mut(i * 8..i * 8 + 8) {
                        w.copy_from_slice(&v.to_le_bytes());
                    }
                };
                // Pointer fields point nowhere dangerous (the shim could
                // otherwise be told to write into the fuzzer's own memory).
                if req as u32 == DRM_IOCTL_VERSION {
                    for i in [3, 5, 7] {
                        let sel = word(&arg, i).unwrap_or(0);
                        put(&mut arg, i, pointer(sel, &arena, scratch_ptr));
                        let len = word(&arg, i - 1).unwrap_or(0) % 5000;
                        put(&mut arg, i - 1, len);
                    }
                }
                if req as u32 == DRM_IOCTL_NPUKIT_SUBMIT {
                    let sel = word(&arg, 3).unwrap_or(0);
                    put(&mut arg, 3, pointer(sel, &arena, scratch_ptr));
                }
                if req as u32 == DRM_IOCTL_NPUKIT_WAIT {
                    // Deadlines at most 2 ms away, so that a hung job costs little.
                    let now = npukit_shim::api::monotonic_ns();
                    let t = word(&arg, 1).unwrap_or(0) as i64;
                    if t > now {
                        put(&mut arg, 1, (now + t % 2_000_000) as u64);
                    }
                }
                // Where the argument lives: NULL, ending on the guard page,
                // or on the guard page itself.
                let where_ = inp.byte().unwrap_or(0);
                let argp = match where_ % 16 {
                    0 => 0,
                    1 => arena.guard(),
                    _ => {
                        let n = arg.len().min(4096);
                        let at = arena.guard() - n as u64 - (where_ as u64 >> 4) % 2 * 8;
                        // SAFETY: at..at+n lies in the arena's first page.
                        unsafe { std::ptr::copy_nonoverlapping(arg.as_ptr(), at as *mut u8, n) };
                        at
                    }
                };
                check(&format!("ioctl {req:#x}"), dev.ioctl(slot, req, argp));
            }
        }
    }
    for (p, len) in maps.drain(..) {
        assert_eq!(dev.munmap(p, len), 0, "munmap at the end");
    }
    for (slot, o) in open.iter().enumerate() {
        if *o {
            dev.close(slot);
        }
    }
    if let Some(u) = dev.usage() {
        assert_eq!(
            (u.contexts, u.objects, u.mappings, u.jobs_pending),
            (0, 0, 0, 0),
            "left behind after every file and mapping was closed: {u:?}"
        );
        assert_eq!(u.free_bytes, u.total_bytes, "device memory leaked: {u:?}");
    }
    device_still_works(dev);
    // SAFETY: the arena was mapped in Arena::new with this length.
    unsafe { libc::munmap(arena.base.cast(), 8192) };
}
