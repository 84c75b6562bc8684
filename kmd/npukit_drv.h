/* SPDX-License-Identifier: GPL-2.0 */
/*
 * npukit accel driver: shared definitions of the parts (npukit_drv.c: PCI,
 * the register accessor, DRM glue, ioctls; npukit_job.c: jobs, the ring,
 * interrupts, the watchdog, reset; npukit_debugfs.c: debugfs, sysfs and the
 * fault script).
 */
#ifndef NPUKIT_DRV_H
#define NPUKIT_DRV_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include <drm/drm_device.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm.h>

#include "npukit_abi.h"
#include "npukit_accel.h"
#include "npukit_ivshmem.h"

#define NPUKIT_PAGE		NPU_XLAT_PAGE_BYTES
#define NPUKIT_MMAP_BASE	(1ULL << 32)
#define NPUKIT_MAX_SUBMIT_BOS	4096
#define NPUKIT_MAX_JOB_DESCS	(1ULL << 20)
#define NPUKIT_JOB_HISTORY	4096
#define NPUKIT_MAX_FAULTS	64

enum npukit_fault_kind { NPUKIT_FAULT_HANG, NPUKIT_FAULT_XLAT, NPUKIT_FAULT_DATA, NPUKIT_FAULT_RESET };

struct npukit_fault {
	u64 job;
	enum npukit_fault_kind kind;
	u64 arg; /* cycles (hang, reset) or device address (xlat, data) */
};

/* The BOs a job holds; put after the device lock is dropped. */
struct npukit_objs {
	struct list_head node;
	u32 n;
	struct drm_gem_object *o[];
};

enum npukit_job_state { NPUKIT_JOB_QUEUED, NPUKIT_JOB_RUNNING, NPUKIT_JOB_DONE };

struct npukit_ctx;

struct npukit_job {
	struct list_head qnode; /* in npukit_device.queue while queued */
	struct npukit_ctx *ctx;
	u64 seq, number, cmd_phys;
	u32 ndesc;
	struct npukit_objs *objs;
	enum npukit_job_state state;
	u32 status, error_code, fault_desc;
	u64 fault_addr;
	struct drm_npukit_job_stats stats;
};

/* A context: one per open file. */
struct npukit_ctx {
	struct kref ref; /* the file, and one per live BO */
	struct npukit_device *nd;
	u32 id;
	u64 xlat; /* physical address of the translation table */
	struct xarray jobs; /* seq -> job */
	u64 next_seq, njobs;
};

struct npukit_bo {
	struct drm_gem_object base;
	struct npukit_ctx *ctx;
	u64 phys, size;
	u32 flags;
};

struct npukit_snap {
	u64 macs, rd, wr, descs;
};

/* The running job's driver state. */
struct npukit_run {
	struct npukit_job *job;
	u32 next; /* next descriptor to copy into the ring; ndesc is the FENCE */
	u32 fence_seq;
	u64 start_cycle, last_progress, last_done;
	u32 last_head;
	struct npukit_snap start;
	bool data_fault, saved_pte;
	u64 data_addr, pte_addr, pte_old;
};

struct npukit_device {
	struct drm_device drm;
	struct pci_dev *pdev;
	void __iomem *bar0; /* ivshmem registers: the doorbell */
	void __iomem *mem;  /* BAR2: card memory, page 0 the mailbox */
	u64 mem_len;

	struct mutex mbox_lock;
	u32 mbox_seq, server_peer;
	bool lost;

	/* Identity, read once at probe. */
	u32 id, version, caps, shape, spad, acc, beat, clock, platform;

	struct mutex lock; /* everything below */
	u64 ring_base;
	u32 ring_size, tail, xlat_pages;
	u32 *slot_desc; /* ring slot -> descriptor index in the running job */
	unsigned long *pagemap; /* allocated pages, over the whole card memory */
	u64 alloc_first, alloc_pages, free_pages;
	struct list_head queue;
	struct list_head deferred; /* npukit_objs to put once unlocked */
	struct npukit_run run;
	bool running;
	u64 jobs_accepted, last_started; /* device-wide job numbers */
	u32 fence_seq, next_ctx, nctx;
	struct npukit_ctx *loaded_ctx;
	bool needs_init;
	struct npukit_fault faults[NPUKIT_MAX_FAULTS];
	u32 nfaults;
	u64 irqs, resets;

	wait_queue_head_t wq;
	atomic_t done_gen;
	struct delayed_work tick;
	int irq;
	struct dentry *debugfs_link; /* accel/<minor> -> accel/<PCI name> */
};

static inline struct npukit_device *to_nd(struct drm_device *d)
{
	return container_of(d, struct npukit_device, drm);
}

static inline struct npukit_bo *to_bo(struct drm_gem_object *o)
{
	return container_of(o, struct npukit_bo, base);
}

/* The one register accessor (npukit_drv.c): everything the driver does to
 * the NPU goes through the mailbox. */
u32 npukit_mbox(struct npukit_device *nd, u32 op, u32 off, u64 arg, u64 *out);
u32 npukit_rd(struct npukit_device *nd, u32 off);
void npukit_wr(struct npukit_device *nd, u32 off, u32 v);
u64 npukit_rd64(struct npukit_device *nd, u32 off);
u64 npukit_cycle(struct npukit_device *nd);

/* Card memory (BAR2). */
u64 npukit_mem_rd64(struct npukit_device *nd, u64 addr);
void npukit_mem_wr64(struct npukit_device *nd, u64 addr, u64 v);
void npukit_map_pages(struct npukit_device *nd, u64 xlat, u64 phys, u64 size, bool valid, bool writable);
void npukit_free_range(struct npukit_device *nd, u64 phys, u64 size);

/* Locking: npukit_unlock drops the lock, then puts deferred BOs. */
void npukit_unlock(struct npukit_device *nd);
void npukit_ctx_put(struct npukit_ctx *ctx);

/* npukit_job.c */
int npukit_ioctl_submit(struct drm_device *d, void *data, struct drm_file *f);
int npukit_ioctl_wait(struct drm_device *d, void *data, struct drm_file *f);
int npukit_ioctl_job_stats(struct drm_device *d, void *data, struct drm_file *f);
void npukit_close_ctx_jobs(struct npukit_device *nd, struct npukit_ctx *ctx);
void npukit_service(struct npukit_device *nd);
void npukit_start_next(struct npukit_device *nd);
void npukit_tick_fn(struct work_struct *w);
void npukit_reset(struct npukit_device *nd, const char *why);
irqreturn_t npukit_irq_thread(int irq, void *arg);

/* npukit_debugfs.c */
int npukit_parse_faults(const char *s, size_t len, struct npukit_fault *out, u32 max, u32 *n);
void npukit_debugfs_init(struct npukit_device *nd);
void npukit_debugfs_fini(struct npukit_device *nd);
extern const struct attribute_group *npukit_dev_groups[];
extern const char *const npukit_platform_names[3];

#endif /* NPUKIT_DRV_H */
