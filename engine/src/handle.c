/*
 * The store handle: allocation through the store's allocator, the detail
 * message, paths below the store directory, directory sync, atomic small
 * files and copies, and the wrappers through which the engine reaches the
 * vfs. The bottom of the core: it calls no other module.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc_int.h"
#include "boxguard/box.h"
#include "boxguard/migrate.h"
#include "handle_int.h"

void *bg__handle_malloc(bg_store *s, size_t n)
{
    return bg__alloc_malloc(&s->alloc, n);
}

void *bg__handle_realloc(bg_store *s, void *p, size_t n)
{
    return bg__alloc_realloc(&s->alloc, p, n);
}

bg_err bg__handle_grow(bg_store *s, void *arrp, size_t n, size_t *cap,
                       size_t elem, size_t min)
{
    return bg__alloc_grow(&s->alloc, arrp, n, cap, elem, min);
}

void bg__handle_free(bg_store *s, void *p)
{
    bg__alloc_free(&s->alloc, p);
}

void bg_store_free(bg_store *s, void *p)
{
    bg__handle_free(s, p);
}

int64_t bg__handle_now_ms(bg_store *s)
{
    if (s->clock.now_ms)
        return s->clock.now_ms(s->clock.ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bg_err bg__handle_fail(bg_store *s, bg_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->detail, sizeof s->detail, fmt, ap);
    va_end(ap);
    /* The cause of a failure the message cannot know (the disk, memory,
     * another process, a key) is added; a refusal's message says it all. */
    int cause = code == BG_EIO || code == BG_ENOSPACE || code == BG_ENOMEM ||
                code == BG_ELOCKED || code == BG_EAUTH;
    if (cause && n >= 0 && (size_t)n < sizeof s->detail)
        snprintf(s->detail + n, sizeof s->detail - (size_t)n, ": %s",
                 bg_strerror(code));
    return code;
}

_Static_assert(BG_BOX_NAME_MAX + sizeof ".rb.box.tmp" <= BG__NAME_MAX,
               "box files fit below the store");
_Static_assert(sizeof "backups//.box" + BG_MIGRATION_ID_MAX + BG_BOX_NAME_MAX <=
                   BG__NAME_MAX,
               "backups fit below the store");

void bg__handle_path(const bg_store *s, char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, name);
    if (n < 0 || (size_t)n >= cap) /* GCOVR_EXCL_BR_LINE: see BG__NAME_MAX */
        abort();
}

bg_err bg__handle_has(bg_store *s, const char *name, int *yes)
{
    char path[BG_PATH_MAX];
    *yes = 0;
    if (strlen(name) > BG__NAME_MAX) /* names from records: any length */
        return bg__handle_fail(s, BG_EINVALID, "path of '%.80s...' too long",
                               name);
    bg__handle_path(s, path, sizeof path, name);
    bg_err err = bg__vfs_stat(s, path, NULL);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_FAIL_IF(err, s, err, "cannot look for '%s'", path);
    *yes = 1;
    return 0;
}

void bg__handle_progress(bg_store *s, const char *what, uint64_t done,
                         uint64_t total)
{
    if (s->progress)
        s->progress(s->progress_ctx, what, done, total);
}

bg_err bg__handle_settle_dir(bg_store *s)
{
    if (!s->dir_dirty)
        return 0;
    bg_err err = bg__vfs_sync_dir(s, s->dir);
    BG_FAIL_IF(err, s, err, "cannot sync directory '%s'", s->dir);
    s->dir_dirty = 0;
    return 0;
}

uint64_t bg_store_io_count(const bg_store *s)
{
    return s->vfs_ops;
}

const char *bg_store_detail(const bg_store *s)
{
    return s->detail;
}

void bg__handle_parent(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = '\0';
    if (n == 0 && slash && cap > 1)
        strcpy(out, "/"); /* "" is the current directory to the vfs */
}

