/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * hang: recovery. Five jobs are queued at once from two files; the second
 * is scripted (debugfs fault_inject) to hang and the fourth to see the
 * device reset itself 30 cycles in. The driver's watchdog must abort the
 * hung job (ABORTED, DRM_NPUKIT_ERR_HANG) and reset the device, the reset
 * job must end ABORTED with DRM_NPUKIT_ERR_RESET, and every other job,
 * the other file's included, must complete bit-exact. Runs under the shim
 * (LD_PRELOAD) and against the kernel module in the QEMU guest.
 */
#include "testlib.h"

int main(void)
{
	int a = open("/dev/accel/accel0", O_RDWR), b = open("/dev/accel/accel0", O_RDWR);
	if (a < 0 || b < 0)
		UMD_DIE("open: %s", strerror(errno));
	uint16_t rows = (uint16_t)umd_param(a, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(a, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct tl_gemm ga = tl_gemm_new(a, 8, rows, cols, 1);
	struct tl_gemm gb = tl_gemm_new(b, 8, rows, cols, 2);
	unsigned long long k = tl_jobs_accepted();
	char script[96];
	snprintf(script, sizeof script, "%llu:hang %llu:reset+30\n", k + 2, k + 4);
	tl_inject(script);

	/* Device-wide order: a1, a2 (hangs), b1, a3 (reset), a4. */
	int fds[5] = { a, a, b, a, a };
	uint64_t seq[5];
	for (int i = 0; i < 5; i++) {
		struct tl_gemm *g = fds[i] == a ? &ga : &gb;
		seq[i] = umd_submit(fds[i], g->cmd.handle, g->len, g->bos, 3);
	}
	const uint32_t want_status[5] = {
		DRM_NPUKIT_JOB_STATUS_OK, DRM_NPUKIT_JOB_STATUS_ABORTED, DRM_NPUKIT_JOB_STATUS_OK,
		DRM_NPUKIT_JOB_STATUS_ABORTED, DRM_NPUKIT_JOB_STATUS_OK,
	};
	const uint32_t want_code[5] = { 0, DRM_NPUKIT_ERR_HANG, 0, DRM_NPUKIT_ERR_RESET, 0 };
	for (int i = 0; i < 5; i++) {
		struct drm_npukit_wait r = umd_wait(fds[i], seq[i], 120ll * 1000000000);
		printf("job %llu: status %u error %#x\n", k + 1 + i, r.status, r.error_code);
		if (r.status != want_status[i] || r.error_code != want_code[i])
			UMD_DIE("job %llu: want status %u error %#x", k + 1 + i, want_status[i],
				want_code[i]);
		if (fds[i] == b && tl_gemm_check(&gb))
			UMD_DIE("the other file's job behind the hang is wrong");
	}
	if (tl_gemm_check(&ga))
		UMD_DIE("the last job after the reset is wrong");
	tl_still_works(a, 3);
	tl_still_works(b, 4);
	printf("hang aborted by the watchdog, reset job aborted, the other jobs bit-exact\n");

	/* A file closed while its job hangs: the job is stopped (device reset)
	 * and the job queued behind it, another file's, runs bit-exact. */
	int c = open("/dev/accel/accel0", O_RDWR);
	if (c < 0)
		UMD_DIE("open: %s", strerror(errno));
	struct tl_gemm gc = tl_gemm_new(c, 8, rows, cols, 5);
	snprintf(script, sizeof script, "%llu:hang\n", tl_jobs_accepted() + 1);
	tl_inject(script);
	umd_submit(c, gc.cmd.handle, gc.len, gc.bos, 3);
	memset(ga.o.map, 0, (size_t)8 * cols * 4);
	uint64_t behind = umd_submit(a, ga.cmd.handle, ga.len, ga.bos, 3);
	/* Mappings hold the file open (in a kernel, as for any mmapped file):
	 * unmap them, so that close releases it. */
	struct umd_bo *maps[4] = { &gc.a, &gc.w, &gc.o, &gc.cmd };
	for (int i = 0; i < 4; i++)
		munmap(maps[i]->map, maps[i]->size);
	if (close(c))
		UMD_DIE("close with a hung job: %s", strerror(errno));
	struct drm_npukit_wait r = umd_wait(a, behind, 120ll * 1000000000);
	if (r.status != DRM_NPUKIT_JOB_STATUS_OK || tl_gemm_check(&ga))
		UMD_DIE("the job behind a closed file's hung job: status %u error %#x", r.status,
			r.error_code);
	printf("a file closed with its job hung: the next job runs bit-exact\n");
	close(a);
	close(b);
	printf("ok\n");
	return 0;
}
