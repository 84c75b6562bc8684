//! The shim's ioctl argument handling through the LD_PRELOAD library's entry
//! points (`npukit_preload_*`, what the C interposer calls): random request
//! numbers (known ones, known numbers with other sizes or directions, any
//! u32 or c_ulong), argument sizes (the struct may end on an unmapped page)
//! and contents, interleaved with opens, closes, mmaps and munmaps on four
//! files. Every call returns 0 or a documented errno; at the end of every
//! input, with all files closed and mappings gone, nothing is left behind
//! (no context, BO, mapping or queued job; all device memory free) and a
//! fresh file still copies data bit-exact through the device. The
//! interpreter is `src/ioctl_ops.rs`; `ioctl_server` runs it through the
//! device server instead.
#![no_main]

use std::ffi::c_void;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use npukit_fuzz::ioctl_ops::{run, Dev, Map};
use npukit_shim::preload::*;
use npukit_shim::Usage;

/// Descriptor numbers the target registers (beyond the C side's bitmap:
/// they are never real descriptors of this process).
const FD0: i32 = 5000;

fn setup() {
    // A small device, a short watchdog and queue, so that a random job ends soon.
    std::env::set_var("NPUKIT_MEM_MB", "4");
    std::env::set_var("NPUKIT_WATCHDOG_CYCLES", "20000");
    std::env::set_var("NPUKIT_MAX_JOBS", "8");
    std::env::set_var("NPUKIT_RING", "64");
}

struct Preload([bool; 5]);

impl Dev for Preload {
    fn open(&mut self, slot: usize) {
        self.close(slot);
        assert_eq!(
            npukit_preload_register(FD0 + slot as i32, libc::O_RDWR),
            0,
            "open"
        );
        self.0[slot] = true;
    }
    fn close(&mut self, slot: usize) {
        if self.0[slot] {
            npukit_preload_close(FD0 + slot as i32);
            self.0[slot] = false;
        }
    }
    fn ioctl(&mut self, slot: usize, req: u64, arg: u64) -> i32 {
        // SAFETY: the shim only reaches `arg` through checked copies.
        unsafe { npukit_preload_ioctl(FD0 + slot as i32, req as libc::c_ulong, arg as *mut c_void) }
    }
    fn mmap(&mut self, slot: usize, m: Map) -> Result<*mut c_void, i32> {
        let mut out: *mut c_void = std::ptr::null_mut();
        let fd = FD0 + slot as i32;
        // SAFETY: `out` is a valid pointer to write.
        let r = unsafe { npukit_preload_mmap(fd, m.addr, m.len, m.flags, m.offset, &mut out) };
        if r == 0 {
            Ok(out)
        } else {
            Err(r)
        }
    }
    fn munmap(&mut self, p: *mut c_void, len: usize) -> i32 {
        npukit_preload_munmap(p, len)
    }
    fn usage(&mut self) -> Option<Usage> {
        usage()
    }
}

fuzz_target!(|data: &[u8]| {
    static INIT: Once = Once::new();
    INIT.call_once(setup);
    let mut dev = Preload([false; 5]);
    run(&mut dev, data);
    for slot in 0..5 {
        dev.close(slot);
    }
});
