//! Buffer objects: allocation in device memory, the owner's translation
//! entries, handles, mmap and munmap, host-side access (the `*_gem` part of a
//! kernel driver).

use npukit_abi::regs;
use npukit_sim::Device;

use super::{Core, MMAP_BASE};
use crate::errno::{Errno, IoctlResult};
use crate::mem::PAGE;
use crate::uapi::{self, BoCreate, BoInfo};

#[derive(Debug)]
pub(super) struct BoObj {
    pub(super) ctx: u32,
    pub(super) phys: u64,
    pub(super) size: u64,
    pub(super) flags: u32,
    /// The handle plus one per unfinished job that uses the BO.
    pub(super) refs: u32,
}

/// A live mmap of (part of) a BO: the physical ranges still mapped.
#[derive(Debug)]
pub(super) struct Mapping {
    pub(super) obj: u64,
    pub(super) ranges: Vec<(u64, u64)>,
}

/// A host-side BO access.
#[derive(Debug)]
pub enum BoBuf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

impl Core {
    pub(super) fn map_pages(&self, xlat: u64, phys: u64, size: u64, pte_of: impl Fn(u64) -> u64) {
        for p in (phys..phys + size).step_by(PAGE as usize) {
            let _ = self.mem.write_u64(xlat + (p / PAGE) * 8, pte_of(p));
        }
    }

    pub(super) fn unref(&mut self, obj: u64) {
        let Some(o) = self.objects.get_mut(&obj) else {
            return;
        };
        o.refs = o.refs.saturating_sub(1);
        if o.refs > 0 {
            return;
        }
        let (ctx, phys, size) = (o.ctx, o.phys, o.size);
        self.objects.remove(&obj);
        if let Some(c) = self.contexts.get(&ctx) {
            let xlat = c.xlat;
            self.map_pages(xlat, phys, size, |_| 0);
            if self.running.is_some() && self.loaded_ctx == Some(ctx) {
                // The running job may hold the pages in its translation caches.
                self.dev.mmio_write(regs::XLAT_PAGES, self.xlat_pages);
            }
        }
        self.alloc.free(phys, size);
    }

    /// `DRM_IOCTL_NPUKIT_BO_CREATE`.
    pub fn bo_create(&mut self, ctx: u32, a: &mut BoCreate) -> IoctlResult {
        self.ctx(ctx)?;
        if a.flags & !uapi::BO_FLAGS != 0 || a.size == 0 || a.size > self.alloc.total() {
            return Err(Errno::EINVAL);
        }
        let size = a.size.next_multiple_of(PAGE);
        let phys = self.alloc.alloc(size).ok_or(Errno::ENOMEM)?;
        if self.mem.fill(phys, size, 0).is_none() {
            self.alloc.free(phys, size);
            return Err(Errno::ENOMEM);
        }
        let writable = a.flags & uapi::BO_READONLY == 0;
        let obj = self.next_obj;
        self.next_obj += 1;
        let c = self.ctx_mut(ctx)?;
        let handle = c.next_handle;
        c.next_handle = c.next_handle.checked_add(1).ok_or(Errno::ENOSPC)?;
        c.bos.insert(handle, obj);
        let xlat = c.xlat;
        self.map_pages(xlat, phys, size, |p| npukit_abi::xlat::pte(p, writable));
        self.objects.insert(
            obj,
            BoObj {
                ctx,
                phys,
                size,
                flags: a.flags,
                refs: 1,
            },
        );
        a.handle = handle;
        a.device_addr = phys;
        a.mmap_offset = MMAP_BASE + phys;
        Ok(())
    }

    pub(super) fn lookup(&self, ctx: u32, handle: u32) -> IoctlResult<(u64, &BoObj)> {
        let obj = *self.ctx(ctx)?.bos.get(&handle).ok_or(Errno::ENOENT)?;
        let o = self.objects.get(&obj).ok_or(Errno::ENOENT)?;
        Ok((obj, o))
    }

