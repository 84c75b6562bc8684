/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mt: several threads, each with its own open file (context), submit GEMMs
 * to the one device at the same time; every result must be bit-exact.
 */
#include <pthread.h>

#include "umd.h"

#define THREADS 4
#define JOBS 6

static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	int fd = open("/dev/accel/accel0", O_RDWR);
	if (fd < 0)
		UMD_DIE("thread %u: open: %s", id, strerror(errno));
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	int bad = 0;
	for (unsigned j = 0; j < JOBS; j++)
		bad += umd_gemm(fd, (uint16_t)(4 + id + j), rows, cols, id * 100 + j);
	close(fd);
	pthread_mutex_lock(&lock);
	failures += bad;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(void)
{
	pthread_t t[THREADS];
	for (unsigned i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i))
			UMD_DIE("pthread_create");
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	if (failures)
		UMD_DIE("%d wrong elements", failures);
	printf("%d threads x %d jobs bit-exact\n", THREADS, JOBS);
	printf("ok\n");
	return 0;
}
