/*
 * Encryption at rest: sealed round trips, a wrong key that changes nothing,
 * edited, swapped and replayed frames caught as damage, compaction that
 * re-seals, key rotation, and key file permissions.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <unistd.h>

#include "tempdir.h"
#include "testutil.h"

#include "boxfile.h"
#include "migrate_fixture.h"
#include <xxhash.h>

static bg_err open_sealed(bg_sim *sim, bg_store **s, bg_box **b,
                          const char *name)
{
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, s);
    if (err)
        return err;
    err = bg_box_open(*s, name, BG_BOX_CREATE | BG_BOX_ENCRYPT, b);
    if (err)
        (void)bg_store_close(*s);
    return err;
}

static int contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(p + i, needle, k))
            return 1;
    return 0;
}

/* Snapshot every file of the store: path and bytes. */
typedef struct snap {
    char path[8][64];
    uint8_t *data[8];
    size_t len[8];
    int n;
} snap;

static void take(bg_sim *sim, snap *sn)
{
    static const char *paths[] = {"s/a.box",      "s/b.box",
                                  "s/meta.box",   "s/keys/1.key",
                                  "s/keys/2.key", "s/store.lock"};
    sn->n = 0;
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        if (bg_sim_read_file(sim, paths[i], &sn->data[sn->n], &sn->len[sn->n]))
            continue;
        strcpy(sn->path[sn->n], paths[i]);
        sn->n++;
    }
}

static int same(bg_sim *sim, snap *a)
{
    snap b;
    take(sim, &b);
    int ok = a->n == b.n;
    for (int i = 0; i < b.n; i++) {
        ok = ok && !strcmp(a->path[i], b.path[i]) && a->len[i] == b.len[i] &&
             !memcmp(a->data[i], b.data[i], b.len[i]);
        free(b.data[i]);
    }
    return ok;
}

static void drop(snap *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->data[i]);
}

static void test_sealed_round_trip(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_store *s;
    bg_box *b;
    CHECK_OK(open_sealed(sim, &s, &b, "a"));
    CHECK_OK(tu_put(b, "alice", "{\"secret\":\"hunter2\"}"));
    CHECK_OK(tu_put(b, "bob", "[\"plaintext-never-on-disk\"]"));
    CHECK_OK(bg_box_del(b, "bob", 3));
    CHECK(tu_has(b, "alice", "{\"secret\":\"hunter2\"}"));
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/a.box", &f, &n));
    CHECK(!contains(f, n, "hunter2"));
    CHECK(!contains(f, n, "plaintext-never"));
    CHECK(contains(f, n, "alice")); /* keys stay in clear */
    free(f);
    CHECK_OK(bg_sim_read_file(sim, "s/keys/1.key", &f, &n));
    CHECK_INT(n, ==, 32);
    free(f);

    CHECK_OK(open_sealed(sim, &s, &b, "a"));
    CHECK(tu_has(b, "alice", "{\"secret\":\"hunter2\"}"));
    CHECK(!tu_has(b, "bob", "[\"plaintext-never-on-disk\"]"));
    CHECK_OK(bg_box_compact(b));
    CHECK(tu_has(b, "alice", "{\"secret\":\"hunter2\"}"));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK(tu_has(b, "alice", "{\"secret\":\"hunter2\"}"));
    /* A plain box of the same store opened with ENCRYPT is refused. */
    bg_box *p;
    CHECK_OK(bg_box_open(s, "plain", BG_BOX_CREATE, &p));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_ERR(bg_box_open(s, "plain", BG_BOX_CREATE | BG_BOX_ENCRYPT, &p),
              BG_EINVALID);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_wrong_key_changes_nothing(void)
{
    bg_sim *sim = bg_sim_new(2);
    bg_store *s;
    bg_box *b;
    CHECK_OK(open_sealed(sim, &s, &b, "a"));
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        CHECK_OK(tu_put(b, k, "{\"v\":1}"));
    }
    CHECK_OK(bg_store_close(s));
    /* Another key in the key's place: a keystore handing back the wrong
     * key. */
    uint8_t other[32];
    memset(other, 0x5a, sizeof other);
    CHECK_OK(bg_sim_write_file(sim, "s/keys/1.key", other, 32));
    /* Chop the tail too, as a crash would: even then nothing is cut. */
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/a.box", &f, &n));
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", f, n - 9));
    free(f);
    snap before;
    take(sim, &before);
    bg_box_report rep;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_ERR(bg_box_open(s, "a", 0, &b), BG_EAUTH);
    CHECK_CONTAINS(bg_store_detail(s), "which the store does not have");
    CHECK_ERR(bg_box_verify(s, "a", &rep), BG_EAUTH);
    CHECK_ERR(bg_box_recover(s, "a", &rep), BG_EAUTH);
    CHECK_ERR(bg_box_open(s, "a", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b),
              BG_EAUTH);
    CHECK_OK(bg_store_close(s));
    CHECK(same(sim, &before));

    /* The header claims the new key: no frame authenticates, still
     * nothing changes. */
    CHECK_OK(bg_sim_read_file(sim, "s/a.box", &f, &n));
    uint32_t id = 0;
    {
        bg_sim *tmp = bg_sim_new(9);
        bg_store *ts;
        bg_box *tb;
        CHECK_OK(bg_sim_mkdir(tmp, "s"));
        CHECK_OK(bg_sim_mkdir(tmp, "s/keys"));
        CHECK_OK(bg_sim_write_file(tmp, "s/keys/1.key", other, 32));
        CHECK_OK(open_sealed(tmp, &ts, &tb, "x"));
        CHECK_OK(bg_store_close(ts));
        uint8_t *h;
        size_t hn;
        CHECK_OK(bg_sim_read_file(tmp, "s/x.box", &h, &hn));
        id = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 |
             (uint32_t)h[15] << 24;
        free(h);
        bg_sim_free(tmp);
    }
    f[12] = (uint8_t)id, f[13] = (uint8_t)(id >> 8);
    f[14] = (uint8_t)(id >> 16), f[15] = (uint8_t)(id >> 24);
    uint64_t sum = XXH3_64bits(f, 40);
    for (int i = 0; i < 8; i++)
        f[40 + i] = (uint8_t)(sum >> (8 * i));
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", f, n));
    free(f);
    drop(&before);
    take(sim, &before);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_ERR(bg_box_open(s, "a", 0, &b), BG_EAUTH);
    CHECK_CONTAINS(bg_store_detail(s), "no frame authenticates");
    CHECK_ERR(bg_box_recover(s, "a", &rep), BG_EAUTH);
    CHECK_OK(bg_store_close(s));
    CHECK(same(sim, &before));
    drop(&before);
    bg_sim_free(sim);
}

