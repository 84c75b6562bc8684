// SPDX-License-Identifier: GPL-2.0
/*
 * npukit accel driver: jobs. SUBMIT and the queue, the command ring and its
 * refill, the driver's FENCE, the interrupt, errors, the watchdog (in device
 * cycles) and reset, WAIT and JOB_STATS. The rules are those of the
 * reference driver logic, driver-shim/src/driver/job.rs.
 */
#include <linux/interrupt.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <drm/drm_gem.h>

#include "npukit_drv.h"

extern unsigned int npukit_max_jobs;
extern unsigned long long npukit_watchdog_cycles;

/* How often the driver looks at a running job (refill, watchdog). */
#define NPUKIT_TICK_MS 5

void npukit_reset(struct npukit_device *nd, const char *why)
{
	npukit_wr(nd, NPU_REG_CONTROL, NPU_CONTROL_RESET);
	npukit_mbox(nd, NPUKIT_MBOX_OP_DISARM, 0, 0, NULL);
	nd->needs_init = true;
	nd->loaded_ctx = NULL;
	nd->resets++;
	dev_info(&nd->pdev->dev, "device reset: %s\n", why);
}

/* Reset, ring, the context's translation table, interrupts, watchdog, RUN. */
static void npukit_init_device(struct npukit_device *nd, struct npukit_ctx *ctx)
{
	npukit_wr(nd, NPU_REG_CONTROL, NPU_CONTROL_RESET);
	npukit_wr(nd, NPU_REG_RING_BASE_LO, lower_32_bits(nd->ring_base));
	npukit_wr(nd, NPU_REG_RING_BASE_HI, upper_32_bits(nd->ring_base));
	npukit_wr(nd, NPU_REG_RING_SIZE, nd->ring_size);
	npukit_wr(nd, NPU_REG_XLAT_BASE_LO, lower_32_bits(ctx->xlat));
	npukit_wr(nd, NPU_REG_XLAT_BASE_HI, upper_32_bits(ctx->xlat));
	npukit_wr(nd, NPU_REG_XLAT_PAGES, nd->xlat_pages);
	npukit_wr(nd, NPU_REG_IRQ_MASK, NPU_IRQ_FENCE | NPU_IRQ_ERROR);
	if (nd->caps & NPU_CAP_WATCHDOG)
		npukit_wr(nd, NPU_REG_WATCHDOG, (u32)min_t(u64, npukit_watchdog_cycles, U32_MAX));
	npukit_wr(nd, NPU_REG_CONTROL, NPU_CONTROL_RUN | NPU_CONTROL_XLAT_EN);
	nd->tail = 0;
	nd->loaded_ctx = ctx;
	nd->needs_init = false;
}

static struct npukit_snap npukit_snapshot(struct npukit_device *nd)
{
	struct npukit_snap s = {
		.macs = npukit_rd64(nd, NPU_REG_PERF_MACS),
		.rd = npukit_rd64(nd, NPU_REG_PERF_DMA_RD_BYTES),
		.wr = npukit_rd64(nd, NPU_REG_PERF_DMA_WR_BYTES),
		.descs = npukit_rd64(nd, NPU_REG_PERF_DESC_DONE),
	};
	return s;
}

static void npukit_complete(struct npukit_device *nd)
{
	atomic_inc(&nd->done_gen);
	wake_up_all(&nd->wq);
}

static void npukit_job_done(struct npukit_device *nd, struct npukit_job *job)
{
	job->state = NPUKIT_JOB_DONE;
	if (job->objs) {
		list_add_tail(&job->objs->node, &nd->deferred);
		job->objs = NULL;
	}
}

/* Ends the running job with status/code; the counters are read unless the
 * device was reset under it. */
