//! The client of the device server ([`crate::server`], `npukit serve`), and
//! the choice between it and an in-process device.
//!
//! [`Client`] connects to a server; [`RemoteFile`] is a file of the served
//! device, with the same `ioctl(request, pointer)` as [`crate::File`].
//! [`Accel::from_env`] picks the device the way the LD_PRELOAD library
//! does: `NPUKIT_SERVER=/path/to/socket` connects to that server, otherwise
//! the process gets its own device ([`crate::Shim::from_env`]).
//!
//! Mappings: the client reserves an inaccessible range of address space as
//! large as the device memory; mapping a BO maps exactly its pages of the
//! server's memfd at `base + physical address` (so the address arithmetic
//! is that of an in-process device), and munmap puts the reservation back.
//! Memory of other contexts is never mapped in the process.
//!
//! Fork: a child process does not share its parent's connections. Its first
//! call starts a session of its own; files the parent opened are `EBADF` in
//! the child (their BO mappings stay shared, as a kernel's do).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::api::Ioctl;
use crate::driver::{Usage, MAX_SUBMIT_BOS};
use crate::errno::{Errno, IoctlResult};
use crate::uapi::{self, DrmVersion, Submit};
use crate::user;
use crate::wire::{self, Msg, Sock};
use crate::{File, Shim, ShimError};

/// The argument size of a request the shim knows (`None`: ENOTTY).
fn arg_size(req: u32) -> Option<usize> {
    uapi::KNOWN_IOCTLS.iter().find(|k| k.0 == req).map(|k| k.1)
}

#[derive(Debug)]
struct Conn {
    pid: u32,
    session: u64,
    memfd: OwnedFd,
    idle: Vec<Sock>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// The reserved address range: device physical address 0 and its length.
    base: usize,
    len: usize,
    conn: Mutex<Conn>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the reservation was mapped in connect() with this length;
        // BO pointers into it are dead with the client (documented).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// A connection to a device server. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn io_err(e: std::io::Error) -> ShimError {
    ShimError::Device(e.to_string())
}

/// HELLO on a fresh connection: (session, memory bytes, memfd).
fn hello(path: &Path, session: u64) -> std::io::Result<(Sock, u64, u64, OwnedFd)> {
    let s = Sock::connect(path)?;
    let (r, fd) = s.call(&Msg::new(wire::HELLO, 0, session, 0))?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    r.result()
        .map_err(|e| bad(&format!("the server refused HELLO: {e}")))?;
    let fd = fd.ok_or_else(|| bad("the server sent no device memory"))?;
    Ok((s, r.a, r.b, fd))
}

fn pid() -> u32 {
    std::process::id()
}

