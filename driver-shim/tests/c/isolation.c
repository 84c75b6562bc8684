/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * isolation: a context never reaches another's memory, and a read-only BO
 * is never written (docs/driver.md, "What the driver does"). A job of file
 * B that loads from or stores to file A's BO faults with XLAT_FAULT at that
 * address and changes nothing; a STORE into a read-only BO faults with
 * XLAT_WRITE. Runs under the shim (LD_PRELOAD) and against the kernel
 * module in the QEMU guest.
 */
#include "testlib.h"

static struct drm_npukit_wait run1(int fd, struct umd_bo *cmd, const void *desc)
{
	memcpy(cmd->map, desc, NPU_DESC_BYTES);
	return umd_wait(fd, umd_submit(fd, cmd->handle, NPU_DESC_BYTES, NULL, 0), 60ll * 1000000000);
}

static struct npu_desc_load load_from(uint64_t addr)
{
	struct npu_desc_load ld = { 0 };
	ld.word0 = NPU_DESC_WORD0(NPU_OP_LOAD, 0, 0);
	ld.dram_lo = (uint32_t)addr;
	ld.dram_hi = (uint32_t)(addr >> 32);
	ld.rows = 1;
	ld.row_bytes = 16;
	ld.dram_stride = 16;
	ld.local_stride = 16;
	return ld;
}

static struct npu_desc_store store_to(uint64_t addr)
{
	struct npu_desc_store st = { 0 };
	st.word0 = NPU_DESC_WORD0(NPU_OP_STORE, 0, 0);
	st.dram_lo = (uint32_t)addr;
	st.dram_hi = (uint32_t)(addr >> 32);
	st.rows = 1;
	st.row_bytes = 16;
	st.dram_stride = 16;
	st.local_stride = 16;
	return st;
}

static void expect_fault(struct drm_npukit_wait w, uint32_t code, uint64_t addr, const char *what)
{
	if (w.status != DRM_NPUKIT_JOB_STATUS_ERROR || w.error_code != code || w.fault_addr != addr ||
	    w.fault_desc != 0)
		UMD_DIE("%s: status %u error %u at %#llx (descriptor %u), want ERROR %u at %#llx", what,
			w.status, w.error_code, (unsigned long long)w.fault_addr, w.fault_desc, code,
			(unsigned long long)addr);
}

int main(void)
{
	int a = open("/dev/accel/accel0", O_RDWR), b = open("/dev/accel/accel0", O_RDWR);
	if (a < 0 || b < 0)
		UMD_DIE("open: %s", strerror(errno));
	struct umd_bo secret = umd_bo_new(a, 4096);
	memset(secret.map, 0x5A, 4096);
	struct umd_bo cmd_b = umd_bo_new(b, 4096);

	struct npu_desc_load ld = load_from(secret.device_addr);
	expect_fault(run1(b, &cmd_b, &ld), NPU_ERR_XLAT_FAULT, secret.device_addr,
		     "B loads from A's BO");
	struct npu_desc_store st = store_to(secret.device_addr + 64);
	expect_fault(run1(b, &cmd_b, &st), NPU_ERR_XLAT_FAULT, secret.device_addr + 64,
		     "B stores into A's BO");
	for (int i = 0; i < 4096; i++)
		if (((uint8_t *)secret.map)[i] != 0x5A)
			UMD_DIE("A's BO changed at byte %d", i);
	printf("another context's BO: XLAT_FAULT at its address, unchanged\n");

	struct drm_npukit_bo_create c = { .size = 4096, .flags = DRM_NPUKIT_BO_READONLY };
	if (ioctl(a, DRM_IOCTL_NPUKIT_BO_CREATE, &c))
		UMD_DIE("BO_CREATE read-only: %s", strerror(errno));
	struct drm_npukit_bo_info info = { .handle = c.handle };
	if (ioctl(a, DRM_IOCTL_NPUKIT_BO_INFO, &info) || info.flags != DRM_NPUKIT_BO_READONLY)
		UMD_DIE("BO_INFO of the read-only BO: flags %#x", info.flags);
	uint8_t *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, a, (off_t)c.mmap_offset);
	if (ro == MAP_FAILED)
		UMD_DIE("mmap: %s", strerror(errno));
	memset(ro, 0x33, 4096);
	struct umd_bo cmd_a = umd_bo_new(a, 4096);
	struct npu_desc_load ldr = load_from(c.device_addr);
	struct drm_npukit_wait w = run1(a, &cmd_a, &ldr);
	if (w.status != DRM_NPUKIT_JOB_STATUS_OK)
		UMD_DIE("a LOAD from a read-only BO: status %u error %u", w.status, w.error_code);
	struct npu_desc_store str = store_to(c.device_addr);
	expect_fault(run1(a, &cmd_a, &str), NPU_ERR_XLAT_WRITE, c.device_addr,
		     "a STORE into a read-only BO");
	for (int i = 0; i < 4096; i++)
		if (ro[i] != 0x33)
			UMD_DIE("the read-only BO changed at byte %d", i);
	printf("read-only BO: LOAD ok, STORE XLAT_WRITE, unchanged\n");
	tl_still_works(a, 1);
	tl_still_works(b, 2);
	close(a);
	close(b);
	printf("ok\n");
	return 0;
}
