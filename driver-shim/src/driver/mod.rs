//! The reference kernel-driver logic, over any [`Device`]: this file holds
//! the device, the contexts and the parameters; `gem` the buffer
//! objects, `job` the jobs, the ring and recovery.
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

use std::collections::{BTreeMap, VecDeque};

use npukit_abi::{regs, DESC_BYTES};
use npukit_sim::{Device, NpuConfig};

mod gem;
mod job;

pub use gem::BoBuf;
use gem::{BoObj, Mapping};
pub use job::JobResult;
use job::{Job, JobState, Running};

use crate::backend::{Backend, BackendDevice, BackendError, Plain};
use crate::errno::{Errno, IoctlResult};
use crate::fault::{FaultDevice, Injection};
use crate::mem::{Allocator, HostMemory, PAGE};
use crate::trace::{LogSink, ShimEvent, TraceEvent, TraceLog};
use crate::uapi::{self, param, GetParam};

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
    /// The RTL variant the `rtl` and `lockstep` backends run, by name
    /// (`NPUKIT_RTL_VARIANT`, e.g. `npu_4x4`); its fixed fields replace
    /// `config`'s. `None`: the variant matching `config`.
    pub rtl_variant: Option<String>,
    /// Device memory in bytes (the ring, the translation tables and all BOs).
    pub mem_bytes: u64,
    /// Command ring size in descriptors (clamped to the device's MAX_RING).
    pub ring_size: u32,
    /// Jobs queued or running on the device before SUBMIT says EBUSY.
    pub max_jobs: usize,
    /// Cycles without progress before a job is declared hung; 0 disables the
    /// watchdog (a hung job then never ends: WAIT times out).
    pub watchdog_cycles: u64,
    /// Cycles simulated per slice while the driver still has descriptors to
    /// copy into the ring.
    pub slice_cycles: u64,
    /// Scripted faults.
    pub faults: Vec<Injection>,
    /// Record driver and hardware events on one timeline.
    pub trace: bool,
    /// Device memory in a memfd that other processes can map (the device
    /// server, [`crate::server`], sets it); otherwise private memory.
    pub shared_memory: bool,
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
            rtl_variant: None,
            mem_bytes: 64 << 20,
            ring_size: 256,
            max_jobs: 64,
            watchdog_cycles: 1_000_000,
            slice_cycles: 1024,
            faults: Vec::new(),
            trace: false,
            shared_memory: false,
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
    /// `NPUKIT_RTL_VARIANT`,
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
            rtl_variant: crate::backend::rtl_variant_from_env(),
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

/// What a device's driver holds at one moment ([`Core::usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Open files.
    pub contexts: usize,
    /// Live buffer objects (held by a handle, a job or a mapping).
    pub objects: usize,
    /// Live mmaps of BOs.
    pub mappings: usize,
    /// Jobs queued or running.
    pub jobs_pending: usize,
    /// Device memory free in the allocator, and all it manages.
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Jobs accepted since the device was created.
    pub jobs_accepted: u64,
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
struct Context {
    bos: BTreeMap<u32, u64>,
    next_handle: u32,
    xlat: u64,
    jobs: BTreeMap<u64, Job>,
    next_seq: u64,
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
    /// Set once the device is lost ([`BackendDevice::lost`]): the report.
    lost: Option<String>,
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
    pub fn new(mut opts: Options) -> Result<Self, ShimError> {
        let trace = opts.trace.then(TraceLog::default);
        let sink = trace.clone().map(LogSink);
        let inner: Box<dyn BackendDevice> = match &opts.device {
            Some(f) => Box::new(Plain((f.0)(&opts.config, sink).map_err(ShimError::Device)?)),
            None => {
                let variant = opts.rtl_variant.as_deref();
                opts.config = opts.backend.resolve_config(&opts.config, variant)?;
                opts.backend.open_traced(&opts.config, variant, sink)?
            }
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
        if let Some(report) = dev.lost() {
            // The identification registers already disagree (lockstep).
            return Err(ShimError::Device(report));
        }
        let ring_size = opts
            .ring_size
            .clamp(2, max_ring)
            .next_power_of_two()
            .min(max_ring);
        let mem = if opts.shared_memory {
            HostMemory::shared(opts.mem_bytes)
        } else {
            HostMemory::new(opts.mem_bytes)
        }
        .ok_or(ShimError::Memory(opts.mem_bytes))?;
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
            lost: None,
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

    /// The debugfs `status` text: the device, its memory, contexts and queue.
    pub fn status_text(&self) -> String {
        let running = match &self.running {
            Some(r) => format!(
                "job {} (context {}, seq {}), descriptor {} of {}",
                r.number,
                r.ctx,
                r.seq,
                r.next.min(r.ndesc),
                r.ndesc
            ),
            None => "none".into(),
        };
        format!(
            "backend: {}\ncycle: {}\ncontexts: {}\njobs accepted: {}\njobs queued: {}\nrunning: {}\n\
             objects: {}\nmappings: {}\nmemory: {} of {} bytes free\nring: {} descriptors at {:#x}\nwatchdog: {} cycles\nfaults scripted: {}\n\
             device lost: {}\n",
            self.opts.backend.name(),
            self.dev.cycle(),
            self.contexts.len(),
            self.jobs_accepted,
            self.queue.len(),
            running,
            self.objects.len(),
            self.maps.len(),
            self.alloc.available(),
            self.alloc.total(),
            self.ring_size,
            self.ring_base,
            self.opts.watchdog_cycles,
            self.opts.faults.len(),
            if self.lost.is_some() { "yes (the report went to stderr)" } else { "no" },
        )
    }

    /// The debugfs `regs` text: every register, `NAME = 0x........`.
    pub fn regs_text(&mut self) -> String {
        let mut s = String::new();
        for r in regs::REGISTERS {
            let v = self.dev.mmio_read(r.offset);
            s += &format!("{:#05x} {:<26} = {v:#010x}\n", r.offset, r.name);
        }
        s
    }

    /// The debugfs `fault_inject` text: the scripted faults, one per line.
    pub fn faults_text(&self) -> String {
        self.opts.faults.iter().map(|i| format!("{i}\n")).collect()
    }

    /// What the driver holds right now (for leak checks: after every file
    /// is closed and every mapping gone, `contexts`, `objects`, `mappings`
    /// and `jobs_pending` are 0 and `free_bytes == total_bytes`).
    pub fn usage(&self) -> Usage {
        Usage {
            contexts: self.contexts.len(),
            objects: self.objects.len(),
            mappings: self.maps.len(),
            jobs_pending: self.queue.len() + usize::from(self.running.is_some()),
            free_bytes: self.alloc.available(),
            total_bytes: self.alloc.total(),
            jobs_accepted: self.jobs_accepted,
        }
    }

    /// Device memory managed by the allocator (`DRM_NPUKIT_PARAM_MEM_BYTES`).
    pub fn bo_memory(&self) -> u64 {
        self.alloc.total()
    }

    /// Identification figures for sysfs: (ABI version, array shape, clock MHz).
    pub fn ident(&self) -> (u32, u32, u32) {
        (self.info.version, self.info.shape, self.info.clock)
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
            self.finish(JobResult::aborted(uapi::err::RESET), true);
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
}
