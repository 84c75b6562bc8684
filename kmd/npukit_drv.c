// SPDX-License-Identifier: GPL-2.0
/*
 * npukit accel driver: the NPU of the npukit co-design kit, as a PCI device
 * (QEMU's ivshmem-doorbell served by `npukit-ivshmem`, docs/kernel.md).
 *
 * This file: PCI probe, the register accessor (the mailbox in card memory),
 * card memory and its page allocator, the DRM accel glue, contexts, BOs
 * and their mmap, and the simple ioctls. The behaviour follows the
 * reference driver logic of driver-shim/src/driver/ one for one, so that the
 * same user-mode programs run against either.
 */
#include <linux/bitmap.h>
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <drm/drm_accel.h>
#include <drm/drm_drv.h>
#include <drm/drm_gem.h>
#include <drm/drm_ioctl.h>

#include "npukit_drv.h"

/* ivshmem BAR0 registers (QEMU docs/specs/ivshmem-spec). */
#define IVSHMEM_DOORBELL 12

static unsigned int ring_size = 256;
module_param(ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size, "command ring size in descriptors (power of two, at most MAX_RING)");
unsigned int npukit_max_jobs = 64;
module_param_named(max_jobs, npukit_max_jobs, uint, 0444);
MODULE_PARM_DESC(max_jobs, "jobs queued or running before SUBMIT says EBUSY");
unsigned long long npukit_watchdog_cycles = 1000000;
module_param_named(watchdog_cycles, npukit_watchdog_cycles, ullong, 0444);
MODULE_PARM_DESC(watchdog_cycles, "device cycles without progress before a job is aborted (0: never)");
static char *faults = "";
module_param(faults, charp, 0444);
MODULE_PARM_DESC(faults, "fault script, as NPUKIT_FAULTS of the driver shim (N:hang[+C], N:xlat@A, N:data@A, N:reset+C)");

/* ----- the register accessor ------------------------------------------ */

static inline u32 mb_rd(struct npukit_device *nd, u32 off)
{
	return ioread32(nd->mem + off);
}

static inline void mb_wr(struct npukit_device *nd, u32 off, u32 v)
{
	iowrite32(v, nd->mem + off);
}

/*
 * One request through the mailbox: post it, ring the host's doorbell, wait
 * for the answer. A host that does not answer within ten seconds has lost
 * the device (the RTL in lockstep may take a while per slice, and the host
 * answers between slices): every later access returns all ones at once.
 */
u32 npukit_mbox(struct npukit_device *nd, u32 op, u32 off, u64 arg, u64 *out)
{
	ktime_t deadline;
	u32 seq, lo = ~0u, hi = ~0u;

	mutex_lock(&nd->mbox_lock);
	if (nd->lost)
		goto done;
	seq = ++nd->mbox_seq;
	mb_wr(nd, NPUKIT_MBOX_REQ_OP, op);
	mb_wr(nd, NPUKIT_MBOX_REQ_OFFSET, off);
	mb_wr(nd, NPUKIT_MBOX_REQ_VALUE, lower_32_bits(arg));
	mb_wr(nd, NPUKIT_MBOX_REQ_ARG_HI, upper_32_bits(arg));
	wmb();
	mb_wr(nd, NPUKIT_MBOX_REQ_SEQ, seq);
	wmb();
	iowrite32(nd->server_peer << 16 | 0, nd->bar0 + IVSHMEM_DOORBELL);
	deadline = ktime_add_ms(ktime_get(), 10000);
	while (mb_rd(nd, NPUKIT_MBOX_RESP_SEQ) != seq) {
		if (ktime_after(ktime_get(), deadline)) {
			dev_err(&nd->pdev->dev, "the host did not answer mailbox request %u (op %u, offset %#x): device lost\n",
				seq, op, off);
			nd->lost = true;
			goto done;
		}
		cpu_relax();
	}
	rmb();
	lo = mb_rd(nd, NPUKIT_MBOX_RESP_VALUE);
	hi = mb_rd(nd, NPUKIT_MBOX_RESP_VALUE_HI);
	if (mb_rd(nd, NPUKIT_MBOX_RESP_STATUS) != NPUKIT_MBOX_STATUS_OK)
		dev_warn(&nd->pdev->dev, "mailbox op %u refused by the host\n", op);
done:
	mutex_unlock(&nd->mbox_lock);
	if (out)
		*out = (u64)hi << 32 | lo;
	return lo;
}

