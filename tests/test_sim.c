/*
 * The simulated disk: what survives a power loss in each crash mode,
 * directory durability, failure injection, freezing, locks, determinism;
 * and the posix vfs on a real temporary directory.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>

#include "boxguard/sim.h"
#include "check.h"
#include "tempdir.h"

static bg_err wr(const bg_vfs *v, bg_file *f, uint64_t off, const char *s)
{
    return v->write(v, f, off, s, strlen(s));
}

/* The content of path as a string ("" when missing). */
static const char *content(bg_sim *sim, const char *path)
{
    static char buf[8192];
    uint8_t *p;
    size_t n;
    if (bg_sim_read_file(sim, path, &p, &n))
        return "<missing>";
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    free(p);
    return buf;
}

static void test_sync_makes_durable(void)
{
    bg_sim *sim = bg_sim_new(1);
    const bg_vfs *v = bg_sim_vfs(sim);
    bg_file *f;
    CHECK_OK(v->mkdir(v, "d"));
    CHECK_OK(v->sync_dir(v, ""));
    CHECK_OK(v->open(v, "d/a", BG_OPEN_CREATE, &f));
    CHECK_OK(v->sync_dir(v, "d"));
    CHECK_OK(wr(v, f, 0, "hello"));
    CHECK_OK(v->sync(v, f));
    CHECK_OK(wr(v, f, 5, " world"));
    CHECK_STR(content(sim, "d/a"), "hello world");
    v->close(v, f);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_STR(content(sim, "d/a"), "hello");
    bg_sim_free(sim);
}

static void test_directory_entries_need_dir_sync(void)
{
    bg_sim *sim = bg_sim_new(2);
    const bg_vfs *v = bg_sim_vfs(sim);
    bg_file *f;
    CHECK_OK(v->open(v, "a", BG_OPEN_CREATE, &f));
    CHECK_OK(wr(v, f, 0, "x"));
    CHECK_OK(v->sync(v, f)); /* content durable, entry not */
    v->close(v, f);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_STR(content(sim, "a"), "<missing>");

    CHECK_OK(v->open(v, "a", BG_OPEN_CREATE, &f));
    CHECK_OK(wr(v, f, 0, "old"));
    CHECK_OK(v->sync(v, f));
    v->close(v, f);
    CHECK_OK(v->sync_dir(v, ""));
    CHECK_OK(v->open(v, "a.tmp", BG_OPEN_CREATE, &f));
    CHECK_OK(wr(v, f, 0, "new"));
    CHECK_OK(v->sync(v, f));
    v->close(v, f);
    CHECK_OK(v->rename(v, "a.tmp", "a"));
    CHECK_STR(content(sim, "a"), "new");
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_STR(content(sim, "a"), "old"); /* the rename was not synced */
    CHECK_ERR(v->rename(v, "a.tmp", "a"), BG_ENOTFOUND); /* creation lost */
    bg_sim_free(sim);
}

