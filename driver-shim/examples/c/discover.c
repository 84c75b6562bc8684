/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * discover: finds the NPU the way discovery code does on a real system (the
 * accel class in sysfs), reads the debugfs status and register dump, and
 * scripts a fault through debugfs's fault_inject before running jobs.
 */
#include "umd.h"

static void slurp(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		UMD_DIE("open %s: %s", path, strerror(errno));
	ssize_t r = read(fd, buf, n - 1);
	if (r < 0)
		UMD_DIE("read %s: %s", path, strerror(errno));
	buf[r] = 0;
	close(fd);
}

int main(void)
{
	char dev[32] = { 0 };
	FILE *f = fopen("/sys/class/accel/accel0/dev", "r");
	if (!f || !fgets(dev, sizeof dev, f))
		UMD_DIE("no accel0 in sysfs");
	fclose(f);
	unsigned major = 0, minor = 0;
	if (sscanf(dev, "%u:%u", &major, &minor) != 2 || major != 261)
		UMD_DIE("accel0 dev is %s", dev);
	char rows[16], platform[16];
	slurp("/sys/class/accel/accel0/device/array_rows", rows, sizeof rows);
	slurp("/sys/class/accel/accel0/device/platform", platform, sizeof platform);
	printf("accel0: %u:%u, %s rows, platform %s", major, minor, strtok(rows, "\n"), platform);

	errno = 0;
	if (open("/sys/kernel/debug/accel/0/nonexistent", O_RDONLY) != -1 || errno != ENOENT)
		UMD_DIE("unknown debugfs file: want ENOENT");
	f = fopen("/sys/kernel/debug/accel/0/fault_inject", "w");
	if (!f)
		UMD_DIE("fault_inject: %s", strerror(errno));
	fputs("2:hang\n", f);
	if (fclose(f) != 0)
		UMD_DIE("fault_inject rejected a good script");
	f = fopen("/sys/kernel/debug/accel/0/fault_inject", "w");
	fputs("2:melt\n", f);
	if (fclose(f) != EOF || errno != EINVAL)
		UMD_DIE("fault_inject accepted a bad script");

	int fd = open("/dev/accel/accel0", O_RDWR);
	if (fd < 0)
		UMD_DIE("open: %s", strerror(errno));
	uint16_t r = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t c = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	if (umd_gemm(fd, 8, r, c, 1))
		UMD_DIE("job 1 wrong");
	struct umd_bo cmd = umd_bo_new(fd, 4096); /* a NOP job */
	struct drm_npukit_wait w = umd_wait(fd, umd_submit(fd, cmd.handle, 32, NULL, 0), 60ll * 1000000000);
	printf("job 2: status %u error %#x\n", w.status, w.error_code);
	if (w.status != DRM_NPUKIT_JOB_STATUS_ABORTED)
		UMD_DIE("the scripted hang did not abort job 2");

	char status[1024], regs[4096];
	slurp("/sys/kernel/debug/accel/0/status", status, sizeof status);
	slurp("/sys/kernel/debug/accel/0/regs", regs, sizeof regs);
	printf("%s", status);
	if (!strstr(regs, "ID") || !strstr(regs, "0x4e50554b"))
		UMD_DIE("register dump without the ID register:\n%s", regs);
	close(fd);
	printf("ok\n");
	return 0;
}
