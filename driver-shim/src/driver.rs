//! The reference kernel-driver logic, over any [`Device`].
//!
//! What a kernel driver for this NPU does, written once so that the LD_PRELOAD
//! library, the Rust API and (as a model to follow) a real kernel module share it:
//!
//! * **Contexts**: one per open file. Each owns its buffer objects, its job
//!   sequence numbers and its own translation table in device memory.
//! * **Buffer objects**: page-granular ranges of device memory from a first-fit
//!   [`Allocator`], zeroed on allocation. A BO's device address is its physical
//!   address (identity mapping), but only the owner's table maps it: another
//!   context that uses the address faults with `XLAT_FAULT` at that address.
//!   Physical page 0 holds nothing a context can map, so device address 0 faults.
//! * **Jobs**: SUBMIT validates and queues (at most `max_jobs` queued or running
//!   per device, then `EBUSY`); jobs run one at a time, because the translation
//!   table is a device-wide register. Switching contexts resets the device, so
//!   the scratchpad and accumulators never carry one context's data into another's
//!   job, and every job starts with the translation caches flushed.
//! * **The ring**: the driver copies the job's descriptors from its command BO
//!   into the command ring, refilling it as `RING_HEAD` moves, so a job may be
//!   longer than the ring; it appends its own FENCE with the IRQ flag, whose
//!   interrupt ends the job.
//! * **Errors and the watchdog**: an error interrupt ends the job with status
//!   ERROR (code, descriptor index in the job, address) and resets the device.
//!   No progress (ring head and completed-descriptor count unchanged) for
//!   `watchdog_cycles` - or the device's own WATCHDOG error - aborts the job,
//!   resets the device and goes on with the next job. A device found reset
//!   under a job (RUN cleared) aborts that job.
//!
//! Simulation advances only when someone waits ([`Core::step`], called by WAIT):
//! the device is run in slices of cycles, stopping at interrupts, with the
//! model's quiet-cycle skipping doing the rest.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use npukit_abi::desc::{Fence, Op};
use npukit_abi::{regs, Descriptor, ErrorCode, DESC_BYTES};
use npukit_sim::{Device, NpuConfig};

use crate::backend::{Backend, BackendError};
use crate::errno::{Errno, IoctlResult};
use crate::fault::{Fault, FaultDevice, Injection};
use crate::mem::{Allocator, HostMemory, PAGE};
use crate::trace::{LogSink, ShimEvent, TraceEvent, TraceLog};
use crate::uapi::{self, param, status, BoCreate, BoInfo, GetParam, JobStats, Submit};
use crate::user;

/// `mmap` offsets of BOs are `MMAP_BASE + device address` (DRM's fake offsets).
pub const MMAP_BASE: u64 = 1 << 32;
/// Largest number of BO handles in one SUBMIT.
pub const MAX_SUBMIT_BOS: u32 = 4096;
/// Largest job, in descriptors.
pub const MAX_JOB_DESCS: u64 = 1 << 20;
/// Finished jobs remembered per context (older ones are forgotten: ENOENT).
pub const JOB_HISTORY: usize = 4096;

/// How the shim's device is built and driven.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    pub config: NpuConfig,
    /// Device memory in bytes (the ring, the translation tables and all BOs).
    pub mem_bytes: u64,
    /// Command ring size in descriptors (clamped to the device's MAX_RING).
    pub ring_size: u32,
    /// Jobs queued or running on the device before SUBMIT says EBUSY.
    pub max_jobs: usize,
    /// Cycles without progress before a job is declared hung.
    pub watchdog_cycles: u64,
    /// Cycles simulated per slice while the driver still has descriptors to
    /// copy into the ring.
    pub slice_cycles: u64,
    /// Scripted faults.
    pub faults: Vec<Injection>,
    /// Record driver and hardware events on one timeline.
    pub trace: bool,
    /// Builds the device instead of [`Backend::open_traced`]: the seam through
    /// which devices from crates the shim does not depend on plug in (the RTL
    /// and lockstep devices of `npukit-rtl`, a test double). `backend` still
    /// names the platform reported by GET_PARAM.
    pub device: Option<DeviceFactory>,
}

