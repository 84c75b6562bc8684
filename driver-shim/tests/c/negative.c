/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * negative: the documented errno of every bad argument (docs/driver.md,
 * "Errors"), in C, for both drivers: run under the shim's LD_PRELOAD
 * library (driver-shim/tests/preload.rs) and against the kernel module in
 * a QEMU guest (scripts/guest-test.sh). The cases follow
 * driver-shim/tests/negative.rs; each ends by checking that the device
 * still runs a GEMM bit-exact.
 */
#include "testlib.h"

static int open_dev(void)
{
	int fd = open("/dev/accel/accel0", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		UMD_DIE("open /dev/accel/accel0: %s", strerror(errno));
	return fd;
}

static uint64_t submit_raw(int fd, struct drm_npukit_submit *s)
{
	return (uint64_t)ioctl(fd, DRM_IOCTL_NPUKIT_SUBMIT, s);
}

static void handle_zero_and_unknown_handles(void)
{
	int fd = open_dev();
	struct drm_npukit_bo_info i = { .handle = 0 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_BO_INFO, &i), ENOENT);
	i.handle = 12345;
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_BO_INFO, &i), ENOENT);
	struct drm_npukit_submit s = { .cmd_handle = 0, .cmd_length = 32 };
	EXPECT_ERRNO(submit_raw(fd, &s), ENOENT);
	struct umd_bo cmd = umd_bo_new(fd, 4096);
	uint32_t list[2] = { cmd.handle, 777 };
	s.cmd_handle = cmd.handle;
	s.bo_handles = (uint64_t)(uintptr_t)list;
	s.bo_count = 2;
	EXPECT_ERRNO(submit_raw(fd, &s), ENOENT);
	struct drm_gem_close c = { .handle = 0 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c), EINVAL);
	struct drm_npukit_wait w = { .seq = 42 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_WAIT, &w), ENOENT);
	struct drm_npukit_job_stats js = { .seq = 0 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_JOB_STATS, &js), ENOENT);
	tl_still_works(fd, 1);
	close(fd);
}