u32 npukit_rd(struct npukit_device *nd, u32 off)
{
	return npukit_mbox(nd, NPUKIT_MBOX_OP_READ, off, 0, NULL);
}

void npukit_wr(struct npukit_device *nd, u32 off, u32 v)
{
	npukit_mbox(nd, NPUKIT_MBOX_OP_WRITE, off, v, NULL);
}

u64 npukit_rd64(struct npukit_device *nd, u32 off)
{
	u64 lo = npukit_rd(nd, off);

	return lo | (u64)npukit_rd(nd, off + 4) << 32;
}

u64 npukit_cycle(struct npukit_device *nd)
{
	u64 c;

	npukit_mbox(nd, NPUKIT_MBOX_OP_CYCLE, 0, 0, &c);
	return c;
}

/* ----- card memory ----------------------------------------------------- */

u64 npukit_mem_rd64(struct npukit_device *nd, u64 addr)
{
	return readq(nd->mem + addr);
}

void npukit_mem_wr64(struct npukit_device *nd, u64 addr, u64 v)
{
	writeq(v, nd->mem + addr);
}

/* Writes the translation entries of phys..phys+size (identity mapped). */
void npukit_map_pages(struct npukit_device *nd, u64 xlat, u64 phys, u64 size, bool valid, bool writable)
{
	u64 p;

	for (p = phys; p < phys + size; p += NPUKIT_PAGE) {
		u64 pte = valid ? (p | NPU_XLAT_PTE_VALID | (writable ? NPU_XLAT_PTE_WRITE : 0)) : 0;

		npukit_mem_wr64(nd, xlat + (p / NPUKIT_PAGE) * NPU_XLAT_PTE_BYTES, pte);
	}
}

/* First fit over pages, as the shim's allocator: the same addresses. */
static int npukit_alloc_range(struct npukit_device *nd, u64 size, u64 *phys)
{
	u64 n = DIV_ROUND_UP(size, NPUKIT_PAGE);
	unsigned long start;

	if (n == 0)
		n = 1;
	if (n > nd->free_pages)
		return -ENOMEM;
	start = bitmap_find_next_zero_area(nd->pagemap, nd->alloc_first + nd->alloc_pages,
					   nd->alloc_first, n, 0);
	if (start + n > nd->alloc_first + nd->alloc_pages)
		return -ENOMEM;
	bitmap_set(nd->pagemap, start, n);
	nd->free_pages -= n;
	*phys = (u64)start * NPUKIT_PAGE;
	return 0;
}

void npukit_free_range(struct npukit_device *nd, u64 phys, u64 size)
{
	u64 n = max_t(u64, 1, DIV_ROUND_UP(size, NPUKIT_PAGE));

	bitmap_clear(nd->pagemap, phys / NPUKIT_PAGE, n);
	nd->free_pages += n;
}

void npukit_unlock(struct npukit_device *nd)
{
	LIST_HEAD(puts);
	struct npukit_objs *o, *t;
	u32 i;

	list_splice_init(&nd->deferred, &puts);
	mutex_unlock(&nd->lock);
	list_for_each_entry_safe(o, t, &puts, node) {
		for (i = 0; i < o->n; i++)
			drm_gem_object_put(o->o[i]);
		kfree(o);
	}
}

/* ----- contexts -------------------------------------------------------- */

