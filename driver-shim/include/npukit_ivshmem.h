/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * npukit_ivshmem.h - the NPU as a QEMU guest sees it: an ivshmem-doorbell
 * PCI device served by the host command `npukit-ivshmem` (driver-shim,
 * src/ivshmem.rs), and driven by the kernel module in kmd/.
 *
 * BAR2 (the shared memory) is the card's on-board memory: device physical
 * address A is BAR2 offset A. Page 0 is never mapped into a translation
 * table, so the NPU cannot reach it; it holds the register mailbox below.
 * The NPU's registers (NPU_REG_*, npukit_abi.h) are reached through it:
 *
 *   guest: write OP, OFFSET, VALUE (and ARG_HI), then REQ_SEQ = n,
 *          then ring the doorbell: BAR0 DOORBELL = SERVER_PEER << 16 | 0
 *   host:  performs the access, writes RESP_VALUE(_HI) and RESP_STATUS,
 *          then RESP_SEQ = n
 *   guest: waits until RESP_SEQ == n, then reads the result
 *
 * The NPU's interrupt line reaches the guest as MSI-X vector 0: the host
 * signals it on every rising edge of IRQ_STATUS & IRQ_MASK != 0, so a
 * handler clears IRQ_STATUS until it reads back 0.
 *
 * All fields are little-endian 32-bit words at these byte offsets in BAR2.
 */
#ifndef NPUKIT_IVSHMEM_H
#define NPUKIT_IVSHMEM_H

#define NPUKIT_MBOX_MAGIC_VALUE   0x584F424Du /* "MBOX" */
#define NPUKIT_MBOX_VERSION_VALUE 1u

/* Written by the host before the guest starts. */
#define NPUKIT_MBOX_MAGIC         0x000 /* NPUKIT_MBOX_MAGIC_VALUE */
#define NPUKIT_MBOX_VERSION       0x004 /* NPUKIT_MBOX_VERSION_VALUE */
#define NPUKIT_MBOX_PLATFORM      0x008 /* DRM_NPUKIT_PLATFORM_* of the device behind it */
#define NPUKIT_MBOX_SERVER_PEER   0x00C /* ivshmem peer ID whose vector 0 is the host's doorbell */
/* Written by the host when the device behind it is lost (a lockstep
 * divergence; the report is on the host's stderr): 1 from then on. */
#define NPUKIT_MBOX_LOST          0x010

/* A request (guest) and its response (host). */
#define NPUKIT_MBOX_REQ_SEQ       0x040 /* written last: a new value starts the request */
#define NPUKIT_MBOX_REQ_OP        0x044 /* NPUKIT_MBOX_OP_* */
#define NPUKIT_MBOX_REQ_OFFSET    0x048 /* register offset (READ, WRITE) */
#define NPUKIT_MBOX_REQ_VALUE     0x04C /* value (WRITE), low word of an argument */
#define NPUKIT_MBOX_REQ_ARG_HI    0x050 /* high word of a 64-bit argument */
#define NPUKIT_MBOX_RESP_SEQ      0x080 /* written last: equals REQ_SEQ when done */
#define NPUKIT_MBOX_RESP_VALUE    0x084 /* READ: the value; CYCLE: low word */
#define NPUKIT_MBOX_RESP_VALUE_HI 0x088 /* CYCLE: high word */
#define NPUKIT_MBOX_RESP_STATUS   0x08C /* 0: done; 1: unknown op */

/* Operations. READ and WRITE are the NPU's MMIO; the others are the
 * simulation's own lines, used by the driver's fault injection. */
#define NPUKIT_MBOX_OP_READ       1 /* RESP_VALUE = register at OFFSET */
#define NPUKIT_MBOX_OP_WRITE      2 /* register at OFFSET = VALUE */
#define NPUKIT_MBOX_OP_CYCLE      3 /* RESP_VALUE(_HI) = the device clock */
#define NPUKIT_MBOX_OP_ARM_HANG   4 /* the device stops making progress ARG cycles from now, until reset */
#define NPUKIT_MBOX_OP_ARM_RESET  5 /* the device resets itself ARG cycles from now */
#define NPUKIT_MBOX_OP_DISARM     6 /* cancels armed faults that have not fired */

#define NPUKIT_MBOX_STATUS_OK     0
#define NPUKIT_MBOX_STATUS_BAD_OP 1

#endif /* NPUKIT_IVSHMEM_H */