impl Client {
    /// Connects to the server listening at `path`.
    pub fn connect(path: &Path) -> Result<Client, ShimError> {
        let (sock, session, mem, memfd) = hello(path, 0).map_err(io_err)?;
        let len = usize::try_from(mem).map_err(|_| ShimError::Memory(mem))?;
        // SAFETY: a fresh inaccessible reservation; nothing is mapped there
        // until a BO is.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(ShimError::Memory(mem));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                base: base as usize,
                len,
                conn: Mutex::new(Conn {
                    pid: pid(),
                    session,
                    memfd,
                    idle: vec![sock],
                }),
            }),
        })
    }

    /// The host address of device physical address 0 and the memory size:
    /// the reserved range in which BOs are mapped.
    pub fn memory_range(&self) -> (usize, u64) {
        (self.inner.base, self.inner.len as u64)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process's session, started anew in a forked child.
    fn session(&self, c: &mut Conn) -> IoctlResult<u64> {
        if c.pid != pid() {
            c.idle.clear();
            let (sock, session, mem, memfd) = hello(&self.inner.path, 0).map_err(|_| Errno::EIO)?;
            if mem != self.inner.len as u64 {
                return Err(Errno::EIO);
            }
            *c = Conn {
                pid: pid(),
                session,
                memfd,
                idle: vec![sock],
            };
        }
        Ok(c.session)
    }

    /// Sends a request on an idle connection of this session (a new one if
    /// all are busy) and returns the reply; `session`, if given, must still
    /// be this process's (else EBADF: a file of the parent in a child).
    fn call(&self, m: &Msg, session: Option<u64>) -> IoctlResult<Msg> {
        let (sock, now) = {
            let mut c = self.lock();
            let now = self.session(&mut c)?;
            if session.is_some_and(|s| s != now) {
                return Err(Errno::EBADF);
            }
            (c.idle.pop(), now)
        };
        let sock = match sock {
            Some(s) => s,
            None => {
                let (s, got, _, _) = hello(&self.inner.path, now).map_err(|_| Errno::EIO)?;
                if got != now {
                    return Err(Errno::EIO);
                }
                s
            }
        };
        let (reply, _) = sock.call(m).map_err(|_| Errno::EIO)?;
        let mut c = self.lock();
        if c.pid == pid() && c.session == now {
            c.idle.push(sock);
        }
        Ok(reply)
    }

    /// Opens a file (a context) on the served device.
    pub fn open(&self) -> IoctlResult<RemoteFile> {
        let session = {
            let mut c = self.lock();
            self.session(&mut c)?
        };
        let r = self.call(&Msg::new(wire::OPEN, 0, 0, 0), Some(session))?;
        r.result()?;
        Ok(RemoteFile {
            client: self.clone(),
            id: r.a as u32,
            ctx: r.b as u32,
            session,
        })
    }

    /// Undoes [`RemoteFile::mmap`] for `addr..addr+len`: EINVAL if the range
    /// is not a mapping of this process.
    pub fn munmap(&self, addr: *mut u8, len: usize) -> IoctlResult {
        let a = addr as usize;
        let Some(off) = a.checked_sub(self.inner.base) else {
            return Err(Errno::EINVAL);
        };
        let len = len.next_multiple_of(crate::mem::PAGE as usize);
        if !off.is_multiple_of(crate::mem::PAGE as usize)
            || len == 0
            || off.checked_add(len).is_none_or(|e| e > self.inner.len)
        {
            return Err(Errno::EINVAL);
        }
        self.call(&Msg::new(wire::MUNMAP, 0, off as u64, len as u64), None)?
            .result()?;
        // SAFETY: inside our reservation (checked above): the pages go
        // back to inaccessible.
        let p = unsafe {
            libc::mmap(
                addr.cast(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// A sysfs/debugfs file of the served device ([`crate::vfs`]).
    pub fn vfs_read(&self, path: &str) -> Option<String> {
        let r = self
            .call(&Msg::new(wire::VFS_READ, 0, 0, 0).with(path.into()), None)
            .ok()?;
        r.result().ok()?;
        Some(String::from_utf8_lossy(&r.payload).into_owned())
    }

    /// Adds a fault script to the served device (as writing debugfs
    /// `fault_inject`); the number of entries, or the parse error.
    pub fn write_faults(&self, script: &str) -> Result<usize, String> {
        let r = self
            .call(&Msg::new(wire::FAULTS, 0, 0, 0).with(script.into()), None)
            .map_err(|e| format!("the server did not answer: {e}"))?;
        match r.result() {
            Ok(()) => Ok(r.a as usize),
            Err(_) => Err(String::from_utf8_lossy(&r.payload).into_owned()),
        }
    }

    /// What the served device's driver holds now (all clients together).
    pub fn usage(&self) -> IoctlResult<Usage> {
        let r = self.call(&Msg::new(wire::USAGE, 0, 0, 0), None)?;
        r.result()?;
        wire::usage_from(&r.payload).ok_or(Errno::EIO)
    }
}

/// A file (context) of a served device. Closed on drop.
#[derive(Debug)]
pub struct RemoteFile {
    client: Client,
    id: u32,
    ctx: u32,
    session: u64,
}

impl Drop for RemoteFile {
    fn drop(&mut self) {
        let _ = self
            .client
            .call(&Msg::new(wire::CLOSE, self.id, 0, 0), Some(self.session));
    }
}

impl RemoteFile {
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn forward(&self, req: u32, payload: Vec<u8>) -> IoctlResult<Vec<u8>> {
        let m = Msg::new(wire::IOCTL, self.id, req as u64, 0).with(payload);
        let r = self.client.call(&m, Some(self.session))?;
        r.result()?;
        Ok(r.payload)
    }
}

impl Ioctl for RemoteFile {
    fn context(&self) -> u32 {
        self.ctx
    }

    /// The ioctl syscall, forwarded: the argument is read here (EFAULT for
    /// a bad pointer), run by the server, and written back here.
    fn ioctl(&self, req: u32, arg: u64) -> IoctlResult {
        let Some(size) = arg_size(req) else {
            return self.forward(req, Vec::new()).map(|_| ());
        };
        let mut inp = vec![0u8; size];
        user::copy_from_user(arg, &mut inp)?;
        let mut payload = inp.clone();
        if req == uapi::DRM_IOCTL_NPUKIT_SUBMIT {
            let s: Submit = crate::server::take(&inp);
            let mut h = vec![0u8; s.bo_count as usize * 4];
            let readable =
                s.bo_count <= MAX_SUBMIT_BOS && user::copy_from_user(s.bo_handles, &mut h).is_ok();
            payload.push(u8::from(readable));
            if readable {
                payload.extend_from_slice(&h);
            }
        }
        let out = self.forward(req, payload)?;
        if out.len() < size && req != uapi::DRM_IOCTL_GEM_CLOSE {
            return Err(Errno::EIO);
        }
        match req {
            uapi::DRM_IOCTL_GEM_CLOSE => Ok(()),
            uapi::DRM_IOCTL_VERSION => {
                let vin: DrmVersion = crate::server::take(&inp);
                let vout: DrmVersion = crate::server::take(&out);
                let mut at = size;
                for (len, full, ptr) in [
                    (vin.name_len, vout.name_len, vin.name),
                    (vin.date_len, vout.date_len, vin.date),
                    (vin.desc_len, vout.desc_len, vin.desc),
                ] {
                    let n = len.min(full).min(crate::server::MAX_STR) as usize;
                    let s = out.get(at..at + n).ok_or(Errno::EIO)?;
                    user::copy_to_user(ptr, s)?;
                    at += n;
                }
                user::copy_to_user(arg, &out[..size])
            }
            _ => user::copy_to_user(arg, &out[..size]),
        }
    }

    /// Maps `len` bytes at `offset` (a BO's mmap offset) of this file.
    fn mmap(&self, offset: u64, len: u64) -> IoctlResult<*mut u8> {
        let m = Msg::new(wire::MMAP, self.id, offset, len);
        let r = self.client.call(&m, Some(self.session))?;
        r.result()?;
        let (phys, len) = (r.a, r.b);
        let inner = &self.client.inner;
        let fits = phys.checked_add(len).is_some_and(|e| e <= inner.len as u64);
        let memfd = self.client.lock().memfd.as_raw_fd();
        if !fits {
            return Err(Errno::EIO);
        }
        // SAFETY: phys..phys+len lies in our reservation (checked); the
        // server checked it is this file's BO.
        let p = unsafe {
            libc::mmap(
                (inner.base + phys as usize) as *mut libc::c_void,
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                memfd,
                phys as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            let _ = self
                .client
                .munmap((inner.base + phys as usize) as *mut u8, len as usize);
            return Err(Errno::ENOMEM);
        }
        Ok(p.cast())
    }
}

/// A device: the process's own ([`Shim`]) or a server's ([`Client`]).
#[derive(Debug, Clone)]
pub enum Accel {
    Local(Shim),
    Remote(Client),
}

/// A file of an [`Accel`].
#[derive(Debug)]
pub enum AccelFile {
    Local(File),
    Remote(RemoteFile),
}

impl Accel {
    /// `NPUKIT_SERVER` set: a client of that server; otherwise an
    /// in-process device from the environment ([`Shim::from_env`]).
    pub fn from_env() -> Result<Accel, ShimError> {
        match std::env::var_os("NPUKIT_SERVER") {
            Some(p) if !p.is_empty() => {
                Client::connect(Path::new(&p))
                    .map(Accel::Remote)
                    .map_err(|e| match e {
                        ShimError::Device(m) => {
                            ShimError::Device(format!("NPUKIT_SERVER={}: {m}", p.to_string_lossy()))
                        }
                        e => e,
                    })
            }
            _ => Shim::from_env().map(Accel::Local),
        }
    }

    pub fn open(&self) -> IoctlResult<AccelFile> {
        match self {
            Accel::Local(s) => s.open().map(AccelFile::Local),
            Accel::Remote(c) => c.open().map(AccelFile::Remote),
        }
    }

    /// Host address of device physical address 0 and the memory size.
    pub fn memory_range(&self) -> (usize, u64) {
        match self {
            Accel::Local(s) => s.memory_range(),
            Accel::Remote(c) => c.memory_range(),
        }
    }

    /// munmap of a BO mapping (EINVAL if the range is not one).
    pub fn munmap(&self, addr: *mut u8, len: usize) -> IoctlResult {
        match self {
            Accel::Local(s) => s.munmap(addr, len).then_some(()).ok_or(Errno::EINVAL),
            Accel::Remote(c) => c.munmap(addr, len),
        }
    }

    /// A sysfs/debugfs file of the device.
    pub fn vfs_read(&self, path: &str) -> Option<String> {
        match self {
            Accel::Local(s) => crate::vfs::read(s, path),
            Accel::Remote(c) => c.vfs_read(path),
        }
    }

    /// Adds a fault script (debugfs `fault_inject`).
    pub fn write_faults(&self, script: &str) -> Result<usize, String> {
        match self {
            Accel::Local(s) => crate::vfs::write_faults(s, script).map_err(|e| e.to_string()),
            Accel::Remote(c) => c.write_faults(script),
        }
    }

    /// What the device's driver holds now.
    pub fn usage(&self) -> IoctlResult<Usage> {
        match self {
            Accel::Local(s) => Ok(s.usage()),
            Accel::Remote(c) => c.usage(),
        }
    }
}

impl Ioctl for AccelFile {
    fn context(&self) -> u32 {
        match self {
            AccelFile::Local(f) => f.context(),
            AccelFile::Remote(f) => f.context(),
        }
    }
    fn ioctl(&self, req: u32, arg: u64) -> IoctlResult {
        match self {
            AccelFile::Local(f) => f.ioctl(req, arg),
            AccelFile::Remote(f) => f.ioctl(req, arg),
        }
    }
    fn mmap(&self, offset: u64, len: u64) -> IoctlResult<*mut u8> {
        match self {
            AccelFile::Local(f) => f.mmap(offset, len),
            AccelFile::Remote(f) => Ioctl::mmap(f, offset, len),
        }
    }
}
