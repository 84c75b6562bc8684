//! The Rust API: a [`Shim`] is one device (what the kernel driver binds to), a
//! [`File`] is one open of `/dev/accel/accel0` (a context). `File`'s methods
//! are the ioctls and take the uapi structs; [`File::ioctl`] takes a request
//! number and a user pointer, exactly as the syscall does.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::driver::{BoBuf, Core, Options, ShimError};
use crate::errno::{Errno, IoctlResult};
use crate::fault::Injection;
use crate::trace::TraceLog;
use crate::uapi::{self, *};
use crate::user::{self, Pod};

/// Driver identity reported by `DRM_IOCTL_VERSION`.
pub const DRIVER_NAME: &str = "npukit";
pub const DRIVER_DATE: &str = "20261125";
pub const DRIVER_DESC: &str =
    "npukit NPU (driver shim over the cycle-accurate model, RTL or lockstep)";
pub const DRIVER_VERSION: (i32, i32, i32) = (1, 0, 0);

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock WAIT's timeout is on).
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    #[allow(clippy::unnecessary_cast)] // time_t and c_long are not i64 everywhere
    let ns = ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64;
    ns
}

/// One device with its driver state. Cloning shares the device.
#[derive(Debug, Clone)]
pub struct Shim {
    core: Arc<Mutex<Core>>,
}

impl Shim {
    pub fn new(opts: Options) -> Result<Self, ShimError> {
        Ok(Shim {
            core: Arc::new(Mutex::new(Core::new(opts)?)),
        })
    }

    /// A shim configured from the environment ([`Options::from_env`]).
    pub fn from_env() -> Result<Self, ShimError> {
        Self::new(Options::from_env()?)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock cannot leave the driver half-updated
        // in a way later calls could not cope with; keep serving.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a new file (context).
    pub fn open(&self) -> IoctlResult<File> {
        let (ctx, tracing) = {
            let mut c = self.lock();
            (c.open_context()?, c.tracing())
        };
        Ok(File {
            shim: self.clone(),
            ctx,
            tracing,
        })
    }

    /// Scripts a fault for a job (see [`crate::fault`]).
    pub fn inject(&self, i: Injection) {
        self.lock().inject(i);
    }

    /// Jobs accepted so far, all files together.
    pub fn jobs_accepted(&self) -> u64 {
        self.lock().jobs_accepted()
    }

    /// The combined driver + hardware trace, when tracing is on.
    pub fn trace_log(&self) -> Option<TraceLog> {
        self.lock().trace_log()
    }

    /// Writes the combined driver + hardware timeline as Perfetto JSON
    /// (see [`crate::trace::write_perfetto`]); an error if tracing is off.
    pub fn write_trace(&self, path: &std::path::Path) -> std::io::Result<()> {
        let (log, cfg) = {
            let c = self.lock();
            (c.trace_log(), c.options().config.clone())
        };
        let log = log.ok_or_else(|| std::io::Error::other("tracing is off (Options::trace)"))?;
        let events = log.lock().map(|v| v.clone()).unwrap_or_default();
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        crate::trace::write_perfetto(&events, &cfg, &mut f)?;
        std::io::Write::flush(&mut f)
    }

    /// Runs queued work until the device is idle or `max_steps` slices pass.
    pub fn drain(&self, max_steps: u64) {
        for _ in 0..max_steps {
            if !self.lock().step() {
                break;
            }
        }
    }

    /// Undoes [`File::mmap`] for `addr..addr+len` (the munmap syscall);
    /// `false` if the range is not device memory.
    pub fn munmap(&self, addr: *mut u8, len: usize) -> bool {
        self.lock().munmap(addr as usize, len)
    }

    /// What the driver holds now (contexts, BOs, mappings, memory): see
    /// [`crate::driver::Usage`].
    pub fn usage(&self) -> crate::driver::Usage {
        self.lock().usage()
    }

    /// The memfd of the device memory, when it is shared
    /// ([`crate::Options::shared_memory`]).
    pub fn memory_fd(&self) -> Option<std::os::fd::RawFd> {
        self.lock().memory().fd()
    }

    /// The device clock, in cycles.
    pub fn cycle(&self) -> u64 {
        self.lock().cycle()
    }

    /// Host address of device physical address 0 and the memory size (for
    /// the LD_PRELOAD library's munmap bookkeeping).
    pub fn memory_range(&self) -> (usize, u64) {
        let c = self.lock();
        (c.memory().base() as usize, c.memory().len())
    }
}

/// One open file of the device: a context. Closed on drop.
#[derive(Debug)]
pub struct File {
    shim: Shim,
    ctx: u32,
    tracing: bool,
}

impl Drop for File {
    fn drop(&mut self) {
        self.shim.lock().close_context(self.ctx);
    }
}

fn copy_out_str(len: &mut u64, ptr: u64, s: &str) -> IoctlResult {
    let n = (*len as usize).min(s.len());
    if n > 0 {
        user::copy_to_user(ptr, &s.as_bytes()[..n])?;
    }
    *len = s.len() as u64;
    Ok(())
}

impl File {
    /// The context id (unique per device).
    pub fn context(&self) -> u32 {
        self.ctx
    }