/* Fix a frame's offset fields and checksum for position pos, as an
 * attacker who knows the format would. */
static void refit(uint8_t *p, uint64_t pos)
{
    uint32_t flen = tu_flen(p, 0);
    for (int i = 0; i < 8; i++) {
        p[24 + i] = (uint8_t)(pos >> (8 * i));
        p[32 + i] = (uint8_t)(pos >> (8 * i));
    }
    uint64_t sum = XXH3_64bits(p, flen - 8);
    for (int i = 0; i < 8; i++)
        p[flen - 8 + i] = (uint8_t)(sum >> (8 * i));
}

static void make_two_boxes(bg_sim *sim)
{
    bg_store *s;
    bg_box *a, *b;
    if (open_sealed(sim, &s, &a, "a"))
        return;
    if (bg_box_open(s, "b", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b))
        return;
    /* Same-sized values so frames can be swapped in place. */
    if (tu_put(a, "k1", "{\"v\":\"one\"}") ||
        tu_put(a, "k2", "{\"v\":\"two\"}") ||
        tu_put(a, "k3", "{\"v\":\"thr\"}") ||
        tu_put(b, "k1", "{\"v\":\"BBB\"}"))
        return;
    (void)bg_store_close(s);
}

/* Whether the store sees damage in box: verify and open report it, gone_key
 * shows at most an older genuine value (k2 none), and recovery leaves the
 * box clean. */
static int expect_damage(bg_sim *sim, const char *box, const char *gone_key)
{
    bg_store *s;
    bg_box *b;
    bg_box_report rep;
    int ok = 0;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return 0;
    if (bg_box_verify(s, box, &rep) || rep.status != BG_BOX_CORRUPT ||
        rep.auth_failures == 0)
        goto done;
    if (bg_box_open(s, box, 0, &b) ||
        bg_box_report_of(b)->status != BG_BOX_CORRUPT)
        goto done;
    uint32_t t;
    char *v;
    size_t n;
    bg_err e = bg_box_get(b, gone_key, strlen(gone_key), &t, &v, &n);
    if (e == 0) {
        /* Only an older, genuine value may show. */
        int genuine = !strcmp(v, "{\"v\":\"one\"}") ||
                      !strcmp(v, "{\"v\":\"two\"}") ||
                      !strcmp(v, "{\"v\":\"thr\"}");
        bg_store_free(s, v);
        if (!genuine || !strcmp(gone_key, "k2"))
            goto done;
    }
    if (bg_box_recover(s, box, &rep) || bg_box_verify(s, box, &rep) ||
        rep.status != BG_BOX_CLEAN)
        goto done;
    ok = 1;
done:
    (void)bg_store_close(s);
    return ok;
}

