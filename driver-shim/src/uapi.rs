//! The accel uapi as Rust types: the same layouts, numbers and constants as
//! `include/npukit_accel.h` (checked by `tests/uapi_header.rs`, which compiles
//! C against the header and compares every size, offset and ioctl number).
//!
//! Every struct is `#[repr(C)]`, fixed-width and explicitly padded; the size
//! assertions below fail the build if a field moves.

use core::mem::size_of;

/// `_IOC` direction bits (asm-generic encoding, used by x86 and arm64).
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;

/// `_IOC(dir, type, nr, size)`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}

/// The parts of an ioctl request number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IocParts {
    pub dir: u32,
    pub ty: u8,
    pub nr: u8,
    pub size: usize,
}

/// Splits an ioctl request number.
pub const fn ioc_parts(req: u32) -> IocParts {
    IocParts {
        dir: req >> IOC_DIRSHIFT,
        ty: (req >> IOC_TYPESHIFT) as u8,
        nr: (req >> IOC_NRSHIFT) as u8,
        size: ((req >> IOC_SIZESHIFT) & 0x3FFF) as usize,
    }
}

/// `DRM_IOCTL_BASE`.
pub const DRM_IOCTL_BASE: u8 = b'd';
/// First driver-specific ioctl number.
pub const DRM_COMMAND_BASE: u8 = 0x40;

const fn drm_iowr(nr: u8, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, DRM_IOCTL_BASE, nr, size)
}
const fn drm_iow(nr: u8, size: usize) -> u32 {
    ioc(IOC_WRITE, DRM_IOCTL_BASE, nr, size)
}

/// `struct drm_version` (LP64 layout: `size_t` and pointers are 64-bit).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrmVersion {
    pub version_major: i32,
    pub version_minor: i32,
    pub version_patchlevel: i32,
    pub _pad: u32,
    pub name_len: u64,
    pub name: u64,
    pub date_len: u64,
    pub date: u64,
    pub desc_len: u64,
    pub desc: u64,
}

/// `struct drm_gem_close`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrmGemClose {
    pub handle: u32,
    pub pad: u32,
}

/// `struct drm_get_cap`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrmGetCap {
    pub capability: u64,
    pub value: u64,
}

pub const DRM_CAP_PRIME: u64 = 0x5;
pub const DRM_CAP_SYNCOBJ: u64 = 0x13;
pub const DRM_CAP_SYNCOBJ_TIMELINE: u64 = 0x14;

pub const DRM_IOCTL_VERSION: u32 = drm_iowr(0x00, size_of::<DrmVersion>());
pub const DRM_IOCTL_GEM_CLOSE: u32 = drm_iow(0x09, size_of::<DrmGemClose>());
pub const DRM_IOCTL_GET_CAP: u32 = drm_iowr(0x0c, size_of::<DrmGetCap>());

pub const DRM_NPUKIT_GET_PARAM: u8 = 0x00;
pub const DRM_NPUKIT_BO_CREATE: u8 = 0x01;
pub const DRM_NPUKIT_BO_INFO: u8 = 0x02;
pub const DRM_NPUKIT_SUBMIT: u8 = 0x03;
pub const DRM_NPUKIT_WAIT: u8 = 0x04;
pub const DRM_NPUKIT_JOB_STATS: u8 = 0x05;

/// `DRM_NPUKIT_PARAM_*`.
pub mod param {
    pub const DEVICE_ID: u32 = 0;
    pub const ABI_VERSION: u32 = 1;
    pub const CAPS: u32 = 2;
    pub const ARRAY_ROWS: u32 = 3;
    pub const ARRAY_COLS: u32 = 4;
    pub const SPAD_BYTES: u32 = 5;
    pub const ACC_BYTES: u32 = 6;
    pub const BEAT_BYTES: u32 = 7;
    pub const CLOCK_MHZ: u32 = 8;
    pub const MEM_BYTES: u32 = 9;
    pub const PLATFORM: u32 = 10;
    pub const MAX_JOBS: u32 = 11;
    pub const WATCHDOG_CYCLES: u32 = 12;
    pub const MAX_JOB_DESCS: u32 = 13;
    pub const CYCLE: u32 = 14;
    /// Every parameter with its C name suffix, for the header check.
    pub const ALL: &[(&str, u32)] = &[
        ("DEVICE_ID", DEVICE_ID),
        ("ABI_VERSION", ABI_VERSION),
        ("CAPS", CAPS),
        ("ARRAY_ROWS", ARRAY_ROWS),
        ("ARRAY_COLS", ARRAY_COLS),
        ("SPAD_BYTES", SPAD_BYTES),
        ("ACC_BYTES", ACC_BYTES),
        ("BEAT_BYTES", BEAT_BYTES),
        ("CLOCK_MHZ", CLOCK_MHZ),
        ("MEM_BYTES", MEM_BYTES),
        ("PLATFORM", PLATFORM),
        ("MAX_JOBS", MAX_JOBS),
        ("WATCHDOG_CYCLES", WATCHDOG_CYCLES),
        ("MAX_JOB_DESCS", MAX_JOB_DESCS),
        ("CYCLE", CYCLE),
    ];
}