static void npukit_ctx_release(struct kref *ref)
{
	struct npukit_ctx *ctx = container_of(ref, struct npukit_ctx, ref);
	struct npukit_device *nd = ctx->nd;

	mutex_lock(&nd->lock);
	npukit_free_range(nd, ctx->xlat, (u64)nd->xlat_pages * NPU_XLAT_PTE_BYTES);
	if (nd->loaded_ctx == ctx)
		nd->loaded_ctx = NULL;
	npukit_unlock(nd);
	xa_destroy(&ctx->jobs);
	kfree(ctx);
}

void npukit_ctx_put(struct npukit_ctx *ctx)
{
	kref_put(&ctx->ref, npukit_ctx_release);
}

static int npukit_open(struct drm_device *d, struct drm_file *file)
{
	struct npukit_device *nd = to_nd(d);
	u64 bytes = (u64)nd->xlat_pages * NPU_XLAT_PTE_BYTES;
	struct npukit_ctx *ctx;
	int ret;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	mutex_lock(&nd->lock);
	ret = npukit_alloc_range(nd, bytes, &ctx->xlat);
	if (ret) {
		mutex_unlock(&nd->lock);
		kfree(ctx);
		return ret;
	}
	memset_io(nd->mem + ctx->xlat, 0, bytes);
	ctx->id = nd->next_ctx++;
	nd->nctx++;
	mutex_unlock(&nd->lock);
	kref_init(&ctx->ref);
	ctx->nd = nd;
	ctx->next_seq = 1;
	xa_init(&ctx->jobs);
	file->driver_priv = ctx;
	return 0;
}

static void npukit_postclose(struct drm_device *d, struct drm_file *file)
{
	struct npukit_device *nd = to_nd(d);
	struct npukit_ctx *ctx = file->driver_priv;

	mutex_lock(&nd->lock);
	npukit_close_ctx_jobs(nd, ctx);
	nd->nctx--;
	npukit_unlock(nd);
	npukit_ctx_put(ctx);
}

/* ----- buffer objects -------------------------------------------------- */

static void npukit_bo_free(struct drm_gem_object *obj)
{
	struct npukit_bo *bo = to_bo(obj);
	struct npukit_ctx *ctx = bo->ctx;
	struct npukit_device *nd = ctx->nd;

	mutex_lock(&nd->lock);
	npukit_map_pages(nd, ctx->xlat, bo->phys, bo->size, false, false);
	if (nd->running && nd->loaded_ctx == ctx)
		/* The running job may hold the pages in its translation caches. */
		npukit_wr(nd, NPU_REG_XLAT_PAGES, nd->xlat_pages);
	npukit_free_range(nd, bo->phys, bo->size);
	npukit_unlock(nd);
	drm_gem_object_release(obj);
	kfree(bo);
	npukit_ctx_put(ctx);
}

static const struct drm_gem_object_funcs npukit_gem_funcs = {
	.free = npukit_bo_free,
};

static int npukit_ioctl_bo_create(struct drm_device *d, void *data, struct drm_file *file)
{
	struct npukit_device *nd = to_nd(d);
	struct npukit_ctx *ctx = file->driver_priv;
	struct drm_npukit_bo_create *a = data;
	struct npukit_bo *bo;
	u64 size;
	int ret;

	if ((a->flags & ~DRM_NPUKIT_BO_FLAGS) || a->size == 0 ||
	    a->size > nd->alloc_pages * NPUKIT_PAGE)
		return -EINVAL;
	size = round_up(a->size, NPUKIT_PAGE);
	bo = kzalloc(sizeof(*bo), GFP_KERNEL);
	if (!bo)
		return -ENOMEM;
	mutex_lock(&nd->lock);
	ret = npukit_alloc_range(nd, size, &bo->phys);
	if (ret) {
		mutex_unlock(&nd->lock);
		kfree(bo);
		return ret;
	}
	memset_io(nd->mem + bo->phys, 0, size);
	npukit_map_pages(nd, ctx->xlat, bo->phys, size, true, !(a->flags & DRM_NPUKIT_BO_READONLY));
	mutex_unlock(&nd->lock);
	bo->size = size;
	bo->flags = a->flags;
	bo->ctx = ctx;
	kref_get(&ctx->ref);
	bo->base.funcs = &npukit_gem_funcs;
	drm_gem_private_object_init(d, &bo->base, size);
	ret = drm_gem_handle_create(file, &bo->base, &a->handle);
	/* The handle holds the object now (or, on failure, nothing does). */
	drm_gem_object_put(&bo->base);
	if (ret)
		return ret;
	a->device_addr = bo->phys;
	a->mmap_offset = NPUKIT_MMAP_BASE + bo->phys;
	return 0;
}