/* Reads a box file of the simulated disk and finds its frames; returns
 * how many (0 if the file cannot be read). */
static size_t box_frames(bg_sim *sim, const char *path, uint8_t **f, size_t *n,
                         uint64_t offs[64])
{
    if (bg_sim_read_file(sim, path, f, n))
        return 0;
    return tu_frames(*f, *n, offs, 64);
}

/* A copy of the file f with frame (l bytes) appended under sequence seq,
 * its offsets and checksum refitted. */
static uint8_t *with_frame(const uint8_t *f, size_t n, const uint8_t *frame,
                           uint32_t l, uint8_t seq)
{
    uint8_t *g = malloc(n + l);
    memcpy(g, f, n);
    memcpy(g + n, frame, l);
    g[n + 16] = seq;
    refit(g + n, n);
    return g;
}

static void test_edited_frame_is_damage(void)
{
    bg_sim *sim = bg_sim_new(3);
    make_two_boxes(sim);
    uint8_t *f;
    size_t n;
    uint64_t offs[64];
    CHECK_INT(box_frames(sim, "s/a.box", &f, &n, offs), ==, 3);
    f[offs[1] + BG__FRAME_HDR + 2 + 30] ^= 1; /* ciphertext of k2 */
    refit(f + offs[1], offs[1]);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", f, n));
    free(f);
    CHECK(expect_damage(sim, "a", "k2"));
    bg_sim_free(sim);
}

static void test_swapped_frames_are_damage(void)
{
    bg_sim *sim = bg_sim_new(4);
    make_two_boxes(sim);
    uint8_t *f;
    size_t n;
    uint64_t offs[64];
    CHECK_INT(box_frames(sim, "s/a.box", &f, &n, offs), ==, 3);
    uint32_t l = tu_flen(f, offs[0]);
    CHECK_INT(tu_flen(f, offs[1]), ==, l);
    /* Swap the sealed values of k1 and k2, keeping keys and sequence. */
    uint8_t tmp[512];
    size_t vo = BG__FRAME_HDR + 2, vl = l - BG__FRAME_OVERHEAD - 2;
    memcpy(tmp, f + offs[0] + vo, vl);
    memcpy(f + offs[0] + vo, f + offs[1] + vo, vl);
    memcpy(f + offs[1] + vo, tmp, vl);
    refit(f + offs[0], offs[0]);
    refit(f + offs[1], offs[1]);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", f, n));
    free(f);
    CHECK(expect_damage(sim, "a", "k1"));
    bg_sim_free(sim);
}

static void test_frame_replayed_into_another_box(void)
{
    bg_sim *sim = bg_sim_new(5);
    make_two_boxes(sim);
    uint8_t *fa, *fb;
    size_t na, nb;
    uint64_t oa[64], ob[64];
    CHECK_INT(box_frames(sim, "s/a.box", &fa, &na, oa), ==, 3);
    CHECK_INT(box_frames(sim, "s/b.box", &fb, &nb, ob), ==, 1);
    /* b's k1 frame, with a later sequence (9: after a's frames), appended
     * to a. */
    uint32_t l = tu_flen(fb, ob[0]);
    uint8_t *g = with_frame(fa, na, fb + ob[0], l, 9);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", g, na + l));
    /* k3 unaffected; k1 not replaced */
    CHECK(expect_damage(sim, "a", "k3"));
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK(tu_has(b, "k1", "{\"v\":\"one\"}"));
    CHECK_OK(bg_store_close(s));
    free(fa);
    free(fb);
    free(g);
    bg_sim_free(sim);
}

static void test_old_frame_fails_after_compaction(void)
{
    bg_sim *sim = bg_sim_new(6);
    make_two_boxes(sim);
    uint8_t *old;
    size_t no;
    uint64_t oo[64];
    CHECK_INT(box_frames(sim, "s/a.box", &old, &no, oo), ==, 3);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK_OK(bg_box_del(b, "k2", 2));
    CHECK_OK(bg_box_compact(b));
    CHECK_OK(bg_store_close(s));
    /* Put k2's old frame back in, at the end, sequence beyond the rest. */
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/a.box", &f, &n));
    uint32_t l = tu_flen(old, oo[1]);
    uint8_t *g = with_frame(f, n, old + oo[1], l, 99);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", g, n + l));
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CORRUPT);
    CHECK(!tu_has(b, "k2", "{\"v\":\"two\"}"));
    CHECK_OK(bg_store_close(s));
    free(old);
    free(f);
    free(g);
    bg_sim_free(sim);
}

