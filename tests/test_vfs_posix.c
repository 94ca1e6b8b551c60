/*
 * The posix VFS under faults, through its syscall seam (vfs_posix_int.h):
 * a failed fdatasync is reported and never retried into success
 * (fsyncgate), EINTR and short writes are carried through to complete
 * writes, and ENOSPC in the middle of a write leaves every acknowledged
 * record intact and the file cut back to where it was. GROUP mode's sync
 * thread: a group's fdatasync runs while the next group gathers, the
 * write that closes a group waits for the group before it, and a failed
 * sync on the thread is reported by the box it was for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <time.h>
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

/* A sync held at its start while hold is set (the sync thread's tests):
 * entered counts the syncs that began, done those that returned. Guarded
 * by mu, as fdatasync may run on the store's thread. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int hold, entered, done;

static int f_fdatasync(void *ctx, int fd)
{
    faults *f = ctx;
    pthread_mutex_lock(&mu);
    entered++;
    pthread_cond_broadcast(&cv);
    while (hold)
        pthread_cond_wait(&cv, &mu);
    f->syncs++;
    int fail = f->fail_syncs > 0;
    if (fail)
        f->fail_syncs--;
    pthread_mutex_unlock(&mu);
    int rc = fail ? (errno = EIO, -1) : fdatasync(fd);
    pthread_mutex_lock(&mu);
    done++;
    pthread_mutex_unlock(&mu);
    return rc;
}

static void set_hold(int on)
{
    pthread_mutex_lock(&mu);
    hold = on;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Wait until n syncs have begun; their count done. */
static int await_entered(int n)
{
    pthread_mutex_lock(&mu);
    while (entered < n)
        pthread_cond_wait(&cv, &mu);
    int d = done;
    pthread_mutex_unlock(&mu);
    return d;
}

static int syncs_done(void)
{
    pthread_mutex_lock(&mu);
    int d = done;
    pthread_mutex_unlock(&mu);
    return d;
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

/* Open (creating) the store with options o and its box named box. */
static bg_err rig_open_with(rig *r, bg_store_opts *o, const char *box,
                            bg_store **s, bg_box **b)
{
    o->create = 1;
    bg_err err = bg_store_open(r->store, o, s);
    if (!err)
        err = bg_box_open(*s, box, BG_BOX_CREATE, b);
    if (err && *s)
        (void)bg_store_close(*s);
    return err;
}

/* Open store and box b through the faulty seam (faulty) or the C library. */
static bg_err rig_open(rig *r, int faulty, bg_store **s, bg_box **b)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.vfs = faulty ? &r->vfs : bg_vfs_posix();
    return rig_open_with(r, &o, "b", s, b);
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

/* GROUP mode through the faulty seam with the sync thread on. */
static bg_err rig_open_group(rig *r, bg_store **s, bg_box **b, const char *box)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.vfs = &r->vfs;
    o.durability = BG_DURABILITY_GROUP;
    o.group_size = 3;
    o.sync_thread = 1;
    return rig_open_with(r, &o, box, s, b);
}

static void put_n(bg_box *b, int from, int n)
{
    char k[16], v[32];
    for (int i = from; i < from + n; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        CHECK_OK(tu_put(b, k, v));
    }
}

typedef struct closer {
    bg_box *b;
    int from;
    bg_err err;
    int returned;
} closer;