static void npukit_finish(struct npukit_device *nd, u32 status, u32 code, u64 addr, u32 desc,
			  bool counters_lost)
{
	struct npukit_run *r = &nd->run;
	struct npukit_job *job = r->job;
	struct npukit_snap end;
	u64 now;

	if (!nd->running)
		return;
	nd->running = false;
	npukit_mbox(nd, NPUKIT_MBOX_OP_DISARM, 0, 0, NULL);
	if (r->saved_pte)
		npukit_mem_wr64(nd, r->pte_addr, r->pte_old);
	now = npukit_cycle(nd);
	end = counters_lost ? r->start : npukit_snapshot(nd);
	if (r->data_fault && status == DRM_NPUKIT_JOB_STATUS_OK) {
		/* An uncorrectable data error: the byte is corrupted and the job fails. */
		u64 vpn = r->data_addr / NPUKIT_PAGE;

		if (vpn < nd->xlat_pages) {
			u64 pte = npukit_mem_rd64(nd, job->ctx->xlat + vpn * NPU_XLAT_PTE_BYTES);

			if (pte & NPU_XLAT_PTE_VALID) {
				u64 pa = (pte & NPU_XLAT_PTE_ADDR_MASK) | (r->data_addr % NPUKIT_PAGE);

				if (pa < nd->mem_len)
					iowrite8(ioread8(nd->mem + pa) ^ 1, nd->mem + pa);
			}
		}
		status = DRM_NPUKIT_JOB_STATUS_ERROR;
		code = DRM_NPUKIT_ERR_DATA;
		addr = r->data_addr;
		desc = job->ndesc;
	}
	job->status = status;
	job->error_code = code;
	job->fault_addr = addr;
	job->fault_desc = desc;
	job->stats.seq = job->seq;
	job->stats.start_cycle = r->start_cycle;
	job->stats.end_cycle = now;
	job->stats.cycles = now - r->start_cycle;
	job->stats.macs = end.macs - min(end.macs, r->start.macs);
	job->stats.dma_read_bytes = end.rd - min(end.rd, r->start.rd);
	job->stats.dma_write_bytes = end.wr - min(end.wr, r->start.wr);
	job->stats.descs = end.descs - min(end.descs, r->start.descs);
	npukit_job_done(nd, job);
	r->job = NULL;
	npukit_complete(nd);
}

static void npukit_abort(struct npukit_device *nd, u32 code, bool counters_lost)
{
	npukit_finish(nd, DRM_NPUKIT_JOB_STATUS_ABORTED, code, 0, 0, counters_lost);
}

/* Copies as many of the running job's descriptors into the ring as fit. */
static void npukit_refill(struct npukit_device *nd)
{
	struct npukit_run *r = &nd->run;
	struct npukit_job *job = r->job;
	u32 size = nd->ring_size, head, used, free, n = 0;
	u8 d[NPU_DESC_BYTES];

	if (!nd->running || r->next > job->ndesc)
		return;
	head = npukit_rd(nd, NPU_REG_RING_HEAD) % size;
	used = (nd->tail + size - head) % size;
	free = size - 1 - used;
	while (n < free && r->next <= job->ndesc) {
		if (r->next < job->ndesc) {
			memcpy_fromio(d, nd->mem + job->cmd_phys + (u64)r->next * NPU_DESC_BYTES,
				      NPU_DESC_BYTES);
		} else {
			struct npu_desc_fence f = {
				.word0 = NPU_DESC_WORD0(NPU_OP_FENCE, 0, NPU_FLAG_FENCE_IRQ),
				.seq = r->fence_seq,
			};
			memcpy(d, &f, sizeof(f));
		}
		memcpy_toio(nd->mem + nd->ring_base + (u64)nd->tail * NPU_DESC_BYTES, d, NPU_DESC_BYTES);
		nd->slot_desc[nd->tail] = r->next;
		nd->tail = (nd->tail + 1) % size;
		r->next++;
		n++;
	}
	if (n) {
		wmb();
		npukit_wr(nd, NPU_REG_RING_TAIL, nd->tail);
	}
}

static void npukit_arm_tick(struct npukit_device *nd)
{
	mod_delayed_work(system_wq, &nd->tick, msecs_to_jiffies(NPUKIT_TICK_MS));
}