bg_err bg__handle_bare(const char *dir, const bg_vfs *vfs, bg_store **out)
{
    size_t n = strlen(dir);
    if (n == 0 || n >= BG_PATH_MAX - BG__NAME_MAX - 1)
        return BG_EINVALID;
    bg_store *s = calloc(1, sizeof *s);
    if (!s)
        return BG_ENOMEM;
    memcpy(s->dir, dir, n + 1);
    while (n > 1 && s->dir[n - 1] == '/')
        s->dir[--n] = '\0';
    s->vfs = vfs ? vfs : bg_vfs_posix();
    s->read_only = 1;
    *out = s;
    return 0;
}

bg_err bg__handle_shred(bg_store *s, const char *path, uint64_t *bytes)
{
    enum { SHRED_CHUNK = 1 << 16 };
    static const uint8_t zeros[SHRED_CHUNK];
    bg_file *f = NULL;
    uint64_t size = 0;
    bg_err err = bg__vfs_open(s, path, BG_OPEN_WRITE, &f);
    if (err)
        return err; /* BG_ENOTFOUND: already gone */
    err = bg__vfs_size(s, f, &size);
    for (uint64_t off = 0; !err && off < size; off += SHRED_CHUNK) {
        uint64_t left = size - off;
        err = bg__vfs_write(s, f, off, zeros,
                            left < SHRED_CHUNK ? (size_t)left : SHRED_CHUNK);
    }
    if (!err && size)
        err = bg__vfs_sync(s, f);
    bg__vfs_close(s, f);
    if (!err)
        err = bg__vfs_unlink(s, path);
    if (!err && bytes)
        *bytes += size;
    return err;
}

bg_err bg__handle_mkdir(bg_store *s, const char *dir)
{
    bg_err err = bg__vfs_mkdir(s, dir);
    if (err == BG_EEXISTS)
        return 0;
    BG_FAIL_IF(err, s, err, "cannot create directory '%s'", dir);
    char parent[BG_PATH_MAX];
    bg__handle_parent(dir, parent, sizeof parent);
    err = bg__vfs_sync_dir(s, parent);
    BG_FAIL_IF(err, s, err, "cannot sync directory '%s'", parent);
    return 0;
}

bg_err bg__handle_write_file(bg_store *s, const char *tmp, const char *path,
                             const char *dir, const void *buf, size_t len,
                             int flags)
{
    bg_file *f = NULL;
    bg_err err = bg__vfs_unlink(s, tmp);
    if (err == BG_ENOTFOUND)
        err = 0;
    if (!err)
        err = bg__vfs_open(s, tmp, BG_OPEN_CREATE | BG_OPEN_EXCL | flags, &f);
    if (!err)
        err = bg__vfs_write(s, f, 0, buf, len);
    if (!err)
        err = bg__vfs_sync(s, f);
    if (f)
        bg__vfs_close(s, f);
    if (!err)
        err = bg__vfs_rename(s, tmp, path);
    if (!err)
        err = bg__vfs_sync_dir(s, dir);
    if (err)
        bg__vfs_unlink(s, tmp);
    return err;
}

bg_err bg__handle_copy_file(bg_store *s, const char *from, const char *to)
{
    bg_file *in = NULL, *out = NULL;
    uint8_t *buf = NULL;
    bg_err err = bg__vfs_unlink(s, to);
    if (err && err != BG_ENOTFOUND)
        goto out;
    BG_TRY_OUT(bg__vfs_open(s, from, BG_OPEN_READ, &in));
    BG_TRY_OUT(bg__vfs_open(s, to, BG_OPEN_CREATE | BG_OPEN_EXCL, &out));
    enum { COPY_CHUNK = 1 << 20 };
    buf = bg__handle_malloc(s, COPY_CHUNK);
    if (!buf) {
        err = BG_ENOMEM;
        goto out;
    }
    for (uint64_t off = 0;;) {
        size_t got;
        BG_TRY_OUT(bg__vfs_read(s, in, off, buf, COPY_CHUNK, &got));
        if (!got)
            break;
        BG_TRY_OUT(bg__vfs_write(s, out, off, buf, got));
        off += got;
    }
    err = bg__vfs_sync(s, out);
out:
    bg__handle_free(s, buf);
    if (in)
        bg__vfs_close(s, in);
    if (out)
        bg__vfs_close(s, out);
    BG_FAIL_IF(err, s, err, "cannot copy '%s' to '%s'", from, to);
    return 0;
}