/// The signature of a device constructor: the configuration and, when
/// tracing, the sink for hardware events.
pub type DeviceCtor =
    dyn Fn(&NpuConfig, Option<LogSink>) -> Result<Box<dyn Device + Send>, String> + Send + Sync;

/// A shareable device constructor (see [`Options::device`]).
#[derive(Clone)]
pub struct DeviceFactory(pub std::sync::Arc<DeviceCtor>);

impl DeviceFactory {
    pub fn new(
        f: impl Fn(&NpuConfig, Option<LogSink>) -> Result<Box<dyn Device + Send>, String>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        DeviceFactory(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for DeviceFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceFactory(..)")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: Backend::Model,
            config: NpuConfig::default(),
            mem_bytes: 64 << 20,
            ring_size: 256,
            max_jobs: 64,
            watchdog_cycles: 1_000_000,
            slice_cycles: 1024,
            faults: Vec::new(),
            trace: false,
            device: None,
        }
    }
}

/// Why a shim could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Faults(#[from] crate::fault::FaultParseError),
    #[error("{var}={value:?}: {problem}")]
    Env {
        var: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("cannot allocate {0} bytes of device memory")]
    Memory(u64),
    #[error("device: {0}")]
    Device(String),
}

impl Options {
    /// The defaults, overridden by `NPUKIT_BACKEND`, `NPUKIT_CONFIG`,
    /// `NPUKIT_MEM_MB`, `NPUKIT_RING`, `NPUKIT_MAX_JOBS`,
    /// `NPUKIT_WATCHDOG_CYCLES`, `NPUKIT_FAULTS` and `NPUKIT_TRACE` (a file name:
    /// tracing on; the LD_PRELOAD library writes the trace there at the last close).
    pub fn from_env() -> Result<Self, ShimError> {
        fn num(var: &'static str) -> Result<Option<u64>, ShimError> {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => {
                    v.trim().parse().map(Some).map_err(|_| ShimError::Env {
                        var,
                        value: v,
                        problem: "not a whole number",
                    })
                }
                _ => Ok(None),
            }
        }
        let mut o = Options {
            backend: Backend::from_env()?,
            config: crate::backend::config_from_env()?,
            faults: crate::fault::from_env()?,
            trace: std::env::var_os("NPUKIT_TRACE").is_some_and(|v| !v.is_empty()),
            ..Options::default()
        };
        if let Some(mb) = num("NPUKIT_MEM_MB")? {
            o.mem_bytes = mb.saturating_mul(1 << 20);
        }
        if let Some(r) = num("NPUKIT_RING")? {
            o.ring_size = u32::try_from(r).unwrap_or(u32::MAX);
        }
        if let Some(j) = num("NPUKIT_MAX_JOBS")? {
            o.max_jobs = usize::try_from(j).unwrap_or(usize::MAX);
        }
        if let Some(w) = num("NPUKIT_WATCHDOG_CYCLES")? {
            o.watchdog_cycles = w;
        }
        Ok(o)
    }
}

/// How a finished job ended (the output fields of WAIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobResult {
    pub status: u32,
    pub error_code: u32,
    pub fault_addr: u64,
    pub fault_desc: u32,
}

/// Figures the device reports for the identification parameters.
#[derive(Debug, Clone, Copy)]
struct DevInfo {
    id: u32,
    version: u32,
    caps: u32,
    shape: u32,
    spad: u32,
    acc: u32,
    beat: u32,
    clock: u32,
}

#[derive(Debug)]
struct BoObj {
    ctx: u32,
    phys: u64,
    size: u64,
    flags: u32,
    /// The handle plus one per unfinished job that uses the BO.
    refs: u32,
}

/// A live mmap of (part of) a BO: the physical ranges still mapped.
#[derive(Debug)]
struct Mapping {
    obj: u64,
    ranges: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum JobState {
    Queued,
    Running,
    Done(JobResult, JobStats),
}

#[derive(Debug)]
struct Job {
    number: u64,
    cmd_phys: u64,
    ndesc: u32,
    /// BO objects held until the job ends.
    objs: Vec<u64>,
    state: JobState,
}

#[derive(Debug)]
struct Context {
    bos: BTreeMap<u32, u64>,
    next_handle: u32,
    xlat: u64,
    jobs: BTreeMap<u64, Job>,
    next_seq: u64,
}

/// Counter values at the start of a job.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    macs: u64,
    rd: u64,
    wr: u64,
    descs: u64,
}

