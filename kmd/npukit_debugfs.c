// SPDX-License-Identifier: GPL-2.0
/*
 * npukit accel driver: what discovery and debugging code finds. sysfs
 * attributes on the PCI device (/sys/class/accel/accel0/device/...), the
 * debugfs files (/sys/kernel/debug/accel/0/{status,regs,fault_inject}) and
 * the fault-script parser (the syntax of the driver shim's NPUKIT_FAULTS).
 */
#include <linux/ctype.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "npukit_drv.h"

extern unsigned long long npukit_watchdog_cycles;

const char *const npukit_platform_names[3] = { "model", "rtl", "lockstep" };

/* ----- the fault script ------------------------------------------------ */

/* A decimal or 0x-hex number with '_' separators, all of s[0..n). */
static bool npukit_num(const char *s, size_t n, u64 *out)
{
	unsigned int base = 10;
	bool any = false;
	u64 v = 0;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		n -= 2;
	}
	for (; n; s++, n--) {
		int dgt;

		if (*s == '_')
			continue;
		if (isdigit(*s))
			dgt = *s - '0';
		else if (base == 16 && isxdigit(*s))
			dgt = tolower(*s) - 'a' + 10;
		else
			return false;
		if (check_mul_overflow(v, (u64)base, &v) || check_add_overflow(v, (u64)dgt, &v))
			return false;
		any = true;
	}
	*out = v;
	return any;
}