    pub fn shim(&self) -> &Shim {
        &self.shim
    }

    /// Runs an ioctl body, recording it on the trace timeline when tracing is on.
    fn traced<T>(
        &self,
        name: &'static str,
        seq: u64,
        body: impl FnOnce() -> IoctlResult<T>,
    ) -> IoctlResult<T> {
        if !self.tracing {
            return body();
        }
        let start = self.shim.cycle();
        let r = body();
        self.record(name, start, r.as_ref().map(|_| ()).map_err(|e| *e), seq);
        r
    }

    fn record(&self, name: &'static str, start: u64, r: IoctlResult, seq: u64) {
        self.shim.lock().trace_ioctl(self.ctx, name, start, r, seq);
    }

    /// `DRM_IOCTL_VERSION`.
    pub fn version(&self, v: &mut DrmVersion) -> IoctlResult {
        self.traced("VERSION", 0, || {
            v.version_major = DRIVER_VERSION.0;
            v.version_minor = DRIVER_VERSION.1;
            v.version_patchlevel = DRIVER_VERSION.2;
            copy_out_str(&mut v.name_len, v.name, DRIVER_NAME)?;
            copy_out_str(&mut v.date_len, v.date, DRIVER_DATE)?;
            copy_out_str(&mut v.desc_len, v.desc, DRIVER_DESC)
        })
    }