static void another_contexts_handles_and_jobs_are_not_visible(void)
{
	int a = open_dev(), b = open_dev();
	uint16_t rows = (uint16_t)umd_param(a, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(a, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(a, 8, rows, cols, 1);
	uint64_t seq = umd_submit(a, g.cmd.handle, g.len, g.bos, 3);
	struct drm_npukit_bo_info i = { .handle = g.a.handle };
	EXPECT_ERRNO(ioctl(b, DRM_IOCTL_NPUKIT_BO_INFO, &i), ENOENT);
	struct drm_npukit_submit s = { .cmd_handle = g.cmd.handle, .cmd_length = g.len };
	EXPECT_ERRNO(submit_raw(b, &s), ENOENT);
	struct drm_npukit_wait w = { .seq = seq, .timeout_ns = INT64_MAX };
	EXPECT_ERRNO(ioctl(b, DRM_IOCTL_NPUKIT_WAIT, &w), ENOENT);
	struct drm_gem_close c = { .handle = g.o.handle };
	EXPECT_ERRNO(ioctl(b, DRM_IOCTL_GEM_CLOSE, &c), EINVAL);
	struct drm_npukit_bo_info oi = { .handle = g.o.handle };
	if (ioctl(a, DRM_IOCTL_NPUKIT_BO_INFO, &oi))
		UMD_DIE("BO_INFO: %s", strerror(errno));
	errno = 0;
	EXPECT(mmap(NULL, 4096, PROT_READ, MAP_SHARED, b, (off_t)oi.mmap_offset) == MAP_FAILED);
	EXPECT(errno == EINVAL);
	struct drm_npukit_wait r = umd_wait(a, seq, 60ll * 1000000000);
	EXPECT(r.status == DRM_NPUKIT_JOB_STATUS_OK);
	EXPECT(tl_gemm_check(&g) == 0);
	tl_still_works(a, 2);
	tl_still_works(b, 3);
	close(a);
	close(b);
}

static void null_and_bad_user_pointers_are_efault(void)
{
	int fd = open_dev();
	const unsigned long reqs[] = {
		DRM_IOCTL_NPUKIT_GET_PARAM, DRM_IOCTL_NPUKIT_BO_CREATE, DRM_IOCTL_NPUKIT_SUBMIT,
		DRM_IOCTL_NPUKIT_WAIT,      DRM_IOCTL_VERSION,          DRM_IOCTL_GEM_CLOSE,
	};
	for (unsigned i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		EXPECT_ERRNO(ioctl(fd, reqs[i], NULL), EFAULT);
		EXPECT_ERRNO(ioctl(fd, reqs[i], (void *)16), EFAULT);
	}
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(fd, 8, rows, cols, 2);
	struct drm_npukit_submit s = {
		.cmd_handle = g.cmd.handle, .cmd_length = g.len, .bo_handles = 0, .bo_count = 3
	};
	EXPECT_ERRNO(submit_raw(fd, &s), EFAULT);
	/* A string buffer the caller cannot write. */
	struct drm_version v = { .name_len = 8, .name = (char *)16 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_VERSION, &v), EFAULT);
	tl_still_works(fd, 4);
	close(fd);
}

static void version_reports_npukit_and_sizes_buffers(void)
{
	int fd = open_dev();
	struct drm_version v = { 0 };
	if (ioctl(fd, DRM_IOCTL_VERSION, &v))
		UMD_DIE("VERSION: %s", strerror(errno));
	EXPECT(v.name_len == 6);
	char name[6], date[3];
	v.name = name;
	v.date = date;
	v.date_len = 3;
	v.desc_len = 0;
	if (ioctl(fd, DRM_IOCTL_VERSION, &v))
		UMD_DIE("VERSION: %s", strerror(errno));
	EXPECT(memcmp(name, "npukit", 6) == 0);
	EXPECT(v.name_len == 6);
	/* The date: the shim's is 20261125; the kernel's DRM core (6.12)
	 * reports "0" for every driver (the field is deprecated). Either way
	 * at most date_len bytes are copied and date_len comes back as the
	 * full length. */
	size_t full = v.date_len;
	EXPECT(full >= 1);
	char whole[16] = { 0 };
	memset(date, '#', sizeof date);
	struct drm_version v2 = { .date_len = 1, .date = date };
	if (ioctl(fd, DRM_IOCTL_VERSION, &v2))
		UMD_DIE("VERSION: %s", strerror(errno));
	EXPECT(v2.date_len == full && date[1] == '#' && date[2] == '#');
	struct drm_version v3 = { .date_len = sizeof whole - 1, .date = whole };
	if (ioctl(fd, DRM_IOCTL_VERSION, &v3))
		UMD_DIE("VERSION: %s", strerror(errno));
	EXPECT(v3.date_len == full && whole[0] == date[0] && strlen(whole) == full);
	EXPECT(v.version_major == 1 && v.version_minor == 0);
	close(fd);
}

static void misaligned_and_out_of_range_command_ranges_are_einval(void)
{
	int fd = open_dev();
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(fd, 8, rows, cols, 3);
	const uint64_t cases[][2] = {
		{ 16, 32 },		/* misaligned offset */
		{ 0, 48 },		/* length not a multiple of 32 */
		{ 0, 0 },		/* empty */
		{ 0, 8192 },		/* beyond the 4 KiB command BO */
		{ 4096, 32 },		/* starts at the end */
		{ UINT64_MAX - 31, 32 }, /* offset + length overflows */
	};
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct drm_npukit_submit s = {
			.cmd_handle = g.cmd.handle,
			.cmd_offset = cases[i][0],
			.cmd_length = cases[i][1],
			.bo_handles = (uint64_t)(uintptr_t)g.bos,
			.bo_count = 3,
		};
		EXPECT_ERRNO(submit_raw(fd, &s), EINVAL);
	}
	tl_still_works(fd, 5);
	close(fd);
}

static int bo_create(int fd, uint64_t size, uint32_t flags, struct drm_npukit_bo_create *c)
{
	memset(c, 0, sizeof *c);
	c->size = size;
	c->flags = flags;
	return ioctl(fd, DRM_IOCTL_NPUKIT_BO_CREATE, c);
}

static void oversized_and_zero_bo_sizes_and_bad_flags(void)
{
	int fd = open_dev();
	uint64_t mem = umd_param(fd, DRM_NPUKIT_PARAM_MEM_BYTES);
	struct drm_npukit_bo_create c;
	EXPECT_ERRNO(bo_create(fd, 0, 0, &c), EINVAL);
	EXPECT_ERRNO(bo_create(fd, mem + 1, 0, &c), EINVAL);
	EXPECT_ERRNO(bo_create(fd, UINT64_MAX, 0, &c), EINVAL);
	EXPECT_ERRNO(bo_create(fd, 4096, 0x80, &c), EINVAL);
	struct drm_npukit_bo_create big;
	if (bo_create(fd, mem / 2 + 4096, 0, &big))
		UMD_DIE("BO_CREATE of half the memory: %s", strerror(errno));
	EXPECT_ERRNO(bo_create(fd, mem / 2 + 4096, 0, &c), ENOMEM);
	struct drm_gem_close gc = { .handle = big.handle };
	if (ioctl(fd, DRM_IOCTL_GEM_CLOSE, &gc))
		UMD_DIE("GEM_CLOSE: %s", strerror(errno));
	struct drm_npukit_bo_create cmd;
	if (bo_create(fd, 4096, 0, &cmd))
		UMD_DIE("BO_CREATE: %s", strerror(errno));
	static uint32_t list[5000];
	for (unsigned i = 0; i < 5000; i++)
		list[i] = cmd.handle;
	struct drm_npukit_submit s = {
		.cmd_handle = cmd.handle, .cmd_length = 32,
		.bo_handles = (uint64_t)(uintptr_t)list, .bo_count = 5000,
	};
	EXPECT_ERRNO(submit_raw(fd, &s), EINVAL);
	tl_still_works(fd, 6);
	close(fd);
}