static void test_rekey(void)
{
    bg_sim *sim = bg_sim_new(7);
    make_two_boxes(sim);
    bg_store *s;
    bg_box *p;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "plain", BG_BOX_CREATE, &p));
    CHECK_OK(tu_put(p, "x", "1"));
    uint8_t *plain_before;
    size_t pn;
    CHECK_OK(bg_sim_read_file(sim, "s/plain.box", &plain_before, &pn));
    bg_rekey_report rep;
    CHECK_OK(bg_rekey_run(s, &rep));
    CHECK_INT(rep.boxes, ==, 2);
    CHECK_INT(rep.resealed, ==, 2);
    CHECK_INT(rep.keys_removed, ==, 1);
    CHECK_OK(bg_store_close(s));
    uint8_t *k;
    size_t kn;
    CHECK_ERR(bg_sim_read_file(sim, "s/keys/1.key", &k, &kn), BG_ENOTFOUND);
    CHECK_OK(bg_sim_read_file(sim, "s/keys/2.key", &k, &kn));
    free(k);
    uint8_t *plain_after;
    CHECK_OK(bg_sim_read_file(sim, "s/plain.box", &plain_after, &pn));
    CHECK(!memcmp(plain_before, plain_after, pn)); /* untouched */
    free(plain_before);
    free(plain_after);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_box *a, *b;
    CHECK_OK(bg_box_open(s, "a", 0, &a));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK(tu_has(a, "k2", "{\"v\":\"two\"}"));
    CHECK(tu_has(b, "k1", "{\"v\":\"BBB\"}"));
    CHECK_OK(tu_put(a, "new", "true"));
    CHECK_OK(bg_rekey_run(s, &rep));
    CHECK_OK(bg_store_close(s));
    CHECK_ERR(bg_sim_read_file(sim, "s/keys/2.key", &k, &kn), BG_ENOTFOUND);
    CHECK_OK(bg_sim_read_file(sim, "s/keys/3.key", &k, &kn));
    free(k);
    bg_sim_free(sim);
}

/* Two rekeys, the second after a write, with each I/O operation failing
 * in turn (EIO, then ENOSPC), and a power loss after each run: the failure
 * is reported, and on a sound disk every sealed record still reads back
 * with its value (no key is destroyed while a frame still needs it), the
 * box files verify, and a rekey then succeeds. */
static int rekey_twice(bg_sim *sim)
{
    bg_store *s;
    bg_box *a;
    bg_rekey_report rep;
    int failed = 0;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return 1;
    failed += bg_rekey_run(s, &rep) != 0;
    if (bg_box_open(s, "a", 0, &a))
        failed++;
    else
        failed += tu_put(a, "k4", "{\"v\":\"fou\"}") != 0;
    failed += bg_rekey_run(s, &rep) != 0;
    failed += bg_store_close(s) != 0;
    return failed;
}

static const char *rekey_check(bg_sim *sim)
{
    bg_store *s;
    bg_box *a, *b;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return "store does not open";
    const char *bad = NULL;
    if (bg_box_open(s, "a", 0, &a) || bg_box_open(s, "b", 0, &b))
        bad = "a sealed box does not open";
    else if (!tu_has(a, "k1", "{\"v\":\"one\"}") ||
             !tu_has(a, "k2", "{\"v\":\"two\"}") ||
             !tu_has(a, "k3", "{\"v\":\"thr\"}") ||
             !tu_has(b, "k1", "{\"v\":\"BBB\"}"))
        bad = "a sealed record no longer reads back";
    bg_box_report rep;
    for (int i = 0; i < 2 && !bad; i++)
        if (bg_box_verify(s, i ? "b" : "a", &rep) || rep.status != BG_BOX_CLEAN)
            bad = "a sealed box does not verify";
    bg_rekey_report rk;
    if (!bad && bg_rekey_run(s, &rk))
        bad = "rekey fails on a sound disk";
    (void)bg_store_close(s);
    return bad;
}

static void test_rekey_under_faults(void)
{
    bg_sim *counter = bg_sim_new(7);
    make_two_boxes(counter);
    uint64_t base = bg_sim_get_stats(counter).ops;
    CHECK_INT(rekey_twice(counter), ==, 0);
    uint64_t total = bg_sim_get_stats(counter).ops - base;
    bg_sim_free(counter);
    CHECK_INT(total, >, 30);
    int said = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int e = 0; e < 2; e++) {
            bg_sim *sim = bg_sim_new(7);
            make_two_boxes(sim);
            bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + n,
                           e ? BG_ENOSPACE : BG_EIO);
            said += rekey_twice(sim) > 0;
            bg_sim_fail_at(sim, 0, 0);
            CHECK_OK(bg_sim_crash(sim, BG_CRASH_TORN, n));
            const char *bad = rekey_check(sim);
            if (bad)
                fprintf(stderr, "rekey, op %llu failing (%s): %s\n",
                        (unsigned long long)n, e ? "ENOSPC" : "EIO", bad);
            CHECK(!bad);
            bg_sim_free(sim);
        }
    }
    printf("  rekey: %llu operations failed in turn, %d runs reported it\n",
           (unsigned long long)total, said);
    CHECK_INT(said, ==, 2 * (int)total); /* no failure swallowed */
}