    /// `DRM_IOCTL_GET_CAP`: PRIME and syncobj are not offered (0); other
    /// capabilities are EINVAL.
    pub fn get_cap(&self, c: &mut DrmGetCap) -> IoctlResult {
        self.traced("GET_CAP", 0, || match c.capability {
            DRM_CAP_PRIME | DRM_CAP_SYNCOBJ | DRM_CAP_SYNCOBJ_TIMELINE => {
                c.value = 0;
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        })
    }

    /// `DRM_IOCTL_GEM_CLOSE`.
    pub fn gem_close(&self, c: &DrmGemClose) -> IoctlResult {
        self.traced("GEM_CLOSE", 0, || self.shim.lock().gem_close(self.ctx, c))
    }

    /// `DRM_IOCTL_NPUKIT_GET_PARAM`.
    pub fn get_param(&self, p: &mut GetParam) -> IoctlResult {
        self.traced("GET_PARAM", 0, || self.shim.lock().get_param(self.ctx, p))
    }

    /// `GET_PARAM` returning the value.
    pub fn param(&self, param: u32) -> IoctlResult<u64> {
        let mut p = GetParam {
            param,
            ..GetParam::default()
        };
        self.get_param(&mut p)?;
        Ok(p.value)
    }

    /// `DRM_IOCTL_NPUKIT_BO_CREATE`.
    pub fn bo_create(&self, b: &mut BoCreate) -> IoctlResult {
        self.traced("BO_CREATE", 0, || self.shim.lock().bo_create(self.ctx, b))
    }

    /// `DRM_IOCTL_NPUKIT_BO_INFO`.
    pub fn bo_info(&self, b: &mut BoInfo) -> IoctlResult {
        self.traced("BO_INFO", 0, || self.shim.lock().bo_info(self.ctx, b))
    }

    /// `DRM_IOCTL_NPUKIT_SUBMIT`. `s.bo_handles` is a user pointer to
    /// `s.bo_count` handles (`handles.as_ptr() as u64` from Rust).
    pub fn submit(&self, s: &mut Submit) -> IoctlResult {
        let start = if self.tracing { self.shim.cycle() } else { 0 };
        let r = self.shim.lock().submit(self.ctx, s);
        if self.tracing {
            self.record("SUBMIT", start, r, s.seq);
        }
        r
    }

    /// `DRM_IOCTL_NPUKIT_WAIT`: drives the device until the job ends or the
    /// absolute `CLOCK_MONOTONIC` time `w.timeout_ns` passes (ETIMEDOUT; at
    /// least one slice is simulated per call, so polling with a past timeout
    /// makes progress).
    pub fn wait(&self, w: &mut Wait) -> IoctlResult {
        let seq = w.seq;
        self.traced("WAIT", seq, || self.wait_inner(w))
    }

    fn wait_inner(&self, w: &mut Wait) -> IoctlResult {
        if w.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let mut first = true;
        loop {
            let mut core = self.shim.lock();
            if let Some((res, _)) = core.job_result(self.ctx, w.seq)? {
                w.status = res.status;
                w.error_code = res.error_code;
                w.fault_addr = res.fault_addr;
                w.fault_desc = res.fault_desc;
                return Ok(());
            }
            if !first && monotonic_ns() >= w.timeout_ns {
                return Err(Errno::ETIMEDOUT);
            }
            first = false;
            core.step();
        }
    }

    /// `DRM_IOCTL_NPUKIT_JOB_STATS`.
    pub fn job_stats(&self, s: &mut JobStats) -> IoctlResult {
        let seq = s.seq;
        self.traced("JOB_STATS", seq, || self.shim.lock().job_stats(self.ctx, s))
    }

    /// `mmap(NULL, len, ..., fd, offset)`: the host address of the BO bytes.
    /// The mapping is the device memory itself (no copy); it keeps the BO
    /// allocated, even after GEM_CLOSE, until [`Shim::munmap`]. The pointer
    /// is valid while the [`Shim`] lives (device memory goes with it).
    pub fn mmap(&self, offset: u64, len: u64) -> IoctlResult<*mut u8> {
        self.traced("MMAP", 0, || {
            self.shim
                .lock()
                .mmap_range(self.ctx, offset, len)
                .map(|(p, _)| p as usize)
        })
        .map(|p| p as *mut u8)
    }

    /// Writes bytes into a BO (host side, like pwrite on the mapping).
    pub fn bo_write(&self, handle: u32, offset: u64, data: &[u8]) -> IoctlResult {
        self.shim
            .lock()
            .bo_access(self.ctx, handle, offset, BoBuf::Write(data))
    }

    /// Reads bytes from a BO.
    pub fn bo_read(&self, handle: u32, offset: u64, buf: &mut [u8]) -> IoctlResult {
        self.shim
            .lock()
            .bo_access(self.ctx, handle, offset, BoBuf::Read(buf))
    }

    /// Creates a BO and returns (handle, device address).
    pub fn create_bo(&self, size: u64, flags: u32) -> IoctlResult<BoCreate> {
        let mut b = BoCreate {
            size,
            flags,
            ..BoCreate::default()
        };
        self.bo_create(&mut b)?;
        Ok(b)
    }

    /// SUBMIT of `len` bytes at `offset` in `cmd` using `bos`; the sequence number.
    pub fn submit_job(&self, cmd: u32, offset: u64, len: u64, bos: &[u32]) -> IoctlResult<u64> {
        let mut s = Submit {
            cmd_handle: cmd,
            cmd_offset: offset,
            cmd_length: len,
            bo_handles: bos.as_ptr() as u64,
            bo_count: bos.len() as u32,
            ..Submit::default()
        };
        self.submit(&mut s)?;
        Ok(s.seq)
    }

    /// WAIT with a relative timeout in nanoseconds.
    pub fn wait_job(&self, seq: u64, timeout_ns: i64) -> IoctlResult<Wait> {
        let mut w = Wait {
            seq,
            timeout_ns: monotonic_ns().saturating_add(timeout_ns),
            ..Wait::default()
        };
        self.wait(&mut w)?;
        Ok(w)
    }

    /// The ioctl syscall: `req` and a user pointer `arg` to the struct. An
    /// unknown request is ENOTTY; a bad `arg` is EFAULT.
    pub fn ioctl(&self, req: u32, arg: u64) -> IoctlResult {
        fn rw<T: Pod>(arg: u64, f: impl FnOnce(&mut T) -> IoctlResult) -> IoctlResult {
            let mut v: T = user::read_struct(arg)?;
            f(&mut v)?;
            user::write_struct(arg, &v)
        }
        // WAIT and SUBMIT write their outputs back even on some errors in the
        // kernel; here outputs are written only on success, which the uapi allows.
        match req {
            uapi::DRM_IOCTL_VERSION => rw(arg, |v: &mut DrmVersion| self.version(v)),
            uapi::DRM_IOCTL_GET_CAP => rw(arg, |c: &mut DrmGetCap| self.get_cap(c)),
            uapi::DRM_IOCTL_GEM_CLOSE => {
                let c: DrmGemClose = user::read_struct(arg)?;
                self.gem_close(&c)
            }
            uapi::DRM_IOCTL_NPUKIT_GET_PARAM => rw(arg, |p: &mut GetParam| self.get_param(p)),
            uapi::DRM_IOCTL_NPUKIT_BO_CREATE => rw(arg, |b: &mut BoCreate| self.bo_create(b)),
            uapi::DRM_IOCTL_NPUKIT_BO_INFO => rw(arg, |b: &mut BoInfo| self.bo_info(b)),
            uapi::DRM_IOCTL_NPUKIT_SUBMIT => rw(arg, |s: &mut Submit| self.submit(s)),
            uapi::DRM_IOCTL_NPUKIT_WAIT => rw(arg, |w: &mut Wait| self.wait(w)),
            uapi::DRM_IOCTL_NPUKIT_JOB_STATS => rw(arg, |s: &mut JobStats| self.job_stats(s)),
            _ => self.traced("UNKNOWN", 0, || Err(Errno::ENOTTY)),
        }
    }
}

/// The ioctls of an open device file, whatever is behind it: a [`File`] of
/// this process's device, or a [`crate::client::RemoteFile`] of a server's.
/// The provided methods are conveniences over [`Ioctl::ioctl`].
pub trait Ioctl {
    /// The context id (unique per device).
    fn context(&self) -> u32;

