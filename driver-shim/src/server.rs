//! The device server (`npukit serve`): one device for many client
//! processes, so that contexts of different processes meet on one device,
//! one ring, one watchdog and one fault script, as on real hardware.
//!
//! Clients connect over a Unix socket ([`crate::wire`]); a client process is
//! a *session* (its first connection says HELLO, further connections join
//! it, so that one thread's WAIT does not hold up another's ioctls). The
//! device memory is a memfd sent to every session: a client maps a BO by
//! asking the server (which checks the range lies inside one of the file's
//! BOs and takes the same hold on it as an in-process mmap) and then maps
//! exactly those pages of the memfd. When the last connection of a session
//! goes (the process exited or crashed), its files are closed and its
//! mappings released, as the kernel does for a dying process.
//!
//! Ioctls are forwarded as bytes: the client copies the argument struct in
//! from its own memory (EFAULT there for a bad pointer), the server runs the
//! very same [`File::ioctl`] on a copy, and the client copies the result
//! back. The two structs with pointers inside travel with their data:
//! SUBMIT's BO handle list follows the struct (with a flag byte saying
//! whether the client could read it), and VERSION's strings come back after
//! it.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, IoctlResult};
use crate::uapi::{self, DrmVersion, Submit};
use crate::user::Pod;
use crate::wire::{self, Msg, Sock};
use crate::{File, Options, Shim, ShimError};

/// Bytes of a VERSION string the server copies out at most (the driver's
/// strings are far shorter).
pub(crate) const MAX_STR: u64 = 4096;

/// One client process: its open files and the BO pages it has mapped.
#[derive(Debug)]
struct Session {
    id: u64,
    shim: Shim,
    files: Mutex<BTreeMap<u32, Arc<File>>>,
    /// Physical ranges mapped by the process and not unmapped yet.
    maps: Mutex<Vec<(u64, u64)>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let maps = std::mem::take(&mut *self.maps.lock().unwrap_or_else(|e| e.into_inner()));
        let base = self.shim.memory_range().0;
        for (start, end) in maps {
            self.shim
                .munmap((base + start as usize) as *mut u8, (end - start) as usize);
        }
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[derive(Debug)]
struct State {
    shim: Shim,
    sessions: Mutex<BTreeMap<u64, std::sync::Weak<Session>>>,
    next_session: AtomicU64,
    next_file: AtomicU32,
    connections: AtomicU64,
}

/// A running server; dropping it stops accepting connections (those open
/// go on until their clients close them) and removes the socket file.
#[derive(Debug)]
pub struct Server {
    state: Arc<State>,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Creates the device (`opts`, with its memory shareable) and listens
    /// at `path`; connections are served on their own threads.
    pub fn start(path: &Path, mut opts: Options) -> Result<Server, ShimError> {
        opts.shared_memory = true;
        let shim = Shim::new(opts)?;
        Self::start_with(path, shim)
    }

