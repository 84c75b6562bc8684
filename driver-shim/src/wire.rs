//! The device server's wire protocol ([`crate::server`], [`crate::client`]):
//! one `SOCK_SEQPACKET` Unix socket per connection, one message per request
//! and one per reply, so that a message never has to be reassembled.
//!
//! Request: `op: u32, file: u32, a: u64, b: u64` (24 bytes, little-endian),
//! then the payload. Reply: `ret: i32` (0 or -errno), `pad: u32`, `a: u64`,
//! `b: u64`, then the payload. The HELLO reply carries the device memory's
//! memfd as `SCM_RIGHTS`.
//!
//! | op | request | reply |
//! |---|---|---|
//! | HELLO | `a`: session to join (0: a new one) | `a`: session, `b`: device memory bytes, the memfd |
//! | OPEN | - | `a`: file id, `b`: context id |
//! | CLOSE | `file` | - |
//! | IOCTL | `file`, `a`: request, payload: the argument struct (+ extras, see [`crate::server`]) | payload: the struct out (+ extras) |
//! | MMAP | `file`, `a`: mmap offset, `b`: length | `a`: physical address, `b`: length (whole pages) |
//! | MUNMAP | `a`: physical address, `b`: length | - |
//! | VFS_READ | payload: path | payload: the file's text (`-ENOENT`: no such file) |
//! | FAULTS | payload: a fault script | `a`: entries added (`-EINVAL`: the payload is the parse error) |
//! | USAGE | - | payload: [`crate::driver::Usage`] as 7 u64 |

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub const HELLO: u32 = 1;
pub const OPEN: u32 = 2;
pub const CLOSE: u32 = 3;
pub const IOCTL: u32 = 4;
pub const MMAP: u32 = 5;
pub const MUNMAP: u32 = 6;
pub const VFS_READ: u32 = 7;
pub const FAULTS: u32 = 8;
pub const USAGE: u32 = 9;

/// Header bytes of a request or a reply.
pub const HEADER: usize = 24;
/// Largest message (a SUBMIT of 4096 handles is 16 KiB; a debugfs file a few).
pub const MAX_MSG: usize = 128 << 10;

