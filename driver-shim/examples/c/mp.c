/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mp: several processes, each opening the device and running GEMMs. With
 * the in-process shim each process has its own simulated device; the point
 * is that unrelated processes (forked after start-up, each opening the
 * device itself) work under LD_PRELOAD.
 */
#include <sys/wait.h>

#include "umd.h"

#define PROCS 3

int main(void)
{
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			UMD_DIE("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			int fd = open("/dev/accel/accel0", O_RDWR);
			if (fd < 0)
				UMD_DIE("child %d: open: %s", i, strerror(errno));
			uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
			uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
			int bad = 0;
			for (int j = 0; j < 3; j++)
				bad += umd_gemm(fd, (uint16_t)(8 + j), rows, cols, (uint32_t)(i * 10 + j));
			close(fd);
			_exit(bad ? 1 : 0);
		}
	}
	int failed = 0;
	for (int i = 0; i < PROCS; i++) {
		int st = 0;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	if (failed)
		UMD_DIE("%d of %d processes failed", failed, PROCS);
	printf("%d processes bit-exact\n", PROCS);
	printf("ok\n");
	return 0;
}
