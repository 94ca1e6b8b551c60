/*
 * The posix bg_vfs: the real disk. Durability follows the usual rules of
 * Linux file systems: fdatasync() makes a file's content durable, and a
 * directory is fsync()ed after entries in it are created, renamed or
 * removed. Locks are flock() locks, so two opens in one process exclude
 * each other just as two processes do.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boxguard/vfs.h"
#include "vfs_posix_int.h"

struct bg_file {
    int fd;
};

static ssize_t libc_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    return pread(fd, buf, len, off);
}

static ssize_t libc_pwrite(void *ctx, int fd, const void *buf, size_t len,
                           off_t off)
{
    (void)ctx;
    return pwrite(fd, buf, len, off);
}

static int libc_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd);
}

static int libc_ftruncate(void *ctx, int fd, off_t size)
{
    (void)ctx;
    return ftruncate(fd, size);
}

const bg__posix_sys bg__posix_libc = {libc_pread, libc_pwrite, libc_fdatasync,
                                      libc_ftruncate, NULL};

/* The syscalls of vfs: the seam's table when a test set one. */
static const bg__posix_sys *sys(const bg_vfs *vfs)
{
    return vfs->ctx ? (const bg__posix_sys *)vfs->ctx : &bg__posix_libc;
}

static bg_err posix_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return BG_ENOTFOUND;
    case EEXIST:
        return BG_EEXISTS;
    case ENOSPC:
    case EDQUOT:
        return BG_ENOSPACE;
    case ENOMEM:
        return BG_ENOMEM;
    case EWOULDBLOCK:
        return BG_ELOCKED;
    case EINVAL:
    case ENAMETOOLONG:
        return BG_EINVALID;
    default:
        return BG_EIO;
    }
}

static bg_err posix_open(const bg_vfs *vfs, const char *path, int flags,
                         bg_file **out)
{
    (void)vfs;
    int oflags = O_CLOEXEC;
    if (flags & (BG_OPEN_WRITE | BG_OPEN_CREATE))
        oflags |= O_RDWR;
    else
        oflags |= O_RDONLY;
    if (flags & BG_OPEN_CREATE)
        oflags |= O_CREAT;
    if (flags & BG_OPEN_EXCL)
        oflags |= O_EXCL;
    mode_t mode = (flags & BG_OPEN_PRIVATE) ? 0600 : 0644;
    bg_file *f = malloc(sizeof *f);
    if (!f)
        return BG_ENOMEM;
    do {
        f->fd = open(path, oflags, mode);
    } while (f->fd < 0 && errno == EINTR);
    if (f->fd < 0) {
        bg_err err = posix_errno(errno);
        free(f);
        return err;
    }
    *out = f;
    return 0;
}

static void posix_close(const bg_vfs *vfs, bg_file *f)
{
    (void)vfs;
    if (!f)
        return;
    close(f->fd); /* releases the flock */
    free(f);
}

static bg_err posix_read(const bg_vfs *vfs, bg_file *f, uint64_t off, void *buf,
                         size_t len, size_t *got)
{
    const bg__posix_sys *y = sys(vfs);
    size_t done = 0;
    while (done < len) {
        ssize_t n = y->pread(y->ctx, f->fd, (char *)buf + done, len - done,
                             (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return posix_errno(errno);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

static bg_err posix_write(const bg_vfs *vfs, bg_file *f, uint64_t off,
                          const void *buf, size_t len)
{
    const bg__posix_sys *y = sys(vfs);
    size_t done = 0;
    while (done < len) {
        /* A short write (a signal, a full disk) writes the rest again;
         * ENOSPC then ends the loop with the error. */
        ssize_t n = y->pwrite(y->ctx, f->fd, (const char *)buf + done,
                              len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return posix_errno(errno);
        }
        if (n == 0)
            return BG_EIO; /* no progress: never spin */
        done += (size_t)n;
    }
    return 0;
}

static bg_err posix_sync(const bg_vfs *vfs, bg_file *f)
{
    const bg__posix_sys *y = sys(vfs);
    /* A failed fdatasync is never retried as if nothing happened: the page
     * cache may have dropped the dirty pages, and a second call would
     * report success for data that never reached the disk. */
    if (y->fdatasync(y->ctx, f->fd) != 0)
        return posix_errno(errno);
    return 0;
}

static bg_err posix_truncate(const bg_vfs *vfs, bg_file *f, uint64_t size)
{
    const bg__posix_sys *y = sys(vfs);
    if (y->ftruncate(y->ctx, f->fd, (off_t)size) != 0)
        return posix_errno(errno);
    return 0;
}

static bg_err posix_size(const bg_vfs *vfs, bg_file *f, uint64_t *size)
{
    (void)vfs;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return posix_errno(errno);
    *size = (uint64_t)st.st_size;
    return 0;
}

static bg_err posix_lock(const bg_vfs *vfs, bg_file *f, int exclusive)
{
    (void)vfs;
    if (flock(f->fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0)
        return posix_errno(errno);
    return 0;
}

static bg_err posix_rename(const bg_vfs *vfs, const char *from, const char *to)
{
    (void)vfs;
    if (rename(from, to) != 0)
        return posix_errno(errno);
    return 0;
}

static bg_err posix_unlink(const bg_vfs *vfs, const char *path)
{
    (void)vfs;
    if (unlink(path) != 0)
        return posix_errno(errno);
    return 0;
}

static bg_err posix_mkdir(const bg_vfs *vfs, const char *path)
{
    (void)vfs;
    if (mkdir(path, 0755) != 0)
        return posix_errno(errno);
    return 0;
}

static bg_err posix_rmdir(const bg_vfs *vfs, const char *path)
{
    (void)vfs;
    if (rmdir(path) != 0)
        return posix_errno(errno == ENOTEMPTY ? EEXIST : errno);
    return 0;
}

static bg_err posix_list(const bg_vfs *vfs, const char *dir, bg_vfs_list_fn fn,
                         void *arg)
{
    (void)vfs;
    DIR *d = opendir(dir);
    if (!d)
        return posix_errno(errno);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (fn(arg, e->d_name))
            break;
    }
    closedir(d);
    return 0;
}

static bg_err posix_sync_dir(const bg_vfs *vfs, const char *dir)
{
    (void)vfs;
    int fd = open(dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return posix_errno(errno);
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    return rc == 0 ? 0 : posix_errno(e);
}

static bg_err posix_stat(const bg_vfs *vfs, const char *path, int *is_dir)
{
    (void)vfs;
    struct stat st;
    if (stat(path, &st) != 0)
        return posix_errno(errno);
    if (is_dir)
        *is_dir = S_ISDIR(st.st_mode) ? 1 : 0;
    return 0;
}

static void posix_random(const bg_vfs *vfs, void *buf, size_t len)
{
    (void)vfs;
    /* sodium_init() is idempotent and thread-safe; randombytes_buf() cannot
     * fail once it has run. */
    if (sodium_init() < 0) {
        memset(buf, 0, len);
        return;
    }
    randombytes_buf(buf, len);
}

static const bg_vfs posix_vfs = {
    .ctx = NULL,
    .open = posix_open,
    .close = posix_close,
    .read = posix_read,
    .write = posix_write,
    .sync = posix_sync,
    .truncate = posix_truncate,
    .size = posix_size,
    .lock = posix_lock,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .list = posix_list,
    .sync_dir = posix_sync_dir,
    .stat = posix_stat,
    .rmdir = posix_rmdir,
    .random = posix_random,
};

const bg_vfs *bg_vfs_posix(void)
{
    return &posix_vfs;
}
