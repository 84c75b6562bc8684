/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Helpers of the C tests in this folder. They run unmodified against the
 * driver shim (LD_PRELOAD) and against the kernel module in a QEMU guest
 * (scripts/guest-test.sh), so they use only what both offer: the uapi,
 * mmap, sysfs and the debugfs files.
 */
#ifndef NPUKIT_TESTLIB_H
#define NPUKIT_TESTLIB_H

#include "umd.h"

#define EXPECT_ERRNO(call, want)                                                  \
	do {                                                                      \
		errno = 0;                                                        \
		long r_ = (long)(call);                                           \
		if (r_ != -1 || errno != (want))                                  \
			UMD_DIE("%s:%d: %s: got %ld errno %d (%s), want errno %d (%s)", \
				__FILE__, __LINE__, #call, r_, errno, strerror(errno), \
				(want), strerror(want));                          \
	} while (0)

#define EXPECT(cond)                                                        \
	do {                                                                \
		if (!(cond))                                                \
			UMD_DIE("%s:%d: %s does not hold", __FILE__, __LINE__, #cond); \
	} while (0)

#define DEBUGFS "/sys/kernel/debug/accel/0/"

/* Jobs the device accepted so far (debugfs status, "jobs accepted: N"):
 * fault scripts name jobs by their device-wide number. */
static inline unsigned long long tl_jobs_accepted(void)
{
	char buf[2048];
	int fd = open(DEBUGFS "status", O_RDONLY);
	if (fd < 0)
		UMD_DIE("open " DEBUGFS "status: %s", strerror(errno));
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		UMD_DIE("read status: %s", strerror(errno));
	buf[n] = 0;
	const char *p = strstr(buf, "jobs accepted: ");
	if (!p)
		UMD_DIE("no 'jobs accepted' in status:\n%s", buf);
	return strtoull(p + strlen("jobs accepted: "), NULL, 10);
}

/* Adds a fault script through debugfs fault_inject. */
static inline void tl_inject(const char *script)
{
	FILE *f = fopen(DEBUGFS "fault_inject", "w");
	if (!f)
		UMD_DIE("fault_inject: %s", strerror(errno));
	fputs(script, f);
	if (fclose(f) != 0)
		UMD_DIE("fault_inject rejected %s: %s", script, strerror(errno));
}

/* The GEMM of umd_gemm, submitted but not waited for. */
struct tl_gemm {
	struct umd_bo a, w, o, cmd;
	uint16_t m, k, n;
	uint64_t len;
	uint32_t bos[3];
};

static inline struct tl_gemm tl_gemm_new(int fd, uint16_t m, uint16_t k, uint16_t n, uint32_t seed)
{
	struct tl_gemm g = { .m = m, .k = k, .n = n };
	g.a = umd_bo_new(fd, (uint64_t)m * k);
	g.w = umd_bo_new(fd, (uint64_t)k * n);
	g.o = umd_bo_new(fd, (uint64_t)m * n * 4);
	g.cmd = umd_bo_new(fd, 4096);
	umd_fill(g.a.map, (size_t)m * k, seed);
	umd_fill(g.w.map, (size_t)k * n, seed + 7);
	g.len = umd_gemm_stream(&g.cmd, g.a.device_addr, g.w.device_addr, g.o.device_addr, m, k, n);
	g.bos[0] = g.a.handle;
	g.bos[1] = g.w.handle;
	g.bos[2] = g.o.handle;
	return g;
}

/* Wrong elements of the GEMM's output against the CPU. */
static inline int tl_gemm_check(const struct tl_gemm *g)
{
	const int8_t *av = g->a.map, *wv = g->w.map;
	const int32_t *ov = g->o.map;
	int bad = 0;
	for (int i = 0; i < g->m; i++)
		for (int j = 0; j < g->n; j++) {
			int32_t s = 0;
			for (int x = 0; x < g->k; x++)
				s += (int32_t)av[i * g->k + x] * (int32_t)wv[x * g->n + j];
			if (ov[i * g->n + j] != s)
				bad++;
		}
	return bad;
}

/* After an error the device must keep working: a GEMM, bit-exact. */
static inline void tl_still_works(int fd, uint32_t seed)
{
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	int bad = umd_gemm(fd, 8, rows, cols, seed);
	if (bad)
		UMD_DIE("GEMM after the error: %d wrong elements", bad);
}

#endif /* NPUKIT_TESTLIB_H */
