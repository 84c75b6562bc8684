//! `npukit-ivshmem`, the host side of the QEMU guest's NPU, driven the way
//! QEMU drives it (docs/kernel.md): a client connects to its socket, gets
//! the ivshmem-server handshake, maps the shared memory, posts register
//! reads and writes in the mailbox, rings the doorbell and waits for the
//! answers; the server exits when the client goes. No QEMU needed.
#![allow(clippy::unwrap_used)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use npukit_abi::regs;
use npukit_shim::ivshmem::{mbox, recv_msg, CLIENT_PEER, PROTOCOL_VERSION, SERVER_PEER};

const BIN: &str = env!("CARGO_BIN_EXE_npukit-ivshmem");

fn socket_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("{name}-{}.sock", std::process::id()))
}

struct Client {
    _sock: UnixStream,
    shm: *mut u8,
    doorbell: OwnedFd,
    irq: OwnedFd,
    seq: u32,
}

impl Client {
    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: page 0 of a live shared mapping, 4-byte aligned.
        unsafe { AtomicU32::from_ptr(self.shm.add(off).cast()) }
    }

    fn request(&mut self, op: u32, off: u32, val: u32) -> u32 {
        self.seq += 1;
        self.word(mbox::REQ_OP).store(op, Ordering::Release);
        self.word(mbox::REQ_OFFSET).store(off, Ordering::Release);
        self.word(mbox::REQ_VALUE).store(val, Ordering::Release);
        self.word(mbox::REQ_ARG_HI).store(0, Ordering::Release);
        self.word(mbox::REQ_SEQ).store(self.seq, Ordering::Release);
        let one = 1u64.to_ne_bytes();
        let n = unsafe { libc::write(self.doorbell.as_raw_fd(), one.as_ptr().cast(), 8) };
        assert_eq!(n, 8);
        let t = Instant::now();
        while self.word(mbox::RESP_SEQ).load(Ordering::Acquire) != self.seq {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no answer to request {}",
                self.seq
            );
            std::thread::yield_now();
        }
        assert_eq!(self.word(mbox::RESP_STATUS).load(Ordering::Acquire), 0);
        self.word(mbox::RESP_VALUE).load(Ordering::Acquire)
    }
}

fn connect(path: &PathBuf) -> Client {
    let t = Instant::now();
    let sock = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(_) if t.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("connect {}: {e}", path.display()),
        }
    };
    assert_eq!(recv_msg(&sock).unwrap().0, PROTOCOL_VERSION);
    assert_eq!(recv_msg(&sock).unwrap().0, CLIENT_PEER);
    let (m, shm_fd) = recv_msg(&sock).unwrap();
    assert_eq!(m, -1);
    let shm_fd = shm_fd.unwrap();
    let (p0, doorbell) = recv_msg(&sock).unwrap();
    let (p1, irq) = recv_msg(&sock).unwrap();
    assert_eq!((p0, p1), (SERVER_PEER, CLIENT_PEER));
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(shm_fd.as_raw_fd(), &mut st) }, 0);
    assert_eq!(st.st_size, 8 << 20, "--mem-mb 8");
    let shm = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            st.st_size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            shm_fd.as_raw_fd(),
            0,
        )
    };
    assert_ne!(shm, libc::MAP_FAILED);
    let c = Client {
        _sock: sock,
        shm: shm.cast(),
        doorbell: doorbell.unwrap(),
        irq: irq.unwrap(),
        seq: 0,
    };
    assert_eq!(
        c.word(mbox::MAGIC).load(Ordering::Acquire),
        mbox::MAGIC_VALUE
    );
    assert_eq!(c.word(mbox::SERVER_PEER).load(Ordering::Acquire), 0);
    c
}

#[test]
fn a_client_reads_registers_runs_a_fence_and_gets_the_interrupt() {
    let path = socket_path("npu");
    let server = Command::new(BIN)
        .args(["--socket", path.to_str().unwrap(), "--mem-mb", "8"])
        .env("NPUKIT_BACKEND", "model")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = connect(&path);
    assert_eq!(c.request(mbox::OP_READ, regs::ID, 0), npukit_abi::DEVICE_ID);
    // A FENCE with the IRQ flag in a ring at 0x1000; its interrupt arrives
    // on the client's eventfd (the guest's MSI-X vector 0).
    let fence: [u32; 8] = [7 | 1 << 12, 42, 0, 0, 0, 0, 0, 0];
    for (i, w) in fence.iter().enumerate() {
        unsafe { (c.shm.add(0x1000 + 4 * i) as *mut u32).write_volatile(w.to_le()) };
    }
    c.request(mbox::OP_WRITE, regs::RING_BASE_LO, 0x1000);
    c.request(mbox::OP_WRITE, regs::RING_SIZE, 16);
    c.request(mbox::OP_WRITE, regs::IRQ_MASK, regs::IRQ_FENCE);
    c.request(mbox::OP_WRITE, regs::CONTROL, regs::CONTROL_RUN);
    c.request(mbox::OP_WRITE, regs::RING_TAIL, 1);
    let mut pfd = libc::pollfd {
        fd: c.irq.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 10_000) },
        1,
        "no interrupt"
    );
    assert_eq!(c.request(mbox::OP_READ, regs::FENCE_SEQ, 0), 42);
    assert_eq!(
        c.request(mbox::OP_READ, regs::IRQ_STATUS, 0),
        regs::IRQ_FENCE
    );
    drop(c);
    let out = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "server failed:\n{log}");
    assert!(
        log.contains("client gone after 8 mailbox requests, 1 interrupts"),
        "{log}"
    );
    assert!(!path.exists(), "the socket is removed at exit");
}

#[test]
fn bad_arguments_are_refused_with_the_problem_named() {
    for (args, want) in [
        (
            &["--mem-mb", "3", "--socket", "x"][..],
            "--mem-mb \"3\": a power of two",
        ),
        (
            &["--vectors", "0", "--socket", "x"][..],
            "--vectors \"0\": 1 to 64",
        ),
        (&["--mem-mb", "64"][..], "--socket is required"),
        (&["--frobnicate"][..], "unknown argument \"--frobnicate\""),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = Command::new(BIN)
        .args(["--socket", "/nonexistent-dir/npu.sock"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bind /nonexistent-dir/npu.sock"), "{err}");
    let out = Command::new(BIN)
        .args(["--socket", "x"])
        .env("NPUKIT_BACKEND", "quantum")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quantum"));
}