#[derive(Debug)]
struct Running {
    ctx: u32,
    seq: u64,
    number: u64,
    cmd_phys: u64,
    ndesc: u32,
    /// Next descriptor to copy into the ring; `ndesc` is the driver's FENCE.
    next: u32,
    /// Ring slot -> descriptor index in the job.
    slot_desc: Vec<u32>,
    fence_seq: u32,
    start_cycle: u64,
    start: Snapshot,
    last_progress: u64,
    last_head: u32,
    last_done: u64,
    data_fault: Option<u64>,
    /// A translation entry taken away by an `xlat` fault: (entry address, value).
    saved_pte: Option<(u64, u64)>,
}

/// The device and everything the driver keeps about it. Not thread-safe by
/// itself: [`crate::Shim`] puts it behind a mutex.
pub struct Core {
    dev: FaultDevice,
    mem: HostMemory,
    alloc: Allocator,
    opts: Options,
    info: DevInfo,
    platform: u64,
    ring_base: u64,
    ring_size: u32,
    tail: u32,
    xlat_pages: u32,
    contexts: BTreeMap<u32, Context>,
    next_ctx: u32,
    objects: BTreeMap<u64, BoObj>,
    next_obj: u64,
    maps: Vec<Mapping>,
    queue: VecDeque<(u32, u64)>,
    running: Option<Running>,
    jobs_accepted: u64,
    fence_seq: u32,
    loaded_ctx: Option<u32>,
    needs_init: bool,
    trace: Option<TraceLog>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("backend", &self.opts.backend)
            .field("contexts", &self.contexts.len())
            .field("queued", &self.queue.len())
            .field("running", &self.running.as_ref().map(|r| (r.ctx, r.seq)))
            .finish_non_exhaustive()
    }
}

fn read64(dev: &mut dyn Device, off: u32) -> u64 {
    dev.mmio_read(off) as u64 | (dev.mmio_read(off + 4) as u64) << 32
}

impl Core {
    /// Builds the device, checks its identity and lays out device memory:
    /// page 0 unused, then the command ring, then the allocator.
    pub fn new(opts: Options) -> Result<Self, ShimError> {
        let trace = opts.trace.then(TraceLog::default);
        let sink = trace.clone().map(LogSink);
        let inner = match &opts.device {
            Some(f) => (f.0)(&opts.config, sink).map_err(ShimError::Device)?,
            None => opts.backend.open_traced(&opts.config, sink)?,
        };
        let mut dev = FaultDevice::new(inner);
        let id = dev.mmio_read(regs::ID);
        let version = dev.mmio_read(regs::VERSION);
        if id != npukit_abi::DEVICE_ID {
            return Err(ShimError::Device(format!(
                "ID reads {id:#x}, not an npukit NPU"
            )));
        }
        if version >> 16 != npukit_abi::ABI_MAJOR as u32 {
            return Err(ShimError::Device(format!(
                "ABI version {}.{}, this driver speaks {}.x",
                version >> 16,
                version & 0xFFFF,
                npukit_abi::ABI_MAJOR
            )));
        }
        let info = DevInfo {
            id,
            version,
            caps: dev.mmio_read(regs::CAPS),
            shape: dev.mmio_read(regs::ARRAY_SHAPE),
            spad: dev.mmio_read(regs::SPAD_BYTES),
            acc: dev.mmio_read(regs::ACC_BYTES),
            beat: dev.mmio_read(regs::BEAT_BYTES),
            clock: dev.mmio_read(regs::CLOCK_MHZ),
        };
        let max_ring = dev.mmio_read(regs::MAX_RING).max(2);
        let ring_size = opts
            .ring_size
            .clamp(2, max_ring)
            .next_power_of_two()
            .min(max_ring);
        let mem = HostMemory::new(opts.mem_bytes).ok_or(ShimError::Memory(opts.mem_bytes))?;
        let ring_base = PAGE;
        let ring_end = ring_base + (ring_size as u64 * DESC_BYTES as u64).next_multiple_of(PAGE);
        if ring_end + PAGE > mem.len() {
            return Err(ShimError::Memory(opts.mem_bytes));
        }
        let xlat_pages = u32::try_from(mem.len() / PAGE).unwrap_or(u32::MAX);
        Ok(Core {
            dev,
            alloc: Allocator::new(ring_end, mem.len()),
            mem,
            info,
            platform: opts.backend.platform(),
            ring_base,
            ring_size,
            tail: 0,
            xlat_pages,
            contexts: BTreeMap::new(),
            next_ctx: 1,
            objects: BTreeMap::new(),
            next_obj: 1,
            maps: Vec::new(),
            queue: VecDeque::new(),
            running: None,
            jobs_accepted: 0,
            fence_seq: 0,
            loaded_ctx: None,
            needs_init: true,
            trace,
            opts,
        })
    }