static void test_crash_modes(void)
{
    /* Four unsynced 1 KiB writes: DROP keeps none, PREFIX an in-order
     * prefix, SUBSET any subset, TORN sector pieces. */
    int saw_prefix_partial = 0, saw_subset_gap = 0, saw_torn_garbage = 0;
    /* Every mode can keep none; PREFIX and SUBSET can keep all of them (a
     * crash after the last write reached the disk). */
    int saw_none[BG_CRASH_MODES] = {0}, saw_all[BG_CRASH_MODES] = {0};
    for (uint64_t seed = 0; seed < 64; seed++) {
        for (int mode = 0; mode < BG_CRASH_MODES; mode++) {
            bg_sim *sim = bg_sim_new(seed);
            const bg_vfs *v = bg_sim_vfs(sim);
            bg_file *f;
            CHECK_OK(v->open(v, "f", BG_OPEN_CREATE, &f));
            CHECK_OK(v->sync_dir(v, ""));
            char block[1024];
            for (int i = 0; i < 4; i++) {
                memset(block, 'A' + i, sizeof block);
                CHECK_OK(v->write(v, f, (uint64_t)i * 1024, block, 1024));
            }
            v->close(v, f);
            CHECK_OK(bg_sim_crash(sim, (bg_crash_mode)mode, seed));
            uint8_t *p;
            size_t n;
            CHECK_OK(bg_sim_read_file(sim, "f", &p, &n));
            int present[4] = {0}, garbage = 0;
            for (int i = 0; i < 4; i++) {
                for (size_t s = 0; s < 2; s++) {
                    size_t at = (size_t)i * 1024 + s * 512;
                    if (at >= n)
                        continue;
                    int same = 1, zero = 1;
                    for (size_t k = 0; k < 512 && at + k < n; k++) {
                        same &= p[at + k] == 'A' + i;
                        zero &= p[at + k] == 0;
                    }
                    if (same)
                        present[i] = 1;
                    else if (!zero)
                        garbage = 1;
                }
            }
            int all = present[0] && present[1] && present[2] && present[3];
            saw_all[mode] |= all && !garbage && n == 4096;
            saw_none[mode] |=
                !present[0] && !present[1] && !present[2] && !present[3];
            if (mode == BG_CRASH_DROP)
                CHECK_INT(n, ==, 0);
            if (mode == BG_CRASH_PREFIX) {
                for (int i = 1; i < 4; i++)
                    CHECK(!present[i] || present[i - 1]);
                CHECK(!garbage);
                saw_prefix_partial |= present[0] && !present[3];
            }
            if (mode == BG_CRASH_SUBSET) {
                CHECK(!garbage);
                saw_subset_gap |= !present[0] && present[3];
            }
            if (mode == BG_CRASH_TORN)
                saw_torn_garbage |= garbage;
            free(p);
            bg_sim_free(sim);
        }
    }
    CHECK(saw_prefix_partial);
    CHECK(saw_subset_gap);
    CHECK(saw_torn_garbage);
    for (int mode = 0; mode < BG_CRASH_MODES; mode++) {
        CHECK(saw_none[mode]);
        if (mode == BG_CRASH_PREFIX || mode == BG_CRASH_SUBSET ||
            mode == BG_CRASH_DROP)
            CHECK_INT(saw_all[mode], ==, mode != BG_CRASH_DROP);
    }
}

static void test_deterministic_from_seed(void)
{
    char first[4096] = "";
    for (int round = 0; round < 2; round++) {
        bg_sim *sim = bg_sim_new(77);
        const bg_vfs *v = bg_sim_vfs(sim);
        bg_file *f;
        uint8_t rnd[16];
        v->random(v, rnd, sizeof rnd);
        CHECK_OK(v->open(v, "f", BG_OPEN_CREATE, &f));
        CHECK_OK(v->sync_dir(v, ""));
        for (int i = 0; i < 6; i++) {
            char b[700];
            memset(b, 'a' + i, sizeof b);
            CHECK_OK(v->write(v, f, (uint64_t)i * 700, b, sizeof b));
        }
        v->close(v, f);
        CHECK_OK(bg_sim_crash(sim, BG_CRASH_TORN, 5));
        char now[4096];
        snprintf(now, sizeof now, "%02x%02x|%s", rnd[0], rnd[1],
                 content(sim, "f"));
        if (round == 0)
            strcpy(first, now);
        else
            CHECK(!strcmp(first, now));
        bg_sim_free(sim);
    }
}

static void test_fail_at_and_freeze(void)
{
    bg_sim *sim = bg_sim_new(3);
    const bg_vfs *v = bg_sim_vfs(sim);
    bg_file *f;
    CHECK_OK(v->open(v, "f", BG_OPEN_CREATE, &f));
    bg_sim_stats st = bg_sim_get_stats(sim);
    CHECK_INT(st.ops, ==, 1);
    CHECK_INT(st.changes, ==, 1);
    bg_sim_fail_at(sim, 2, BG_ENOSPACE);
    CHECK_ERR(wr(v, f, 0, "x"), BG_ENOSPACE);
    CHECK_STR(content(sim, "f"), ""); /* a failed write has no effect */
    CHECK_OK(wr(v, f, 0, "y"));
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + 1);
    CHECK_OK(wr(v, f, 1, "z"));
    CHECK(bg_sim_frozen(sim));
    CHECK_ERR(v->sync(v, f), BG_EIO);
    CHECK_ERR(v->unlink(v, "f"), BG_EIO);
    v->close(v, f);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_PREFIX, 1));
    CHECK(!bg_sim_frozen(sim));
    CHECK_OK(v->open(v, "x", BG_OPEN_CREATE, &f)); /* usable again */
    v->close(v, f);
    bg_sim_free(sim);
}