static int npukit_ioctl_bo_info(struct drm_device *d, void *data, struct drm_file *file)
{
	struct drm_npukit_bo_info *a = data;
	struct drm_gem_object *obj = drm_gem_object_lookup(file, a->handle);
	struct npukit_bo *bo;

	if (!obj)
		return -ENOENT;
	bo = to_bo(obj);
	a->flags = bo->flags;
	a->size = bo->size;
	a->device_addr = bo->phys;
	a->mmap_offset = NPUKIT_MMAP_BASE + bo->phys;
	drm_gem_object_put(obj);
	return 0;
}

static void npukit_vm_open(struct vm_area_struct *vma)
{
	drm_gem_object_get(vma->vm_private_data);
}

static void npukit_vm_close(struct vm_area_struct *vma)
{
	drm_gem_object_put(vma->vm_private_data);
}

static const struct vm_operations_struct npukit_vm_ops = {
	.open = npukit_vm_open,
	.close = npukit_vm_close,
};

/*
 * mmap: the range must lie inside one BO of this file (the shim's rule: the
 * offset may point into a BO, not only at its start, so the DRM core's
 * drm_gem_mmap, which wants the start, is not used). The mapping is the card
 * memory itself, and it holds the BO until the last page is unmapped.
 */
static int npukit_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct drm_file *file = filp->private_data;
	struct npukit_device *nd = to_nd(file->minor->dev);
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start, start, end;
	struct drm_gem_object *obj, *found = NULL;
	int id, ret;

	if (off < NPUKIT_MMAP_BASE)
		return -EINVAL;
	start = off - NPUKIT_MMAP_BASE;
	if (check_add_overflow(start, len, &end))
		return -EINVAL;
	spin_lock(&file->table_lock);
	idr_for_each_entry(&file->object_idr, obj, id) {
		struct npukit_bo *bo = to_bo(obj);

		if (start >= bo->phys && end <= bo->phys + bo->size) {
			drm_gem_object_get(obj);
			found = obj;
			break;
		}
	}
	spin_unlock(&file->table_lock);
	if (!found)
		return -EINVAL;
	vma->vm_private_data = found;
	vma->vm_ops = &npukit_vm_ops;
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_writecombine(vm_get_page_prot(vma->vm_flags));
	ret = io_remap_pfn_range(vma, vma->vm_start,
				 (pci_resource_start(nd->pdev, 2) + start) >> PAGE_SHIFT, len,
				 vma->vm_page_prot);
	if (ret)
		drm_gem_object_put(found);
	return ret;
}

/* ----- parameters ------------------------------------------------------ */

