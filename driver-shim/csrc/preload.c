/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The variadic half of the npukit LD_PRELOAD library: open/openat/ioctl are
 * C-variadic, which stable Rust cannot define, so these few functions do the
 * interposition and hand the device's calls to Rust (src/preload.rs).
 * Everything that is not /dev/accel/accel0 or one of its descriptors goes to
 * the next definition (libc) through dlsym(RTLD_NEXT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#define NPUKIT_DEVICE "/dev/accel/accel0"

int npukit_preload_is_ours(int fd);
int npukit_preload_register(int fd, int flags);
int npukit_preload_ioctl(int fd, unsigned long req, void *arg);
int npukit_preload_mmap(int fd, void *addr, size_t len, int flags, long long off, void **out);
int npukit_preload_owns_range(void *addr, size_t len);
int npukit_preload_munmap(void *addr, size_t len);
void npukit_preload_close(int fd);
int npukit_preload_open_virtual(const char *path, int flags);
int npukit_preload_commit_virtual(int fd);
int npukit_preload_is_virtual(int fd);

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef int (*close_fn)(int);

#define NEXT(type, name) \
	static type real_##name; \
	if (!real_##name) \
		real_##name = (type)dlsym(RTLD_NEXT, #name)

static int is_device(const char *path)
{
	return path && strcmp(path, NPUKIT_DEVICE) == 0;
}

/* The device's sysfs and debugfs folders (src/vfs.rs). */
static int is_virtual(const char *path)
{
	return path && (strncmp(path, "/sys/class/accel/accel0/", 24) == 0 ||
			strncmp(path, "/sys/kernel/debug/accel/0/", 26) == 0);
}

static int open_virtual(const char *path, int flags)
{
	int r = npukit_preload_open_virtual(path, flags);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
}

static int needs_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* A real descriptor (of /dev/null) reserves the number; the shim owns it. */
static int open_device(int flags)
{
	NEXT(open_fn, open);
	NEXT(close_fn, close);
	int fd = real_open("/dev/null", O_RDWR | (flags & O_CLOEXEC));
	if (fd < 0)
		return -1;
	int r = npukit_preload_register(fd, flags);
	if (r < 0) {
		real_close(fd);
		errno = -r;
		return -1;
	}
	return fd;
}

#define OPEN_BODY(realname)                                   \
	mode_t mode = 0;                                      \
	if (needs_mode(flags)) {                              \
		va_list ap;                                   \
		va_start(ap, flags);                          \
		mode = va_arg(ap, mode_t);                    \
		va_end(ap);                                   \
	}                                                     \
	if (is_device(path))                                  \
		return open_device(flags);                    \
	if (is_virtual(path))                                 \
		return open_virtual(path, flags);             \
	NEXT(open_fn, realname);                              \
	return real_##realname(path, flags, mode)

int open(const char *path, int flags, ...) { OPEN_BODY(open); }
int open64(const char *path, int flags, ...) { OPEN_BODY(open64); }

#define OPENAT_BODY(realname)                                 \
	mode_t mode = 0;                                      \
	if (needs_mode(flags)) {                              \
		va_list ap;                                   \
		va_start(ap, flags);                          \
		mode = va_arg(ap, mode_t);                    \
		va_end(ap);                                   \
	}                                                     \
	if (is_device(path))                                  \
		return open_device(flags);                    \
	if (is_virtual(path))                                 \
		return open_virtual(path, flags);             \
	NEXT(openat_fn, realname);                            \
	return real_##realname(dirfd, path, flags, mode)

int openat(int dirfd, const char *path, int flags, ...) { OPENAT_BODY(openat); }
int openat64(int dirfd, const char *path, int flags, ...) { OPENAT_BODY(openat64); }

/* The _FORTIFY_SOURCE entry points glibc uses for open without O_CREAT. */
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);
int __open_2(const char *path, int flags)
{
	if (is_device(path))
		return open_device(flags);
	if (is_virtual(path))
		return open_virtual(path, flags);
	NEXT(open2_fn, __open_2);
	return real___open_2(path, flags);
}
int __open64_2(const char *path, int flags)
{
	if (is_device(path))
		return open_device(flags);
	if (is_virtual(path))
		return open_virtual(path, flags);
	NEXT(open2_fn, __open64_2);
	return real___open64_2(path, flags);
}
int __openat_2(int dirfd, const char *path, int flags)
{
	if (is_device(path))
		return open_device(flags);
	if (is_virtual(path))
		return open_virtual(path, flags);
	NEXT(openat2_fn, __openat_2);
	return real___openat_2(dirfd, path, flags);
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (fd >= 0 && npukit_preload_is_ours(fd)) {
		int r = npukit_preload_ioctl(fd, req, arg);
		if (r < 0) {
			errno = -r;
			return -1;
		}
		return r;
	}
	NEXT(ioctl_fn, ioctl);
	return real_ioctl(fd, req, arg);
}

static void *device_mmap(void *addr, size_t len, int flags, int fd, long long off)
{
	void *out = MAP_FAILED;
	int r = npukit_preload_mmap(fd, addr, len, flags, off, &out);
	if (r < 0) {
		errno = -r;
		return MAP_FAILED;
	}
	return out;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fd >= 0 && npukit_preload_is_ours(fd))
		return device_mmap(addr, len, flags, fd, off);
	NEXT(mmap_fn, mmap);
	return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	if (fd >= 0 && npukit_preload_is_ours(fd))
		return device_mmap(addr, len, flags, fd, off);
	NEXT(mmap_fn, mmap64);
	return real_mmap64(addr, len, prot, flags, fd, off);
}

