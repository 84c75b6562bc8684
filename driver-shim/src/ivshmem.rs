//! The NPU as a PCI device of a QEMU guest: the host side of QEMU's
//! `ivshmem-doorbell` device (`npukit-ivshmem`, `docs/kernel.md`).
//!
//! QEMU connects to a Unix socket and expects the ivshmem-server protocol
//! (QEMU's `docs/specs/ivshmem-spec`): every message is one little-endian
//! `i64`, some with a file descriptor attached (`SCM_RIGHTS`):
//!
//! 1. the protocol version (0), no descriptor;
//! 2. the client's own peer ID, no descriptor;
//! 3. `-1` with the shared-memory descriptor;
//! 4. for every peer (the client itself included), one message per
//!    interrupt vector: the peer's ID with an eventfd. The client waits on
//!    its own eventfds (each is an MSI-X vector) and writes another peer's
//!    eventfd when the guest writes `peer << 16 | vector` to the doorbell.
//!
//! This server is peer 0 (its one eventfd is the doorbell the guest rings
//! after posting a mailbox request); the guest is peer 1. The shared memory
//! is the card's memory (the device's [`DeviceMemory`]); its page 0 holds the
//! register mailbox of `driver-shim/include/npukit_ivshmem.h`. The server
//! owns the [`Device`] (model, rtl or lockstep, behind a [`FaultDevice`] for
//! the simulation's hang and reset lines): it answers mailbox requests, runs
//! the device while it has work, and signals MSI-X vector 0 on each rising
//! edge of the interrupt line.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};

use npukit_abi::regs;
use npukit_sim::{Device, DeviceMemory};

use crate::backend::BackendDevice;
use crate::fault::FaultDevice;

/// Mailbox layout (byte offsets in page 0), as in `npukit_ivshmem.h`.
pub mod mbox {
    pub const MAGIC_VALUE: u32 = 0x584F_424D;
    pub const VERSION_VALUE: u32 = 1;
    pub const MAGIC: usize = 0x000;
    pub const VERSION: usize = 0x004;
    pub const PLATFORM: usize = 0x008;
    pub const SERVER_PEER: usize = 0x00C;
    pub const LOST: usize = 0x010;
    pub const REQ_SEQ: usize = 0x040;
    pub const REQ_OP: usize = 0x044;
    pub const REQ_OFFSET: usize = 0x048;
    pub const REQ_VALUE: usize = 0x04C;
    pub const REQ_ARG_HI: usize = 0x050;
    pub const RESP_SEQ: usize = 0x080;
    pub const RESP_VALUE: usize = 0x084;
    pub const RESP_VALUE_HI: usize = 0x088;
    pub const RESP_STATUS: usize = 0x08C;
    pub const OP_READ: u32 = 1;
    pub const OP_WRITE: u32 = 2;
    pub const OP_CYCLE: u32 = 3;
    pub const OP_ARM_HANG: u32 = 4;
    pub const OP_ARM_RESET: u32 = 5;
    pub const OP_DISARM: u32 = 6;
    pub const STATUS_OK: u32 = 0;
    pub const STATUS_BAD_OP: u32 = 1;
}

/// The ivshmem protocol version this server speaks.
pub const PROTOCOL_VERSION: i64 = 0;
/// This server's peer ID (the guest rings its vector 0).
pub const SERVER_PEER: i64 = 0;
/// The ID given to the (single) client.
pub const CLIENT_PEER: i64 = 1;