/* Takes the next queued job onto the device. */
void npukit_start_next(struct npukit_device *nd)
{
	struct npukit_run *r = &nd->run;
	struct npukit_job *job;
	struct npukit_ctx *ctx;
	u64 now;
	u32 i;

	if (nd->running || list_empty(&nd->queue))
		return;
	job = list_first_entry(&nd->queue, struct npukit_job, qnode);
	list_del_init(&job->qnode);
	ctx = job->ctx;
	job->state = NPUKIT_JOB_RUNNING;
	if (nd->needs_init || nd->loaded_ctx != ctx)
		npukit_init_device(nd, ctx);
	else
		/* Flush the translation caches: BOs may have been freed. */
		npukit_wr(nd, NPU_REG_XLAT_PAGES, nd->xlat_pages);
	memset(r, 0, sizeof(*r));
	r->job = job;
	nd->last_started = job->number;
	now = npukit_cycle(nd);
	r->start = npukit_snapshot(nd);
	r->fence_seq = ++nd->fence_seq;
	r->start_cycle = now;
	r->last_progress = now;
	r->last_head = npukit_rd(nd, NPU_REG_RING_HEAD);
	r->last_done = r->start.descs;
	for (i = 0; i < nd->nfaults; i++) {
		struct npukit_fault *f = &nd->faults[i];

		if (f->job != job->number)
			continue;
		switch (f->kind) {
		case NPUKIT_FAULT_HANG:
			npukit_mbox(nd, NPUKIT_MBOX_OP_ARM_HANG, 0, f->arg, NULL);
			break;
		case NPUKIT_FAULT_RESET:
			npukit_mbox(nd, NPUKIT_MBOX_OP_ARM_RESET, 0, f->arg, NULL);
			break;
		case NPUKIT_FAULT_DATA:
			r->data_fault = true;
			r->data_addr = f->arg;
			break;
		case NPUKIT_FAULT_XLAT: {
			u64 vpn = f->arg / NPUKIT_PAGE;

			if (vpn < nd->xlat_pages) {
				r->pte_addr = ctx->xlat + vpn * NPU_XLAT_PTE_BYTES;
				r->pte_old = npukit_mem_rd64(nd, r->pte_addr);
				r->saved_pte = true;
				npukit_mem_wr64(nd, r->pte_addr, 0);
			}
			break;
		}
		}
		dev_info(&nd->pdev->dev, "fault script: job %llu gets fault kind %d (%#llx)\n",
			 job->number, f->kind, f->arg);
	}
	nd->running = true;
	npukit_refill(nd);
	npukit_arm_tick(nd);
}

/* Looks at the device: interrupt causes, a halt, a reset under the job, the
 * job's end, progress. Called from the interrupt thread and the tick. */
void npukit_service(struct npukit_device *nd)
{
	struct npukit_run *r = &nd->run;
	u32 irq, st, head;
	u64 now, done;

	if (!nd->running)
		return;
	if (!nd->lost && ioread32(nd->mem + NPUKIT_MBOX_LOST)) {
		dev_err(&nd->pdev->dev, "the host reports the device lost (its log has the report)\n");
		nd->lost = true;
	}
	if (nd->lost) {
		/* Its results cannot be trusted: this job and every queued one fail. */
		struct npukit_job *job, *t;

		npukit_finish(nd, DRM_NPUKIT_JOB_STATUS_ERROR, DRM_NPUKIT_ERR_LOST, 0, U32_MAX, true);
		list_for_each_entry_safe(job, t, &nd->queue, qnode) {
			list_del_init(&job->qnode);
			job->status = DRM_NPUKIT_JOB_STATUS_ERROR;
			job->error_code = DRM_NPUKIT_ERR_LOST;
			job->fault_desc = U32_MAX;
			job->stats.seq = job->seq;
			npukit_job_done(nd, job);
		}
		npukit_complete(nd);
		return;
	}
	irq = npukit_rd(nd, NPU_REG_IRQ_STATUS);
	st = npukit_rd(nd, NPU_REG_STATUS);
	if (irq)
		npukit_wr(nd, NPU_REG_IRQ_STATUS, irq);
	if (st & NPU_STATUS_HALTED) {
		u32 code = npukit_rd(nd, NPU_REG_ERR_CODE);
		u32 idx = npukit_rd(nd, NPU_REG_ERR_DESC);
		u64 addr = npukit_rd64(nd, NPU_REG_ERR_ADDR_LO);
		u32 desc = nd->slot_desc[idx % nd->ring_size];

		/* The device's own watchdog aborted it; any other halt is the job's error. */
		npukit_finish(nd, code == NPU_ERR_WATCHDOG ? DRM_NPUKIT_JOB_STATUS_ABORTED :
			      DRM_NPUKIT_JOB_STATUS_ERROR, code, addr, desc, false);
		npukit_reset(nd, "device error");
		return;
	}
	if (!(npukit_rd(nd, NPU_REG_CONTROL) & NPU_CONTROL_RUN)) {
		npukit_abort(nd, DRM_NPUKIT_ERR_RESET, true);
		npukit_reset(nd, "device reset under a job");
		return;
	}
	head = npukit_rd(nd, NPU_REG_RING_HEAD);
	done = npukit_rd64(nd, NPU_REG_PERF_DESC_DONE);
	if (r->next > r->job->ndesc && head == nd->tail && !(st & NPU_STATUS_BUSY)) {
		npukit_finish(nd, DRM_NPUKIT_JOB_STATUS_OK, 0, 0, 0, false);
		return;
	}
	now = npukit_cycle(nd);
	if (head != r->last_head || done != r->last_done) {
		r->last_head = head;
		r->last_done = done;
		r->last_progress = now;
	} else if (npukit_watchdog_cycles && now >= r->last_progress + npukit_watchdog_cycles) {
		dev_warn(&nd->pdev->dev, "job %llu: no progress for %llu cycles (cycle %llu): aborted\n",
			 r->job->number, now - r->last_progress, now);
		npukit_abort(nd, DRM_NPUKIT_ERR_HANG, false);
		npukit_reset(nd, "watchdog: no progress");
	}
}

