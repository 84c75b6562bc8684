/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * accel_node: what the accel core of a real kernel creates for the npukit
 * module, checked in the QEMU guest (scripts/guest-test.sh): the character
 * device /dev/accel/accel0 on the accel major 261, the class device
 * /sys/class/accel/accel0 with its dev file, and the PCI device's npukit
 * attributes behind it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DIE(...) do { fprintf(stderr, "accel_node: " __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } while (0)

int main(void)
{
	struct stat st;
	if (stat("/dev/accel/accel0", &st))
		DIE("stat /dev/accel/accel0: %s", strerror(errno));
	if (!S_ISCHR(st.st_mode))
		DIE("/dev/accel/accel0 is not a character device");
	if (major(st.st_rdev) != 261)
		DIE("/dev/accel/accel0 is %u:%u, not on the accel major 261", major(st.st_rdev),
		    minor(st.st_rdev));
	if (stat("/sys/class/accel/accel0", &st) || !S_ISDIR(st.st_mode))
		DIE("no /sys/class/accel/accel0");
	char buf[64] = { 0 };
	int fd = open("/sys/class/accel/accel0/dev", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
		DIE("read /sys/class/accel/accel0/dev: %s", strerror(errno));
	close(fd);
	unsigned ma, mi;
	if (sscanf(buf, "%u:%u", &ma, &mi) != 2 || ma != 261)
		DIE("/sys/class/accel/accel0/dev is %s", buf);
	char drv[256] = { 0 };
	if (readlink("/sys/class/accel/accel0/device/driver", drv, sizeof drv - 1) < 0)
		DIE("accel0 has no driver link: %s", strerror(errno));
	if (!strstr(drv, "/npukit"))
		DIE("accel0's driver is %s, not npukit", drv);
	printf("/dev/accel/accel0: char %u:%u; /sys/class/accel/accel0 (driver npukit)\nok\n", ma, mi);
	return 0;
}
