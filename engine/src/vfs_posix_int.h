/*
 * The syscall seam under the posix bg_vfs, for its fault-injection tests:
 * a copy of bg_vfs_posix() whose ctx points at a bg__posix_sys table makes
 * its reads, writes, syncs and truncates go through that table, so a test
 * can answer EINTR, a short write, ENOSPC halfway or a failed fdatasync
 * exactly where it wants. With ctx NULL (bg_vfs_posix() itself) the C
 * library's calls are used.
 */
#ifndef BOXGUARD_VFS_POSIX_INT_H
#define BOXGUARD_VFS_POSIX_INT_H

#include <sys/types.h>

#include "boxguard/vfs.h"

typedef struct bg__posix_sys {
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len,
                      off_t off);
    int (*fdatasync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, off_t size);
    void *ctx;
} bg__posix_sys;

/* The C library's calls, for a table that overrides only some of them. */
extern const bg__posix_sys bg__posix_libc;

#endif