static void test_locks_and_errors(void)
{
    bg_sim *sim = bg_sim_new(4);
    const bg_vfs *v = bg_sim_vfs(sim);
    bg_file *a, *b, *c;
    CHECK_OK(v->open(v, "l", BG_OPEN_CREATE, &a));
    CHECK_OK(v->open(v, "l", BG_OPEN_WRITE, &b));
    CHECK_OK(v->lock(v, a, 1));
    CHECK_ERR(v->lock(v, b, 1), BG_ELOCKED);
    CHECK_ERR(v->lock(v, b, 0), BG_ELOCKED);
    v->close(v, a);
    CHECK_OK(v->lock(v, b, 0));
    CHECK_OK(v->open(v, "l", BG_OPEN_READ, &c));
    CHECK_OK(v->lock(v, c, 0));
    v->close(v, b);
    v->close(v, c);
    CHECK_ERR(v->open(v, "nope/x", BG_OPEN_CREATE, &a), BG_ENOTFOUND);
    CHECK_ERR(v->open(v, "missing", BG_OPEN_READ, &a), BG_ENOTFOUND);
    CHECK_ERR(v->open(v, "l", BG_OPEN_CREATE | BG_OPEN_EXCL, &a), BG_EEXISTS);
    CHECK_ERR(v->mkdir(v, "l"), BG_EEXISTS);
    CHECK_ERR(v->unlink(v, "missing"), BG_ENOTFOUND);
    CHECK_ERR(v->rename(v, "missing", "x"), BG_ENOTFOUND);
    CHECK_OK(v->open(v, "l", BG_OPEN_READ, &a));
    CHECK_ERR(wr(v, a, 0, "no"), BG_EINVALID); /* read-only handle */
    v->close(v, a);
    bg_sim_free(sim);
}

/* ---- the disk's own allocations, failed in turn ---------------------- */

/* A workload of every operation that allocates; step i runs operation i. */
enum { SIM_STEPS = 15 };

static bg_err sim_step(const bg_vfs *v, int i, bg_file **a, bg_file **b)
{
    switch (i) {
    case 0:
        return v->mkdir(v, "d");
    case 1:
        return v->open(v, "a", BG_OPEN_CREATE, a);
    case 2:
        return wr(v, *a, 0, "hello");
    case 3:
        return v->sync(v, *a);
    case 4:
        return v->sync_dir(v, "");
    case 5:
        return wr(v, *a, 5, " world, and a longer line than before");
    case 6:
        return v->truncate(v, *a, 3);
    case 7:
        return v->open(v, "d/b", BG_OPEN_CREATE, b);
    case 8:
        return wr(v, *b, 0, "bee");
    case 9:
        return v->rename(v, "d/b", "d/c");
    case 10:
        return v->sync_dir(v, "d");
    case 11:
        return v->unlink(v, "a");
    case 12:
        return v->mkdir(v, "e");
    case 13:
        return v->sync_dir(v, "");
    default:
        return v->truncate(v, *b, 100000);
    }
}

typedef struct names {
    char v[16][64];
    int n;
} names;