static int npukit_ioctl_get_param(struct drm_device *d, void *data, struct drm_file *file)
{
	struct npukit_device *nd = to_nd(d);
	struct drm_npukit_get_param *p = data;

	if (p->index != 0)
		return -EINVAL;
	switch (p->param) {
	case DRM_NPUKIT_PARAM_DEVICE_ID: p->value = nd->id; break;
	case DRM_NPUKIT_PARAM_ABI_VERSION: p->value = nd->version; break;
	case DRM_NPUKIT_PARAM_CAPS: p->value = nd->caps; break;
	case DRM_NPUKIT_PARAM_ARRAY_ROWS: p->value = nd->shape & 0xffff; break;
	case DRM_NPUKIT_PARAM_ARRAY_COLS: p->value = nd->shape >> 16; break;
	case DRM_NPUKIT_PARAM_SPAD_BYTES: p->value = nd->spad; break;
	case DRM_NPUKIT_PARAM_ACC_BYTES: p->value = nd->acc; break;
	case DRM_NPUKIT_PARAM_BEAT_BYTES: p->value = nd->beat; break;
	case DRM_NPUKIT_PARAM_CLOCK_MHZ: p->value = nd->clock; break;
	case DRM_NPUKIT_PARAM_MEM_BYTES: p->value = nd->alloc_pages * NPUKIT_PAGE; break;
	case DRM_NPUKIT_PARAM_PLATFORM: p->value = nd->platform; break;
	case DRM_NPUKIT_PARAM_MAX_JOBS: p->value = npukit_max_jobs; break;
	case DRM_NPUKIT_PARAM_WATCHDOG_CYCLES: p->value = npukit_watchdog_cycles; break;
	case DRM_NPUKIT_PARAM_MAX_JOB_DESCS: p->value = NPUKIT_MAX_JOB_DESCS; break;
	case DRM_NPUKIT_PARAM_CYCLE: p->value = npukit_cycle(nd); break;
	default: return -EINVAL;
	}
	return 0;
}

static const struct drm_ioctl_desc npukit_ioctls[] = {
	DRM_IOCTL_DEF_DRV(NPUKIT_GET_PARAM, npukit_ioctl_get_param, 0),
	DRM_IOCTL_DEF_DRV(NPUKIT_BO_CREATE, npukit_ioctl_bo_create, 0),
	DRM_IOCTL_DEF_DRV(NPUKIT_BO_INFO, npukit_ioctl_bo_info, 0),
	DRM_IOCTL_DEF_DRV(NPUKIT_SUBMIT, npukit_ioctl_submit, 0),
	DRM_IOCTL_DEF_DRV(NPUKIT_WAIT, npukit_ioctl_wait, 0),
	DRM_IOCTL_DEF_DRV(NPUKIT_JOB_STATS, npukit_ioctl_job_stats, 0),
};

/*
 * In front of drm_ioctl: the uapi's rules for requests (docs/driver.md):
 * anything but the exact requests of npukit_accel.h is ENOTTY (the DRM core
 * would answer EINVAL, or serve core ioctls this driver does not offer);
 * GET_CAP answers for this driver (no PRIME or syncobj yet); GEM_CLOSE's
 * pad must be zero.
 */
static long npukit_unlocked_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	unsigned int i;

	switch (cmd) {
	case DRM_IOCTL_VERSION:
		break;
	case DRM_IOCTL_GEM_CLOSE: {
		struct drm_gem_close c;

		if (copy_from_user(&c, uarg, sizeof(c)))
			return -EFAULT;
		if (c.pad)
			return -EINVAL;
		break;
	}
	case DRM_IOCTL_GET_CAP: {
		struct drm_get_cap c;

		if (copy_from_user(&c, uarg, sizeof(c)))
			return -EFAULT;
		if (c.capability != DRM_CAP_PRIME && c.capability != DRM_CAP_SYNCOBJ &&
		    c.capability != DRM_CAP_SYNCOBJ_TIMELINE)
			return -EINVAL;
		c.value = 0;
		return copy_to_user(uarg, &c, sizeof(c)) ? -EFAULT : 0;
	}
	default:
		for (i = 0; i < ARRAY_SIZE(npukit_ioctls); i++)
			if (cmd == npukit_ioctls[i].cmd)
				break;
		if (i == ARRAY_SIZE(npukit_ioctls))
			return -ENOTTY;
	}
	return drm_ioctl(filp, cmd, arg);
}

/* The accel file operations, with the two entry points above. */
static const struct file_operations npukit_fops = {
	.owner = THIS_MODULE,
	.open = accel_open,
	.release = drm_release,
	.unlocked_ioctl = npukit_unlocked_ioctl,
	.compat_ioctl = drm_compat_ioctl,
	.poll = drm_poll,
	.read = drm_read,
	.llseek = noop_llseek,
	.mmap = npukit_mmap,
	.fop_flags = FOP_UNSIGNED_OFFSET,
};