/* A BO mapping is device memory itself: unmapping it only releases the
 * shim's hold on the BO. */
int munmap(void *addr, size_t len)
{
	if (npukit_preload_owns_range(addr, len)) {
		int r = npukit_preload_munmap(addr, len);
		if (r < 0) {
			errno = -r;
			return -1;
		}
		return 0;
	}
	NEXT(munmap_fn, munmap);
	return real_munmap(addr, len);
}

int close(int fd)
{
	int r = 0;
	if (fd >= 0 && npukit_preload_is_ours(fd))
		npukit_preload_close(fd);
	else if (fd >= 0 && npukit_preload_is_virtual(fd))
		r = npukit_preload_commit_virtual(fd);
	NEXT(close_fn, close);
	int c = real_close(fd);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return c;
}

/* stdio opens and closes files through glibc-internal calls that do not come
 * here, so the device's sysfs/debugfs files are also served to fopen/fclose. */
typedef FILE *(*fopen_fn)(const char *, const char *);
typedef int (*fclose_fn)(FILE *);

static FILE *fopen_virtual(const char *path, const char *mode)
{
	int flags = O_RDONLY;
	if (strchr(mode, '+'))
		flags = O_RDWR;
	else if (mode[0] == 'w' || mode[0] == 'a')
		flags = O_WRONLY;
	if (strchr(mode, 'e'))
		flags |= O_CLOEXEC;
	int fd = open_virtual(path, flags);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, mode);
	if (!f) {
		NEXT(close_fn, close);
		real_close(fd);
	}
	return f;
}

FILE *fopen(const char *path, const char *mode)
{
	if (is_virtual(path))
		return fopen_virtual(path, mode);
	NEXT(fopen_fn, fopen);
	return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	if (is_virtual(path))
		return fopen_virtual(path, mode);
	NEXT(fopen_fn, fopen64);
	return real_fopen64(path, mode);
}

int fclose(FILE *f)
{
	int fd = f ? fileno(f) : -1;
	int r = 0;
	if (fd >= 0 && npukit_preload_is_virtual(fd)) {
		fflush(f);
		r = npukit_preload_commit_virtual(fd);
	}
	NEXT(fclose_fn, fclose);
	int c = real_fclose(f);
	if (r < 0) {
		errno = -r;
		return EOF;
	}
	return c;
}