/* Files in keys/ the store did not make (names that are not a
 * generation, a leftover temporary file, a file of the wrong length) are
 * passed over and left byte for byte as they were; sealing, opening and
 * rekeying go on. */
static void test_foreign_files_in_the_keys_directory(void)
{
    bg_sim *sim = bg_sim_new(21);
    make_two_boxes(sim);
    static const char *names[] = {"s/keys/0.key",           "s/keys/abc",
                                  "s/keys/99999999999.key", "s/keys/3.key.tmp",
                                  "s/keys/4.txt",           "s/keys/5.key"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK_OK(
            bg_sim_write_file(sim, names[i], (const uint8_t *)"not a key", 9));
    bg_store *s;
    bg_box *a, *b;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "a", 0, &a));
    CHECK(tu_has(a, "k1", "{\"v\":\"one\"}"));
    bg_rekey_report rep;
    CHECK_OK(bg_rekey_run(s, &rep));
    CHECK_OK(bg_box_open(s, "a", 0, &a));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK(tu_has(a, "k2", "{\"v\":\"two\"}"));
    CHECK(tu_has(b, "k1", "{\"v\":\"BBB\"}"));
    CHECK_OK(bg_store_close(s));
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        uint8_t *p;
        size_t n;
        if (!strcmp(names[i], "s/keys/3.key.tmp"))
            continue; /* a leftover temporary file is the store's own */
        CHECK_OK(bg_sim_read_file(sim, names[i], &p, &n));
        CHECK(n == 9 && !memcmp(p, "not a key", 9));
        free(p);
    }
    bg_sim_free(sim);
}

/* Every allocation of a workload on sealed boxes (opening with its keys,
 * sealing, reading, a rekey that reseals) fails in turn: each call
 * succeeds or says BG_ENOMEM, nothing leaks, and every acknowledged record
 * reads back after. */
static void test_allocation_failure_with_keys(void)
{
    long runs = 0;
    for (long fail = 1;; fail++) {
        bg_sim *sim = bg_sim_new(22);
        make_two_boxes(sim);
        tu_alloc al = {.fail_at = fail};
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &al};
        bg_store *s;
        bg_box *a;
        bg_rekey_report rep;
        int put = 0;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err) {
            err = bg_box_open(s, "a", 0, &a);
            if (!err && !(err = tu_put(a, "k9", "{\"v\":\"new\"}")))
                put = 1;
            if (!err)
                err = bg_rekey_run(s, &rep);
            bg_err cerr = bg_store_close(s);
            if (!err)
                err = cerr;
        }
        if (al.live || (err && err != BG_ENOMEM))
            fprintf(stderr, "keys, allocation %ld: %s, %ld left\n", fail,
                    bg_err_name(err), al.live);
        CHECK_INT(al.live, ==, 0);
        CHECK(!err || err == BG_ENOMEM);
        const char *bad = rekey_check(sim);
        if (!bad && put) {
            CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
            CHECK_OK(bg_box_open(s, "a", 0, &a));
            if (!tu_has(a, "k9", "{\"v\":\"new\"}"))
                bad = "an acknowledged put is gone";
            (void)bg_store_close(s);
        }
        if (bad)
            fprintf(stderr, "keys, allocation %ld: %s\n", fail, bad);
        CHECK(!bad);
        bg_sim_free(sim);
        runs++;
        if (!err && al.n < fail)
            break;
    }
    printf("  keys: %ld allocations failed in turn\n", runs - 1);
    CHECK_INT(runs, >, 20);
}