/// `DRM_NPUKIT_PLATFORM_*`.
pub mod platform {
    pub const MODEL: u64 = 0;
    pub const RTL: u64 = 1;
    pub const LOCKSTEP: u64 = 2;
}

/// `struct drm_npukit_get_param`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetParam {
    pub param: u32,
    pub index: u32,
    pub value: u64,
}

/// `DRM_NPUKIT_BO_READONLY`: the device may read but not write the BO.
pub const BO_READONLY: u32 = 0x1;
/// Every defined BO flag.
pub const BO_FLAGS: u32 = BO_READONLY;

/// `struct drm_npukit_bo_create`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoCreate {
    pub size: u64,
    pub flags: u32,
    pub handle: u32,
    pub device_addr: u64,
    pub mmap_offset: u64,
}

/// `struct drm_npukit_bo_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoInfo {
    pub handle: u32,
    pub flags: u32,
    pub size: u64,
    pub device_addr: u64,
    pub mmap_offset: u64,
}

/// `struct drm_npukit_submit`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Submit {
    pub cmd_handle: u32,
    pub flags: u32,
    pub cmd_offset: u64,
    pub cmd_length: u64,
    pub bo_handles: u64,
    pub bo_count: u32,
    pub pad: u32,
    pub seq: u64,
}

/// `DRM_NPUKIT_JOB_STATUS_*`.
pub mod status {
    pub const OK: u32 = 0;
    pub const ERROR: u32 = 1;
    pub const ABORTED: u32 = 2;
}

/// `DRM_NPUKIT_ERR_*`: driver error codes beyond the device's `NPU_ERR_*`.
pub mod err {
    /// No progress for the watchdog limit; the device was reset.
    pub const HANG: u32 = 0x100;
    /// The device was reset under the job.
    pub const RESET: u32 = 0x101;
    /// An uncorrectable memory data error at `fault_addr`.
    pub const DATA: u32 = 0x102;
    /// The device was lost: its results can no longer be trusted (the
    /// lockstep backend's model and RTL diverged). Every later job fails too.
    pub const LOST: u32 = 0x103;
}

/// `struct drm_npukit_wait`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wait {
    pub seq: u64,
    pub timeout_ns: i64,
    pub status: u32,
    pub error_code: u32,
    pub fault_addr: u64,
    pub fault_desc: u32,
    pub pad: u32,
}

/// `struct drm_npukit_job_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobStats {
    pub seq: u64,
    pub start_cycle: u64,
    pub end_cycle: u64,
    pub cycles: u64,
    pub macs: u64,
    pub dma_read_bytes: u64,
    pub dma_write_bytes: u64,
    pub descs: u64,
}

const fn drv(nr: u8, size: usize) -> u32 {
    drm_iowr(DRM_COMMAND_BASE + nr, size)
}

pub const DRM_IOCTL_NPUKIT_GET_PARAM: u32 = drv(DRM_NPUKIT_GET_PARAM, size_of::<GetParam>());
pub const DRM_IOCTL_NPUKIT_BO_CREATE: u32 = drv(DRM_NPUKIT_BO_CREATE, size_of::<BoCreate>());
pub const DRM_IOCTL_NPUKIT_BO_INFO: u32 = drv(DRM_NPUKIT_BO_INFO, size_of::<BoInfo>());
pub const DRM_IOCTL_NPUKIT_SUBMIT: u32 = drv(DRM_NPUKIT_SUBMIT, size_of::<Submit>());
pub const DRM_IOCTL_NPUKIT_WAIT: u32 = drv(DRM_NPUKIT_WAIT, size_of::<Wait>());
pub const DRM_IOCTL_NPUKIT_JOB_STATS: u32 = drv(DRM_NPUKIT_JOB_STATS, size_of::<JobStats>());