static int npukit_parse_entry(const char *e, size_t n, struct npukit_fault *f)
{
	const char *colon = memchr(e, ':', n), *what, *sep;
	size_t wn, kn;
	u64 job;

	if (!colon || !npukit_num(e, colon - e, &job) || job < 1)
		return -EINVAL;
	what = colon + 1;
	wn = e + n - what;
	sep = what;
	while (sep < what + wn && *sep != '@' && *sep != '+')
		sep++;
	kn = sep - what;
	f->job = job;
	f->arg = 0;
	if (kn == 4 && !memcmp(what, "hang", 4)) {
		f->kind = NPUKIT_FAULT_HANG;
		if (sep == what + wn)
			return 0;
		if (*sep != '+')
			return -EINVAL;
	} else if (kn == 5 && !memcmp(what, "reset", 5)) {
		f->kind = NPUKIT_FAULT_RESET;
		if (sep == what + wn || *sep != '+')
			return -EINVAL;
	} else if (kn == 4 && !memcmp(what, "xlat", 4)) {
		f->kind = NPUKIT_FAULT_XLAT;
		if (sep == what + wn || *sep != '@')
			return -EINVAL;
	} else if (kn == 4 && !memcmp(what, "data", 4)) {
		f->kind = NPUKIT_FAULT_DATA;
		if (sep == what + wn || *sep != '@')
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	return npukit_num(sep + 1, what + wn - sep - 1, &f->arg) ? 0 : -EINVAL;
}

/*
 * Parses a script (entries separated by ';', ',', spaces or newlines; '#'
 * to the end of the line is a comment) into out[*n...]. All or nothing: a
 * bad entry is logged by name and nothing is added.
 */
int npukit_parse_faults(const char *s, size_t len, struct npukit_fault *out, u32 max, u32 *n)
{
	u32 count = *n;
	size_t i = 0;

	while (i < len) {
		size_t j;

		if (s[i] == '#') {
			while (i < len && s[i] != '\n')
				i++;
			continue;
		}
		if (strchr(";, \t\n\r", s[i]) || !s[i]) {
			i++;
			continue;
		}
		for (j = i; j < len && s[j] && !strchr(";, \t\n\r#", s[j]); j++)
			;
		if (count == max) {
			pr_warn("npukit: fault script: more than %u entries\n", max);
			return -ENOSPC;
		}
		if (npukit_parse_entry(s + i, j - i, &out[count])) {
			pr_warn("npukit: fault script entry \"%.*s\": expected N:hang[+C], N:xlat@ADDR, N:data@ADDR or N:reset+C\n",
				(int)(j - i), s + i);
			return -EINVAL;
		}
		count++;
		i = j;
	}
	*n = count;
	return 0;
}

/* ----- debugfs --------------------------------------------------------- */

static int npukit_status_show(struct seq_file *m, void *unused)
{
	struct npukit_device *nd = m->private;
	u64 cycle = npukit_cycle(nd);

	mutex_lock(&nd->lock);
	seq_printf(m, "backend: %s\ncycle: %llu\ncontexts: %u\njobs accepted: %llu\n",
		   nd->platform < 3 ? npukit_platform_names[nd->platform] : "unknown", cycle,
		   nd->nctx, nd->jobs_accepted);
	{
		struct npukit_job *q;
		u32 queued = 0;

		list_for_each_entry(q, &nd->queue, qnode)
			queued++;
		seq_printf(m, "jobs queued: %u\n", queued);
	}
	if (nd->running)
		seq_printf(m, "running: job %llu (context %u, seq %llu), descriptor %u of %u\n",
			   nd->run.job->number, nd->run.job->ctx->id, nd->run.job->seq,
			   min(nd->run.next, nd->run.job->ndesc), nd->run.job->ndesc);
	else
		seq_puts(m, "running: none\n");
	seq_printf(m, "memory: %llu of %llu bytes free\nring: %u descriptors at %#llx\nwatchdog: %llu cycles\nfaults scripted: %u\ninterrupts: %llu\nresets: %llu\ndevice lost: %s\n",
		   nd->free_pages * NPUKIT_PAGE, nd->alloc_pages * NPUKIT_PAGE, nd->ring_size,
		   nd->ring_base, npukit_watchdog_cycles, nd->nfaults, nd->irqs, nd->resets,
		   nd->lost ? "yes" : "no");
	mutex_unlock(&nd->lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(npukit_status);

#define R(name) { NPU_REG_##name, #name }
static const struct { u32 off; const char *name; } npukit_regs[] = {
	R(ID), R(VERSION), R(CAPS), R(ARRAY_SHAPE), R(SPAD_BYTES), R(ACC_BYTES), R(BEAT_BYTES),
	R(CLOCK_MHZ), R(CONTROL), R(STATUS), R(IRQ_STATUS), R(IRQ_MASK), R(RING_BASE_LO),
	R(RING_BASE_HI), R(RING_SIZE), R(RING_HEAD), R(RING_TAIL), R(FENCE_SEQ), R(ERR_CODE),
	R(ERR_DESC), R(ERR_ADDR_LO), R(ERR_ADDR_HI), R(XLAT_BASE_LO), R(XLAT_BASE_HI),
	R(XLAT_PAGES), R(WATCHDOG), R(MAX_RING), R(QUEUE_DEPTH), R(PERF_CYCLES),
	R(PERF_CYCLES_HI), R(PERF_MACS), R(PERF_MACS_HI), R(PERF_DMA_RD_BYTES),
	R(PERF_DMA_RD_BYTES_HI), R(PERF_DMA_WR_BYTES), R(PERF_DMA_WR_BYTES_HI),
	R(PERF_DESC_DONE), R(PERF_DESC_DONE_HI),
};
#undef R

static int npukit_regs_show(struct seq_file *m, void *unused)
{
	struct npukit_device *nd = m->private;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(npukit_regs); i++)
		seq_printf(m, "0x%03x %-26s = 0x%08x\n", npukit_regs[i].off, npukit_regs[i].name,
			   npukit_rd(nd, npukit_regs[i].off));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(npukit_regs);

/* fault_inject: reads the script; what is written is parsed when the file
 * is closed (close fails with EINVAL, and the log names the entry, if it
 * does not parse). */
struct npukit_fi {
	struct npukit_device *nd;
	char *buf;
	size_t len, cap;
	char *text; /* the read side */
	size_t text_len;
};

static int npukit_fi_open(struct inode *inode, struct file *filp)
{
	struct npukit_device *nd = inode->i_private;
	struct npukit_fi *fi = kzalloc(sizeof(*fi), GFP_KERNEL);
	size_t cap = (size_t)NPUKIT_MAX_FAULTS * 40, n = 0;
	u32 i;

	if (!fi)
		return -ENOMEM;
	fi->nd = nd;
	fi->text = kzalloc(cap, GFP_KERNEL);
	if (!fi->text) {
		kfree(fi);
		return -ENOMEM;
	}
	mutex_lock(&nd->lock);
	for (i = 0; i < nd->nfaults; i++) {
		static const char *const kind[] = { "hang+", "xlat@", "data@", "reset+" };
		const struct npukit_fault *f = &nd->faults[i];
		bool hex = f->kind == NPUKIT_FAULT_XLAT || f->kind == NPUKIT_FAULT_DATA;

		n += scnprintf(fi->text + n, cap - n, hex ? "%llu:%s%#llx\n" : "%llu:%s%llu\n",
			       f->job, kind[f->kind], f->arg);
	}
	mutex_unlock(&nd->lock);
	fi->text_len = n;
	filp->private_data = fi;
	return 0;
}

static ssize_t npukit_fi_read(struct file *filp, char __user *ubuf, size_t count, loff_t *pos)
{
	struct npukit_fi *fi = filp->private_data;

	return simple_read_from_buffer(ubuf, count, pos, fi->text, fi->text_len);
}

static ssize_t npukit_fi_write(struct file *filp, const char __user *ubuf, size_t count, loff_t *pos)
{
	struct npukit_fi *fi = filp->private_data;

	if (count > 4096 || fi->len + count > 4096)
		return -EFBIG;
	if (!fi->buf) {
		fi->buf = kzalloc(4096, GFP_KERNEL);
		if (!fi->buf)
			return -ENOMEM;
	}
	if (copy_from_user(fi->buf + fi->len, ubuf, count))
		return -EFAULT;
	fi->len += count;
	*pos += count;
	return count;
}

static int npukit_fi_flush(struct file *filp, fl_owner_t id)
{
	struct npukit_fi *fi = filp->private_data;
	struct npukit_device *nd = fi->nd;
	int ret;

	if (!fi->len)
		return 0;
	mutex_lock(&nd->lock);
	/* Entries for jobs already started can no longer fire: drop them. */
	{
		u32 i, kept = 0;

		for (i = 0; i < nd->nfaults; i++)
			if (nd->faults[i].job > nd->last_started)
				nd->faults[kept++] = nd->faults[i];
		nd->nfaults = kept;
	}
	ret = npukit_parse_faults(fi->buf, fi->len, nd->faults, NPUKIT_MAX_FAULTS, &nd->nfaults);
	mutex_unlock(&nd->lock);
	fi->len = 0;
	return ret;
}

static int npukit_fi_release(struct inode *inode, struct file *filp)
{
	struct npukit_fi *fi = filp->private_data;

	kfree(fi->buf);
	kfree(fi->text);
	kfree(fi);
	return 0;
}

static const struct file_operations npukit_fi_fops = {
	.owner = THIS_MODULE,
	.open = npukit_fi_open,
	.read = npukit_fi_read,
	.write = npukit_fi_write,
	.flush = npukit_fi_flush,
	.release = npukit_fi_release,
	.llseek = noop_llseek,
};

void npukit_debugfs_init(struct npukit_device *nd)
{
	struct dentry *root = nd->drm.debugfs_root;

	if (IS_ERR_OR_NULL(root))
		return;
	debugfs_create_file("status", 0444, root, nd, &npukit_status_fops);
	debugfs_create_file("regs", 0444, root, nd, &npukit_regs_fops);
	/* Not through debugfs's full proxy, which drops ->flush (where a
	 * written script is parsed and refused). The module cannot go while
	 * the file is open (.owner). */
	debugfs_create_file_unsafe("fault_inject", 0644, root, nd, &npukit_fi_fops);
	/* The accel core names the folder after the PCI device; the minor's
	 * number (accel/0, as the driver shim serves it) links to it. */
	if (nd->drm.accel && root->d_parent) {
		char name[16];

		snprintf(name, sizeof(name), "%d", nd->drm.accel->index);
		nd->debugfs_link = debugfs_create_symlink(name, root->d_parent, nd->drm.unique);
	}
}

void npukit_debugfs_fini(struct npukit_device *nd)
{
	if (!IS_ERR_OR_NULL(nd->debugfs_link))
		debugfs_remove(nd->debugfs_link);
	nd->debugfs_link = NULL;
}

/* ----- sysfs: /sys/class/accel/accel0/device/... ------------------------ */

static struct npukit_device *dev_nd(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t platform_show(struct device *dev, struct device_attribute *a, char *buf)
{
	u32 p = dev_nd(dev)->platform;

	return sysfs_emit(buf, "%s\n", p < 3 ? npukit_platform_names[p] : "unknown");
}
static DEVICE_ATTR_RO(platform);

static ssize_t abi_version_show(struct device *dev, struct device_attribute *a, char *buf)
{
	u32 v = dev_nd(dev)->version;

	return sysfs_emit(buf, "%u.%u\n", v >> 16, v & 0xffff);
}
static DEVICE_ATTR_RO(abi_version);

static ssize_t array_rows_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_nd(dev)->shape & 0xffff);
}
static DEVICE_ATTR_RO(array_rows);

static ssize_t array_cols_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_nd(dev)->shape >> 16);
}
static DEVICE_ATTR_RO(array_cols);

static ssize_t clock_mhz_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_nd(dev)->clock);
}
static DEVICE_ATTR_RO(clock_mhz);

static ssize_t mem_bytes_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%llu\n", dev_nd(dev)->alloc_pages * NPUKIT_PAGE);
}
static DEVICE_ATTR_RO(mem_bytes);

static struct attribute *npukit_attrs[] = {
	&dev_attr_platform.attr,
	&dev_attr_abi_version.attr,
	&dev_attr_array_rows.attr,
	&dev_attr_array_cols.attr,
	&dev_attr_clock_mhz.attr,
	&dev_attr_mem_bytes.attr,
	NULL,
};

static const struct attribute_group npukit_attr_group = {
	.attrs = npukit_attrs,
};

const struct attribute_group *npukit_dev_groups[] = {
	&npukit_attr_group,
	NULL,
};
