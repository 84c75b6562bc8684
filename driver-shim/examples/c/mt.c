/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * mt: several threads submit GEMMs to the one device at the same time -
 * four with their own open file (context) each, two sharing one file -
 * and every result must be bit-exact.
 */
#include <pthread.h>

#include "umd.h"

#define OWN 4
#define SHARED 2
#define JOBS 6

static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct worker_arg {
	unsigned id;
	int fd; /* -1: open a file of its own */
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	int fd = a->fd >= 0 ? a->fd : open("/dev/accel/accel0", O_RDWR);
	if (fd < 0)
		UMD_DIE("thread %u: open: %s", a->id, strerror(errno));
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	int bad = 0;
	for (unsigned j = 0; j < JOBS; j++)
		bad += umd_gemm(fd, (uint16_t)(4 + a->id + j), rows, cols, a->id * 100 + j);
	if (a->fd < 0)
		close(fd);
	pthread_mutex_lock(&lock);
	failures += bad;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(void)
{
	int shared = open("/dev/accel/accel0", O_RDWR);
	if (shared < 0)
		UMD_DIE("open: %s", strerror(errno));
	pthread_t t[OWN + SHARED];
	struct worker_arg args[OWN + SHARED];
	for (unsigned i = 0; i < OWN + SHARED; i++) {
		args[i].id = i;
		args[i].fd = i < OWN ? -1 : shared;
		if (pthread_create(&t[i], NULL, worker, &args[i]))
			UMD_DIE("pthread_create");
	}
	for (unsigned i = 0; i < OWN + SHARED; i++)
		pthread_join(t[i], NULL);
	close(shared);
	if (failures)
		UMD_DIE("%d wrong elements", failures);
	printf("%d threads (%d sharing a file) x %d jobs bit-exact\n", OWN + SHARED, SHARED, JOBS);
	printf("ok\n");
	return 0;
}