/// A request or a reply: the header's four fields and the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Msg {
    /// The op (request) or the result, 0 or -errno, as u32 (reply).
    pub code: u32,
    /// The file id (request); 0 (reply).
    pub file: u32,
    pub a: u64,
    pub b: u64,
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn new(code: u32, file: u32, a: u64, b: u64) -> Msg {
        Msg {
            code,
            file,
            a,
            b,
            payload: Vec::new(),
        }
    }

    /// A reply: `Ok` is 0, `Err(e)` is -errno.
    pub fn reply(r: Result<(u64, u64), crate::Errno>) -> Msg {
        match r {
            Ok((a, b)) => Msg::new(0, 0, a, b),
            Err(e) => Msg::new((-e.0) as u32, 0, 0, 0),
        }
    }

    pub fn with(mut self, payload: Vec<u8>) -> Msg {
        self.payload = payload;
        self
    }

    /// A reply's result.
    pub fn result(&self) -> Result<(), crate::Errno> {
        match self.code as i32 {
            0 => Ok(()),
            e => Err(crate::Errno(-e)),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + self.payload.len());
        v.extend_from_slice(&self.code.to_le_bytes());
        v.extend_from_slice(&self.file.to_le_bytes());
        v.extend_from_slice(&self.a.to_le_bytes());
        v.extend_from_slice(&self.b.to_le_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        if b.len() < HEADER {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u32_at(i) as u64 | (u32_at(i + 4) as u64) << 32;
        Some(Msg {
            code: u32_at(0),
            file: u32_at(4),
            a: u64_at(8),
            b: u64_at(16),
            payload: b[HEADER..].to_vec(),
        })
    }
}

/// One connected `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub struct Sock(OwnedFd);

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr(path: &std::path::Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all zeros is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_bytes();
    if p.len() >= a.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path {} is too long", path.display()),
        ));
    }
    for (d, s) in a.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    Ok((
        a,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ))
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening socket at `path` (an old socket file there is replaced).
pub fn listen(path: &std::path::Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let (a, len) = sockaddr(path)?;
    let _ = std::fs::remove_file(path);
    // SAFETY: a is a valid sockaddr_un of length len.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    // SAFETY: fd is a bound socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// The next connection on a listening socket.
pub fn accept(l: &OwnedFd) -> io::Result<Sock> {
    // SAFETY: l is a listening socket; no address is asked for.
    let fd = cvt(unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok(Sock(unsafe { OwnedFd::from_raw_fd(fd) }))
}

impl Sock {
    /// Connects to the server at `path`.
    pub fn connect(path: &std::path::Path) -> io::Result<Sock> {
        let fd = socket()?;
        let (a, len) = sockaddr(path)?;
        // SAFETY: a is a valid sockaddr_un of length len.
        cvt(unsafe { libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot connect to the npukit server at {}: {e}",
                        path.display()
                    ),
                )
            })?;
        Ok(Sock(fd))
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Sends one message, with a descriptor attached if `fd` is given.
    pub fn send(&self, m: &Msg, fd: Option<RawFd>) -> io::Result<()> {
        let bytes = m.encode();
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        let mut cbuf = [0u64; 4];
        // SAFETY: msghdr is plain data; all zeros is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        if let Some(fd) = fd {
            // SAFETY: cbuf has room for one SCM_RIGHTS header and descriptor
            // (CMSG_SPACE(4) <= 32 bytes); the header is filled before use.
            unsafe {
                h.msg_control = cbuf.as_mut_ptr().cast();
                h.msg_controllen = libc::CMSG_SPACE(4) as _;
                let c = libc::CMSG_FIRSTHDR(&h);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(4) as _;
                std::ptr::copy_nonoverlapping(
                    (&fd as *const RawFd).cast::<u8>(),
                    libc::CMSG_DATA(c),
                    4,
                );
            }
        }
        loop {
            // SAFETY: h points at live buffers for the call.
            let n = unsafe { libc::sendmsg(self.raw(), &h, libc::MSG_NOSIGNAL) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one message and a descriptor sent with it; `Ok(None)` when
    /// the peer has closed the connection.
    pub fn recv(&self) -> io::Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr is plain data; all zeros is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_control = cbuf.as_mut_ptr().cast();
        h.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = loop {
            // SAFETY: h points at live buffers for the call.
            let n = unsafe { libc::recvmsg(self.raw(), &mut h, libc::MSG_CMSG_CLOEXEC) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut fd = None;
        // SAFETY: the kernel filled msg_control; CMSG_* walk it within
        // msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let mut raw: RawFd = -1;
                    std::ptr::copy_nonoverlapping(
                        libc::CMSG_DATA(c),
                        (&mut raw as *mut RawFd).cast::<u8>(),
                        4,
                    );
                    if raw >= 0 {
                        fd = Some(OwnedFd::from_raw_fd(raw));
                    }
                }
                c = libc::CMSG_NXTHDR(&h, c);
            }
        }
        if n == 0 {
            return Ok(None);
        }
        if h.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "npukit server: message longer than the protocol allows",
            ));
        }
        match Msg::decode(&buf[..n]) {
            Some(m) => Ok(Some((m, fd))),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "npukit server: message shorter than its header",
            )),
        }
    }

    /// Sends a request and waits for its reply.
    pub fn call(&self, m: &Msg) -> io::Result<(Msg, Option<OwnedFd>)> {
        self.send(m, None)?;
        self.recv()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the npukit server closed the connection",
            )
        })
    }
}

/// Usage as the USAGE reply's payload.
pub fn usage_bytes(u: &crate::driver::Usage) -> Vec<u8> {
    [
        u.contexts as u64,
        u.objects as u64,
        u.mappings as u64,
        u.jobs_pending as u64,
        u.free_bytes,
        u.total_bytes,
        u.jobs_accepted,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

/// The USAGE payload back.
pub fn usage_from(b: &[u8]) -> Option<crate::driver::Usage> {
    let v: Vec<u64> = b
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let &[contexts, objects, mappings, jobs_pending, free_bytes, total_bytes, jobs_accepted] =
        v.as_slice()
    else {
        return None;
    };
    Some(crate::driver::Usage {
        contexts: contexts as usize,
        objects: objects as usize,
        mappings: mappings as usize,
        jobs_pending: jobs_pending as usize,
        free_bytes,
        total_bytes,
        jobs_accepted,
    })
}