static void out_of_range_mmap_is_einval(void)
{
	int fd = open_dev();
	struct drm_npukit_bo_create b;
	if (bo_create(fd, 8192, 0, &b))
		UMD_DIE("BO_CREATE: %s", strerror(errno));
	off_t off = (off_t)b.mmap_offset;
	uint8_t *whole = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	EXPECT(whole != MAP_FAILED);
	uint8_t *second = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off + 4096);
	EXPECT(second != MAP_FAILED);
	EXPECT_ERRNO(mmap(NULL, 8193, PROT_READ, MAP_SHARED, fd, off), EINVAL);
	EXPECT_ERRNO(mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, off + 4096), EINVAL);
	EXPECT_ERRNO(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, off + 1), EINVAL);
	EXPECT_ERRNO(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, off), EINVAL);
	EXPECT_ERRNO(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0), EINVAL);
	/* Both mappings are the BO's memory itself. */
	second[5] = 0xAB;
	EXPECT(whole[4096 + 5] == 0xAB);
	whole[7] = 0x5C;
	uint8_t *again = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, off);
	EXPECT(again != MAP_FAILED && again[7] == 0x5C);
	tl_still_works(fd, 7);
	close(fd);
}

static void double_close_is_einval_and_closed_handles_vanish(void)
{
	int fd = open_dev();
	struct drm_npukit_bo_create b;
	if (bo_create(fd, 4096, 0, &b))
		UMD_DIE("BO_CREATE: %s", strerror(errno));
	struct drm_gem_close c = { .handle = b.handle };
	if (ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c))
		UMD_DIE("GEM_CLOSE: %s", strerror(errno));
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c), EINVAL);
	struct drm_npukit_bo_info i = { .handle = b.handle };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_BO_INFO, &i), ENOENT);
	EXPECT_ERRNO(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)b.mmap_offset), EINVAL);
	tl_still_works(fd, 8);
	close(fd);
}

static void nonzero_reserved_fields_are_einval(void)
{
	int fd = open_dev();
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(fd, 8, rows, cols, 4);
	struct drm_npukit_get_param p = { .param = DRM_NPUKIT_PARAM_DEVICE_ID, .index = 1 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_GET_PARAM, &p), EINVAL);
	struct drm_npukit_submit base = {
		.cmd_handle = g.cmd.handle, .cmd_length = g.len,
		.bo_handles = (uint64_t)(uintptr_t)g.bos, .bo_count = 3,
	};
	struct drm_npukit_submit s1 = base, s2 = base, ok = base;
	s1.flags = 1;
	EXPECT_ERRNO(submit_raw(fd, &s1), EINVAL);
	s2.pad = 1;
	EXPECT_ERRNO(submit_raw(fd, &s2), EINVAL);
	struct drm_gem_close c = { .handle = g.a.handle, .pad = 1 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c), EINVAL);
	if (submit_raw(fd, &ok))
		UMD_DIE("SUBMIT: %s", strerror(errno));
	struct drm_npukit_wait w = { .seq = ok.seq, .timeout_ns = INT64_MAX, .pad = 1 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_WAIT, &w), EINVAL);
	w.pad = 0;
	if (ioctl(fd, DRM_IOCTL_NPUKIT_WAIT, &w))
		UMD_DIE("WAIT: %s", strerror(errno));
	EXPECT(w.status == DRM_NPUKIT_JOB_STATUS_OK);
	EXPECT(tl_gemm_check(&g) == 0);
	tl_still_works(fd, 9);
	close(fd);
}

