/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * npukit_accel.h - the npukit NPU accel uapi: the ioctls a user-mode driver
 * issues on /dev/accel/accelN.
 *
 * Served by the npukit driver shim (the Rust API, or the LD_PRELOAD library
 * that intercepts open/ioctl/mmap/munmap/close of /dev/accel/accel0) over
 * the cycle-accurate model, the RTL, or both in lockstep. The layout rules
 * are those of include/uapi/drm/ (u64 for every user pointer, fixed-width
 * fields, explicit padding); every reserved or pad field is Input and must
 * be zero, otherwise the ioctl fails with EINVAL.
 *
 * Checked against the Rust definitions (driver-shim/src/uapi.rs) by
 * driver-shim/tests/uapi_header.rs: sizes, offsets and ioctl numbers.
 * The command stream itself (descriptors) is firmware-abi/include/npukit_abi.h.
 */
#ifndef NPUKIT_ACCEL_H
#define NPUKIT_ACCEL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#if defined(__cplusplus)
extern "C" {
#endif

/*
 * DRM core definitions an accel node answers. They are the same as in
 * <drm/drm.h>; when that header was included first, its copies are used.
 */
#ifndef _DRM_H_
#define DRM_IOCTL_BASE          'd'
#define DRM_IO(nr)              _IO(DRM_IOCTL_BASE, nr)
#define DRM_IOR(nr, type)       _IOR(DRM_IOCTL_BASE, nr, type)
#define DRM_IOW(nr, type)       _IOW(DRM_IOCTL_BASE, nr, type)
#define DRM_IOWR(nr, type)      _IOWR(DRM_IOCTL_BASE, nr, type)
#define DRM_COMMAND_BASE        0x40
#define DRM_COMMAND_END         0xA0

/* DRM_IOCTL_VERSION: driver name, date and description, copied into the
 * caller's buffers (at most *_len bytes each, not NUL-terminated); on return
 * each *_len holds the full length, so a first call with zero lengths sizes
 * the buffers. */
struct drm_version {
	int version_major;        /* Output */
	int version_minor;        /* Output */
	int version_patchlevel;   /* Output */
	__kernel_size_t name_len; /* Input/Output */
	char *name;               /* Input: user buffer (may be NULL if name_len is 0) */
	__kernel_size_t date_len; /* Input/Output */
	char *date;               /* Input */
	__kernel_size_t desc_len; /* Input/Output */
	char *desc;               /* Input */
};

/* DRM_IOCTL_GEM_CLOSE: releases a BO handle of this file. */
struct drm_gem_close {
	__u32 handle; /* Input */
	__u32 pad;    /* Input: must be zero */
};

/* DRM_IOCTL_GET_CAP: a DRM capability (DRM_CAP_*). */
struct drm_get_cap {
	__u64 capability; /* Input */
	__u64 value;      /* Output */
};

#define DRM_CAP_PRIME                 0x5
#define DRM_CAP_SYNCOBJ               0x13
#define DRM_CAP_SYNCOBJ_TIMELINE      0x14

#define DRM_IOCTL_VERSION             DRM_IOWR(0x00, struct drm_version)
#define DRM_IOCTL_GEM_CLOSE           DRM_IOW(0x09, struct drm_gem_close)
#define DRM_IOCTL_GET_CAP             DRM_IOWR(0x0c, struct drm_get_cap)
#endif /* _DRM_H_ */

/* Driver ioctl numbers, relative to DRM_COMMAND_BASE. */
#define DRM_NPUKIT_GET_PARAM          0x00
#define DRM_NPUKIT_BO_CREATE          0x01
#define DRM_NPUKIT_BO_INFO            0x02
#define DRM_NPUKIT_SUBMIT             0x03
#define DRM_NPUKIT_WAIT               0x04
#define DRM_NPUKIT_JOB_STATS          0x05

/* GET_PARAM parameters (struct drm_npukit_get_param.param). */
#define DRM_NPUKIT_PARAM_DEVICE_ID        0  /* the ID register, 0x4E50554B ("NPUK") */
#define DRM_NPUKIT_PARAM_ABI_VERSION      1  /* firmware ABI: major << 16 | minor */
#define DRM_NPUKIT_PARAM_CAPS             2  /* NPU_CAP_* bits */
#define DRM_NPUKIT_PARAM_ARRAY_ROWS       3  /* MAC array rows */
#define DRM_NPUKIT_PARAM_ARRAY_COLS       4  /* MAC array columns */
#define DRM_NPUKIT_PARAM_SPAD_BYTES       5  /* scratchpad bytes */
#define DRM_NPUKIT_PARAM_ACC_BYTES        6  /* accumulator memory bytes */
#define DRM_NPUKIT_PARAM_BEAT_BYTES       7  /* memory-port beat width in bytes */
#define DRM_NPUKIT_PARAM_CLOCK_MHZ        8  /* nominal clock in MHz */
#define DRM_NPUKIT_PARAM_MEM_BYTES        9  /* device memory for BOs, bytes */
#define DRM_NPUKIT_PARAM_PLATFORM         10 /* DRM_NPUKIT_PLATFORM_* */
#define DRM_NPUKIT_PARAM_MAX_JOBS         11 /* jobs queued per device before SUBMIT returns EBUSY */
#define DRM_NPUKIT_PARAM_WATCHDOG_CYCLES  12 /* cycles without progress before a job is aborted */
#define DRM_NPUKIT_PARAM_MAX_JOB_DESCS    13 /* largest SUBMIT, in descriptors */
#define DRM_NPUKIT_PARAM_CYCLE            14 /* the device clock now, in cycles */

/* DRM_NPUKIT_PARAM_PLATFORM values. */
#define DRM_NPUKIT_PLATFORM_MODEL     0 /* the cycle-accurate Rust model */
#define DRM_NPUKIT_PLATFORM_RTL       1 /* the Verilated RTL */
#define DRM_NPUKIT_PLATFORM_LOCKSTEP  2 /* model and RTL compared cycle by cycle */

struct drm_npukit_get_param {
	__u32 param; /* Input: DRM_NPUKIT_PARAM_* */
	__u32 index; /* Input: must be zero */
	__u64 value; /* Output */
};

/* BO_CREATE flags. */
#define DRM_NPUKIT_BO_READONLY        0x1 /* the device may read but not write the BO */
#define DRM_NPUKIT_BO_FLAGS           DRM_NPUKIT_BO_READONLY

/* Allocates a zeroed buffer object in device memory, mapped into this
 * file's device address space. Sizes are rounded up to 4 KiB pages. */
struct drm_npukit_bo_create {
	__u64 size;        /* Input: bytes, 1 to DRM_NPUKIT_PARAM_MEM_BYTES */
	__u32 flags;       /* Input: DRM_NPUKIT_BO_* */
	__u32 handle;      /* Output: nonzero handle */
	__u64 device_addr; /* Output: device (virtual) address, 4 KiB aligned */
	__u64 mmap_offset; /* Output: offset to pass to mmap() on this file */
};

struct drm_npukit_bo_info {
	__u32 handle;      /* Input */
	__u32 flags;       /* Output: DRM_NPUKIT_BO_* given at creation */
	__u64 size;        /* Output: bytes (rounded up to pages) */
	__u64 device_addr; /* Output */
	__u64 mmap_offset; /* Output */
};

/* Queues a job: the descriptors at cmd_offset in the command BO are copied
 * by the driver into the device's command ring (refilled as the ring drains)
 * and run with this file's translation table; the driver appends a FENCE. */
struct drm_npukit_submit {
	__u32 cmd_handle; /* Input: BO holding the command stream */
	__u32 flags;      /* Input: must be zero */
	__u64 cmd_offset; /* Input: bytes into the BO, multiple of 32 */
	__u64 cmd_length; /* Input: bytes, nonzero multiple of 32 */
	__u64 bo_handles; /* Input: user pointer to bo_count __u32 handles the job uses */
	__u32 bo_count;   /* Input */
	__u32 pad;        /* Input: must be zero */
	__u64 seq;        /* Output: job sequence number (per file, from 1) */
};

/* Job status (struct drm_npukit_wait.status). */
#define DRM_NPUKIT_JOB_STATUS_OK       0 /* ran to its end */
#define DRM_NPUKIT_JOB_STATUS_ERROR    1 /* the device halted on this job: error_code, fault_desc, fault_addr */
#define DRM_NPUKIT_JOB_STATUS_ABORTED  2 /* lost to a watchdog timeout or a device reset */

/* error_code values beyond the device's NPU_ERR_* (set by the driver). */
#define DRM_NPUKIT_ERR_HANG            0x100 /* no progress for WATCHDOG_CYCLES; device reset */
#define DRM_NPUKIT_ERR_RESET           0x101 /* the device was reset under the job */
#define DRM_NPUKIT_ERR_DATA            0x102 /* uncorrectable memory data error at fault_addr */
#define DRM_NPUKIT_ERR_LOST            0x103 /* device lost: its results cannot be trusted (lockstep divergence) */

/* Waits for a job of this file. Returns 0 once the job has finished (see
 * status), ETIMEDOUT if timeout_ns passed first (the job keeps running). */
struct drm_npukit_wait {
	__u64 seq;        /* Input: from SUBMIT */
	__s64 timeout_ns; /* Input: absolute CLOCK_MONOTONIC time */
	__u32 status;     /* Output: DRM_NPUKIT_JOB_STATUS_* */
	__u32 error_code; /* Output: NPU_ERR_* or DRM_NPUKIT_ERR_*, 0 when OK */
	__u64 fault_addr; /* Output: the faulting address the device reported */
	__u32 fault_desc; /* Output: index of the faulting descriptor in the job */
	__u32 pad;        /* Input: must be zero */
};

/* Per-job figures of a finished job (EBUSY while it runs). */
struct drm_npukit_job_stats {
	__u64 seq;             /* Input */
	__u64 start_cycle;     /* Output: device clock when the job started */
	__u64 end_cycle;       /* Output: device clock when it finished */
	__u64 cycles;          /* Output: end_cycle - start_cycle */
	__u64 macs;            /* Output: multiply-accumulates */
	__u64 dma_read_bytes;  /* Output */
	__u64 dma_write_bytes; /* Output */
	__u64 descs;           /* Output: descriptors completed (the job's and the driver's FENCE) */
};

#define DRM_IOCTL_NPUKIT_GET_PARAM \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_NPUKIT_GET_PARAM, struct drm_npukit_get_param)
#define DRM_IOCTL_NPUKIT_BO_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_NPUKIT_BO_CREATE, struct drm_npukit_bo_create)
#define DRM_IOCTL_NPUKIT_BO_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_NPUKIT_BO_INFO, struct drm_npukit_bo_info)
#define DRM_IOCTL_NPUKIT_SUBMIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_NPUKIT_SUBMIT, struct drm_npukit_submit)
#define DRM_IOCTL_NPUKIT_WAIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_NPUKIT_WAIT, struct drm_npukit_wait)
#define DRM_IOCTL_NPUKIT_JOB_STATS \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_NPUKIT_JOB_STATS, struct drm_npukit_job_stats)

#if defined(__cplusplus)
}
#endif

#endif /* NPUKIT_ACCEL_H */
