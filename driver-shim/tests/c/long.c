/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * long: a job far longer than the command ring (2000 NOPs, then a GEMM):
 * the driver must top the ring up as the device drains it. The GEMM is
 * bit-exact, JOB_STATS counts every descriptor (and the driver's FENCE),
 * and the same stream's GEMM alone, submitted at an offset, runs too.
 * Runs under the shim (LD_PRELOAD) and against the kernel module in the
 * QEMU guest.
 */
#include "testlib.h"

#define NOPS 2000

int main(void)
{
	int fd = open("/dev/accel/accel0", O_RDWR);
	if (fd < 0)
		UMD_DIE("open: %s", strerror(errno));
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm g = tl_gemm_new(fd, 8, rows, cols, 3);
	struct umd_bo cmd = umd_bo_new(fd, (NOPS + 4) * NPU_DESC_BYTES);
	struct npu_desc_nop nop = { .word0 = NPU_DESC_WORD0(NPU_OP_NOP, 0, 0) };
	for (int i = 0; i < NOPS; i++)
		memcpy((uint8_t *)cmd.map + i * NPU_DESC_BYTES, &nop, sizeof nop);
	memcpy((uint8_t *)cmd.map + NOPS * NPU_DESC_BYTES, g.cmd.map, g.len);
	uint64_t len = NOPS * NPU_DESC_BYTES + g.len;
	uint64_t seq = umd_submit(fd, cmd.handle, len, g.bos, 3);
	struct drm_npukit_wait w = umd_wait(fd, seq, 120ll * 1000000000);
	if (w.status != DRM_NPUKIT_JOB_STATUS_OK)
		UMD_DIE("long job: status %u error %#x", w.status, w.error_code);
	if (tl_gemm_check(&g))
		UMD_DIE("the GEMM after %d NOPs is wrong", NOPS);
	struct drm_npukit_job_stats js = { .seq = seq };
	if (ioctl(fd, DRM_IOCTL_NPUKIT_JOB_STATS, &js))
		UMD_DIE("JOB_STATS: %s", strerror(errno));
	if (js.descs != len / NPU_DESC_BYTES + 1 || js.macs != 8ull * rows * cols)
		UMD_DIE("JOB_STATS: %llu descriptors, %llu MACs", (unsigned long long)js.descs,
			(unsigned long long)js.macs);
	printf("a job of %llu descriptors (ring of 256): bit-exact, %llu descriptors counted\n",
	       (unsigned long long)(len / NPU_DESC_BYTES), (unsigned long long)js.descs);
	memset(g.o.map, 0, (size_t)8 * cols * 4);
	struct drm_npukit_submit s = {
		.cmd_handle = cmd.handle,
		.cmd_offset = NOPS * NPU_DESC_BYTES,
		.cmd_length = g.len,
		.bo_handles = (uint64_t)(uintptr_t)g.bos,
		.bo_count = 3,
	};
	if (ioctl(fd, DRM_IOCTL_NPUKIT_SUBMIT, &s))
		UMD_DIE("SUBMIT at an offset: %s", strerror(errno));
	w = umd_wait(fd, s.seq, 60ll * 1000000000);
	if (w.status != DRM_NPUKIT_JOB_STATUS_OK || tl_gemm_check(&g))
		UMD_DIE("the GEMM at offset %d: status %u", NOPS * NPU_DESC_BYTES, w.status);
	close(fd);
	printf("ok\n");
	return 0;
}