static void unknown_ioctls_are_enotty_and_unknown_caps_einval(void)
{
	int fd = open_dev();
	uint64_t x[8] = { 0 };
	const unsigned long reqs[] = {
		0,
		0xC0106450, /* 'd' driver range, nr 0x50: not ours */
		DRM_IOCTL_NPUKIT_GET_PARAM ^ (1u << 16), /* right nr, wrong size */
		0x5401, /* TCGETS */
	};
	for (unsigned i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
		EXPECT_ERRNO(ioctl(fd, reqs[i], x), ENOTTY);
	struct drm_get_cap c = { .capability = 0x1234, .value = 7 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_GET_CAP, &c), EINVAL);
	c.capability = DRM_CAP_SYNCOBJ;
	if (ioctl(fd, DRM_IOCTL_GET_CAP, &c))
		UMD_DIE("GET_CAP: %s", strerror(errno));
	EXPECT(c.value == 0);
	tl_still_works(fd, 10);
	close(fd);
}

/* A job that cannot finish yet (scripted to hang until the watchdog) is
 * EBUSY for JOB_STATS and ETIMEDOUT for a WAIT whose deadline has passed; once
 * it ended, its figures are there. */
static void an_unfinished_job_is_ebusy_and_a_short_wait_etimedout(void)
{
	int fd = open_dev();
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(fd, 8, rows, cols, 5);
	char script[64];
	snprintf(script, sizeof script, "%llu:hang\n", tl_jobs_accepted() + 1);
	tl_inject(script);
	uint64_t hung = umd_submit(fd, g.cmd.handle, g.len, g.bos, 3);
	struct drm_npukit_job_stats js = { .seq = hung };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_JOB_STATS, &js), EBUSY);
	/* A deadline already past (a poll): ETIMEDOUT, and the job goes on. */
	struct drm_npukit_wait soon = { .seq = hung, .timeout_ns = umd_now_ns() - 1 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_WAIT, &soon), ETIMEDOUT);
	struct drm_npukit_wait r = umd_wait(fd, hung, 60ll * 1000000000);
	EXPECT(r.status == DRM_NPUKIT_JOB_STATUS_ABORTED && r.error_code == DRM_NPUKIT_ERR_HANG);
	uint64_t seq = umd_submit(fd, g.cmd.handle, g.len, g.bos, 3);
	r = umd_wait(fd, seq, 60ll * 1000000000);
	EXPECT(r.status == DRM_NPUKIT_JOB_STATUS_OK);
	js.seq = seq;
	if (ioctl(fd, DRM_IOCTL_NPUKIT_JOB_STATS, &js))
		UMD_DIE("JOB_STATS: %s", strerror(errno));
	EXPECT(js.macs == 8ull * rows * cols);
	EXPECT(js.cycles == js.end_cycle - js.start_cycle && js.cycles > 0);
	EXPECT(tl_gemm_check(&g) == 0);
	close(fd);
}

static void closing_a_bo_in_use_keeps_it_until_the_job_ends(void)
{
	int fd = open_dev();
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(fd, 8, rows, cols, 6);
	uint64_t seq = umd_submit(fd, g.cmd.handle, g.len, g.bos, 3);
	uint32_t hs[3] = { g.a.handle, g.w.handle, g.cmd.handle };
	for (unsigned i = 0; i < 3; i++) {
		struct drm_gem_close c = { .handle = hs[i] };
		if (ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c))
			UMD_DIE("GEM_CLOSE: %s", strerror(errno));
	}
	struct drm_npukit_wait r = umd_wait(fd, seq, 60ll * 1000000000);
	EXPECT(r.status == DRM_NPUKIT_JOB_STATUS_OK);
	EXPECT(tl_gemm_check(&g) == 0);
	tl_still_works(fd, 11);
	close(fd);
}

int main(void)
{
	struct {
		const char *name;
		void (*run)(void);
	} cases[] = {
#define CASE(f) { #f, f }
		CASE(handle_zero_and_unknown_handles),
		CASE(another_contexts_handles_and_jobs_are_not_visible),
		CASE(null_and_bad_user_pointers_are_efault),
		CASE(version_reports_npukit_and_sizes_buffers),
		CASE(misaligned_and_out_of_range_command_ranges_are_einval),
		CASE(oversized_and_zero_bo_sizes_and_bad_flags),
		CASE(out_of_range_mmap_is_einval),
		CASE(double_close_is_einval_and_closed_handles_vanish),
		CASE(nonzero_reserved_fields_are_einval),
		CASE(unknown_ioctls_are_enotty_and_unknown_caps_einval),
		CASE(an_unfinished_job_is_ebusy_and_a_short_wait_etimedout),
		CASE(closing_a_bo_in_use_keeps_it_until_the_job_ends),
#undef CASE
	};
	unsigned n = sizeof cases / sizeof cases[0];
	for (unsigned i = 0; i < n; i++) {
		cases[i].run();
		printf("ok %s\n", cases[i].name);
	}
	printf("%u negative cases as documented\n", n);
	return 0;
}