    /// Serves an existing device (made with [`Options::shared_memory`]).
    pub fn start_with(path: &Path, shim: Shim) -> Result<Server, ShimError> {
        if shim.memory_fd().is_none() {
            return Err(ShimError::Device(
                "the device server needs Options::shared_memory".into(),
            ));
        }
        let listener = wire::listen(path)
            .map_err(|e| ShimError::Device(format!("cannot listen at {}: {e}", path.display())))?;
        let state = Arc::new(State {
            shim,
            sessions: Mutex::new(BTreeMap::new()),
            next_session: AtomicU64::new(1),
            next_file: AtomicU32::new(1),
            connections: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let acceptor = std::thread::Builder::new()
            .name("npukit-serve".into())
            .spawn(move || accept_loop(listener, st, sp))
            .map_err(|e| ShimError::Device(format!("cannot start the server thread: {e}")))?;
        Ok(Server {
            state,
            path: path.to_path_buf(),
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The device being served (for the server's own checks).
    pub fn shim(&self) -> &Shim {
        &self.state.shim
    }

    /// Client processes connected now.
    pub fn sessions(&self) -> usize {
        let mut s = self
            .state
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        s.retain(|_, w| w.strong_count() > 0);
        s.len()
    }

    /// Connections accepted since the start.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Blocks until the acceptor stops (never, unless [`Server`] is stopped
    /// from another thread): `npukit serve`'s main loop.
    pub fn wait(mut self) {
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor with a connection of our own.
        let _ = Sock::connect(&self.path);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: OwnedFd, state: Arc<State>, stop: Arc<AtomicBool>) {
    loop {
        let conn = wire::accept(&listener);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(sock) => {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let st = state.clone();
                let spawned = std::thread::Builder::new()
                    .name("npukit-serve-conn".into())
                    .spawn(move || serve_connection(sock, st));
                if let Err(e) = spawned {
                    eprintln!("npukit serve: cannot start a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("npukit serve: accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn serve_connection(sock: Sock, state: Arc<State>) {
    // The first message must be HELLO.
    let Ok(Some((hello, _))) = sock.recv() else {
        return;
    };
    if hello.code != wire::HELLO {
        let _ = sock.send(&Msg::reply(Err(Errno::EINVAL)), None);
        return;
    }
    let session = {
        let mut sessions = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, w| w.strong_count() > 0);
        match sessions.get(&hello.a).and_then(|w| w.upgrade()) {
            Some(s) => s,
            None => {
                let id = state.next_session.fetch_add(1, Ordering::SeqCst);
                let s = Arc::new(Session {
                    id,
                    shim: state.shim.clone(),
                    files: Mutex::new(BTreeMap::new()),
                    maps: Mutex::new(Vec::new()),
                });
                sessions.insert(id, Arc::downgrade(&s));
                s
            }
        }
    };
    let (_, mem_len) = state.shim.memory_range();
    let memfd = state.shim.memory_fd();
    if sock
        .send(&Msg::reply(Ok((session.id, mem_len))), memfd)
        .is_err()
    {
        return;
    }
    while let Ok(Some((req, _))) = sock.recv() {
        let reply = handle(&state, &session, req);
        if sock.send(&reply, None).is_err() {
            break;
        }
    }
}

fn file_of(session: &Session, id: u32) -> IoctlResult<Arc<File>> {
    session
        .files
        .lock()
        .map_err(|_| Errno::EIO)?
        .get(&id)
        .cloned()
        .ok_or(Errno::EBADF)
}

fn handle(state: &State, session: &Session, req: Msg) -> Msg {
    let shim = &state.shim;
    match req.code {
        wire::OPEN => Msg::reply(shim.open().and_then(|f| {
            let id = state.next_file.fetch_add(1, Ordering::SeqCst);
            let ctx = f.context() as u64;
            session
                .files
                .lock()
                .map_err(|_| Errno::EIO)?
                .insert(id, Arc::new(f));
            Ok((id as u64, ctx))
        })),
        wire::CLOSE => {
            let f = session
                .files
                .lock()
                .ok()
                .and_then(|mut m| m.remove(&req.file));
            Msg::reply(f.map(|_| (0, 0)).ok_or(Errno::EBADF))
        }
        wire::IOCTL => match file_of(session, req.file) {
            Ok(f) => match ioctl(&f, req.a, &req.payload) {
                Ok(out) => Msg::reply(Ok((0, 0))).with(out),
                Err(e) => Msg::reply(Err(e)),
            },
            Err(e) => Msg::reply(Err(e)),
        },
        wire::MMAP => Msg::reply(file_of(session, req.file).and_then(|f| {
            let p = f.mmap(req.a, req.b)?;
            let phys = p as u64 - shim.memory_range().0 as u64;
            let len = req.b.next_multiple_of(crate::mem::PAGE);
            session
                .maps
                .lock()
                .map_err(|_| Errno::EIO)?
                .push((phys, phys + len));
            Ok((phys, len))
        })),
        wire::MUNMAP => {
            let (start, len) = (req.a, req.b.next_multiple_of(crate::mem::PAGE));
            let end = start.saturating_add(len);
            let mut maps = session.maps.lock().unwrap_or_else(|e| e.into_inner());
            // Only pages this process mapped: one process cannot release
            // another's hold on a BO.
            let mut mine = Vec::new();
            let mut left = Vec::new();
            for &(s, e) in maps.iter() {
                if e <= start || s >= end {
                    left.push((s, e));
                    continue;
                }
                mine.push((s.max(start), e.min(end)));
                if s < start {
                    left.push((s, start));
                }
                if e > end {
                    left.push((end, e));
                }
            }
            *maps = left;
            drop(maps);
            if mine.is_empty() {
                return Msg::reply(Err(Errno::EINVAL));
            }
            let base = shim.memory_range().0;
            for (s, e) in mine {
                shim.munmap((base + s as usize) as *mut u8, (e - s) as usize);
            }
            Msg::reply(Ok((0, 0)))
        }
        wire::VFS_READ => {
            let path = String::from_utf8_lossy(&req.payload);
            match crate::vfs::read(shim, &path) {
                Some(t) => Msg::reply(Ok((0, 0))).with(t.into_bytes()),
                None => Msg::reply(Err(Errno::ENOENT)),
            }
        }
        wire::FAULTS => {
            let script = String::from_utf8_lossy(&req.payload);
            match crate::vfs::write_faults(shim, &script) {
                Ok(n) => Msg::reply(Ok((n as u64, 0))),
                Err(e) => Msg::reply(Err(Errno::EINVAL)).with(e.to_string().into_bytes()),
            }
        }
        wire::USAGE => Msg::reply(Ok((0, 0))).with(wire::usage_bytes(&shim.usage())),
        _ => Msg::reply(Err(Errno::EINVAL)),
    }
}

/// A uapi struct from the front of `b` (zero-padded if short).
pub(crate) fn take<T: Pod>(b: &[u8]) -> T {
    let mut v = T::default();
    let n = std::mem::size_of::<T>().min(b.len());
    // SAFETY: T is Pod: any bytes are a valid T; n is within both.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), (&mut v as *mut T).cast::<u8>(), n) };
    v
}

fn bytes_of<T: Pod>(v: &T) -> Vec<u8> {
    // SAFETY: T is Pod, its bytes are initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
        .to_vec()
}

/// Runs the forwarded ioctl `req` on `f` with the argument bytes `arg`;
/// the bytes to send back.
fn ioctl(f: &File, req: u64, arg: &[u8]) -> IoctlResult<Vec<u8>> {
    let Ok(req) = u32::try_from(req) else {
        return f.ioctl(u32::MAX, 0).map(|_| Vec::new());
    };
    match req {
        uapi::DRM_IOCTL_VERSION => {
            let mut v: DrmVersion = take(arg);
            let lens = [v.name_len, v.date_len, v.desc_len];
            let mut bufs: Vec<Vec<u8>> = lens
                .iter()
                .map(|&l| vec![0u8; l.min(MAX_STR) as usize])
                .collect();
            // Every string goes to a buffer here; the client copies each to
            // its pointer in turn, failing (EFAULT) at the first bad one
            // after writing those before it, as the in-process copy does.
            let ptrs = [v.name, v.date, v.desc];
            v.name = bufs[0].as_mut_ptr() as u64;
            v.date = bufs[1].as_mut_ptr() as u64;
            v.desc = bufs[2].as_mut_ptr() as u64;
            call(f, req, &mut v)?;
            let full = [v.name_len, v.date_len, v.desc_len];
            (v.name, v.date, v.desc) = (ptrs[0], ptrs[1], ptrs[2]);
            let mut out = bytes_of(&v);
            for i in 0..3 {
                let n = lens[i].min(full[i]).min(MAX_STR) as usize;
                out.extend_from_slice(&bufs[i][..n]);
            }
            Ok(out)
        }
        uapi::DRM_IOCTL_NPUKIT_SUBMIT => {
            let n = std::mem::size_of::<Submit>();
            let mut s: Submit = take(arg);
            let user_ptr = s.bo_handles;
            let readable = arg.get(n) == Some(&1);
            let handles: Vec<u32> = arg
                .get(n + 1..)
                .unwrap_or(&[])
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            s.bo_handles = if readable { handles.as_ptr() as u64 } else { 0 };
            call(f, req, &mut s)?;
            s.bo_handles = user_ptr;
            Ok(bytes_of(&s))
        }
        uapi::DRM_IOCTL_GEM_CLOSE => {
            call(f, req, &mut take::<uapi::DrmGemClose>(arg)).map(|_| Vec::new())
        }
        uapi::DRM_IOCTL_GET_CAP => round_trip::<uapi::DrmGetCap>(f, req, arg),
        uapi::DRM_IOCTL_NPUKIT_GET_PARAM => round_trip::<uapi::GetParam>(f, req, arg),
        uapi::DRM_IOCTL_NPUKIT_BO_CREATE => round_trip::<uapi::BoCreate>(f, req, arg),
        uapi::DRM_IOCTL_NPUKIT_BO_INFO => round_trip::<uapi::BoInfo>(f, req, arg),
        uapi::DRM_IOCTL_NPUKIT_WAIT => round_trip::<uapi::Wait>(f, req, arg),
        uapi::DRM_IOCTL_NPUKIT_JOB_STATS => round_trip::<uapi::JobStats>(f, req, arg),
        _ => f.ioctl(req, 0).map(|_| Vec::new()),
    }
}

fn round_trip<T: Pod>(f: &File, req: u32, arg: &[u8]) -> IoctlResult<Vec<u8>> {
    let mut v: T = take(arg);
    call(f, req, &mut v)?;
    Ok(bytes_of(&v))
}

/// [`File::ioctl`] on a struct of ours (on this stack: the shim's copies
/// take their fast path).
fn call<T: Pod>(f: &File, req: u32, v: &mut T) -> IoctlResult {
    f.ioctl(req, v as *mut T as u64)
}

/// Runs a server at `path` until the process is killed: `npukit serve`.
pub fn serve(path: &Path, opts: Options) -> Result<(), ShimError> {
    let s = Server::start(path, opts)?;
    s.wait();
    Ok(())
}
