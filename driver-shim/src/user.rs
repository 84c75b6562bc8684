//! `copy_from_user` / `copy_to_user`: reading and writing the caller's memory
//! through a user pointer without trusting it. The copies go through
//! `process_vm_readv`/`process_vm_writev` on this process, so an unmapped or
//! read-only address is `EFAULT` (as in the kernel), never a crash.

use crate::errno::{Errno, IoctlResult};

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
