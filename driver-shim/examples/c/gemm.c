/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * gemm: an unmodified user-mode driver program. It opens /dev/accel/accel0,
 * identifies the device, runs an int8 GEMM sized to the MAC array and checks
 * it bit-exact against the CPU, then exercises the error paths a driver must
 * handle. Run it under the npukit LD_PRELOAD library:
 *
 *   LD_PRELOAD=libnpukit_shim.so ./gemm
 */
#include "umd.h"

#define EXPECT_ERRNO(call, want)                                                  \
	do {                                                                      \
		errno = 0;                                                        \
		int r_ = (call);                                                  \
		if (r_ != -1 || errno != (want))                                  \
			UMD_DIE("%s: got %d errno %d (%s), want errno %d", #call, \
				r_, errno, strerror(errno), (want));              \
	} while (0)

int main(void)
{
	int fd = open("/dev/accel/accel0", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		UMD_DIE("open /dev/accel/accel0: %s", strerror(errno));

	char name[32] = { 0 };
	struct drm_version v = { .name_len = sizeof name - 1, .name = name };
	if (ioctl(fd, DRM_IOCTL_VERSION, &v))
		UMD_DIE("VERSION: %s", strerror(errno));
	if (strcmp(name, "npukit") != 0)
		UMD_DIE("driver is %s, not npukit", name);

	if (umd_param(fd, DRM_NPUKIT_PARAM_DEVICE_ID) != 0x4E50554B)
		UMD_DIE("not an npukit NPU");
	uint64_t abi = umd_param(fd, DRM_NPUKIT_PARAM_ABI_VERSION);
	if ((abi >> 16) != NPU_ABI_MAJOR)
		UMD_DIE("firmware ABI %llu.%llu, this driver needs %u.x",
			(unsigned long long)(abi >> 16), (unsigned long long)(abi & 0xffff),
			NPU_ABI_MAJOR);
	uint16_t rows = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_ROWS);
	uint16_t cols = (uint16_t)umd_param(fd, DRM_NPUKIT_PARAM_ARRAY_COLS);
	uint64_t platform = umd_param(fd, DRM_NPUKIT_PARAM_PLATFORM);
	printf("npukit %s: %ux%u array, ABI %llu.%llu, platform %llu\n", name, rows, cols,
	       (unsigned long long)(abi >> 16), (unsigned long long)(abi & 0xffff),
	       (unsigned long long)platform);

	int bad = umd_gemm(fd, 24, rows, cols, 1);
	if (bad)
		UMD_DIE("GEMM 24x%ux%u: %d wrong elements", rows, cols, bad);
	printf("GEMM 24x%ux%u bit-exact\n", rows, cols);

	/* Error paths. */
	struct drm_npukit_bo_info info = { .handle = 0 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_BO_INFO, &info), ENOENT);
	struct drm_npukit_bo_create zero = { .size = 0 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_BO_CREATE, &zero), EINVAL);
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_NPUKIT_GET_PARAM, NULL), EFAULT);
	EXPECT_ERRNO(ioctl(fd, _IOWR('d', 0x7f, struct drm_npukit_wait), &info), ENOTTY);
	struct drm_gem_close gc = { .handle = 9999 };
	EXPECT_ERRNO(ioctl(fd, DRM_IOCTL_GEM_CLOSE, &gc), EINVAL);
	struct drm_npukit_bo_create c = { .size = 4096 };
	if (ioctl(fd, DRM_IOCTL_NPUKIT_BO_CREATE, &c))
		UMD_DIE("BO_CREATE: %s", strerror(errno));
	if (mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, (off_t)c.mmap_offset) != MAP_FAILED ||
	    errno != EINVAL)
		UMD_DIE("mmap beyond the BO did not fail with EINVAL");
	/* A job that reads device address 0 faults there. */
	struct umd_bo cmd = umd_bo_new(fd, 4096);
	struct npu_desc_load ld = { 0 };
	ld.word0 = umd_word0(NPU_OP_LOAD, 0, 0);
	ld.rows = 1;
	ld.row_bytes = 16;
	memcpy(cmd.map, &ld, sizeof ld);
	uint64_t seq = umd_submit(fd, cmd.handle, 32, NULL, 0);
	struct drm_npukit_wait w = umd_wait(fd, seq, 60ll * 1000000000);
	if (w.status != DRM_NPUKIT_JOB_STATUS_ERROR || w.error_code != NPU_ERR_XLAT_FAULT ||
	    w.fault_addr != 0)
		UMD_DIE("load from 0: status %u error %u addr %#llx", w.status, w.error_code,
			(unsigned long long)w.fault_addr);
	printf("error paths as documented\n");

	/* The device still works after all that. */
	if (umd_gemm(fd, 8, rows, cols, 2))
		UMD_DIE("GEMM after errors is wrong");
	if (close(fd))
		UMD_DIE("close: %s", strerror(errno));
	printf("ok\n");
	return 0;
}