static const struct drm_driver npukit_driver = {
	.driver_features = DRIVER_COMPUTE_ACCEL | DRIVER_GEM,
	.open = npukit_open,
	.postclose = npukit_postclose,
	.ioctls = npukit_ioctls,
	.num_ioctls = ARRAY_SIZE(npukit_ioctls),
	.fops = &npukit_fops,
	.name = "npukit",
	.desc = "npukit NPU (co-design kit)",
	.date = "20261125",
	.major = 1,
	.minor = 0,
	.patchlevel = 0,
};

/* ----- PCI ------------------------------------------------------------- */

static int npukit_hw_init(struct npukit_device *nd)
{
	struct device *dev = &nd->pdev->dev;
	u32 max_ring, rs;
	u64 ring_end, total_pages;

	if (mb_rd(nd, NPUKIT_MBOX_MAGIC) != NPUKIT_MBOX_MAGIC_VALUE ||
	    mb_rd(nd, NPUKIT_MBOX_VERSION) != NPUKIT_MBOX_VERSION_VALUE) {
		dev_err(dev, "no npukit mailbox in BAR2 (magic %#x version %u): is npukit-ivshmem the server?\n",
			mb_rd(nd, NPUKIT_MBOX_MAGIC), mb_rd(nd, NPUKIT_MBOX_VERSION));
		return -ENODEV;
	}
	nd->server_peer = mb_rd(nd, NPUKIT_MBOX_SERVER_PEER);
	nd->platform = mb_rd(nd, NPUKIT_MBOX_PLATFORM);
	nd->mbox_seq = mb_rd(nd, NPUKIT_MBOX_RESP_SEQ);
	nd->id = npukit_rd(nd, NPU_REG_ID);
	nd->version = npukit_rd(nd, NPU_REG_VERSION);
	if (nd->lost)
		return -EIO;
	if (nd->id != 0x4E50554B) {
		dev_err(dev, "ID reads %#x, not an npukit NPU\n", nd->id);
		return -ENODEV;
	}
	if (nd->version >> 16 != NPU_ABI_MAJOR) {
		dev_err(dev, "firmware ABI %u.%u, this driver speaks %u.x\n", nd->version >> 16,
			nd->version & 0xffff, NPU_ABI_MAJOR);
		return -ENODEV;
	}
	nd->caps = npukit_rd(nd, NPU_REG_CAPS);
	nd->shape = npukit_rd(nd, NPU_REG_ARRAY_SHAPE);
	nd->spad = npukit_rd(nd, NPU_REG_SPAD_BYTES);
	nd->acc = npukit_rd(nd, NPU_REG_ACC_BYTES);
	nd->beat = npukit_rd(nd, NPU_REG_BEAT_BYTES);
	nd->clock = npukit_rd(nd, NPU_REG_CLOCK_MHZ);
	max_ring = max_t(u32, npukit_rd(nd, NPU_REG_MAX_RING), 2);
	rs = clamp_t(u32, ring_size, 2, max_ring);
	rs = min_t(u32, roundup_pow_of_two(rs), max_ring);
	nd->ring_size = rs;
	nd->ring_base = NPUKIT_PAGE;
	ring_end = nd->ring_base + round_up((u64)rs * NPU_DESC_BYTES, NPUKIT_PAGE);
	if (ring_end + NPUKIT_PAGE > nd->mem_len)
		return -ENOMEM;
	total_pages = nd->mem_len / NPUKIT_PAGE;
	nd->xlat_pages = total_pages;
	nd->alloc_first = ring_end / NPUKIT_PAGE;
	nd->alloc_pages = total_pages - nd->alloc_first;
	nd->free_pages = nd->alloc_pages;
	nd->pagemap = devm_bitmap_zalloc(dev, total_pages, GFP_KERNEL);
	nd->slot_desc = devm_kcalloc(dev, rs, sizeof(u32), GFP_KERNEL);
	if (!nd->pagemap || !nd->slot_desc)
		return -ENOMEM;
	nd->needs_init = true;
	return 0;
}

