//! Device memory and its allocator.
//!
//! [`HostMemory`] is the card's memory: one page-aligned host allocation that the
//! device reaches through [`DeviceMemory`] and user space reaches through
//! `mmap` (the LD_PRELOAD path hands out pointers into it). Both sides may touch
//! it at the same time, as with real hardware, so it is accessed through raw
//! pointers only, never through Rust references.
//!
//! [`Allocator`]: first-fit over page-granular free ranges; frees coalesce.

use npukit_sim::DeviceMemory;

/// Allocation granule and alignment: one translation page.
pub const PAGE: u64 = npukit_abi::xlat::PAGE_BYTES;

/// A page-aligned, zero-initialised block of host memory used as device memory.
///
/// [`HostMemory::new`] is private anonymous memory (a forked child gets a
/// copy, as it does of any other memory). [`HostMemory::shared`] is a memfd
/// mapped shared, so that a device server ([`crate::server`]) can hand the
/// same memory to its client processes, which map their BOs from it
/// ([`HostMemory::fd`]).
#[derive(Debug)]
pub struct HostMemory {
    ptr: *mut u8,
    len: usize,
    fd: Option<libc::c_int>,
}

// SAFETY: the block is owned by this value and unmapped only in Drop; concurrent
// access goes through raw-pointer copies (hardware-like shared memory).
unsafe impl Send for HostMemory {}
unsafe impl Sync for HostMemory {}

impl HostMemory {
    /// `len` zeroed bytes (rounded up to a page) of private memory; `None`
    /// if `len` is 0 or the memory cannot be had.
    pub fn new(len: u64) -> Option<Self> {
        Self::map(len, false)
    }

    /// As [`HostMemory::new`], backed by a memfd that other processes can map.
    pub fn shared(len: u64) -> Option<Self> {
        Self::map(len, true)
    }

    fn map(len: u64, shared: bool) -> Option<Self> {
        let len = usize::try_from(len.checked_next_multiple_of(PAGE)?).ok()?;
        if len == 0 {
            return None;
        }
        let fd = if shared {
            // SAFETY: a C string literal; valid flags.
            let fd =
                unsafe { libc::memfd_create(c"npukit-device-memory".as_ptr(), libc::MFD_CLOEXEC) };
            let size = libc::off_t::try_from(len).ok()?;
            // SAFETY: fd is checked; ftruncate zero-fills the new memfd.
            if fd < 0 || unsafe { libc::ftruncate(fd, size) } != 0 {
                if fd >= 0 {
                    // SAFETY: fd is ours.
                    unsafe { libc::close(fd) };
                }
                return None;
            }
            Some(fd)
        } else {
            None
        };
        let flags = match fd {
            Some(_) => libc::MAP_SHARED,
            None => libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        };
        // SAFETY: a fresh mapping of `len` bytes (of the memfd, or anonymous,
        // zero-filled either way).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_NORESERVE,
                fd.unwrap_or(-1),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            if let Some(fd) = fd {
                // SAFETY: fd is ours.
                unsafe { libc::close(fd) };
            }
            return None;
        }
        Some(HostMemory {
            ptr: ptr.cast(),
            len,
            fd,
        })
    }

    /// The memfd behind a [`HostMemory::shared`] block (offset = device
    /// physical address); `None` for private memory.
    pub fn fd(&self) -> Option<libc::c_int> {
        self.fd
    }

    /// Host address of device physical address 0.
    pub fn base(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> u64 {
        self.len as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, addr: u64, n: usize) -> Option<usize> {
        let a = usize::try_from(addr).ok()?;
        (a.checked_add(n)? <= self.len).then_some(a)
    }

    /// Copies out `buf.len()` bytes at `addr`; `None` if out of range.
    pub fn load(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        let a = self.check(addr, buf.len())?;
        // SAFETY: a..a+len is inside the block (checked above).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(a), buf.as_mut_ptr(), buf.len()) };
        Some(())
    }

    /// Copies `data` in at `addr`; `None` if out of range.
    pub fn store(&self, addr: u64, data: &[u8]) -> Option<()> {
        let a = self.check(addr, data.len())?;
        // SAFETY: a..a+len is inside the block (checked above).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(a), data.len()) };
        Some(())
    }

    /// Sets `n` bytes at `addr` to `v`; `None` if out of range.
    pub fn fill(&self, addr: u64, n: u64, v: u8) -> Option<()> {
        let n = usize::try_from(n).ok()?;
        let a = self.check(addr, n)?;
        // SAFETY: a..a+n is inside the block (checked above).
        unsafe { std::ptr::write_bytes(self.ptr.add(a), v, n) };
        Some(())
    }

    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0; 8];
        self.load(addr, &mut b)?;
        Some(u64::from_le_bytes(b))
    }

    pub fn write_u64(&self, addr: u64, v: u64) -> Option<()> {
        self.store(addr, &v.to_le_bytes())
    }
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        // SAFETY: mapped (and opened) in map(); nothing uses them after drop.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
            if let Some(fd) = self.fd {
                libc::close(fd);
            }
        }
    }
}

