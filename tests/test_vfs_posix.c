/*
 * The posix VFS under faults, through its syscall seam (vfs_posix_int.h):
 * a failed fdatasync is reported and never retried into success
 * (fsyncgate), EINTR and short writes are carried through to complete
 * writes, and ENOSPC in the middle of a write leaves every acknowledged
 * record intact and the file cut back to where it was.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tempdir.h"
#include "vfs_posix_int.h"

typedef struct faults {
    int eintr;         /* the next n pwrites fail with EINTR */
    size_t short_max;  /* each pwrite writes at most this much (0: all) */
    long long room;    /* bytes that still fit before ENOSPC (-1: any) */
    int fail_syncs;    /* the next n fdatasyncs fail with EIO */
    int syncs, writes; /* calls seen */
} faults;

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t len,
                        off_t off)
{
    faults *f = ctx;
    f->writes++;
    if (f->eintr > 0) {
        f->eintr--;
        errno = EINTR;
        return -1;
    }
    if (f->short_max && len > f->short_max)
        len = f->short_max;
    if (f->room >= 0) {
        if (f->room == 0) {
            errno = ENOSPC;
            return -1;
        }
        if ((long long)len > f->room)
            len = (size_t)f->room; /* a short write, then ENOSPC */
        f->room -= (long long)len;
    }
    return pwrite(fd, buf, len, off);
}

static int f_fdatasync(void *ctx, int fd)
{
    faults *f = ctx;
    f->syncs++;
    if (f->fail_syncs > 0) {
        f->fail_syncs--;
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static int f_ftruncate(void *ctx, int fd, off_t size)
{
    (void)ctx;
    return ftruncate(fd, size);
}

static ssize_t f_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    return pread(fd, buf, len, off);
}

typedef struct rig {
    char dir[512], store[600], box[640];
    faults f;
    bg__posix_sys sys;
    bg_vfs vfs;
} rig;

static int rig_init(rig *r, const char *tag)
{
    memset(r, 0, sizeof *r);
    if (tu_tempdir(r->dir, sizeof r->dir, tag))
        return -1;
    snprintf(r->store, sizeof r->store, "%s/s", r->dir);
    snprintf(r->box, sizeof r->box, "%s/s/b.box", r->dir);
    r->f.room = -1;
    r->sys =
        (bg__posix_sys){f_pread, f_pwrite, f_fdatasync, f_ftruncate, &r->f};
    r->vfs = *bg_vfs_posix();
    r->vfs.ctx = &r->sys;
    return 0;
}

static void rig_done(rig *r)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

/* Open store and box b through the faulty seam (faulty) or the C library. */
static bg_err rig_open(rig *r, int faulty, bg_store **s, bg_box **b)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.vfs = faulty ? &r->vfs : bg_vfs_posix();
    o.create = 1;
    bg_err err = bg_store_open(r->store, &o, s);
    if (!err)
        err = bg_box_open(*s, "b", BG_BOX_CREATE, b);
    if (err && *s)
        (void)bg_store_close(*s);
    return err;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_size;
}

static void test_failed_fdatasync_is_reported_not_retried(void)
{
    rig r;
    CHECK(!rig_init(&r, "posix_sync"));
    bg_store *s;
    bg_box *b;
    CHECK_OK(rig_open(&r, 1, &s, &b));
    CHECK_OK(tu_put(b, "k0", "{\"v\":0}"));
    long long before = file_size(r.box);
    r.f.fail_syncs = 1;
    int syncs = r.f.syncs;
    CHECK_ERR(tu_put(b, "k1", "{\"v\":1}"), BG_EIO);
    CHECK_INT(r.f.syncs - syncs, ==, 1); /* one attempt, reported */
    CHECK_CONTAINS(bg_store_detail(s), "write at offset");
    CHECK_INT(file_size(r.box), ==, before); /* cut back */
    CHECK_OK(tu_put(b, "k2", "{\"v\":2}"));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(rig_open(&r, 0, &s, &b));
    CHECK(tu_has(b, "k0", "{\"v\":0}"));
    CHECK(!tu_has(b, "k1", "{\"v\":1}"));
    CHECK(tu_has(b, "k2", "{\"v\":2}"));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK_OK(bg_store_close(s));
    rig_done(&r);
}

static void test_eintr_and_short_writes_complete(void)
{
    rig r;
    CHECK(!rig_init(&r, "posix_short"));
    bg_store *s;
    bg_box *b;
    CHECK_OK(rig_open(&r, 1, &s, &b));
    r.f.short_max = 7;
    char k[16], v[600];
    for (int i = 0; i < 20; i++) {
        r.f.eintr = i % 3; /* none, one or two EINTRs before each write */
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "{\"i\":%d,\"pad\":\"%0500d\"}", i, i);
        CHECK_OK(tu_put(b, k, v));
    }
    CHECK_INT(r.f.writes, >, 20 * (500 / 7));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(rig_open(&r, 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "{\"i\":%d,\"pad\":\"%0500d\"}", i, i);
        CHECK(tu_has(b, k, v));
    }
    CHECK_OK(bg_store_close(s));
    rig_done(&r);
}