static int npukit_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct npukit_device *nd;
	int ret;

	nd = devm_drm_dev_alloc(&pdev->dev, &npukit_driver, struct npukit_device, drm);
	if (IS_ERR(nd))
		return PTR_ERR(nd);
	nd->pdev = pdev;
	pci_set_drvdata(pdev, nd);
	mutex_init(&nd->mbox_lock);
	mutex_init(&nd->lock);
	INIT_LIST_HEAD(&nd->queue);
	INIT_LIST_HEAD(&nd->deferred);
	init_waitqueue_head(&nd->wq);
	INIT_DELAYED_WORK(&nd->tick, npukit_tick_fn);
	nd->next_ctx = 1;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	/* Without bus mastering the MSI-X writes are dropped. */
	pci_set_master(pdev);
	nd->bar0 = pcim_iomap(pdev, 0, 0);
	nd->mem = pcim_iomap(pdev, 2, 0);
	if (!nd->bar0 || !nd->mem)
		return -ENOMEM;
	nd->mem_len = pci_resource_len(pdev, 2);

	ret = npukit_hw_init(nd);
	if (ret)
		return ret;
	ret = npukit_parse_faults(faults, strlen(faults), nd->faults, NPUKIT_MAX_FAULTS, &nd->nfaults);
	if (ret) {
		dev_err(&pdev->dev, "the faults parameter does not parse\n");
		return ret;
	}

	ret = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSIX);
	if (ret < 0)
		return ret;
	nd->irq = pci_irq_vector(pdev, 0);
	ret = request_threaded_irq(nd->irq, NULL, npukit_irq_thread, IRQF_ONESHOT, "npukit", nd);
	if (ret)
		goto err_vec;

	ret = drm_dev_register(&nd->drm, 0);
	if (ret)
		goto err_irq;
	npukit_debugfs_init(nd);
	dev_info(&pdev->dev, "npukit NPU: %ux%u array, ABI %u.%u, %s behind it, %llu MiB card memory, ring of %u\n",
		 nd->shape & 0xffff, nd->shape >> 16, nd->version >> 16, nd->version & 0xffff,
		 nd->platform < 3 ? npukit_platform_names[nd->platform] : "unknown",
		 nd->mem_len >> 20, nd->ring_size);
	return 0;

err_irq:
	free_irq(nd->irq, nd);
err_vec:
	pci_free_irq_vectors(pdev);
	return ret;
}

static void npukit_remove(struct pci_dev *pdev)
{
	struct npukit_device *nd = pci_get_drvdata(pdev);

	npukit_debugfs_fini(nd);
	drm_dev_unplug(&nd->drm);
	free_irq(nd->irq, nd);
	cancel_delayed_work_sync(&nd->tick);
	mutex_lock(&nd->lock);
	npukit_wr(nd, NPU_REG_CONTROL, NPU_CONTROL_RESET);
	mutex_unlock(&nd->lock);
	pci_free_irq_vectors(pdev);
}

/* QEMU's ivshmem (Red Hat / Qumranet vendor 0x1af4, device 0x1110). */
static const struct pci_device_id npukit_pci_ids[] = {
	{ PCI_DEVICE(0x1af4, 0x1110) },
	{ }
};
MODULE_DEVICE_TABLE(pci, npukit_pci_ids);

static struct pci_driver npukit_pci_driver = {
	.name = "npukit",
	.id_table = npukit_pci_ids,
	.probe = npukit_probe,
	.remove = npukit_remove,
	.dev_groups = npukit_dev_groups,
};
module_pci_driver(npukit_pci_driver);

MODULE_DESCRIPTION("npukit NPU accel driver (the NPU of the npukit co-design kit)");
MODULE_LICENSE("GPL");
