//! The `ioctl` target's operations through the device server (`npukit
//! serve`): a [`Server`] in this process, a [`Client`] whose files forward
//! every ioctl over the socket (the client copies the argument in from this
//! process's memory, the server runs it, the client copies it back) and map
//! BOs from the server's memfd. The same checks: documented errnos only,
//! nothing left behind on the server after each input, a fresh file still
//! copies bit-exact.
#![no_main]

use std::ffi::c_void;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use npukit_fuzz::ioctl_ops::{run, Dev, Map};
use npukit_shim::{Client, Ioctl, Options, RemoteFile, Server, Usage};

fn client() -> &'static Client {
    static S: OnceLock<(Server, Client)> = OnceLock::new();
    let (_, c) = S.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("npukit-fuzz-{}.sock", std::process::id()));
        let opts = Options {
            mem_bytes: 4 << 20,
            watchdog_cycles: 20_000,
            max_jobs: 8,
            ring_size: 64,
            ..Options::default()
        };
        let s = Server::start(&path, opts).expect("the server starts");
        let c = Client::connect(&path).expect("the client connects");
        (s, c)
    });
    c
}

struct Remote(Vec<Option<RemoteFile>>);

impl Dev for Remote {
    fn open(&mut self, slot: usize) {
        self.0[slot] = None;
        self.0[slot] = Some(client().open().expect("open"));
    }
    fn close(&mut self, slot: usize) {
        self.0[slot] = None;
    }
    fn ioctl(&mut self, slot: usize, req: u64, arg: u64) -> i32 {
        let Some(f) = &self.0[slot] else {
            return -libc::EBADF;
        };
        // As the LD_PRELOAD entry point: a request past 32 bits is no request.
        let Ok(req) = u32::try_from(req) else {
            return -libc::ENOTTY;
        };
        match f.ioctl(req, arg) {
            Ok(()) => 0,
            Err(e) => -e.0,
        }
    }
    fn mmap(&mut self, slot: usize, m: Map) -> Result<*mut c_void, i32> {
        let Some(f) = &self.0[slot] else {
            return Err(-libc::EBADF);
        };
        if m.flags & libc::MAP_FIXED != 0 && !m.addr.is_null() {
            return Err(-libc::EINVAL);
        }
        let offset = u64::try_from(m.offset).map_err(|_| -libc::EINVAL)?;
        f.mmap(offset, m.len as u64)
            .map(|p| p.cast())
            .map_err(|e| -e.0)
    }
    fn munmap(&mut self, p: *mut c_void, len: usize) -> i32 {
        match client().munmap(p.cast(), len) {
            Ok(()) => 0,
            Err(e) => -e.0,
        }
    }
    fn usage(&mut self) -> Option<Usage> {
        client().usage().ok()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut dev = Remote((0..5).map(|_| None).collect());
    run(&mut dev, data);
});