static int add_name(void *arg, const char *name)
{
    names *ns = arg;
    if (ns->n < 16)
        snprintf(ns->v[ns->n++], sizeof ns->v[0], "%s", name);
    return 0;
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* Every file of the disk's root and of d, e, sorted, with its content. */
static const char *fingerprint(bg_sim *sim)
{
    static char out[4096];
    const bg_vfs *v = bg_sim_vfs(sim);
    size_t n = 0;
    out[0] = '\0';
    const char *dirs[] = {"", "d", "e"};
    for (int d = 0; d < 3; d++) {
        names ns = {.n = 0};
        if (v->list(v, dirs[d], add_name, &ns))
            continue;
        qsort(ns.v, (size_t)ns.n, sizeof ns.v[0], name_cmp);
        for (int i = 0; i < ns.n; i++) {
            char path[160];
            snprintf(path, sizeof path, "%s%s%s", dirs[d], d ? "/" : "",
                     ns.v[i]);
            n += (size_t)snprintf(out + n, sizeof out - n, "%s=%.40s;", path,
                                  content(sim, path));
        }
    }
    return out;
}

/* Every allocation the simulated disk makes for itself fails in turn: the
 * operation that needed it says BG_ENOMEM and leaves the disk exactly as
 * it was, both what reads see and what a power loss keeps. */
static void test_allocation_failure_leaves_the_disk_as_it_was(void)
{
    static char seen[SIM_STEPS + 1][4096], kept[SIM_STEPS + 1][4096];
    for (int k = 0; k <= SIM_STEPS; k++) {
        /* The state after the first k steps, and after a power loss then. */
        bg_sim *sim = bg_sim_new(9);
        const bg_vfs *v = bg_sim_vfs(sim);
        bg_file *a = NULL, *b = NULL;
        for (int i = 0; i < k; i++)
            CHECK_OK(sim_step(v, i, &a, &b));
        snprintf(seen[k], sizeof seen[k], "%s", fingerprint(sim));
        /* What a power loss keeps once every directory is synced. */
        CHECK_OK(v->sync_dir(v, ""));
        (void)v->sync_dir(v, "d");
        CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
        snprintf(kept[k], sizeof kept[k], "%s", fingerprint(sim));
        v->close(v, a);
        v->close(v, b);
        bg_sim_free(sim);
    }
    CHECK(strcmp(seen[SIM_STEPS], kept[SIM_STEPS]) != 0);
    bg_sim *sim = bg_sim_new(9);
    const bg_vfs *v = bg_sim_vfs(sim);
    bg_file *a = NULL, *b = NULL;
    for (int i = 0; i < SIM_STEPS; i++)
        CHECK_OK(sim_step(v, i, &a, &b));
    uint64_t total = bg_sim_get_stats(sim).allocs;
    v->close(v, a);
    v->close(v, b);
    bg_sim_free(sim);
    CHECK(total > 20);
    for (uint64_t n = 1; n <= total; n++) {
        sim = bg_sim_new(9);
        v = bg_sim_vfs(sim);
        a = b = NULL;
        bg_sim_fail_alloc_at(sim, n);
        int i = 0;
        bg_err err = 0;
        for (; i < SIM_STEPS && !err; i++)
            err = sim_step(v, i, &a, &b);
        bg_sim_fail_alloc_at(sim, 0);
        if (err) {
            i--; /* the step that failed */
            if (err != BG_ENOMEM || strcmp(fingerprint(sim), seen[i]))
                fprintf(stderr, "allocation %" PRIu64 ", step %d: %s\n%s\n%s\n",
                        n, i, bg_err_name(err), fingerprint(sim), seen[i]);
            CHECK_ERR(err, BG_ENOMEM);
            CHECK_STR(fingerprint(sim), seen[i]);
            CHECK_OK(v->sync_dir(v, ""));
            (void)v->sync_dir(v, "d");
            CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
            CHECK_STR(fingerprint(sim), kept[i]);
        }
        CHECK(err || n > total);
        v->close(v, a);
        v->close(v, b);
        bg_sim_free(sim);
    }
    printf("  sim: %" PRIu64 " allocations failed in turn\n", total);
}

/* A directory renamed carries its entries; removed when empty. Both are
 * directory operations of its parent: durable after its sync, and a crash
 * before it keeps the old names whole (never a half-moved directory). */
static void test_directory_rename_and_rmdir(void)
{
    for (int synced = 0; synced < 2; synced++) {
        bg_sim *sim = bg_sim_new(6);
        const bg_vfs *v = bg_sim_vfs(sim);
        bg_file *f;
        CHECK_OK(bg_sim_mkdir(sim, "a"));
        CHECK_OK(v->open(v, "a/x", BG_OPEN_CREATE, &f));
        CHECK_OK(wr(v, f, 0, "xyz"));
        CHECK_OK(v->sync(v, f));
        v->close(v, f);
        /* Its entries must be durable before it moves or goes. */
        CHECK_ERR(v->rename(v, "a", "b"), BG_EINVALID);
        CHECK_OK(v->sync_dir(v, "a"));
        CHECK_OK(bg_sim_mkdir(sim, "c"));
        CHECK_ERR(v->rename(v, "a", "c"), BG_EINVALID); /* onto a dir */
        CHECK_OK(v->rename(v, "a", "b"));
        CHECK_ERR(v->stat(v, "a/x", NULL), BG_ENOTFOUND);
        CHECK_OK(v->stat(v, "b/x", NULL));
        if (synced)
            CHECK_OK(v->sync_dir(v, ""));
        CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
        const char *have = synced ? "b/x" : "a/x",
                   *gone = synced ? "a/x" : "b/x";
        uint8_t *buf;
        size_t len;
        CHECK_OK(bg_sim_read_file(sim, have, &buf, &len));
        CHECK(len == 3 && !memcmp(buf, "xyz", 3));
        free(buf);
        CHECK_ERR(v->stat(v, gone, NULL), BG_ENOTFOUND);
        /* rmdir: refused while entries remain, then durable with its
         * parent's sync. */
        const char *d = synced ? "b" : "a";
        CHECK_ERR(v->rmdir(v, d), BG_EEXISTS);
        CHECK_OK(v->unlink(v, have));
        CHECK_ERR(v->rmdir(v, d), BG_EINVALID); /* the unlink unsynced */
        CHECK_OK(v->sync_dir(v, d));
        CHECK_OK(v->rmdir(v, d));
        CHECK_ERR(v->rmdir(v, d), BG_ENOTFOUND);
        CHECK_ERR(v->rmdir(v, "c/none"), BG_ENOTFOUND);
        CHECK_OK(v->sync_dir(v, ""));
        CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 2));
        CHECK_ERR(v->stat(v, d, NULL), BG_ENOTFOUND);
        bg_sim_free(sim);
    }
}