    /// The ioctl syscall: `req` and a user pointer `arg` to the struct.
    fn ioctl(&self, req: u32, arg: u64) -> IoctlResult;

    /// `mmap(NULL, len, ..., fd, offset)`: the host address of the BO bytes.
    fn mmap(&self, offset: u64, len: u64) -> IoctlResult<*mut u8>;

    /// `GET_PARAM` returning the value.
    fn param(&self, param: u32) -> IoctlResult<u64> {
        let p = GetParam {
            param,
            ..GetParam::default()
        };
        Ok(call(self, uapi::DRM_IOCTL_NPUKIT_GET_PARAM, p)?.value)
    }

    /// `BO_CREATE` of `size` bytes.
    fn create_bo(&self, size: u64, flags: u32) -> IoctlResult<BoCreate> {
        let b = BoCreate {
            size,
            flags,
            ..BoCreate::default()
        };
        call(self, uapi::DRM_IOCTL_NPUKIT_BO_CREATE, b)
    }

    /// `GEM_CLOSE` of a handle.
    fn close_bo(&self, handle: u32) -> IoctlResult {
        call(
            self,
            uapi::DRM_IOCTL_GEM_CLOSE,
            DrmGemClose { handle, pad: 0 },
        )
        .map(drop)
    }

    /// SUBMIT of `len` bytes at `offset` in `cmd` using `bos`; the sequence number.
    fn submit_job(&self, cmd: u32, offset: u64, len: u64, bos: &[u32]) -> IoctlResult<u64> {
        let s = Submit {
            cmd_handle: cmd,
            cmd_offset: offset,
            cmd_length: len,
            bo_handles: bos.as_ptr() as u64,
            bo_count: bos.len() as u32,
            ..Submit::default()
        };
        Ok(call(self, uapi::DRM_IOCTL_NPUKIT_SUBMIT, s)?.seq)
    }

    /// WAIT with a relative timeout in nanoseconds.
    fn wait_job(&self, seq: u64, timeout_ns: i64) -> IoctlResult<Wait> {
        let w = Wait {
            seq,
            timeout_ns: monotonic_ns().saturating_add(timeout_ns),
            ..Wait::default()
        };
        call(self, uapi::DRM_IOCTL_NPUKIT_WAIT, w)
    }

    /// JOB_STATS of a finished job.
    fn stats_of(&self, seq: u64) -> IoctlResult<JobStats> {
        let s = JobStats {
            seq,
            ..JobStats::default()
        };
        call(self, uapi::DRM_IOCTL_NPUKIT_JOB_STATS, s)
    }
}

/// One ioctl on `arg` (the struct the request names); the struct as the
/// driver left it.
fn call<T>(f: &(impl Ioctl + ?Sized), req: u32, mut arg: T) -> IoctlResult<T> {
    f.ioctl(req, &mut arg as *mut T as u64)?;
    Ok(arg)
}

impl Ioctl for File {
    fn context(&self) -> u32 {
        File::context(self)
    }
    fn ioctl(&self, req: u32, arg: u64) -> IoctlResult {
        File::ioctl(self, req, arg)
    }
    fn mmap(&self, offset: u64, len: u64) -> IoctlResult<*mut u8> {
        File::mmap(self, offset, len)
    }
}