fn os_err<T>(what: &str) -> io::Result<T> {
    let e = io::Error::last_os_error();
    Err(io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// The shared memory: a memfd mapped into this process; device physical
/// address A is byte A. The guest writes it at any time (as a CPU writes a
/// card's memory over PCI), so it is touched through raw copies and atomics only.
#[derive(Debug)]
pub struct ShmMemory {
    fd: OwnedFd,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value and unmapped only in Drop; all
// access is raw copies or atomics (hardware-like shared memory).
unsafe impl Send for ShmMemory {}

impl ShmMemory {
    /// A zeroed shared memory of `len` bytes (a power of two: a PCI BAR).
    pub fn new(len: usize) -> io::Result<Self> {
        if !len.is_power_of_two() || len < 2 * crate::mem::PAGE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shared memory of {len} bytes: must be a power of two of at least 8 KiB"),
            ));
        }
        // SAFETY: a NUL-terminated name and valid flags.
        let fd = unsafe { libc::memfd_create(c"npukit-card-memory".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return os_err("memfd_create");
        }
        // SAFETY: fd was just created and is owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return os_err("ftruncate of the shared memory");
        }
        // SAFETY: a fresh shared mapping of the whole file.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return os_err("mmap of the shared memory");
        }
        Ok(ShmMemory {
            fd,
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= crate::mem::PAGE as usize);
        // SAFETY: in page 0 of the mapping, 4-byte aligned (the mapping is
        // page-aligned); the mapping outlives the reference.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast()) }
    }

    /// A mailbox word (Acquire: the fields written before it are visible).
    pub fn load32(&self, off: usize) -> u32 {
        u32::from_le(self.word(off).load(Ordering::Acquire))
    }

    /// Writes a mailbox word (Release: the fields written before it go first).
    pub fn store32(&self, off: usize, v: u32) {
        self.word(off).store(v.to_le(), Ordering::Release)
    }

    fn range(&self, addr: u64, n: usize) -> Option<usize> {
        let a = usize::try_from(addr).ok()?;
        (a.checked_add(n)? <= self.len).then_some(a)
    }
}

impl Drop for ShmMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new().
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

impl DeviceMemory for ShmMemory {
    fn size(&self) -> u64 {
        self.len as u64
    }
    fn read(&self, addr: u64, buf: &mut [u8]) {
        match self.range(addr, buf.len()) {
            // SAFETY: a..a+len is inside the mapping.
            Some(a) => unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.add(a), buf.as_mut_ptr(), buf.len())
            },
            None => buf.fill(0),
        }
    }
    fn write(&mut self, addr: u64, data: &[u8]) {
        if let Some(a) = self.range(addr, data.len()) {
            // SAFETY: a..a+len is inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(a), data.len()) }
        }
    }
}

/// A nonblocking eventfd.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: valid flags.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return os_err("eventfd");
        }
        // SAFETY: just created.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
    /// Adds one to the counter (the peer waiting on it wakes).
    pub fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: an 8-byte buffer; a full counter (EAGAIN) still wakes the waiter.
        unsafe { libc::write(self.fd(), one.as_ptr().cast(), 8) };
    }
    /// Reads and clears the counter; 0 if it was not signalled.
    pub fn drain(&self) -> u64 {
        let mut b = [0u8; 8];
        // SAFETY: an 8-byte buffer.
        let n = unsafe { libc::read(self.fd(), b.as_mut_ptr().cast(), 8) };
        if n == 8 {
            u64::from_ne_bytes(b)
        } else {
            0
        }
    }
}

/// Sends one protocol message: `value` as a little-endian i64, with `fd`
/// attached when given.
pub fn send_msg(sock: &UnixStream, value: i64, fd: Option<RawFd>) -> io::Result<()> {
    let bytes = value.to_le_bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid; fields set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control holds CMSG_SPACE(sizeof fd) aligned bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    // SAFETY: msg points at live buffers for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n != bytes.len() as isize {
        return os_err("sendmsg to the ivshmem client");
    }
    Ok(())
}

/// Receives one protocol message (the client's side; used by the tests and
/// by anyone checking a server): the value and the descriptor, if any.
pub fn recv_msg(sock: &UnixStream) -> io::Result<(i64, Option<OwnedFd>)> {
    let mut bytes = [0u8; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: 8,
    };
    // SAFETY: pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: zeroed msghdr, fields set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n != 8 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("short protocol message ({n} bytes)"),
        ));
    }
    let mut fd = None;
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
            fd = Some(OwnedFd::from_raw_fd(raw));
        }
    }
    Ok((i64::from_le_bytes(bytes), fd))
}