    /// The combined trace log, if tracing is on.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    pub fn trace_log(&self) -> Option<TraceLog> {
        self.trace.clone()
    }

    fn emit(&self, e: ShimEvent) {
        if let Some(t) = &self.trace {
            if let Ok(mut v) = t.lock() {
                v.push((self.dev.cycle(), TraceEvent::Shim(e)));
            }
        }
    }

    /// Records an ioctl's outcome on the timeline.
    pub fn trace_ioctl(
        &self,
        ctx: u32,
        name: &'static str,
        start: u64,
        r: Result<(), Errno>,
        seq: u64,
    ) {
        if self.trace.is_some() {
            self.emit(ShimEvent::Ioctl {
                ctx,
                name,
                start,
                errno: r.err().map_or(0, |e| e.0),
                seq,
            });
        }
    }

    pub fn memory(&self) -> &HostMemory {
        &self.mem
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Adds a scripted fault.
    pub fn inject(&mut self, i: Injection) {
        self.opts.faults.push(i);
    }

    /// Jobs accepted so far (the number the next job will get, minus one).
    pub fn jobs_accepted(&self) -> u64 {
        self.jobs_accepted
    }

    /// The device clock.
    pub fn cycle(&self) -> u64 {
        self.dev.cycle()
    }

    // ----- contexts -----------------------------------------------------

    /// A new context (an open file) with an empty translation table.
    pub fn open_context(&mut self) -> IoctlResult<u32> {
        let bytes = self.xlat_pages as u64 * npukit_abi::xlat::PTE_BYTES;
        let xlat = self.alloc.alloc(bytes).ok_or(Errno::ENOMEM)?;
        self.mem.fill(xlat, bytes, 0).ok_or(Errno::ENOMEM)?;
        let id = self.next_ctx;
        self.next_ctx = self.next_ctx.checked_add(1).ok_or(Errno::EMFILE)?;
        self.contexts.insert(
            id,
            Context {
                bos: BTreeMap::new(),
                next_handle: 1,
                xlat,
                jobs: BTreeMap::new(),
                next_seq: 1,
            },
        );
        Ok(id)
    }

    /// Closes a context: its queued jobs are dropped, a running one is
    /// stopped by a device reset, its BOs and table are freed.
    pub fn close_context(&mut self, ctx: u32) {
        if !self.contexts.contains_key(&ctx) {
            return;
        }
        if self.running.as_ref().is_some_and(|r| r.ctx == ctx) {
            self.finish(
                JobResult {
                    status: status::ABORTED,
                    error_code: uapi::err::RESET,
                    ..JobResult::default()
                },
                true,
            );
            self.reset("context closed with a job running");
        }
        self.queue.retain(|(c, _)| *c != ctx);
        let Some(c) = self.contexts.remove(&ctx) else {
            return;
        };
        for job in c.jobs.values() {
            if job.state != JobState::Running && !matches!(job.state, JobState::Done(..)) {
                for &o in &job.objs {
                    self.unref(o);
                }
            }
        }
        for &o in c.bos.values() {
            self.unref(o);
        }
        let bytes = self.xlat_pages as u64 * npukit_abi::xlat::PTE_BYTES;
        self.alloc.free(c.xlat, bytes);
        if self.loaded_ctx == Some(ctx) {
            self.loaded_ctx = None;
        }
    }

    fn ctx(&self, ctx: u32) -> IoctlResult<&Context> {
        self.contexts.get(&ctx).ok_or(Errno::EBADF)
    }

    fn ctx_mut(&mut self, ctx: u32) -> IoctlResult<&mut Context> {
        self.contexts.get_mut(&ctx).ok_or(Errno::EBADF)
    }

    // ----- buffer objects ------------------------------------------------

    fn map_pages(&self, xlat: u64, phys: u64, size: u64, pte_of: impl Fn(u64) -> u64) {
        for p in (phys..phys + size).step_by(PAGE as usize) {
            let _ = self.mem.write_u64(xlat + (p / PAGE) * 8, pte_of(p));
        }
    }

    fn unref(&mut self, obj: u64) {
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

    fn lookup(&self, ctx: u32, handle: u32) -> IoctlResult<(u64, &BoObj)> {
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

    // ----- parameters ---------------------------------------------------

    /// `DRM_IOCTL_NPUKIT_GET_PARAM`.
    pub fn get_param(&self, ctx: u32, a: &mut GetParam) -> IoctlResult {
        self.ctx(ctx)?;
        if a.index != 0 {
            return Err(Errno::EINVAL);
        }
        let i = &self.info;
        a.value = match a.param {
            param::DEVICE_ID => i.id as u64,
            param::ABI_VERSION => i.version as u64,
            param::CAPS => i.caps as u64,
            param::ARRAY_ROWS => (i.shape & 0xFFFF) as u64,
            param::ARRAY_COLS => (i.shape >> 16) as u64,
            param::SPAD_BYTES => i.spad as u64,
            param::ACC_BYTES => i.acc as u64,
            param::BEAT_BYTES => i.beat as u64,
            param::CLOCK_MHZ => i.clock as u64,
            param::MEM_BYTES => self.alloc.total(),
            param::PLATFORM => self.platform,
            param::MAX_JOBS => self.opts.max_jobs as u64,
            param::WATCHDOG_CYCLES => self.opts.watchdog_cycles,
            param::MAX_JOB_DESCS => MAX_JOB_DESCS,
            param::CYCLE => self.dev.cycle(),
            _ => return Err(Errno::EINVAL),
        };
        Ok(())
    }

    // ----- jobs ---------------------------------------------------------

    /// `DRM_IOCTL_NPUKIT_SUBMIT`: validates, holds the BOs, queues the job and
    /// starts it if the device is free.
    pub fn submit(&mut self, ctx: u32, a: &mut Submit) -> IoctlResult {
        self.ctx(ctx)?;
        let d = DESC_BYTES as u64;
        if a.flags != 0 || a.pad != 0 {
            return Err(Errno::EINVAL);
        }
        if a.cmd_length == 0 || !a.cmd_length.is_multiple_of(d) || !a.cmd_offset.is_multiple_of(d) {
            return Err(Errno::EINVAL);
        }
        if a.cmd_length / d > MAX_JOB_DESCS || a.bo_count > MAX_SUBMIT_BOS {
            return Err(Errno::EINVAL);
        }
        let mut raw = vec![0u8; a.bo_count as usize * 4];
        user::copy_from_user(a.bo_handles, &mut raw)?;
        let handles: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (cmd_obj, cmd) = self.lookup(ctx, a.cmd_handle)?;
        if a.cmd_offset
            .checked_add(a.cmd_length)
            .is_none_or(|e| e > cmd.size)
        {
            return Err(Errno::EINVAL);
        }
        let cmd_phys = cmd.phys + a.cmd_offset;
        let mut objs = BTreeSet::from([cmd_obj]);
        for &h in &handles {
            objs.insert(self.lookup(ctx, h)?.0);
        }
        let pending = self.queue.len() + usize::from(self.running.is_some());
        if pending >= self.opts.max_jobs {
            return Err(Errno::EBUSY);
        }
        for o in &objs {
            if let Some(b) = self.objects.get_mut(o) {
                b.refs += 1;
            }
        }
        self.jobs_accepted += 1;
        let number = self.jobs_accepted;
        let c = self.ctx_mut(ctx)?;
        let seq = c.next_seq;
        c.next_seq += 1;
        c.jobs.insert(
            seq,
            Job {
                number,
                cmd_phys,
                ndesc: (a.cmd_length / d) as u32,
                objs: objs.into_iter().collect(),
                state: JobState::Queued,
            },
        );
        while c.jobs.len() > JOB_HISTORY {
            let oldest = c
                .jobs
                .iter()
                .find(|(_, j)| matches!(j.state, JobState::Done(..)))
                .map(|(s, _)| *s);
            match oldest {
                Some(s) => {
                    c.jobs.remove(&s);
                }
                None => break,
            }
        }
        self.queue.push_back((ctx, seq));
        a.seq = seq;
        if self.running.is_none() {
            self.start_next();
        }
        Ok(())
    }

    /// The outcome of a job: `Ok(None)` while it is queued or running.
    pub fn job_result(&self, ctx: u32, seq: u64) -> IoctlResult<Option<(JobResult, JobStats)>> {
        let job = self.ctx(ctx)?.jobs.get(&seq).ok_or(Errno::ENOENT)?;
        Ok(match &job.state {
            JobState::Done(r, s) => Some((*r, *s)),
            _ => None,
        })
    }

    /// `DRM_IOCTL_NPUKIT_JOB_STATS`: EBUSY while the job runs.
    pub fn job_stats(&self, ctx: u32, a: &mut JobStats) -> IoctlResult {
        match self.job_result(ctx, a.seq)? {
            Some((_, s)) => {
                *a = s;
                Ok(())
            }
            None => Err(Errno::EBUSY),
        }
    }

    /// Is there work for [`Core::step`]?
    pub fn busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    fn reset(&mut self, reason: &'static str) {
        self.dev.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
        self.dev.disarm();
        self.needs_init = true;
        self.loaded_ctx = None;
        self.emit(ShimEvent::Reset { reason });
    }

    /// Reset, ring, translation table of `ctx`, interrupts, watchdog, RUN.
    fn init_device(&mut self, ctx: u32, xlat: u64) {
        let d = &mut self.dev;
        d.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
        d.mmio_write(regs::RING_BASE_LO, self.ring_base as u32);
        d.mmio_write(regs::RING_BASE_HI, (self.ring_base >> 32) as u32);
        d.mmio_write(regs::RING_SIZE, self.ring_size);
        d.mmio_write(regs::XLAT_BASE_LO, xlat as u32);
        d.mmio_write(regs::XLAT_BASE_HI, (xlat >> 32) as u32);
        d.mmio_write(regs::XLAT_PAGES, self.xlat_pages);
        d.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
        if self.info.caps & npukit_abi::caps::WATCHDOG != 0 {
            let wd = u32::try_from(self.opts.watchdog_cycles).unwrap_or(u32::MAX);
            d.mmio_write(regs::WATCHDOG, wd);
        }
        d.mmio_write(regs::CONTROL, regs::CONTROL_RUN | regs::CONTROL_XLAT_EN);
        self.tail = 0;
        self.loaded_ctx = Some(ctx);
        self.needs_init = false;
    }

    fn snapshot(&mut self) -> Snapshot {
        let d: &mut dyn Device = &mut self.dev;
        Snapshot {
            macs: read64(d, regs::PERF_MACS),
            rd: read64(d, regs::PERF_DMA_RD_BYTES),
            wr: read64(d, regs::PERF_DMA_WR_BYTES),
            descs: read64(d, regs::PERF_DESC_DONE),
        }
    }

    /// Takes the next queued job onto the device. `false` if none.
    fn start_next(&mut self) -> bool {
        while let Some((ctx, seq)) = self.queue.pop_front() {
            let Some(c) = self.contexts.get_mut(&ctx) else {
                continue;
            };
            let xlat = c.xlat;
            let Some(job) = c.jobs.get_mut(&seq) else {
                continue;
            };
            job.state = JobState::Running;
            let (number, cmd_phys, ndesc) = (job.number, job.cmd_phys, job.ndesc);
            if self.needs_init || self.loaded_ctx != Some(ctx) {
                self.init_device(ctx, xlat);
            } else {
                // Flush the translation caches: BOs may have been freed.
                self.dev.mmio_write(regs::XLAT_PAGES, self.xlat_pages);
            }
            let now = self.dev.cycle();
            let start = self.snapshot();
            let mut r = Running {
                ctx,
                seq,
                number,
                cmd_phys,
                ndesc,
                next: 0,
                slot_desc: vec![u32::MAX; self.ring_size as usize],
                fence_seq: {
                    self.fence_seq = self.fence_seq.wrapping_add(1);
                    self.fence_seq
                },
                start_cycle: now,
                start,
                last_progress: now,
                last_head: self.dev.mmio_read(regs::RING_HEAD),
                last_done: start.descs,
                data_fault: None,
                saved_pte: None,
            };
            let faults: Vec<Fault> = self
                .opts
                .faults
                .iter()
                .filter(|i| i.job == number)
                .map(|i| i.fault)
                .collect();
            for f in faults {
                match f {
                    Fault::Hang { after } => self.dev.arm_hang(now + after),
                    Fault::Reset { after } => self.dev.arm_reset(now + after),
                    Fault::Data { addr } => r.data_fault = Some(addr),
                    Fault::Xlat { addr } => {
                        let vpn = addr / PAGE;
                        if vpn < self.xlat_pages as u64 {
                            let e = xlat + vpn * 8;
                            if let Some(old) = self.mem.read_u64(e) {
                                let _ = self.mem.write_u64(e, 0);
                                r.saved_pte = Some((e, old));
                            }
                        }
                    }
                }
                self.emit(ShimEvent::Fault {
                    job: number,
                    what: format!("{f:?}"),
                });
            }
            self.emit(ShimEvent::JobStart {
                ctx,
                seq,
                job: number,
                descs: ndesc,
            });
            self.running = Some(r);
            self.refill();
            return true;
        }
        false
    }

    /// Copies as many of the running job's descriptors into the ring as fit.
    fn refill(&mut self) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if r.next > r.ndesc {
            return;
        }
        let size = self.ring_size;
        let head = self.dev.mmio_read(regs::RING_HEAD) % size;
        let used = (self.tail + size - head) % size;
        let free = size - 1 - used;
        let first = r.next;
        let mut n = 0;
        while n < free && r.next <= r.ndesc {
            let mut d = [0u8; DESC_BYTES];
            if r.next < r.ndesc {
                let src = r.cmd_phys + r.next as u64 * DESC_BYTES as u64;
                let _ = self.mem.load(src, &mut d);
            } else {
                d = Descriptor::new(Op::Fence(Fence {
                    seq: r.fence_seq,
                    writeback: None,
                    irq: true,
                }))
                .encode();
            }
            let slot = self.tail;
            let _ = self
                .mem
                .store(self.ring_base + slot as u64 * DESC_BYTES as u64, &d);
            r.slot_desc[slot as usize] = r.next;
            self.tail = (slot + 1) % size;
            r.next += 1;
            n += 1;
        }
        if n > 0 {
            let job = r.number;
            self.dev.mmio_write(regs::RING_TAIL, self.tail);
            self.emit(ShimEvent::RingPush {
                job,
                first,
                count: n,
                tail: self.tail,
            });
        }
    }

    /// Ends the running job with `res`; `device_lost` when the counters can no
    /// longer be trusted.
    fn finish(&mut self, mut res: JobResult, device_lost: bool) {
        let Some(r) = self.running.take() else {
            return;
        };
        self.dev.disarm();
        if let Some((e, old)) = r.saved_pte {
            let _ = self.mem.write_u64(e, old);
        }
        let now = self.dev.cycle();
        let end = if device_lost {
            r.start
        } else {
            self.snapshot()
        };
        if let (Some(addr), status::OK) = (r.data_fault, res.status) {
            // An uncorrectable data error: the byte is corrupted and the job fails.
            if let Some(c) = self.contexts.get(&r.ctx) {
                let vpn = addr / PAGE;
                if let Some(pte) = self.mem.read_u64(c.xlat + vpn * 8) {
                    if pte & npukit_abi::xlat::PTE_VALID != 0 {
                        let pa = (pte & npukit_abi::xlat::PTE_ADDR_MASK) | (addr % PAGE);
                        let mut b = [0u8];
                        if self.mem.load(pa, &mut b).is_some() {
                            let _ = self.mem.store(pa, &[b[0] ^ 1]);
                        }
                    }
                }
            }
            res = JobResult {
                status: status::ERROR,
                error_code: uapi::err::DATA,
                fault_addr: addr,
                fault_desc: r.ndesc,
            };
        }
        let stats = JobStats {
            seq: r.seq,
            start_cycle: r.start_cycle,
            end_cycle: now,
            cycles: now - r.start_cycle,
            macs: end.macs.saturating_sub(r.start.macs),
            dma_read_bytes: end.rd.saturating_sub(r.start.rd),
            dma_write_bytes: end.wr.saturating_sub(r.start.wr),
            descs: end.descs.saturating_sub(r.start.descs),
        };
        let mut objs = Vec::new();
        if let Some(job) = self
            .contexts
            .get_mut(&r.ctx)
            .and_then(|c| c.jobs.get_mut(&r.seq))
        {
            job.state = JobState::Done(res, stats);
            objs = std::mem::take(&mut job.objs);
        }
        for o in objs {
            self.unref(o);
        }
        self.emit(ShimEvent::JobEnd {
            start: r.start_cycle,
            ctx: r.ctx,
            seq: r.seq,
            job: r.number,
            status: res.status,
            error_code: res.error_code,
            fault_addr: res.fault_addr,
        });
    }

    /// One slice of work: start a job if none runs, top up the ring, run the
    /// device until an interrupt or the end of the slice, then service it.
    /// Returns `false` when there is nothing to do.
    pub fn step(&mut self) -> bool {
        if self.running.is_none() && !self.start_next() {
            return false;
        }
        self.refill();
        let Some(r) = self.running.as_ref() else {
            return true;
        };
        let now = self.dev.cycle();
        let wd_limit = r.last_progress.saturating_add(self.opts.watchdog_cycles);
        let slice = if r.next > r.ndesc {
            self.opts.slice_cycles.saturating_mul(64)
        } else {
            self.opts.slice_cycles
        };
        let limit = now.saturating_add(slice).min(wd_limit).max(now + 1);
        self.dev.run_until(&mut self.mem, limit, true);
        self.service();
        true
    }

    /// Handles what the device did in the last slice.
    fn service(&mut self) {
        let Some(r) = self.running.as_ref() else {
            return;
        };
        let d = &mut self.dev;
        let now = d.cycle();
        let irq = d.mmio_read(regs::IRQ_STATUS);
        let st = d.mmio_read(regs::STATUS);
        if irq != 0 {
            d.mmio_write(regs::IRQ_STATUS, irq);
            self.emit(ShimEvent::Irq { status: irq });
        }
        let d = &mut self.dev;
        if st & regs::STATUS_HALTED != 0 {
            let code = d.mmio_read(regs::ERR_CODE);
            let idx = d.mmio_read(regs::ERR_DESC);
            let addr = read64(d, regs::ERR_ADDR_LO);
            let fault_desc = r.slot_desc.get((idx % self.ring_size) as usize).copied();
            let res = if code == ErrorCode::Watchdog as u32 {
                JobResult {
                    status: status::ABORTED,
                    error_code: code,
                    fault_addr: addr,
                    fault_desc: fault_desc.unwrap_or(u32::MAX),
                }
            } else {
                JobResult {
                    status: status::ERROR,
                    error_code: code,
                    fault_addr: addr,
                    fault_desc: fault_desc.unwrap_or(u32::MAX),
                }
            };
            self.finish(res, false);
            self.reset("device error");
            return;
        }
        if d.mmio_read(regs::CONTROL) & regs::CONTROL_RUN == 0 {
            self.finish(
                JobResult {
                    status: status::ABORTED,
                    error_code: uapi::err::RESET,
                    ..JobResult::default()
                },
                true,
            );
            self.reset("device reset under a job");
            return;
        }
        let head = d.mmio_read(regs::RING_HEAD);
        let done = read64(d, regs::PERF_DESC_DONE);
        let all_pushed = r.next > r.ndesc;
        if all_pushed && head == self.tail && st & regs::STATUS_BUSY == 0 {
            self.finish(JobResult::default(), false);
            return;
        }
        let watchdog = self.opts.watchdog_cycles;
        if let Some(r) = self.running.as_mut() {
            if head != r.last_head || done != r.last_done {
                r.last_head = head;
                r.last_done = done;
                r.last_progress = now;
            } else if now >= r.last_progress.saturating_add(watchdog) {
                self.finish(
                    JobResult {
                        status: status::ABORTED,
                        error_code: uapi::err::HANG,
                        ..JobResult::default()
                    },
                    false,
                );
                self.reset("watchdog: no progress");
            }
        }
    }
}

/// A host-side BO access.
#[derive(Debug)]
pub enum BoBuf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}
