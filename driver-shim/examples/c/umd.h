/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A minimal user-mode driver for the npukit NPU, written only against the
 * uapi (npukit_accel.h) and the firmware ABI (npukit_abi.h): what a real UMD
 * does, in a few functions. Used by the examples in this folder.
 */
#ifndef NPUKIT_UMD_H
#define NPUKIT_UMD_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "npukit_abi.h"
#include "npukit_accel.h"

#define UMD_DIE(...)                                  \
	do {                                          \
		fprintf(stderr, "umd: " __VA_ARGS__); \
		fprintf(stderr, "\n");                \
		exit(1);                              \
	} while (0)

struct umd_bo {
	uint32_t handle;
	uint64_t size;
	uint64_t device_addr;
	void *map;
};

static inline uint64_t umd_param(int fd, uint32_t param)
{
	struct drm_npukit_get_param p = { .param = param };
	if (ioctl(fd, DRM_IOCTL_NPUKIT_GET_PARAM, &p))
		UMD_DIE("GET_PARAM %u: %s", param, strerror(errno));
	return p.value;
}

static inline struct umd_bo umd_bo_new(int fd, uint64_t size)
{
	struct drm_npukit_bo_create c = { .size = size };
	if (ioctl(fd, DRM_IOCTL_NPUKIT_BO_CREATE, &c))
		UMD_DIE("BO_CREATE %llu: %s", (unsigned long long)size, strerror(errno));
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)c.mmap_offset);
	if (p == MAP_FAILED)
		UMD_DIE("mmap: %s", strerror(errno));
	struct umd_bo bo = { c.handle, size, c.device_addr, p };
	return bo;
}

static inline void umd_bo_free(int fd, struct umd_bo *bo)
{
	struct drm_gem_close c = { .handle = bo->handle };
	munmap(bo->map, bo->size);
	if (ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c))
		UMD_DIE("GEM_CLOSE: %s", strerror(errno));
}

static inline uint32_t umd_word0(uint32_t op, uint32_t deps, uint32_t flags)
{
	return NPU_DESC_WORD0(op, deps, flags);
}

/*
 * OUT[m x n] int32 = A[m x k] int8 * W[k x n] int8 as a command stream in cmd:
 * LOAD A, LOAD W (signals compute), MATMUL (waits, signals store), STORE OUT.
 * Returns the stream length in bytes.
 */
static inline uint64_t umd_gemm_stream(struct umd_bo *cmd, uint64_t a, uint64_t w,
				       uint64_t out, uint16_t m, uint16_t k, uint16_t n)
{
	struct npu_desc_load la = { 0 }, lw = { 0 };
	struct npu_desc_matmul mm = { 0 };
	struct npu_desc_store st = { 0 };
	/* W goes on the first 4 KiB boundary after A: it fits small scratchpads (4x4: 16 KiB). */
	uint32_t w_local = ((uint32_t)m * k + 4095u) & ~4095u;
	la.word0 = umd_word0(NPU_OP_LOAD, 0, 0);
	la.local = 0;
	la.dram_lo = (uint32_t)a;
	la.dram_hi = (uint32_t)(a >> 32);
	la.rows = m;
	la.row_bytes = k;
	la.dram_stride = k;
	la.local_stride = k;
	lw.word0 = umd_word0(NPU_OP_LOAD, NPU_DEP_SIGNAL_NEXT, 0);
	lw.local = w_local;
	lw.dram_lo = (uint32_t)w;
	lw.dram_hi = (uint32_t)(w >> 32);
	lw.rows = k;
	lw.row_bytes = n;
	lw.dram_stride = n;
	lw.local_stride = n;
	mm.word0 = umd_word0(NPU_OP_MATMUL, NPU_DEP_WAIT_PREV | NPU_DEP_SIGNAL_NEXT, 0);
	mm.a = 0;
	mm.w = w_local;
	mm.out = 0;
	mm.m = m;
	mm.k = k;
	mm.n = n;
	st.word0 = umd_word0(NPU_OP_STORE, NPU_DEP_WAIT_PREV, NPU_FLAG_STORE_ACC);
	st.local = 0;
	st.dram_lo = (uint32_t)out;
	st.dram_hi = (uint32_t)(out >> 32);
	st.rows = m;
	st.row_bytes = (uint16_t)(n * 4);
	st.dram_stride = n * 4u;
	st.local_stride = n * 4u;
	uint8_t *p = cmd->map;
	memcpy(p, &la, sizeof la);
	memcpy(p + 32, &lw, sizeof lw);
	memcpy(p + 64, &mm, sizeof mm);
	memcpy(p + 96, &st, sizeof st);
	return 128;
}