static void test_key_file_is_private(void)
{
    char dir[256];
    CHECK(tu_tempdir(dir, sizeof dir, "test_keys") == 0);
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.create = 1;
    bg_store *s;
    bg_box *b;
    CHECK_OK(bg_store_open(dir, &o, &s));
    CHECK_OK(bg_box_open(s, "a", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    char path[300];
    snprintf(path, sizeof path, "%s/keys/1.key", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 0777, ==, 0600);
    CHECK_INT(st.st_size, ==, 32);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* A sealed box's frame edited in one header field that the additional data
 * binds (kind at byte 8, typeId at 12), checksum refitted: damage. */
static void edit_field_is_damage(uint64_t seed, int del_frame, size_t at,
                                 uint8_t value)
{
    bg_sim *sim = bg_sim_new(seed);
    make_two_boxes(sim);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    if (del_frame)
        CHECK_OK(bg_box_del(b, "k2", 2));
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t n;
    uint64_t offs[64];
    size_t nf = box_frames(sim, "s/a.box", &f, &n, offs);
    CHECK_INT(nf, ==, del_frame ? 4 : 3);
    uint64_t at_frame = del_frame ? offs[3] : offs[0];
    CHECK(f[at_frame + at] != value);
    f[at_frame + at] = value;
    refit(f + at_frame, at_frame);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", f, n));
    free(f);
    CHECK(expect_damage(sim, "a", "k3"));
    bg_sim_free(sim);
}

static void test_edited_kind_is_damage(void)
{
    /* A delete turned into a put of an empty value. */
    edit_field_is_damage(21, 1, 8, BG__KIND_PUT);
}

static void test_edited_typeid_is_damage(void)
{
    edit_field_is_damage(22, 0, 12, 7);
}

/* An older frame of the same key appended again under a later sequence
 * (rolling a record back to an earlier value): damage, and the key keeps
 * its newest value. */
static void test_old_frame_replayed_in_same_box(void)
{
    bg_sim *sim = bg_sim_new(23);
    make_two_boxes(sim);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK_OK(tu_put(b, "k1", "{\"v\":\"new\"}"));
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t n;
    uint64_t offs[64];
    CHECK_INT(box_frames(sim, "s/a.box", &f, &n, offs), ==, 4);
    uint32_t l = tu_flen(f, offs[0]);
    uint8_t *g = with_frame(f, n, f + offs[0], l, 5);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", g, n + l));
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CORRUPT);
    CHECK_INT(bg_box_report_of(b)->auth_failures, ==, 1);
    CHECK(tu_has(b, "k1", "{\"v\":\"new\"}"));
    CHECK_OK(bg_store_close(s));
    free(f);
    free(g);
    bg_sim_free(sim);
}

/* Two whole frames exchanged (each moved to the other's offset, offsets
 * refitted): the sequence order breaks, so it is damage, never a swap of
 * values. */
static void test_frames_moved_to_other_offsets(void)
{
    bg_sim *sim = bg_sim_new(24);
    make_two_boxes(sim);
    uint8_t *f;
    size_t n;
    uint64_t offs[64];
    CHECK_INT(box_frames(sim, "s/a.box", &f, &n, offs), ==, 3);
    uint32_t l = tu_flen(f, offs[0]);
    CHECK_INT(tu_flen(f, offs[1]), ==, l);
    uint8_t tmp[512];
    memcpy(tmp, f + offs[0], l);
    memcpy(f + offs[0], f + offs[1], l);
    memcpy(f + offs[1], tmp, l);
    refit(f + offs[0], offs[0]);
    refit(f + offs[1], offs[1]);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", f, n));
    free(f);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CORRUPT);
    CHECK(!tu_has(b, "k1", "{\"v\":\"two\"}"));
    CHECK(!tu_has(b, "k2", "{\"v\":\"one\"}"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* Every nonce the store has sealed under one key, collected from every box
 * file after each step: a nonce may appear again only as the same frame
 * (same box id and sequence, as compaction copies it). */
typedef struct nonce_seen {
    uint32_t key_id;
    uint8_t nonce[24];
    uint8_t box_id[16];
    uint64_t seq;
} nonce_seen;

typedef struct nonces {
    nonce_seen *v;
    size_t n, cap, frames;
    int reused;
} nonces;

static void collect_nonces(bg_sim *sim, const char *path, nonces *ns)
{
    uint8_t *f;
    size_t n;
    if (bg_sim_read_file(sim, path, &f, &n))
        return;
    uint32_t key_id = (uint32_t)f[12] | (uint32_t)f[13] << 8 |
                      (uint32_t)f[14] << 16 | (uint32_t)f[15] << 24;
    uint64_t pos = BG__BOX_HDR_SIZE;
    while (key_id && pos + BG__FRAME_OVERHEAD <= n) {
        uint32_t flen = tu_flen(f, pos);
        uint16_t klen = (uint16_t)(f[pos + 10] | f[pos + 11] << 8);
        uint64_t seq = 0;
        for (int i = 7; i >= 0; i--)
            seq = seq << 8 | f[pos + 16 + i];
        const uint8_t *nonce = f + pos + BG__FRAME_HDR + klen;
        int again = 0;
        for (size_t i = 0; i < ns->n; i++) {
            nonce_seen *o = &ns->v[i];
            if (o->key_id != key_id || memcmp(o->nonce, nonce, 24))
                continue;
            if (memcmp(o->box_id, f + 16, 16) || o->seq != seq)
                ns->reused++;
            again = 1;
        }
        if (!again) {
            if (ns->n == ns->cap)
                ns->v = realloc(ns->v,
                                (ns->cap = ns->cap * 2 + 64) * sizeof *ns->v);
            nonce_seen *e = &ns->v[ns->n++];
            e->key_id = key_id;
            memcpy(e->nonce, nonce, 24);
            memcpy(e->box_id, f + 16, 16);
            e->seq = seq;
        }
        ns->frames++;
        pos += flen;
    }
    free(f);
}

static void collect_all(bg_sim *sim, nonces *ns)
{
    collect_nonces(sim, "s/a.box", ns);
    collect_nonces(sim, "s/b.box", ns);
    collect_nonces(sim, "s/users.box", ns);
}

static void test_nonces_unique_under_each_key(void)
{
    bg_sim *sim = bg_sim_new(25);
    nonces ns = {0};
    CHECK_OK(mf_setup(sim, 8, 1));
    collect_all(sim, &ns);
    bg_store *s;
    bg_box *a, *b;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "a", BG_BOX_CREATE | BG_BOX_ENCRYPT, &a));
    CHECK_OK(bg_box_open(s, "b", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b));
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 12; i++) {
            char k[8], v[32];
            snprintf(k, sizeof k, "k%d", i % 5);
            snprintf(v, sizeof v, "{\"r\":%d,\"i\":%d}", round, i);
            CHECK_OK(tu_put(a, k, v));
            CHECK_OK(tu_put(b, k, v));
            if (i % 4 == 3)
                CHECK_OK(bg_box_del(b, k, strlen(k)));
            collect_all(sim, &ns);
        }
        CHECK_OK(bg_box_compact(a));
        collect_all(sim, &ns);
        if (round % 2) {
            bg_rekey_report rep;
            CHECK_OK(bg_rekey_run(s, &rep));
            collect_all(sim, &ns);
            /* A rekey resealed the boxes; their handles are new. */
            CHECK_OK(bg_box_open(s, "a", 0, &a));
            CHECK_OK(bg_box_open(s, "b", 0, &b));
        }
    }
    CHECK_OK(bg_store_close(s));
    /* A migration rewrites every user under the current key. */
    bg_registry *r;
    CHECK_OK(mf_registry(MF_ADAPTERS_V1, &r));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    CHECK_OK(bg_store_open("s", &o, &s));
    bg_plan *plan;
    char why[256];
    CHECK_OK(bg_plan_parse(MF_PLAN, strlen(MF_PLAN), &plan, why, sizeof why));
    bg_migrate_report mrep;
    CHECK_OK(bg_migrate_run(s, bg_plan_at(plan, 0), bg_plan_count(plan), NULL,
                            &mrep));
    CHECK_INT(mrep.applied, ==, 1);
    bg_plan_free(plan);
    CHECK_OK(bg_store_close(s));
    bg_registry_free(r);
    collect_all(sim, &ns);
    CHECK_INT(ns.frames, >, 300);
    CHECK_INT(ns.reused, ==, 0);
    free(ns.v);
    bg_sim_free(sim);
}

