//! npukit driver shim: the part a kernel driver plays, over any [`npukit_sim::Device`].
//!
//! * [`uapi`]: the accel ioctl ABI (`include/npukit_accel.h` in Rust).
//! * [`driver`]: the reference kernel-driver logic (contexts, BOs, translation
//!   tables, the command ring, fences and interrupts, the job queue, the watchdog).
//! * [`api`]: the Rust API, [`Shim`] (a device) and [`File`] (an open file).
//! * [`fault`]: deterministic fault injection, scripted per job.
//! * [`backend`]: model / rtl / lockstep selection.
//! * [`trace`]: driver events on the hardware's timeline.
//! * [`vfs`]: the sysfs and debugfs files of the device.
//! * [`server`], [`client`], [`wire`]: one device for many processes
//!   (`npukit serve`, `NPUKIT_SERVER`).
//! * [`preload`]: the LD_PRELOAD entry points (the C half is `csrc/preload.c`,
//!   linked into the cdylib `libnpukit_shim.so` only).
//!
//! `docs/driver.md` is the user's guide.

pub mod api;
pub mod backend;
pub mod client;
pub mod driver;
pub mod errno;
pub mod fault;
pub mod ivshmem;
pub mod mem;
pub mod preload;
pub mod server;
pub mod trace;
pub mod uapi;
pub mod user;
pub mod vfs;
pub mod wire;

pub use api::{File, Ioctl, Shim};
pub use backend::Backend;
pub use client::{Accel, AccelFile, Client, RemoteFile};
pub use driver::{DeviceFactory, JobResult, Options, ShimError, Usage};
pub use errno::{Errno, IoctlResult};
pub use fault::{Fault, Injection, JobRef, XorShift};
pub use server::Server;
