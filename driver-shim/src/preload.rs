//! The LD_PRELOAD entry points. `csrc/preload.c` interposes `open`, `openat`
//! (and their 64-bit and fortified variants), `ioctl`, `mmap`, `munmap` and
//! `close`; for `/dev/accel/accel0` and the descriptors it returned, the C code
//! calls these functions, everything else goes to libc through
//! `dlsym(RTLD_NEXT)`.
//!
//! One device per process, chosen at the first open ([`Accel::from_env`]):
//! with `NPUKIT_SERVER=/path/to/socket` the device of that server
//! (`npukit serve`, shared with other processes), otherwise a [`Shim`]
//! of its own from the environment ([`crate::Options::from_env`]). Each
//! open is a file of it ([`AccelFile`]); the descriptor
//! number is a real descriptor (of `/dev/null`) reserved by the C side, so it
//! never collides with the program's own files.
//!
//! The checks the C side makes on every call (is this descriptor ours, is this
//! range device memory) read atomics only: they may run inside the allocator
//! while a lock here is held.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::{Accel, AccelFile, Ioctl};

const FD_BITS: usize = 4096;
static OWNED: [AtomicU64; FD_BITS / 64] = [const { AtomicU64::new(0) }; FD_BITS / 64];
static MEM_BASE: AtomicUsize = AtomicUsize::new(0);
static MEM_LEN: AtomicUsize = AtomicUsize::new(0);
static SHIM: OnceLock<Result<Accel, String>> = OnceLock::new();
static FILES: Mutex<BTreeMap<c_int, Arc<AccelFile>>> = Mutex::new(BTreeMap::new());

fn mark(fd: c_int, on: bool) {
    if let Ok(i) = usize::try_from(fd) {
        if i < FD_BITS {
            let bit = 1u64 << (i % 64);
            if on {
                OWNED[i / 64].fetch_or(bit, Ordering::SeqCst);
            } else {
                OWNED[i / 64].fetch_and(!bit, Ordering::SeqCst);
            }
        }
    }
}

fn shim() -> Result<&'static Accel, c_int> {
    let r = SHIM.get_or_init(|| match Accel::from_env() {
        Ok(s) => {
            let (base, len) = s.memory_range();
            MEM_BASE.store(base, Ordering::SeqCst);
            MEM_LEN.store(usize::try_from(len).unwrap_or(0), Ordering::SeqCst);
            Ok(s)
        }
        Err(e) => {
            let msg = format!("npukit-shim: cannot open /dev/accel/accel0: {e}");
            eprintln!("{msg}");
            Err(msg)
        }
    });
    r.as_ref().map_err(|_| libc::ENODEV)
}

fn file(fd: c_int) -> Option<Arc<AccelFile>> {
    FILES.lock().ok()?.get(&fd).cloned()
}

/// What the process's device holds now (`None` before the first open, or
/// if the device could not be created): for leak checks.
pub fn usage() -> Option<crate::driver::Usage> {
    match SHIM.get() {
        Some(Ok(s)) => s.usage().ok(),
        _ => None,
    }
}

/// Is `fd` a descriptor this library returned for the device?
#[no_mangle]
pub extern "C" fn npukit_preload_is_ours(fd: c_int) -> c_int {
    match usize::try_from(fd) {
        Ok(i) if i < FD_BITS => {
            c_int::from(OWNED[i / 64].load(Ordering::SeqCst) >> (i % 64) & 1 == 1)
        }
        Ok(_) => c_int::from(file(fd).is_some()),
        Err(_) => 0,
    }
}

/// Makes the reserved descriptor `fd` an open file of the device; 0 or -errno.
#[no_mangle]
pub extern "C" fn npukit_preload_register(fd: c_int, _flags: c_int) -> c_int {
    let s = match shim() {
        Ok(s) => s,
        Err(e) => return -e,
    };
    match s.open() {
        Ok(f) => {
            if let Ok(mut m) = FILES.lock() {
                m.insert(fd, Arc::new(f));
                mark(fd, true);
                0
            } else {
                -libc::EIO
            }
        }
        Err(e) => -e.0,
    }
}

/// The ioctl; 0 or -errno.
///
/// # Safety
/// `arg` is the caller's pointer; it is only accessed through checked copies.
#[no_mangle]
pub unsafe extern "C" fn npukit_preload_ioctl(
    fd: c_int,
    req: libc::c_ulong,
    arg: *mut c_void,
) -> c_int {
    let Some(f) = file(fd) else {
        return -libc::EBADF;
    };
    let Ok(req) = u32::try_from(req) else {
        return -libc::ENOTTY;
    };
    match f.ioctl(req, arg as u64) {
        Ok(()) => 0,
        Err(e) => -e.0,
    }
}

/// mmap of a BO; 0 or -errno, the address in `*out`.
///
/// # Safety
/// `out` must be a valid pointer to write.
#[no_mangle]
pub unsafe extern "C" fn npukit_preload_mmap(
    fd: c_int,
    addr: *mut c_void,
    len: usize,
    flags: c_int,
    offset: i64,
    out: *mut *mut c_void,
) -> c_int {
    let Some(f) = file(fd) else {
        return -libc::EBADF;
    };
    if flags & libc::MAP_FIXED != 0 && !addr.is_null() {
        return -libc::EINVAL;
    }
    let Ok(offset) = u64::try_from(offset) else {
        return -libc::EINVAL;
    };
    match f.mmap(offset, len as u64) {
        Ok(p) => {
            // SAFETY: the caller passes a valid out pointer.
            unsafe { *out = p.cast() };
            0
        }
        Err(e) => -e.0,
    }
}