/* One look at the device, then the next job. */
static void npukit_poll(struct npukit_device *nd)
{
	npukit_refill(nd);
	npukit_service(nd);
	npukit_start_next(nd);
	npukit_refill(nd);
}

irqreturn_t npukit_irq_thread(int irq, void *arg)
{
	struct npukit_device *nd = arg;

	mutex_lock(&nd->lock);
	nd->irqs++;
	if (nd->running) {
		npukit_poll(nd);
	} else {
		/* Not ours to keep: clear the causes. */
		u32 st = npukit_rd(nd, NPU_REG_IRQ_STATUS);

		if (st)
			npukit_wr(nd, NPU_REG_IRQ_STATUS, st);
	}
	npukit_unlock(nd);
	return IRQ_HANDLED;
}

void npukit_tick_fn(struct work_struct *w)
{
	struct npukit_device *nd = container_of(to_delayed_work(w), struct npukit_device, tick);

	mutex_lock(&nd->lock);
	npukit_poll(nd);
	if (nd->running)
		npukit_arm_tick(nd);
	npukit_unlock(nd);
}

/* ----- ioctls ---------------------------------------------------------- */

static void npukit_objs_put(struct npukit_objs *o)
{
	u32 i;

	if (!o)
		return;
	for (i = 0; i < o->n; i++)
		drm_gem_object_put(o->o[i]);
	kfree(o);
}

/* Adds obj to the set unless it is there already (the set holds one ref). */
static void npukit_objs_add(struct npukit_objs *o, struct drm_gem_object *obj)
{
	u32 i;

	for (i = 0; i < o->n; i++) {
		if (o->o[i] == obj) {
			drm_gem_object_put(obj);
			return;
		}
	}
	o->o[o->n++] = obj;
}

int npukit_ioctl_submit(struct drm_device *d, void *data, struct drm_file *file)
{
	struct npukit_device *nd = to_nd(d);
	struct npukit_ctx *ctx = file->driver_priv;
	struct drm_npukit_submit *a = data;
	struct drm_gem_object *cmd;
	struct npukit_objs *objs;
	struct npukit_job *job;
	u32 *handles = NULL;
	u64 end, pending = 0;
	u32 i;
	int ret;

	if (a->flags || a->pad)
		return -EINVAL;
	if (nd->lost)
		return -EIO;
	if (a->cmd_length == 0 || a->cmd_length % NPU_DESC_BYTES || a->cmd_offset % NPU_DESC_BYTES)
		return -EINVAL;
	if (a->cmd_length / NPU_DESC_BYTES > NPUKIT_MAX_JOB_DESCS || a->bo_count > NPUKIT_MAX_SUBMIT_BOS)
		return -EINVAL;
	if (a->bo_count) {
		handles = kvmalloc_array(a->bo_count, sizeof(u32), GFP_KERNEL);
		if (!handles)
			return -ENOMEM;
		if (copy_from_user(handles, u64_to_user_ptr(a->bo_handles), a->bo_count * sizeof(u32))) {
			kvfree(handles);
			return -EFAULT;
		}
	}
	objs = kzalloc(struct_size(objs, o, a->bo_count + 1), GFP_KERNEL);
	job = kzalloc(sizeof(*job), GFP_KERNEL);
	ret = -ENOMEM;
	if (!objs || !job)
		goto err;
	ret = -ENOENT;
	cmd = drm_gem_object_lookup(file, a->cmd_handle);
	if (!cmd)
		goto err;
	objs->o[objs->n++] = cmd;
	ret = -EINVAL;
	if (check_add_overflow(a->cmd_offset, a->cmd_length, &end) || end > to_bo(cmd)->size)
		goto err;
	ret = -ENOENT;
	for (i = 0; i < a->bo_count; i++) {
		struct drm_gem_object *o = drm_gem_object_lookup(file, handles[i]);

		if (!o)
			goto err;
		npukit_objs_add(objs, o);
	}
	job->ctx = ctx;
	job->cmd_phys = to_bo(cmd)->phys + a->cmd_offset;
	job->ndesc = a->cmd_length / NPU_DESC_BYTES;
	job->objs = objs;
	INIT_LIST_HEAD(&job->qnode);

	mutex_lock(&nd->lock);
	{
		struct npukit_job *q;

		list_for_each_entry(q, &nd->queue, qnode)
			pending++;
	}
	if (nd->running)
		pending++;
	if (pending >= npukit_max_jobs) {
		mutex_unlock(&nd->lock);
		ret = -EBUSY;
		goto err;
	}
	job->seq = ctx->next_seq;
	ret = xa_err(xa_store(&ctx->jobs, job->seq, job, GFP_KERNEL));
	if (ret) {
		mutex_unlock(&nd->lock);
		goto err;
	}
	ctx->next_seq++;
	ctx->njobs++;
	job->number = ++nd->jobs_accepted;
	job->state = NPUKIT_JOB_QUEUED;
	/* Forget the oldest finished jobs beyond the history. */
	while (ctx->njobs > NPUKIT_JOB_HISTORY) {
		struct npukit_job *old;
		unsigned long idx;
		bool found = false;

		xa_for_each(&ctx->jobs, idx, old) {
			if (old->state == NPUKIT_JOB_DONE) {
				xa_erase(&ctx->jobs, idx);
				kfree(old);
				ctx->njobs--;
				found = true;
				break;
			}
		}
		if (!found)
			break;
	}
	list_add_tail(&job->qnode, &nd->queue);
	a->seq = job->seq;
	npukit_start_next(nd);
	npukit_unlock(nd);
	kvfree(handles);
	return 0;
err:
	npukit_objs_put(objs);
	kfree(job);
	kvfree(handles);
	return ret;
}