/* A destroyed key file is overwritten before it is unlinked: a VFS in
 * front of the simulated disk reads every key file at the moment it is
 * unlinked, and it must hold only zeros by then. */
static bg_sim *unlink_sim;
static const bg_vfs *unlink_inner;
static int keys_unlinked, keys_with_bytes;

static bg_err watch_unlink(const bg_vfs *v, const char *path)
{
    (void)v;
    size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".key")) {
        uint8_t *b;
        size_t len;
        if (!bg_sim_read_file(unlink_sim, path, &b, &len)) {
            keys_unlinked++;
            for (size_t i = 0; i < len; i++)
                if (b[i]) {
                    keys_with_bytes++;
                    break;
                }
            free(b);
        }
    }
    return unlink_inner->unlink(unlink_inner, path);
}

static void test_destroyed_key_is_overwritten_first(void)
{
    bg_sim *sim = bg_sim_new(26);
    make_two_boxes(sim);
    bg_vfs v = *bg_sim_vfs(sim);
    v.unlink = watch_unlink;
    unlink_sim = sim;
    unlink_inner = bg_sim_vfs(sim);
    keys_unlinked = keys_with_bytes = 0;
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.vfs = &v;
    bg_store *s;
    CHECK_OK(bg_store_open("s", &o, &s));
    bg_rekey_report rep;
    CHECK_OK(bg_rekey_run(s, &rep));
    CHECK_OK(bg_rekey_run(s, &rep));
    CHECK_OK(bg_store_close(s));
    CHECK_INT(keys_unlinked, ==, 2);
    CHECK_INT(keys_with_bytes, ==, 0);
    bg_sim_free(sim);
}