static void test_enospc_mid_write_keeps_acknowledged_records(void)
{
    rig r;
    CHECK(!rig_init(&r, "posix_nospc"));
    bg_store *s;
    bg_box *b;
    CHECK_OK(rig_open(&r, 1, &s, &b));
    char k[16], v[64];
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        CHECK_OK(tu_put(b, k, v));
    }
    long long before = file_size(r.box);
    r.f.room = 100; /* the frame is written in part, then the disk is full */
    char big[4096];
    snprintf(big, sizeof big, "\"%03000d\"", 0);
    CHECK_ERR(tu_put(b, "big", big), BG_ENOSPACE);
    CHECK_INT(file_size(r.box), ==, before);
    r.f.room = -1;
    CHECK_OK(tu_put(b, "k5", "{\"i\":5}"));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(rig_open(&r, 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    for (int i = 0; i < 6; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        CHECK(tu_has(b, k, v));
    }
    CHECK(!tu_has(b, "big", big));
    CHECK_OK(bg_store_close(s));
    rig_done(&r);
}

/* Every operation's errors, as the engine sees them: the C library's
 * errno mapped to bg_err, through the real calls and through the seam. */
static int errno_to_give;
static ssize_t e_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx, (void)fd, (void)buf, (void)len, (void)off;
    errno = errno_to_give;
    return -1;
}
static ssize_t e_pwrite(void *ctx, int fd, const void *buf, size_t len,
                        off_t off)
{
    (void)ctx, (void)fd, (void)buf, (void)len, (void)off;
    errno = errno_to_give;
    return -1;
}
static int e_ftruncate(void *ctx, int fd, off_t size)
{
    (void)ctx, (void)fd, (void)size;
    errno = errno_to_give;
    return -1;
}
static ssize_t zero_pwrite(void *ctx, int fd, const void *buf, size_t len,
                           off_t off)
{
    (void)ctx, (void)fd, (void)buf, (void)len, (void)off;
    return 0; /* no progress */
}

static void test_errors_of_every_operation(void)
{
    rig r;
    CHECK(!rig_init(&r, "posix_errors"));
    const bg_vfs *v = bg_vfs_posix();
    char path[700], missing[700], sub[700];
    snprintf(path, sizeof path, "%s/f", r.dir);
    snprintf(missing, sizeof missing, "%s/nope/f", r.dir);
    snprintf(sub, sizeof sub, "%s/d", r.dir);
    bg_file *f, *g;
    CHECK_ERR(v->open(v, missing, BG_OPEN_CREATE, &f), BG_ENOTFOUND);
    CHECK_OK(v->open(v, path, BG_OPEN_CREATE | BG_OPEN_PRIVATE, &f));
    CHECK_ERR(v->open(v, path, BG_OPEN_CREATE | BG_OPEN_EXCL, &g), BG_EEXISTS);
    CHECK_OK(v->mkdir(v, sub));
    CHECK_ERR(v->mkdir(v, sub), BG_EEXISTS);
    CHECK_ERR(v->rename(v, missing, path), BG_ENOTFOUND);
    CHECK_ERR(v->unlink(v, missing), BG_ENOTFOUND);
    CHECK_ERR(v->list(v, missing, NULL, NULL), BG_ENOTFOUND);
    CHECK_ERR(v->sync_dir(v, missing), BG_ENOTFOUND);
    CHECK_ERR(v->stat(v, missing, NULL), BG_ENOTFOUND);
    int is_dir = -1;
    CHECK_OK(v->stat(v, sub, &is_dir));
    CHECK_INT(is_dir, ==, 1);
    char longname[4200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_ERR(v->stat(v, longname, NULL), BG_EINVALID); /* ENAMETOOLONG */

    /* Through the seam: what a failing disk answers. */
    bg__posix_sys bad = {e_pread, e_pwrite, f_fdatasync, e_ftruncate, &r.f};
    bg_vfs bv = *v;
    bv.ctx = &bad;
    char buf[8];
    size_t got;
    static const struct {
        int e;
        bg_err want;
    } map[] = {{EIO, BG_EIO},         {ENOSPC, BG_ENOSPACE},
               {EDQUOT, BG_ENOSPACE}, {ENOMEM, BG_ENOMEM},
               {EINVAL, BG_EINVALID}, {EROFS, BG_EIO}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        errno_to_give = map[i].e;
        CHECK_ERR(bv.read(&bv, f, 0, buf, sizeof buf, &got), map[i].want);
        CHECK_ERR(bv.write(&bv, f, 0, "x", 1), map[i].want);
        CHECK_ERR(bv.truncate(&bv, f, 0), map[i].want);
    }
    bad.pwrite = zero_pwrite;
    CHECK_ERR(bv.write(&bv, f, 0, "x", 1), BG_EIO);
    v->close(v, f);
    rig_done(&r);
}

int main(void)
{
    RUN(test_failed_fdatasync_is_reported_not_retried);
    RUN(test_eintr_and_short_writes_complete);
    RUN(test_enospc_mid_write_keeps_acknowledged_records);
    RUN(test_errors_of_every_operation);
    return CHECK_DONE();
}