/// What the server did, for its closing line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub requests: u64,
    pub irqs: u64,
    pub cycles: u64,
}

/// Cycles simulated per slice while the device has work.
pub const SLICE_CYCLES: u64 = 4096;
/// Wall time per slice of a hung device (its clock still runs).
pub const HUNG_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// The host side of one ivshmem-doorbell device.
pub struct Server {
    dev: FaultDevice,
    mem: ShmMemory,
    vectors: u32,
    /// This server's eventfds (peer 0), one per vector; vector 0 is the doorbell.
    own: Vec<EventFd>,
    /// The client's eventfds (peer 1): signalling vector v raises its MSI-X vector v.
    client: Vec<EventFd>,
    last_seq: u32,
    irq_line: bool,
    lost: bool,
    stats: Stats,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("mem", &self.mem.len())
            .field("vectors", &self.vectors)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `dev` with `mem_bytes` of card memory (a power of two)
    /// and `vectors` interrupt vectors per peer (QEMU's `vectors=` property).
    pub fn new(
        dev: Box<dyn BackendDevice>,
        platform: u64,
        mem_bytes: usize,
        vectors: u32,
    ) -> io::Result<Self> {
        let mut dev = dev;
        // The guest writes card memory (mailbox, ring, tables, BOs) while the
        // device runs: a lockstep pair compares registers, events and cycles,
        // not memory.
        dev.set_compare_memory(false);
        if vectors == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at least one interrupt vector is needed",
            ));
        }
        let mem = ShmMemory::new(mem_bytes)?;
        mem.store32(mbox::VERSION, mbox::VERSION_VALUE);
        mem.store32(mbox::PLATFORM, platform as u32);
        mem.store32(mbox::SERVER_PEER, SERVER_PEER as u32);
        mem.store32(mbox::MAGIC, mbox::MAGIC_VALUE);
        let own = (0..vectors)
            .map(|_| EventFd::new())
            .collect::<io::Result<_>>()?;
        let client = (0..vectors)
            .map(|_| EventFd::new())
            .collect::<io::Result<_>>()?;
        Ok(Server {
            dev: FaultDevice::new(dev),
            mem,
            vectors,
            own,
            client,
            last_seq: 0,
            irq_line: false,
            lost: false,
            stats: Stats::default(),
        })
    }

    pub fn memory(&self) -> &ShmMemory {
        &self.mem
    }

    pub fn stats(&self) -> Stats {
        Stats {
            cycles: self.dev.cycle(),
            ..self.stats
        }
    }

    /// The messages a newly connected client gets (protocol steps 1-4).
    pub fn handshake(&self, sock: &UnixStream) -> io::Result<()> {
        send_msg(sock, PROTOCOL_VERSION, None)?;
        send_msg(sock, CLIENT_PEER, None)?;
        send_msg(sock, -1, Some(self.mem.fd()))?;
        for e in &self.own {
            send_msg(sock, SERVER_PEER, Some(e.fd()))?;
        }
        for e in &self.client {
            send_msg(sock, CLIENT_PEER, Some(e.fd()))?;
        }
        Ok(())
    }

    /// Answers the pending mailbox request, if there is one. Returns whether
    /// there was.
    pub fn service_mailbox(&mut self) -> bool {
        let seq = self.mem.load32(mbox::REQ_SEQ);
        if seq == self.last_seq {
            return false;
        }
        let op = self.mem.load32(mbox::REQ_OP);
        let off = self.mem.load32(mbox::REQ_OFFSET);
        let val = self.mem.load32(mbox::REQ_VALUE);
        let arg = (self.mem.load32(mbox::REQ_ARG_HI) as u64) << 32 | val as u64;
        let (mut lo, mut hi, mut status) = (0u32, 0u32, mbox::STATUS_OK);
        let now = self.dev.cycle();
        match op {
            mbox::OP_READ => lo = self.dev.mmio_read(off),
            mbox::OP_WRITE => self.dev.mmio_write(off, val),
            mbox::OP_CYCLE => {
                lo = now as u32;
                hi = (now >> 32) as u32;
            }
            mbox::OP_ARM_HANG => self.dev.arm_hang(now.saturating_add(arg)),
            mbox::OP_ARM_RESET => self.dev.arm_reset(now.saturating_add(arg)),
            mbox::OP_DISARM => self.dev.disarm(),
            _ => status = mbox::STATUS_BAD_OP,
        }
        self.mem.store32(mbox::RESP_VALUE, lo);
        self.mem.store32(mbox::RESP_VALUE_HI, hi);
        self.mem.store32(mbox::RESP_STATUS, status);
        self.mem.store32(mbox::RESP_SEQ, seq);
        self.last_seq = seq;
        self.stats.requests += 1;
        self.update_irq();
        true
    }

    /// Signals MSI-X vector 0 on a rising edge of the interrupt line.
    fn update_irq(&mut self) {
        let line = self.dev.irq_pending();
        if line && !self.irq_line {
            self.client[0].signal();
            self.stats.irqs += 1;
        }
        self.irq_line = line;
    }

    /// Whether the device has work: running with descriptors in the ring or
    /// a unit busy, or hung (its clock still runs, for the driver's watchdog).
    pub fn active(&mut self) -> bool {
        if self.dev.is_frozen() {
            return true;
        }
        let d = &mut self.dev;
        let control = d.mmio_read(regs::CONTROL);
        let status = d.mmio_read(regs::STATUS);
        control & regs::CONTROL_RUN != 0
            && status & regs::STATUS_HALTED == 0
            && (status & regs::STATUS_BUSY != 0
                || d.mmio_read(regs::RING_HEAD) != d.mmio_read(regs::RING_TAIL))
    }

    /// Runs one slice of the device.
    pub fn run_slice(&mut self) {
        let limit = self.dev.cycle().saturating_add(SLICE_CYCLES);
        // Stop at a new interrupt so that it is signalled at once; with the
        // line already high, run on (the driver clears it).
        let stop = !self.irq_line;
        self.dev.run_until(&mut self.mem, limit, stop);
        self.update_irq();
        if !self.lost {
            if let Some(report) = self.dev.lost() {
                eprintln!(
                    "npukit-ivshmem: device lost at cycle {}; the driver fails its jobs:\n{report}",
                    self.dev.cycle()
                );
                self.mem.store32(mbox::LOST, 1);
                self.lost = true;
                // Wake the driver: it looks at LOST when it services the device.
                self.client[0].signal();
            }
        }
    }

    /// Serves one client on `sock` until it disconnects.
    pub fn serve_client(&mut self, sock: &UnixStream) -> io::Result<()> {
        self.handshake(sock)?;
        let doorbell = self.own[0].fd();
        let mut last_hung_slice = std::time::Instant::now();
        loop {
            let busy = self.active();
            // A hung device's clock runs at SLICE_CYCLES per HUNG_SLICE of
            // wall time (about 4 M cycles/s): the driver's watchdog sees time
            // pass, and a job stays hung long enough to be looked at.
            let hung = self.dev.is_frozen();
            let mut fds = [
                libc::pollfd {
                    fd: doorbell,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout = match (busy, hung) {
                (_, true) => 1,
                (true, false) => 0,
                (false, false) => 100,
            };
            // SAFETY: two valid pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[1].revents != 0 {
                // The client sends nothing after connecting: data or a hang-up
                // both mean it is gone (QEMU exited).
                return Ok(());
            }
            if fds[0].revents != 0 {
                self.own[0].drain();
            }
            // Requests are posted before the doorbell; also look when no
            // doorbell came (a slice may have overlapped the write).
            while self.service_mailbox() {}
            if busy && (!hung || last_hung_slice.elapsed() >= HUNG_SLICE) {
                self.run_slice();
                if hung {
                    last_hung_slice = std::time::Instant::now();
                }
                while self.service_mailbox() {}
            }
        }
    }

    /// Accepts one client on `listener` and serves it until it disconnects.
    pub fn serve(&mut self, listener: &UnixListener) -> io::Result<Stats> {
        let (sock, _) = listener.accept()?;
        self.serve_client(&sock)?;
        Ok(self.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use npukit_sim::NpuConfig;

    fn server() -> Server {
        let dev = Backend::Model.open(&NpuConfig::default()).unwrap();
        Server::new(dev, 0, 1 << 20, 1).unwrap()
    }

    #[test]
    fn header_matches_the_rust_layout() {
        let h = include_str!("../include/npukit_ivshmem.h");
        let get = |name: &str| -> u64 {
            let line = h
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} not in the header"));
            let v = line
                .split_whitespace()
                .nth(2)
                .unwrap()
                .trim_end_matches('u');
            match v.strip_prefix("0x") {
                Some(x) => u64::from_str_radix(x, 16).unwrap(),
                None => v.parse().unwrap(),
            }
        };
        use mbox::*;
        for (n, v) in [
            ("MAGIC_VALUE", MAGIC_VALUE as u64),
            ("VERSION_VALUE", VERSION_VALUE as u64),
            ("MAGIC", MAGIC as u64),
            ("VERSION", VERSION as u64),
            ("PLATFORM", PLATFORM as u64),
            ("SERVER_PEER", SERVER_PEER as u64),
            ("LOST", LOST as u64),
            ("REQ_SEQ", REQ_SEQ as u64),
            ("REQ_OP", REQ_OP as u64),
            ("REQ_OFFSET", REQ_OFFSET as u64),
            ("REQ_VALUE", REQ_VALUE as u64),
            ("REQ_ARG_HI", REQ_ARG_HI as u64),
            ("RESP_SEQ", RESP_SEQ as u64),
            ("RESP_VALUE", RESP_VALUE as u64),
            ("RESP_VALUE_HI", RESP_VALUE_HI as u64),
            ("RESP_STATUS", RESP_STATUS as u64),
            ("OP_READ", OP_READ as u64),
            ("OP_WRITE", OP_WRITE as u64),
            ("OP_CYCLE", OP_CYCLE as u64),
            ("OP_ARM_HANG", OP_ARM_HANG as u64),
            ("OP_ARM_RESET", OP_ARM_RESET as u64),
            ("OP_DISARM", OP_DISARM as u64),
            ("STATUS_OK", STATUS_OK as u64),
            ("STATUS_BAD_OP", STATUS_BAD_OP as u64),
        ] {
            assert_eq!(get(&format!("NPUKIT_MBOX_{n}")), v, "{n}");
        }
    }

    #[test]
    fn handshake_follows_the_ivshmem_protocol() {
        let s = server();
        let (a, b) = UnixStream::pair().unwrap();
        s.handshake(&a).unwrap();
        let (v, fd) = recv_msg(&b).unwrap();
        assert_eq!((v, fd.is_none()), (PROTOCOL_VERSION, true));
        let (id, fd) = recv_msg(&b).unwrap();
        assert_eq!((id, fd.is_none()), (CLIENT_PEER, true));
        let (m, shm) = recv_msg(&b).unwrap();
        assert_eq!(m, -1);
        // The shared memory is the server's: a word written there is seen
        // through the received descriptor.
        let shm = shm.expect("shared memory descriptor");
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(shm.as_raw_fd(), &mut st) }, 0);
        assert_eq!(st.st_size as usize, 1 << 20);
        let mut magic = [0u8; 4];
        let n = unsafe { libc::pread(shm.as_raw_fd(), magic.as_mut_ptr().cast(), 4, 0) };
        assert_eq!(n, 4);
        assert_eq!(u32::from_le_bytes(magic), mbox::MAGIC_VALUE);
        let (p0, e0) = recv_msg(&b).unwrap();
        let (p1, e1) = recv_msg(&b).unwrap();
        assert_eq!((p0, p1), (SERVER_PEER, CLIENT_PEER));
        // Writing the server's eventfd is the doorbell: the server sees it.
        let one = 1u64.to_ne_bytes();
        let e0 = e0.unwrap();
        assert_eq!(
            unsafe { libc::write(e0.as_raw_fd(), one.as_ptr().cast(), 8) },
            8
        );
        assert_eq!(s.own[0].drain(), 1);
        assert!(e1.is_some());
    }

    fn request(s: &mut Server, seq: u32, op: u32, off: u32, val: u32) -> (u32, u32) {
        let m = &s.mem;
        m.store32(mbox::REQ_OP, op);
        m.store32(mbox::REQ_OFFSET, off);
        m.store32(mbox::REQ_VALUE, val);
        m.store32(mbox::REQ_ARG_HI, 0);
        m.store32(mbox::REQ_SEQ, seq);
        assert!(s.service_mailbox());
        assert!(!s.service_mailbox(), "a request is answered once");
        assert_eq!(s.mem.load32(mbox::RESP_SEQ), seq);
        (
            s.mem.load32(mbox::RESP_VALUE),
            s.mem.load32(mbox::RESP_STATUS),
        )
    }

    #[test]
    fn mailbox_reads_and_writes_registers() {
        let mut s = server();
        assert_eq!(
            request(&mut s, 1, mbox::OP_READ, regs::ID, 0),
            (npukit_abi::DEVICE_ID, 0)
        );
        request(&mut s, 2, mbox::OP_WRITE, regs::IRQ_MASK, 3);
        assert_eq!(request(&mut s, 3, mbox::OP_READ, regs::IRQ_MASK, 0).0, 3);
        assert_eq!(request(&mut s, 4, 99, 0, 0).1, mbox::STATUS_BAD_OP);
    }

    #[test]
    fn a_job_in_shared_memory_runs_and_interrupts_the_client() {
        use npukit_abi::desc::{Fence, Op};
        let mut s = server();
        // Ring at 0x1000 with one FENCE (IRQ), no translation.
        let d = npukit_abi::Descriptor::new(Op::Fence(Fence {
            seq: 7,
            writeback: None,
            irq: true,
        }))
        .encode();
        s.mem.write(0x1000, &d);
        let mut seq = 0;
        let mut w = |s: &mut Server, op, off, v| {
            seq += 1;
            request(s, seq, op, off, v);
        };
        w(&mut s, mbox::OP_WRITE, regs::RING_BASE_LO, 0x1000);
        w(&mut s, mbox::OP_WRITE, regs::RING_SIZE, 16);
        w(&mut s, mbox::OP_WRITE, regs::IRQ_MASK, regs::IRQ_FENCE);
        w(&mut s, mbox::OP_WRITE, regs::CONTROL, regs::CONTROL_RUN);
        assert!(!s.active(), "an empty ring is idle");
        w(&mut s, mbox::OP_WRITE, regs::RING_TAIL, 1);
        let mut slices = 0;
        while s.active() {
            s.run_slice();
            slices += 1;
            assert!(slices < 100, "the FENCE never completed");
        }
        assert_eq!(s.dev.mmio_read(regs::FENCE_SEQ), 7);
        assert_eq!(s.client[0].drain(), 1, "one MSI-X for the FENCE interrupt");
        // Frozen by the hang line, the device stays active and its clock runs.
        w(&mut s, mbox::OP_ARM_HANG, 0, 0);
        s.mem.write(0x1020, &d);
        w(&mut s, mbox::OP_WRITE, regs::RING_TAIL, 2);
        let c0 = s.dev.cycle();
        for _ in 0..10 {
            assert!(s.active());
            s.run_slice();
        }
        assert!(s.dev.cycle() >= c0 + 10 * SLICE_CYCLES);
        assert_eq!(
            s.dev.mmio_read(regs::RING_HEAD),
            1,
            "no progress while hung"
        );
    }
}