/* Every refusal of the simulated disk, each with its code, and each
 * leaving the disk as it was. */
static void test_every_refusal(void)
{
    bg_sim *sim = bg_sim_new(5);
    const bg_vfs *v = bg_sim_vfs(sim);
    bg_file *f, *ro, *old;
    CHECK_OK(v->mkdir(v, "d"));
    CHECK_OK(v->open(v, "d/f", BG_OPEN_CREATE, &f));
    CHECK_OK(wr(v, f, 0, "abc"));
    CHECK_OK(v->sync(v, f));
    CHECK_OK(v->sync_dir(v, "d"));
    CHECK_OK(v->open(v, "d/f", BG_OPEN_READ, &ro));
    CHECK_OK(v->mkdir(v, "d/sub"));
    CHECK_OK(bg_sim_mkdir(sim, "e"));
    CHECK_OK(v->sync_dir(v, "d"));
    CHECK_OK(v->sync_dir(v, ""));
    const char *was = fingerprint(sim);
    char before[4096];
    snprintf(before, sizeof before, "%s", was);
    /* by path */
    CHECK_ERR(v->open(v, "d", BG_OPEN_READ, &old), BG_EINVALID);
    CHECK_ERR(v->open(v, "", BG_OPEN_READ, &old), BG_ENOTFOUND);
    CHECK_ERR(v->rename(v, "d/f", "g"), BG_EINVALID);     /* across dirs */
    CHECK_ERR(v->rename(v, "d/f", "d/sub"), BG_EINVALID); /* onto a dir */
    CHECK_ERR(v->unlink(v, "d/sub"), BG_EINVALID);
    CHECK_ERR(v->mkdir(v, ""), BG_EEXISTS);
    CHECK_ERR(v->mkdir(v, "d/sub"), BG_EEXISTS);
    CHECK_ERR(v->mkdir(v, "x/y"), BG_ENOTFOUND);
    CHECK_ERR(v->list(v, "d/f", add_name, &(names){.n = 0}), BG_ENOTFOUND);
    CHECK_ERR(v->sync_dir(v, "d/f"), BG_ENOTFOUND);
    CHECK_ERR(v->sync_dir(v, "nowhere"), BG_ENOTFOUND);
    int is_dir = 0;
    CHECK_OK(v->stat(v, "", &is_dir));
    CHECK_INT(is_dir, ==, 1);
    CHECK_OK(v->stat(v, "d/f", &is_dir));
    CHECK_INT(is_dir, ==, 0);
    CHECK_ERR(v->stat(v, "d/none", &is_dir), BG_ENOTFOUND);
    CHECK_ERR(bg_sim_write_file(sim, "x/y", (const uint8_t *)"1", 1),
              BG_ENOTFOUND);
    CHECK_ERR(bg_sim_write_file(sim, "d", (const uint8_t *)"1", 1),
              BG_EINVALID);
    CHECK_ERR(bg_sim_mkdir(sim, ""), BG_EEXISTS);
    CHECK_ERR(bg_sim_mkdir(sim, "d"), BG_EEXISTS);
    CHECK_ERR(bg_sim_mkdir(sim, "x/y"), BG_ENOTFOUND);
    uint8_t *p;
    size_t n;
    CHECK_ERR(bg_sim_read_file(sim, "d", &p, &n), BG_ENOTFOUND);
    /* by handle: read-only, then from before a power loss */
    CHECK_ERR(v->truncate(v, ro, 0), BG_EINVALID);
    CHECK_ERR(wr(v, ro, 0, "x"), BG_EINVALID);
    CHECK_STR(fingerprint(sim), before);
    old = f;
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    char buf[4];
    size_t got;
    uint64_t size;
    CHECK_ERR(v->read(v, old, 0, buf, 3, &got), BG_EIO);
    CHECK_ERR(wr(v, old, 0, "x"), BG_EIO);
    CHECK_ERR(v->sync(v, old), BG_EIO);
    CHECK_ERR(v->truncate(v, old, 0), BG_EIO);
    CHECK_ERR(v->size(v, old, &size), BG_EIO);
    CHECK_ERR(v->lock(v, old, 1), BG_EIO);
    v->close(v, old);
    v->close(v, ro);
    CHECK_STR(fingerprint(sim), before);
    /* A power loss that runs out of memory says so. */
    CHECK_OK(v->open(v, "d/f", BG_OPEN_WRITE, &f));
    CHECK_OK(wr(v, f, 3, "defgh"));
    CHECK_OK(v->open(v, "d/g", BG_OPEN_CREATE, &ro));
    v->close(v, ro);
    v->close(v, f);
    bg_sim_fail_alloc_at(sim, bg_sim_get_stats(sim).allocs + 1);
    CHECK_ERR(bg_sim_crash(sim, BG_CRASH_TORN, 2), BG_ENOMEM);
    bg_sim_free(sim);
}

