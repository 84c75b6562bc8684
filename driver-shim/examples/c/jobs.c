/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * jobs: runs the same GEMM job N times (argv[1], default 5) and prints how
 * each ended - the error handling a driver writer tests with NPUKIT_FAULTS:
 *
 *   NPUKIT_FAULTS="2:hang 4:reset+30" LD_PRELOAD=libnpukit_shim.so ./jobs
 */
#include "umd.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;
	int fd = open("/dev/accel/accel0", O_RDWR);
	if (fd < 0)
		UMD_DIE("open: %s", strerror(errno));
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	struct umd_bo a = umd_bo_new(fd, (uint64_t)8 * rows);
	struct umd_bo w = umd_bo_new(fd, (uint64_t)rows * cols);
	struct umd_bo o = umd_bo_new(fd, (uint64_t)8 * cols * 4);
	struct umd_bo cmd = umd_bo_new(fd, 4096);
	umd_fill(a.map, (size_t)8 * rows, 1);
	umd_fill(w.map, (size_t)rows * cols, 2);
	uint64_t len = umd_gemm_stream(&cmd, a.device_addr, w.device_addr, o.device_addr, 8, rows, cols);
	uint32_t bos[3] = { a.handle, w.handle, o.handle };
	for (int i = 0; i < n; i++) {
		uint64_t seq = umd_submit(fd, cmd.handle, len, bos, 3);
		struct drm_npukit_wait r = umd_wait(fd, seq, 60ll * 1000000000);
		const char *st = r.status == DRM_NPUKIT_JOB_STATUS_OK      ? "ok"
				 : r.status == DRM_NPUKIT_JOB_STATUS_ERROR ? "error"
									   : "aborted";
		printf("job %llu: %s error %#x addr %#llx\n", (unsigned long long)seq, st,
		       r.error_code, (unsigned long long)r.fault_addr);
	}
	close(fd);
	return 0;
}