static void *close_group(void *arg)
{
    closer *c = arg;
    char k[16];
    snprintf(k, sizeof k, "k%d", c->from);
    c->err = tu_put(c->b, k, "{}");
    pthread_mutex_lock(&mu);
    c->returned = 1;
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* A group is one pwrite and one fdatasync; that sync runs on the store's
 * thread while the next group gathers (the writes return with the sync
 * held); the write that closes the next group returns only once the sync
 * before it has. */
static void test_group_sync_runs_beside_the_next_group(void)
{
    rig r;
    CHECK(!rig_init(&r, "posix_group"));
    bg_store *s;
    bg_box *b;
    CHECK_OK(rig_open_group(&r, &s, &b, "b"));
    int writes = r.f.writes;
    /* No CHECK may return while a sync is held (the store would hang at
     * its close): what is seen meanwhile is checked after the release. */
    pthread_mutex_lock(&mu);
    entered = done = 0;
    pthread_mutex_unlock(&mu);
    set_hold(1);
    bg_err e1 = 0, e2 = 0;
    char k[16];
    for (int i = 0; i < 3 && !e1; i++) { /* closes group 1: its sync held */
        snprintf(k, sizeof k, "k%d", i);
        e1 = tu_put(b, k, "{}");
    }
    int done1 = e1 ? -1 : await_entered(1);
    int writes1 = r.f.writes - writes;
    for (int i = 3; i < 5 && !e2; i++) { /* group 2 gathers beside it */
        snprintf(k, sizeof k, "k%d", i);
        e2 = tu_put(b, k, "{}");
    }
    int writes2 = r.f.writes - writes, done2 = syncs_done();
    closer c = {.b = b, .from = 5};
    pthread_t t;
    int started = !e1 && !e2 && !pthread_create(&t, NULL, close_group, &c);
    struct timespec nap = {0, 100 * 1000 * 1000};
    if (started)
        nanosleep(&nap, NULL);
    pthread_mutex_lock(&mu);
    int early = c.returned;
    pthread_mutex_unlock(&mu);
    set_hold(0);
    if (started)
        CHECK(!pthread_join(t, NULL));
    CHECK_OK(e1);
    CHECK_OK(e2);
    CHECK(started);
    CHECK_INT(done1, ==, 0);
    CHECK_INT(writes1, ==, 1);
    CHECK_INT(writes2, ==, 1);
    CHECK_INT(done2, ==, 0);
    CHECK(!early); /* it waited for group 1's sync */
    CHECK_OK(c.err);
    CHECK_INT(syncs_done(), >=, 1);
    CHECK_INT(r.f.writes - writes, ==, 2);
    CHECK_OK(bg_store_sync(s)); /* waits for group 2's; nothing gathered */
    CHECK_INT(syncs_done(), ==, 2);
    CHECK_INT(r.f.writes - writes, ==, 2);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(rig_open(&r, 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK(tu_has(b, "k4", "{}"));
    CHECK(tu_has(b, "k5", "{}"));
    CHECK_OK(bg_store_close(s));
    rig_done(&r);
}

/* A sync that fails on the thread stops its box, and its error comes back
 * once: from the write that closes the next group, from bg_store_sync or
 * from close, or, when another box's write found it, from that box's own
 * next call; the box then refuses writes until reopened. */
static void test_group_sync_failure_on_the_thread(void)
{
    rig r;
    CHECK(!rig_init(&r, "posix_group_fail"));
    bg_store *s;
    bg_box *b, *c;

    /* Found by the write that closes the next group. */
    CHECK_OK(rig_open_group(&r, &s, &b, "b"));
    r.f.fail_syncs = 1;
    put_n(b, 0, 3);
    put_n(b, 3, 2);
    CHECK_ERR(tu_put(b, "k5", "{}"), BG_EIO);
    CHECK_CONTAINS(bg_store_detail(s), "the sync of a group failed");
    CHECK_ERR(tu_put(b, "k6", "{}"), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "stopped after an I/O error");
    CHECK_ERR(bg_store_sync(s), BG_ESTATE);
    CHECK_OK(bg_store_close(s));

    /* Found by bg_store_sync. */
    CHECK_OK(rig_open_group(&r, &s, &b, "b"));
    r.f.fail_syncs = 1;
    put_n(b, 10, 3);
    CHECK_ERR(bg_store_sync(s), BG_EIO);
    CHECK_ERR(tu_put(b, "k13", "{}"), BG_ESTATE);
    CHECK_OK(bg_store_close(s));

    /* Found by close. */
    CHECK_OK(rig_open_group(&r, &s, &b, "b"));
    r.f.fail_syncs = 1;
    put_n(b, 20, 3);
    CHECK_ERR(bg_store_close(s), BG_EIO);

    /* Found by another box's write: kept for the box it was for. */
    CHECK_OK(rig_open_group(&r, &s, &b, "b"));
    CHECK_OK(bg_box_open(s, "c", BG_BOX_CREATE, &c));
    r.f.fail_syncs = 1;
    put_n(b, 30, 3);
    put_n(c, 0, 3); /* waits for b's sync, which failed: not c's error */
    CHECK_OK(bg_box_sync(c));
    CHECK_ERR(bg_box_sync(b), BG_EIO);
    CHECK_ERR(bg_box_sync(b), BG_ESTATE); /* once; then stopped */
    CHECK_OK(tu_put(c, "k3", "{}"));
    CHECK_OK(bg_store_close(s));

    CHECK_OK(rig_open_group(&r, &s, &b, "b"));
    CHECK_OK(bg_box_open(s, "c", BG_BOX_CREATE, &c));
    r.f.fail_syncs = 1;
    put_n(b, 40, 3);
    put_n(c, 10, 3);
    CHECK_ERR(bg_store_close(s), BG_EIO); /* b's, at its close */

    /* What reopens is clean, and takes writes. */
    CHECK_OK(rig_open(&r, 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK_OK(tu_put(b, "after", "{}"));
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
    RUN(test_group_sync_runs_beside_the_next_group);
    RUN(test_group_sync_failure_on_the_thread);
    return CHECK_DONE();
}