/* The job's outcome under the lock: 1 done (copied out), 0 not yet, <0 errno. */
static int npukit_job_result(struct npukit_device *nd, struct npukit_ctx *ctx, u64 seq,
			     struct drm_npukit_wait *w, struct drm_npukit_job_stats *s)
{
	struct npukit_job *job;
	int ret = 0;

	mutex_lock(&nd->lock);
	job = seq <= ULONG_MAX ? xa_load(&ctx->jobs, seq) : NULL;
	if (!job) {
		ret = -ENOENT;
	} else if (job->state == NPUKIT_JOB_DONE) {
		if (w) {
			w->status = job->status;
			w->error_code = job->error_code;
			w->fault_addr = job->fault_addr;
			w->fault_desc = job->fault_desc;
		}
		if (s)
			*s = job->stats;
		ret = 1;
	}
	mutex_unlock(&nd->lock);
	return ret;
}

int npukit_ioctl_wait(struct drm_device *d, void *data, struct drm_file *file)
{
	struct npukit_device *nd = to_nd(d);
	struct npukit_ctx *ctx = file->driver_priv;
	struct drm_npukit_wait *w = data;
	int ret, gen;
	long left;
	s64 rem;

	if (w->pad)
		return -EINVAL;
	for (;;) {
		gen = atomic_read(&nd->done_gen);
		ret = npukit_job_result(nd, ctx, w->seq, w, NULL);
		if (ret)
			return ret < 0 ? ret : 0;
		rem = w->timeout_ns - ktime_get_ns();
		if (rem <= 0)
			return -ETIMEDOUT;
		left = wait_event_interruptible_timeout(nd->wq, atomic_read(&nd->done_gen) != gen,
							nsecs_to_jiffies(rem) + 1);
		if (left < 0)
			return left;
	}
}

int npukit_ioctl_job_stats(struct drm_device *d, void *data, struct drm_file *file)
{
	struct drm_npukit_job_stats *s = data;
	int ret = npukit_job_result(to_nd(d), file->driver_priv, s->seq, NULL, s);

	if (ret < 0)
		return ret;
	return ret ? 0 : -EBUSY;
}

/* A file closes: its queued jobs are dropped, a running one is stopped by a
 * device reset, its job records are freed. Called with the lock held. */
void npukit_close_ctx_jobs(struct npukit_device *nd, struct npukit_ctx *ctx)
{
	struct npukit_job *job, *t;
	unsigned long idx;

	if (nd->running && nd->run.job->ctx == ctx) {
		npukit_abort(nd, DRM_NPUKIT_ERR_RESET, true);
		npukit_reset(nd, "context closed with a job running");
	}
	list_for_each_entry_safe(job, t, &nd->queue, qnode) {
		if (job->ctx == ctx) {
			list_del_init(&job->qnode);
			npukit_job_done(nd, job);
		}
	}
	xa_for_each(&ctx->jobs, idx, job) {
		xa_erase(&ctx->jobs, idx);
		kfree(job);
	}
	if (nd->loaded_ctx == ctx)
		nd->loaded_ctx = NULL;
	npukit_start_next(nd);
}