    /// `DRM_IOCTL_NPUKIT_BO_INFO`.
    pub fn bo_info(&self, ctx: u32, a: &mut BoInfo) -> IoctlResult {
        let (_, o) = self.lookup(ctx, a.handle)?;
        a.flags = o.flags;
        a.size = o.size;
        a.device_addr = o.phys;
        a.mmap_offset = MMAP_BASE + o.phys;
        Ok(())
    }

    /// `DRM_IOCTL_GEM_CLOSE`. An unknown handle is EINVAL, as in the DRM core.
    pub fn gem_close(&mut self, ctx: u32, a: &uapi::DrmGemClose) -> IoctlResult {
        if a.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let obj = self
            .ctx_mut(ctx)?
            .bos
            .remove(&a.handle)
            .ok_or(Errno::EINVAL)?;
        self.unref(obj);
        Ok(())
    }

    /// The host address and length of an mmap of `len` bytes at `offset` in
    /// this context's BO space: the range must lie inside one BO.
    ///
    /// As in the kernel, a mapping holds the BO: closing the handle (or the
    /// file) does not free the memory until [`Core::munmap`] removes every
    /// page of the mapping, so a stale pointer never reaches memory that
    /// another context has since been given.
    pub fn mmap_range(&mut self, ctx: u32, offset: u64, len: u64) -> IoctlResult<(*mut u8, u64)> {
        let c = self.ctx(ctx)?;
        if len == 0 || !offset.is_multiple_of(PAGE) || offset < MMAP_BASE {
            return Err(Errno::EINVAL);
        }
        let start = offset - MMAP_BASE;
        let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::EINVAL)?;
        let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
        let obj = c
            .bos
            .values()
            .find(|o| {
                self.objects
                    .get(o)
                    .is_some_and(|o| start >= o.phys && end <= o.phys + o.size)
            })
            .copied()
            .ok_or(Errno::EINVAL)?;
        let off = usize::try_from(start).map_err(|_| Errno::EINVAL)?;
        if let Some(o) = self.objects.get_mut(&obj) {
            o.refs += 1;
        }
        self.maps.push(Mapping {
            obj,
            ranges: vec![(start, end)],
        });
        // SAFETY: start..end lies inside a BO, which lies inside the block.
        Ok((unsafe { self.mem.base().add(off) }, len))
    }

    /// Removes the pages of `host..host+len` from the mappings made by
    /// [`Core::mmap_range`] (partial unmaps keep the rest); a BO whose last
    /// mapped page goes is released. Returns `false` if the range is not
    /// device memory.
    pub fn munmap(&mut self, host: usize, len: usize) -> bool {
        let base = self.mem.base() as usize;
        let Some(a) = host.checked_sub(base) else {
            return false;
        };
        let (a, len) = (a as u64, len as u64);
        if a >= self.mem.len() {
            return false;
        }
        let b = a.saturating_add(len.next_multiple_of(PAGE));
        let mut released = Vec::new();
        self.maps.retain_mut(|m| {
            let mut left = Vec::new();
            for &(s, e) in &m.ranges {
                if e <= a || s >= b {
                    left.push((s, e));
                    continue;
                }
                if s < a {
                    left.push((s, a));
                }
                if e > b {
                    left.push((b, e));
                }
            }
            m.ranges = left;
            if m.ranges.is_empty() {
                released.push(m.obj);
                false
            } else {
                true
            }
        });
        for o in released {
            self.unref(o);
        }
        true
    }

    /// Reads or writes a BO's bytes from the host (the Rust API's pread/pwrite).
    pub fn bo_access(&self, ctx: u32, handle: u32, offset: u64, buf: BoBuf<'_>) -> IoctlResult {
        let (_, o) = self.lookup(ctx, handle)?;
        let len = match &buf {
            BoBuf::Read(b) => b.len(),
            BoBuf::Write(b) => b.len(),
        } as u64;
        if offset.checked_add(len).is_none_or(|e| e > o.size) {
            return Err(Errno::EINVAL);
        }
        let addr = o.phys + offset;
        match buf {
            BoBuf::Read(b) => self.mem.load(addr, b),
            BoBuf::Write(b) => self.mem.store(addr, b),
        }
        .ok_or(Errno::EFAULT)
    }
}
