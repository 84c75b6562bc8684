//! `copy_from_user` / `copy_to_user`: reading and writing the caller's memory
//! through a user pointer without trusting it. The copies go through
//! `process_vm_readv`/`process_vm_writev` on this process, so an unmapped or
//! read-only address is `EFAULT` (as in the kernel), never a crash.
//!
//! Fast path: most ioctl arguments live on the caller's stack. The part of
//! the calling thread's stack between our own frame and the stack's top is
//! mapped and writable by construction, so a range inside it is copied
//! directly, without the two syscalls.

use std::cell::Cell;

use crate::errno::{Errno, IoctlResult};

thread_local! {
    /// This thread's stack as (lowest, highest) address; (0, 0): not known
    /// yet, (1, 1): unknown.
    static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn stack_range() -> (usize, usize) {
    STACK.with(|t| {
        if t.get().1 == 0 {
            let mut range = (1, 1);
            // SAFETY: attr is initialised by pthread_getattr_np before use and
            // destroyed after; the out-pointers are valid locals.
            unsafe {
                let mut attr: libc::pthread_attr_t = std::mem::zeroed();
                if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
                    let mut addr: *mut libc::c_void = std::ptr::null_mut();
                    let mut size: libc::size_t = 0;
                    if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                        range = (addr as usize, (addr as usize).saturating_add(size));
                    }
                    libc::pthread_attr_destroy(&mut attr);
                }
            }
            t.set(range);
        }
        t.get()
    })
}

/// Is `addr..addr+len` inside the live part of this thread's stack (above
/// this frame)? Never on an alternate signal stack: then our frame is not on
/// the thread's stack and the answer is no.
#[inline(never)]
fn on_live_stack(addr: u64, len: usize) -> bool {
    let here = 0u8;
    let sp = &here as *const u8 as usize;
    let Ok(a) = usize::try_from(addr) else {
        return false;
    };
    let (bottom, top) = stack_range();
    top > 1 && sp >= bottom && sp < top && a > sp && a.checked_add(len).is_some_and(|e| e <= top)
}

fn iov(ptr: *mut libc::c_void, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: ptr,
        iov_len: len,
    }
}

/// Copies `buf.len()` bytes from user address `addr` into `buf`.
pub fn copy_from_user(addr: u64, buf: &mut [u8]) -> IoctlResult {
    if buf.is_empty() {
        return Ok(());
    }
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    if on_live_stack(addr, buf.len()) {
        // SAFETY: the range is mapped, live stack memory (see on_live_stack).
        unsafe {
            std::ptr::copy_nonoverlapping(addr as usize as *const u8, buf.as_mut_ptr(), buf.len())
        };
        return Ok(());
    }
    let local = iov(buf.as_mut_ptr().cast(), buf.len());
    let remote = iov(addr as usize as *mut libc::c_void, buf.len());
    // SAFETY: `local` is our own buffer; `remote` is only read by the kernel,
    // which checks it.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == buf.len() as isize {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copies `data` to user address `addr`.
pub fn copy_to_user(addr: u64, data: &[u8]) -> IoctlResult {
    if data.is_empty() {
        return Ok(());
    }
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    if on_live_stack(addr, data.len()) {
        // SAFETY: the range is mapped, writable live stack memory.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), addr as usize as *mut u8, data.len())
        };
        return Ok(());
    }
    let local = iov(data.as_ptr() as *mut libc::c_void, data.len());
    let remote = iov(addr as usize as *mut libc::c_void, data.len());
    // SAFETY: `local` is only read; `remote` is written by the kernel, which
    // checks it.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// A plain-old-data uapi struct that can be copied as bytes.
///
/// # Safety
/// Implementors are `#[repr(C)]`, contain only integers, and have no padding
/// the compiler may leave uninitialised.
pub unsafe trait Pod: Copy + Default {}

macro_rules! pod {
    ($($t:ty),*) => { $( unsafe impl Pod for $t {} )* };
}
pod!(
    crate::uapi::DrmVersion,
    crate::uapi::DrmGemClose,
    crate::uapi::DrmGetCap,
    crate::uapi::GetParam,
    crate::uapi::BoCreate,
    crate::uapi::BoInfo,
    crate::uapi::Submit,
    crate::uapi::Wait,
    crate::uapi::JobStats
);

/// Reads a uapi struct from user memory.
pub fn read_struct<T: Pod>(addr: u64) -> IoctlResult<T> {
    let mut v = T::default();
    // SAFETY: T is Pod: every byte pattern is a valid T.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut((&mut v as *mut T).cast::<u8>(), std::mem::size_of::<T>())
    };
    copy_from_user(addr, bytes)?;
    Ok(v)
}

/// Writes a uapi struct to user memory.
pub fn write_struct<T: Pod>(addr: u64, v: &T) -> IoctlResult {
    // SAFETY: T is Pod, so its bytes are initialised.
    let bytes = unsafe {
        std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
    };
    copy_to_user(addr, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_arguments_take_the_fast_path() {
        let mut x = [7u8; 16];
        let a = x.as_mut_ptr() as u64;
        assert!(on_live_stack(a, 16), "a caller's local is live stack");
        assert!(!on_live_stack(a, usize::MAX));
        let heap = Box::new([1u8; 16]);
        assert!(!on_live_stack(heap.as_ptr() as u64, 16));
        copy_to_user(a, &[9; 16]).unwrap();
        assert_eq!(x, [9; 16]);
    }

    #[test]
    fn good_and_bad_pointers() {
        let src = [1u8, 2, 3, 4];
        let mut dst = [0u8; 4];
        copy_from_user(src.as_ptr() as u64, &mut dst).unwrap();
        assert_eq!(dst, src);
        assert_eq!(copy_from_user(0, &mut dst), Err(Errno::EFAULT));
        assert_eq!(copy_from_user(8, &mut dst), Err(Errno::EFAULT));
        assert_eq!(
            copy_to_user(0xFFFF_FFFF_FFFF_0000, &dst),
            Err(Errno::EFAULT)
        );
        let mut out = [0u8; 4];
        copy_to_user(out.as_mut_ptr() as u64, &src).unwrap();
        assert_eq!(out, src);
    }
}