impl DeviceMemory for HostMemory {
    fn size(&self) -> u64 {
        self.len as u64
    }
    fn read(&self, addr: u64, buf: &mut [u8]) {
        // The device checks ranges against size() first; an impossible range
        // reads zeros rather than touching memory outside the block.
        if self.load(addr, buf).is_none() {
            buf.fill(0);
        }
    }
    fn write(&mut self, addr: u64, data: &[u8]) {
        let _ = self.store(addr, data);
    }
}

/// First-fit allocator of page-aligned ranges in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocator {
    /// Free ranges `(start, len)`, sorted, non-adjacent.
    free: Vec<(u64, u64)>,
    total: u64,
}

impl Allocator {
    pub fn new(start: u64, end: u64) -> Self {
        let s = start.next_multiple_of(PAGE);
        let e = end - end % PAGE;
        let free = if e > s { vec![(s, e - s)] } else { Vec::new() };
        Allocator {
            free,
            total: e.saturating_sub(s),
        }
    }

    /// Bytes managed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes free.
    pub fn available(&self) -> u64 {
        self.free.iter().map(|f| f.1).sum()
    }

    /// `len` bytes rounded up to pages; the start address, or `None`.
    pub fn alloc(&mut self, len: u64) -> Option<u64> {
        let len = len.checked_next_multiple_of(PAGE)?.max(PAGE);
        let i = self.free.iter().position(|f| f.1 >= len)?;
        let (s, l) = self.free[i];
        if l == len {
            self.free.remove(i);
        } else {
            self.free[i] = (s + len, l - len);
        }
        Some(s)
    }

    /// Returns a range given by [`Allocator::alloc`] (same rounded length).
    pub fn free(&mut self, start: u64, len: u64) {
        let len = len.next_multiple_of(PAGE).max(PAGE);
        let i = self.free.partition_point(|f| f.0 < start);
        self.free.insert(i, (start, len));
        // Coalesce with the neighbours.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_first_fit_and_coalesce() {
        let mut a = Allocator::new(0x1000, 0x10000);
        assert_eq!(a.total(), 0xF000);
        let x = a.alloc(1).unwrap();
        let y = a.alloc(0x2000).unwrap();
        let z = a.alloc(0x1001).unwrap();
        assert_eq!((x, y, z), (0x1000, 0x2000, 0x4000));
        a.free(y, 0x2000);
        assert_eq!(a.alloc(0x1000), Some(0x2000));
        a.free(0x2000, 0x1000);
        a.free(x, 1);
        a.free(z, 0x1001);
        assert_eq!(a.available(), 0xF000);
        assert_eq!(a.free.len(), 1);
        assert_eq!(a.alloc(0x10000), None);
    }

    #[test]
    fn host_memory_bounds() {
        let m = HostMemory::new(5000).unwrap();
        assert_eq!(m.len(), 8192);
        assert!(m.store(8190, &[1, 2]).is_some());
        assert!(m.store(8191, &[1, 2]).is_none());
        assert!(m.store(u64::MAX, &[1]).is_none());
        let mut b = [0; 2];
        m.load(8190, &mut b).unwrap();
        assert_eq!(b, [1, 2]);
    }
}