/// Every request the driver answers (anything else is ENOTTY), with the size
/// of its argument struct.
pub const KNOWN_IOCTLS: [(u32, usize); 9] = [
    (DRM_IOCTL_VERSION, size_of::<DrmVersion>()),
    (DRM_IOCTL_GET_CAP, size_of::<DrmGetCap>()),
    (DRM_IOCTL_GEM_CLOSE, size_of::<DrmGemClose>()),
    (DRM_IOCTL_NPUKIT_GET_PARAM, size_of::<GetParam>()),
    (DRM_IOCTL_NPUKIT_BO_CREATE, size_of::<BoCreate>()),
    (DRM_IOCTL_NPUKIT_BO_INFO, size_of::<BoInfo>()),
    (DRM_IOCTL_NPUKIT_SUBMIT, size_of::<Submit>()),
    (DRM_IOCTL_NPUKIT_WAIT, size_of::<Wait>()),
    (DRM_IOCTL_NPUKIT_JOB_STATS, size_of::<JobStats>()),
];

/// Every ioctl with its C name, for the header check and traces.
pub const IOCTLS: &[(&str, u32)] = &[
    ("DRM_IOCTL_VERSION", DRM_IOCTL_VERSION),
    ("DRM_IOCTL_GEM_CLOSE", DRM_IOCTL_GEM_CLOSE),
    ("DRM_IOCTL_GET_CAP", DRM_IOCTL_GET_CAP),
    ("DRM_IOCTL_NPUKIT_GET_PARAM", DRM_IOCTL_NPUKIT_GET_PARAM),
    ("DRM_IOCTL_NPUKIT_BO_CREATE", DRM_IOCTL_NPUKIT_BO_CREATE),
    ("DRM_IOCTL_NPUKIT_BO_INFO", DRM_IOCTL_NPUKIT_BO_INFO),
    ("DRM_IOCTL_NPUKIT_SUBMIT", DRM_IOCTL_NPUKIT_SUBMIT),
    ("DRM_IOCTL_NPUKIT_WAIT", DRM_IOCTL_NPUKIT_WAIT),
    ("DRM_IOCTL_NPUKIT_JOB_STATS", DRM_IOCTL_NPUKIT_JOB_STATS),
];

/// The C name of an ioctl request number, if it is one of ours.
pub fn ioctl_name(req: u32) -> Option<&'static str> {
    IOCTLS.iter().find(|(_, r)| *r == req).map(|(n, _)| *n)
}

const _: () = {
    assert!(size_of::<DrmVersion>() == 64);
    assert!(size_of::<DrmGemClose>() == 8);
    assert!(size_of::<DrmGetCap>() == 16);
    assert!(size_of::<GetParam>() == 16);
    assert!(size_of::<BoCreate>() == 32);
    assert!(size_of::<BoInfo>() == 32);
    assert!(size_of::<Submit>() == 48);
    assert!(size_of::<Wait>() == 40);
    assert!(size_of::<JobStats>() == 64);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_follow_the_iowr_encoding() {
        // _IOWR('d', 0x40, 16 bytes): dir 3 << 30 | 16 << 16 | 'd' << 8 | 0x40.
        assert_eq!(DRM_IOCTL_NPUKIT_GET_PARAM, 0xC010_6440);
        // Two well-known DRM core numbers.
        assert_eq!(DRM_IOCTL_VERSION, 0xC040_6400);
        assert_eq!(DRM_IOCTL_GEM_CLOSE, 0x4008_6409);
        let p = ioc_parts(DRM_IOCTL_NPUKIT_SUBMIT);
        assert_eq!(p.ty, b'd');
        assert_eq!(p.nr, 0x43);
        assert_eq!(p.size, 48);
        assert_eq!(p.dir, IOC_READ | IOC_WRITE);
    }
}