/* ---- the vfs, through wrappers ------------------------------------------ */

/* The detail of a failed operation, unless the answer is one a caller
 * asks for (missing, already there). */
static bg_err vfs_said(bg_store *s, bg_err err, const char *what,
                       const char *path)
{
    s->vfs_ops++;
    if (err && err != BG_ENOTFOUND && err != BG_EEXISTS)
        bg__handle_fail(s, err, "%s '%s' failed", what, path ? path : "");
    return err;
}

bg_err bg__vfs_open(bg_store *s, const char *path, int flags, bg_file **f)
{
    return vfs_said(s, s->vfs->open(s->vfs, path, flags, f), "open of", path);
}

void bg__vfs_close(bg_store *s, bg_file *f)
{
    s->vfs->close(s->vfs, f);
}

bg_err bg__vfs_read(bg_store *s, bg_file *f, uint64_t off, void *buf,
                    size_t len, size_t *got)
{
    return vfs_said(s, s->vfs->read(s->vfs, f, off, buf, len, got), "read in",
                    s->dir);
}

bg_err bg__vfs_write(bg_store *s, bg_file *f, uint64_t off, const void *buf,
                     size_t len)
{
    return vfs_said(s, s->vfs->write(s->vfs, f, off, buf, len), "write in",
                    s->dir);
}

bg_err bg__vfs_sync(bg_store *s, bg_file *f)
{
    return vfs_said(s, s->vfs->sync(s->vfs, f), "sync of a file in", s->dir);
}

bg_err bg__vfs_sync_unowned(const bg_vfs *vfs, bg_file *f)
{
    return vfs->sync(vfs, f);
}

bg_err bg__vfs_truncate(bg_store *s, bg_file *f, uint64_t size)
{
    return vfs_said(s, s->vfs->truncate(s->vfs, f, size), "truncate in",
                    s->dir);
}

bg_err bg__vfs_size(bg_store *s, bg_file *f, uint64_t *size)
{
    return vfs_said(s, s->vfs->size(s->vfs, f, size), "size of a file in",
                    s->dir);
}

bg_err bg__vfs_lock(bg_store *s, bg_file *f, int exclusive)
{
    return vfs_said(s, s->vfs->lock(s->vfs, f, exclusive), "lock in", s->dir);
}

bg_err bg__vfs_rename(bg_store *s, const char *from, const char *to)
{
    return vfs_said(s, s->vfs->rename(s->vfs, from, to), "rename of", from);
}

bg_err bg__vfs_unlink(bg_store *s, const char *path)
{
    return vfs_said(s, s->vfs->unlink(s->vfs, path), "unlink of", path);
}

bg_err bg__vfs_mkdir(bg_store *s, const char *path)
{
    return vfs_said(s, s->vfs->mkdir(s->vfs, path), "mkdir of", path);
}

bg_err bg__vfs_rmdir(bg_store *s, const char *path)
{
    return vfs_said(s, s->vfs->rmdir(s->vfs, path), "rmdir of", path);
}

bg_err bg__vfs_list(bg_store *s, const char *dir, bg_vfs_list_fn fn, void *arg)
{
    return vfs_said(s, s->vfs->list(s->vfs, dir, fn, arg), "listing of", dir);
}

bg_err bg__vfs_sync_dir(bg_store *s, const char *dir)
{
    return vfs_said(s, s->vfs->sync_dir(s->vfs, dir), "sync of directory", dir);
}

bg_err bg__vfs_stat(bg_store *s, const char *path, int *is_dir)
{
    return vfs_said(s, s->vfs->stat(s->vfs, path, is_dir), "stat of", path);
}

void bg__vfs_random(bg_store *s, void *buf, size_t len)
{
    s->vfs->random(s->vfs, buf, len);
}