static void test_posix_vfs(void)
{
    char dir[256];
    CHECK(tu_tempdir(dir, sizeof dir, "test_vfs") == 0);
    const bg_vfs *v = bg_vfs_posix();
    char path[300];
    snprintf(path, sizeof path, "%s/f", dir);
    bg_file *a, *b;
    CHECK_OK(v->open(v, path, BG_OPEN_CREATE, &a));
    CHECK_OK(wr(v, a, 3, "abc"));
    CHECK_OK(v->sync(v, a));
    uint64_t size;
    CHECK_OK(v->size(v, a, &size));
    CHECK_INT(size, ==, 6);
    char buf[16];
    size_t got;
    CHECK_OK(v->read(v, a, 3, buf, 10, &got));
    CHECK_INT(got, ==, 3);
    CHECK(!memcmp(buf, "abc", 3));
    CHECK_OK(v->lock(v, a, 1));
    CHECK_OK(v->open(v, path, BG_OPEN_READ, &b));
    CHECK_ERR(v->lock(v, b, 0), BG_ELOCKED);
    v->close(v, b);
    CHECK_OK(v->truncate(v, a, 1));
    CHECK_OK(v->size(v, a, &size));
    CHECK_INT(size, ==, 1);
    v->close(v, a);
    CHECK_OK(v->sync_dir(v, dir));
    CHECK_ERR(v->mkdir(v, dir), BG_EEXISTS);
    int is_dir = -1;
    CHECK_OK(v->stat(v, dir, &is_dir));
    CHECK_INT(is_dir, ==, 1);
    CHECK_OK(v->unlink(v, path));
    CHECK_ERR(v->stat(v, path, NULL), BG_ENOTFOUND);
    CHECK_ERR(v->open(v, path, BG_OPEN_READ, &a), BG_ENOTFOUND);
    CHECK(rmdir(dir) == 0);
}

int main(void)
{
    RUN(test_sync_makes_durable);
    RUN(test_directory_entries_need_dir_sync);
    RUN(test_crash_modes);
    RUN(test_deterministic_from_seed);
    RUN(test_fail_at_and_freeze);
    RUN(test_locks_and_errors);
    RUN(test_allocation_failure_leaves_the_disk_as_it_was);
    RUN(test_directory_rename_and_rmdir);
    RUN(test_every_refusal);
    RUN(test_posix_vfs);
    return CHECK_DONE();
}