static inline int64_t umd_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint64_t umd_submit(int fd, uint32_t cmd, uint64_t len, const uint32_t *bos,
				  uint32_t nbos)
{
	struct drm_npukit_submit s = {
		.cmd_handle = cmd,
		.cmd_length = len,
		.bo_handles = (uint64_t)(uintptr_t)bos,
		.bo_count = nbos,
	};
	if (ioctl(fd, DRM_IOCTL_NPUKIT_SUBMIT, &s))
		UMD_DIE("SUBMIT: %s", strerror(errno));
	return s.seq;
}

static inline struct drm_npukit_wait umd_wait(int fd, uint64_t seq, int64_t timeout_ns)
{
	struct drm_npukit_wait w = { .seq = seq, .timeout_ns = umd_now_ns() + timeout_ns };
	if (ioctl(fd, DRM_IOCTL_NPUKIT_WAIT, &w))
		UMD_DIE("WAIT %llu: %s", (unsigned long long)seq, strerror(errno));
	return w;
}

/* Deterministic int8 data. */
static inline void umd_fill(int8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (int8_t)x;
	}
}

/*
 * One GEMM on an open device: BOs, data, stream, SUBMIT, WAIT, and a
 * bit-exact check against the CPU. Returns the number of wrong elements.
 */
static inline int umd_gemm(int fd, uint16_t m, uint16_t k, uint16_t n, uint32_t seed)
{
	struct umd_bo a = umd_bo_new(fd, (uint64_t)m * k);
	struct umd_bo w = umd_bo_new(fd, (uint64_t)k * n);
	struct umd_bo o = umd_bo_new(fd, (uint64_t)m * n * 4);
	struct umd_bo cmd = umd_bo_new(fd, 4096);
	umd_fill(a.map, (size_t)m * k, seed);
	umd_fill(w.map, (size_t)k * n, seed + 7);
	uint64_t len = umd_gemm_stream(&cmd, a.device_addr, w.device_addr, o.device_addr, m, k, n);
	uint32_t bos[3] = { a.handle, w.handle, o.handle };
	uint64_t seq = umd_submit(fd, cmd.handle, len, bos, 3);
	struct drm_npukit_wait r = umd_wait(fd, seq, 60ll * 1000000000);
	if (r.status != DRM_NPUKIT_JOB_STATUS_OK)
		UMD_DIE("job %llu: status %u error %#x at %#llx (descriptor %u)",
			(unsigned long long)seq, r.status, r.error_code,
			(unsigned long long)r.fault_addr, r.fault_desc);
	const int8_t *av = a.map, *wv = w.map;
	const int32_t *ov = o.map;
	int bad = 0;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			int32_t s = 0;
			for (int x = 0; x < k; x++)
				s += (int32_t)av[i * k + x] * (int32_t)wv[x * n + j];
			if (ov[i * n + j] != s)
				bad++;
		}
	umd_bo_free(fd, &a);
	umd_bo_free(fd, &w);
	umd_bo_free(fd, &o);
	umd_bo_free(fd, &cmd);
	return bad;
}

#endif /* NPUKIT_UMD_H */