/// Does `addr..addr+len` lie in device memory (an mmap of a BO)?
#[no_mangle]
pub extern "C" fn npukit_preload_owns_range(addr: *mut c_void, len: usize) -> c_int {
    let base = MEM_BASE.load(Ordering::SeqCst);
    let size = MEM_LEN.load(Ordering::SeqCst);
    let a = addr as usize;
    c_int::from(size != 0 && a >= base && a.checked_add(len).is_some_and(|e| e <= base + size))
}

const VIRT_W: usize = FD_BITS / 64;
/// Descriptors of `fault_inject` opened for writing (committed at close).
static VIRT: [AtomicU64; VIRT_W] = [const { AtomicU64::new(0) }; VIRT_W];

fn bit(map: &[AtomicU64], fd: c_int, on: Option<bool>) -> bool {
    let Ok(i) = usize::try_from(fd) else {
        return false;
    };
    if i >= FD_BITS {
        return false;
    }
    let b = 1u64 << (i % 64);
    match on {
        Some(true) => map[i / 64].fetch_or(b, Ordering::SeqCst) & b != 0,
        Some(false) => map[i / 64].fetch_and(!b, Ordering::SeqCst) & b != 0,
        None => map[i / 64].load(Ordering::SeqCst) & b != 0,
    }
}

/// Opens a sysfs/debugfs file of the device ([`crate::vfs`]) as a memfd
/// holding its content; the descriptor, or -errno (ENOENT for an unknown
/// file under the device's folders).
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn npukit_preload_open_virtual(
    path: *const libc::c_char,
    flags: c_int,
) -> c_int {
    if path.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: the caller passes a NUL-terminated path.
    let p = unsafe { std::ffi::CStr::from_ptr(path) }.to_string_lossy();
    let s = match shim() {
        Ok(s) => s,
        Err(e) => return -e,
    };
    let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
    let text = match s.vfs_read(&p) {
        Some(t) => t,
        None => return -libc::ENOENT,
    };
    if write && p != crate::vfs::FAULT_INJECT {
        return -libc::EACCES;
    }
    let cloexec = if flags & libc::O_CLOEXEC != 0 {
        libc::MFD_CLOEXEC
    } else {
        0
    };
    // SAFETY: a valid C string literal.
    let fd = unsafe { libc::memfd_create(c"npukit-vfs".as_ptr(), cloexec) };
    if fd < 0 {
        return -libc::EMFILE;
    }
    if !write {
        // SAFETY: fd is our memfd; the buffer is valid for its length.
        let n = unsafe { libc::pwrite(fd, text.as_ptr().cast(), text.len(), 0) };
        if n != text.len() as isize {
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
            return -libc::EIO;
        }
    } else {
        bit(&VIRT, fd, Some(true));
    }
    fd
}

/// Called before a descriptor is closed: if it is a `fault_inject` opened for
/// writing, its text is parsed and the faults added. 0 or -errno (EINVAL
/// for a script that does not parse; the message goes to stderr).
#[no_mangle]
pub extern "C" fn npukit_preload_commit_virtual(fd: c_int) -> c_int {
    if !bit(&VIRT, fd, Some(false)) {
        return 0;
    }
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: fd is the memfd we created; buf is valid for its length.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    let Ok(n) = usize::try_from(n) else {
        return -libc::EIO;
    };
    let text = String::from_utf8_lossy(&buf[..n]);
    match shim() {
        Ok(s) => match s.write_faults(&text) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("npukit-shim: fault_inject: {e}");
                -libc::EINVAL
            }
        },
        Err(e) => -e,
    }
}

/// Is `fd` a `fault_inject` descriptor open for writing?
#[no_mangle]
pub extern "C" fn npukit_preload_is_virtual(fd: c_int) -> c_int {
    c_int::from(bit(&VIRT, fd, None))
}

/// munmap of a range of device memory; 0 or -errno.
#[no_mangle]
pub extern "C" fn npukit_preload_munmap(addr: *mut c_void, len: usize) -> c_int {
    match SHIM.get() {
        Some(Ok(s)) => match s.munmap(addr.cast(), len) {
            Ok(()) => 0,
            Err(e) => -e.0,
        },
        _ => -libc::EINVAL,
    }
}

/// Closes the device file behind `fd` (the C side then closes the descriptor).
#[no_mangle]
pub extern "C" fn npukit_preload_close(fd: c_int) {
    mark(fd, false);
    let (f, last) = match FILES.lock() {
        Ok(mut m) => {
            let f = m.remove(&fd);
            (f, m.is_empty())
        }
        Err(_) => (None, false),
    };
    drop(f);
    // The last close writes the trace, if NPUKIT_TRACE names a file.
    if last {
        if let (Some(Ok(Accel::Local(s))), Some(path)) =
            (SHIM.get(), std::env::var_os("NPUKIT_TRACE"))
        {
            if let Err(e) = s.write_trace(std::path::Path::new(&path)) {
                eprintln!(
                    "npukit-shim: cannot write the trace to {}: {e}",
                    path.to_string_lossy()
                );
            }
        }
    }
}