/* A frame copied from another box sealed with the same key, in place of
 * the frame with the same key and sequence: only the box id in the
 * additional data tells them apart, and it must. */
static void test_frame_copied_from_another_box_in_place(void)
{
    bg_sim *sim = bg_sim_new(27);
    make_two_boxes(sim);
    uint8_t *fa, *fb;
    size_t na, nb;
    uint64_t oa[64], ob[64];
    CHECK_INT(box_frames(sim, "s/a.box", &fa, &na, oa), ==, 3);
    CHECK_INT(box_frames(sim, "s/b.box", &fb, &nb, ob), ==, 1);
    uint32_t l = tu_flen(fb, ob[0]);
    CHECK_INT(tu_flen(fa, oa[0]), ==, l); /* k1, sequence 1 in both */
    CHECK(!memcmp(fa + oa[0] + 16, fb + ob[0] + 16, 8));
    memcpy(fa + oa[0], fb + ob[0], l);
    refit(fa + oa[0], oa[0]);
    CHECK_OK(bg_sim_write_file(sim, "s/a.box", fa, na));
    CHECK(expect_damage(sim, "a", "k1"));
    free(fa);
    free(fb);
    bg_sim_free(sim);
}

/* keys/ holding what is not a key (a file of the wrong size, a leftover
 * temporary) opens and seals nothing; a read-only store neither rekeys
 * nor makes a sealed box; a rekey over a damaged box keeps every old key. */
static void test_key_files_and_refusals(void)
{
    bg_sim *sim = bg_sim_new(28);
    make_two_boxes(sim);
    static const uint8_t short_key[31] = {1};
    CHECK_OK(bg_sim_write_file(sim, "s/keys/9.key", short_key, 31));
    CHECK_OK(bg_sim_write_file(sim, "s/keys/3.key.tmp", short_key, 31));
    bg_store *s;
    bg_box *a;
    CHECK_OK(tu_open_box(sim, "a", 0, &s, &a));
    CHECK(tu_has(a, "k1", "{\"v\":\"one\"}"));
    CHECK_OK(bg_store_close(s));

    bg_store_opts ro = tu_opts(sim, BG_DURABILITY_FULL);
    ro.read_only = 1;
    CHECK_OK(bg_store_open("s", &ro, &s));
    bg_rekey_report rep;
    CHECK_ERR(bg_rekey_run(s, &rep), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "read-only");
    bg_box *n;
    CHECK(bg_box_open(s, "new", BG_BOX_CREATE | BG_BOX_ENCRYPT, &n) != 0);
    CHECK_OK(bg_store_close(s));

    /* A damaged box: the rotation stops before any old key goes. */
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_box *p;
    CHECK_OK(bg_box_open(s, "plain", BG_BOX_CREATE, &p));
    CHECK_OK(tu_put(p, "x", "{\"x\":1}"));
    CHECK_OK(tu_put(p, "y", "{\"y\":2}"));
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/plain.box", &f, &len));
    f[BG__BOX_HDR_SIZE + BG__FRAME_HDR + 2] ^= 0x01;
    CHECK_OK(bg_sim_write_file(sim, "s/plain.box", f, len));
    free(f);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_ERR(bg_rekey_run(s, &rep), BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "old keys kept");
    CHECK_OK(bg_store_close(s));
    uint8_t *k;
    size_t kn;
    CHECK_OK(bg_sim_read_file(sim, "s/keys/1.key", &k, &kn)); /* kept */
    free(k);
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &a));
    CHECK(tu_has(a, "k1", "{\"v\":\"BBB\"}"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

int main(void)
{
    RUN(test_sealed_round_trip);
    RUN(test_wrong_key_changes_nothing);
    RUN(test_edited_frame_is_damage);
    RUN(test_swapped_frames_are_damage);
    RUN(test_frame_replayed_into_another_box);
    RUN(test_old_frame_fails_after_compaction);
    RUN(test_edited_kind_is_damage);
    RUN(test_edited_typeid_is_damage);
    RUN(test_old_frame_replayed_in_same_box);
    RUN(test_frames_moved_to_other_offsets);
    RUN(test_nonces_unique_under_each_key);
    RUN(test_frame_copied_from_another_box_in_place);
    RUN(test_rekey);
    RUN(test_rekey_under_faults);
    RUN(test_foreign_files_in_the_keys_directory);
    RUN(test_allocation_failure_with_keys);
    RUN(test_destroyed_key_is_overwritten_first);
    RUN(test_key_file_is_private);
    RUN(test_key_files_and_refusals);
    return CHECK_DONE();
}
