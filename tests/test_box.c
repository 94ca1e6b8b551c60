/*
 * Box files: the write/read API, its refusals, durability modes, torn
 * tails, corruption, recovery with quarantine, compaction, the store lock,
 * and allocation failures.
 */
#include "testutil.h"

#include "boxfile.h"

static void test_put_get_del_iterate(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "users", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "a", "{\"n\":1}"));
    CHECK_OK(tu_put(b, "b", "[1, 2.50, \"x\"]"));
    CHECK_OK(tu_put(b, "a", "{\"n\":2}"));
    CHECK(tu_has(b, "a", "{\"n\":2}"));
    CHECK(tu_has(b, "b", "[1, 2.50, \"x\"]"));
    CHECK_OK(bg_box_del(b, "b", 1));
    CHECK_ERR(bg_box_del(b, "b", 1), BG_ENOTFOUND);
    CHECK_CONTAINS(bg_store_detail(s), "no key 'b'");
    uint32_t t;
    char *v;
    size_t n;
    CHECK_ERR(bg_box_get(b, "b", 1, &t, &v, &n), BG_ENOTFOUND);
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    CHECK_INT(st.records, ==, 1);
    CHECK_INT(st.frames, ==, 4);
    CHECK_OK(bg_store_close(s));

    CHECK_OK(tu_open_box(sim, "users", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK(tu_has(b, "a", "{\"n\":2}"));
    CHECK_ERR(bg_box_get(b, "b", 1, &t, &v, &n), BG_ENOTFOUND);
    CHECK_OK(bg_box_get(b, "a", 1, &t, &v, &n));
    CHECK_INT(t, ==, 0);
    CHECK_INT(v[n], ==, 0);
    bg_store_free(s, v);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_refusals_change_nothing(void)
{
    bg_sim *sim = bg_sim_new(2);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_ERR(bg_box_open(s, "bad name", BG_BOX_CREATE, &b), BG_EINVALID);
    CHECK_ERR(bg_box_open(s, "", BG_BOX_CREATE, &b), BG_EINVALID);
    CHECK_ERR(bg_box_open(s, "x.box", BG_BOX_CREATE, &b), BG_EINVALID);
    CHECK_ERR(bg_box_open(s, "missing", 0, &b), BG_ENOTFOUND);
    CHECK_CONTAINS(bg_store_detail(s), "box 'missing' does not exist");
    CHECK_OK(bg_box_open(s, "b", BG_BOX_CREATE, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    uint64_t changes = bg_sim_get_stats(sim).changes;
    CHECK_ERR(tu_put(b, "k", "{\"a\":"), BG_EINVALID);
    CHECK_CONTAINS(bg_store_detail(s), "truncated JSON");
    CHECK_ERR(tu_put(b, "k", "{\"a\":1} x"), BG_EINVALID);
    CHECK_CONTAINS(bg_store_detail(s), "trailing data");
    CHECK_ERR(tu_put(b, "k", ""), BG_EINVALID);
    CHECK_ERR(tu_put(b, "", "1"), BG_EINVALID);
    CHECK_ERR(bg_box_put(b, "k\0x", 3, 0, "1", 1), BG_EINVALID);
    CHECK_ERR(bg_box_put(b, "\xff", 1, 0, "1", 1), BG_EINVALID);
    CHECK_CONTAINS(bg_store_detail(s), "UTF-8");
    char big[BG_KEY_MAX + 2];
    memset(big, 'k', sizeof big);
    CHECK_ERR(bg_box_put(b, big, sizeof big, 0, "1", 1), BG_EINVALID);
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes);
    CHECK(tu_has(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_lock_excludes_second_opener(void)
{
    bg_sim *sim = bg_sim_new(3);
    bg_store *s, *s2;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_ERR(tu_open(sim, BG_DURABILITY_FULL, &s2), BG_ELOCKED);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = 1;
    CHECK_ERR(bg_store_open("s", &o, &s2), BG_ELOCKED);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s2));
    CHECK_OK(bg_store_close(s2));
    o.create = 0;
    CHECK_ERR(bg_store_open("nope", &o, &s2), BG_ENOTFOUND);
    bg_sim_free(sim);
}

static void test_batch_is_all_or_nothing(void)
{
    bg_sim *sim = bg_sim_new(4);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "keep", "true"));
    bg_write w[3] = {
        {0, "x", 1, 0, "1", 1},
        {0, "y", 1, 0, "2", 1},
        {1, "keep", 4, 0, NULL, 0},
    };
    /* A bad record anywhere refuses the whole batch. */
    bg_write bad = w[1];
    bad.value = "{";
    bg_write w2[2] = {w[0], bad};
    CHECK_ERR(bg_box_write_batch(b, w2, 2), BG_EINVALID);
    CHECK_ERR(bg_box_get(b, "x", 1, &(uint32_t){0}, &(char *){0}, &(size_t){0}),
              BG_ENOTFOUND);
    /* Cut the batch short on disk: none of it must come back. */
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + 1);
    CHECK_ERR(bg_box_write_batch(b, w, 3), BG_EIO);
    (void)bg_store_close(s);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_SUBSET, 9));
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    CHECK(tu_has(b, "keep", "true"));
    CHECK(!tu_has(b, "x", "1"));
    CHECK_OK(bg_box_write_batch(b, w, 3));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    CHECK(tu_has(b, "x", "1"));
    CHECK(tu_has(b, "y", "2"));
    CHECK(!tu_has(b, "keep", "true"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static const char *val(int i)
{
    static char v[96];
    snprintf(v, sizeof v, "{\"i\":%d,\"pad\":\"%.*s\"}", i, i % 40,
             "........................................");
    return v;
}

static const char *key(int i)
{
    static char k[16];
    snprintf(k, sizeof k, "k%d", i);
    return k;
}

/* Box "b" of store "s" with n records key(i) -> val(i) (FULL durability),
 * then the bytes of its file. */
static int fill_read(bg_sim *sim, int n, uint8_t **f, size_t *len)
{
    bg_store *s;
    bg_box *b;
    if (tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b))
        return -1;
    for (int i = 0; i < n; i++) {
        if (tu_put(b, key(i), val(i)))
            return -1;
    }
    if (bg_store_close(s))
        return -1;
    return bg_sim_read_file(sim, "s/b.box", f, len);
}

/* A batch of small records larger than the scan's 1 MiB read window:
 * every record of it comes back after a reopen, under its own key (the
 * scan once applied the batch's last frame from a window that had moved
 * while the batch was committed). */
static void test_batch_over_the_read_window(void)
{
    enum { N = 15000, VLEN = 40 };
    bg_sim *sim = bg_sim_new(5);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "big", BG_BOX_CREATE, &s, &b));
    bg_write *w = calloc(N, sizeof *w);
    char(*keys)[16] = calloc(N, 16);
    char *val = malloc(VLEN + 1);
    memset(val, 'v', VLEN);
    val[0] = '"';
    val[VLEN - 1] = '"';
    val[VLEN] = '\0';
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, "k%04d", i);
        w[i] = (bg_write){0, keys[i], strlen(keys[i]), 0, val, VLEN};
    }
    CHECK_OK(bg_box_write_batch(b, w, N));
    (void)bg_store_close(s);
    CHECK_OK(tu_open_box(sim, "big", 0, &s, &b));
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    CHECK_INT(st.records, ==, N);
    CHECK(st.file_bytes > (1u << 20) + VLEN);
    for (int i = 0; i < N; i++)
        CHECK(tu_has(b, keys[i], val));
    (void)bg_store_close(s);
    free(w);
    free(keys);
    free(val);
    bg_sim_free(sim);
}

static void test_torn_tail_is_cut_and_reported(void)
{
    bg_sim *sim = bg_sim_new(5);
    uint8_t *f;
    size_t len;
    CHECK_OK(fill_read(sim, 10, &f, &len));
    /* Chop the last frame in half. */
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len - 20));
    bg_store *s;
    bg_box *b;
    bg_box_report rep;
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = 1;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_verify(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_TORN);
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK(tu_has(b, key(8), val(8)));
    CHECK(!tu_has(b, key(9), val(9)));
    CHECK_OK(bg_store_close(s));
    uint8_t *f2;
    size_t len2;
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &f2, &len2));
    CHECK_INT(len2, ==, len - 20); /* read-only: not a byte changed */
    free(f2);

    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    const bg_box_report *r = bg_box_report_of(b);
    CHECK_INT(r->status, ==, BG_BOX_TORN);
    CHECK_INT(r->lost_bytes, >, 0);
    CHECK_OK(tu_put(b, "after", "1"));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK(tu_has(b, "after", "1"));
    CHECK(tu_has(b, key(0), val(0)));
    CHECK_OK(bg_store_close(s));
    free(f);
    bg_sim_free(sim);
}

static void test_corruption_is_detected_and_recovered(void)
{
    bg_sim *sim = bg_sim_new(6);
    uint8_t *f;
    size_t len;
    CHECK_OK(fill_read(sim, 20, &f, &len));
    uint64_t offs[32];
    CHECK_INT(tu_frames(f, len, offs, 32), ==, 20);
    f[offs[7] + 60] ^= 0x10; /* a bit of frame 7's value */
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len));

    bg_store *s;
    bg_box *b;
    bg_box_report rep;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_verify(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CORRUPT);
    CHECK_INT(rep.first_damage, ==, offs[7]);
    CHECK_INT(rep.nranges, ==, 1);
    CHECK_INT(rep.ranges[0].len, ==, offs[8] - offs[7]);

    /* Opens read-only: every other record readable, writes refused. */
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CORRUPT);
    CHECK(tu_has(b, key(19), val(19)));
    CHECK(!tu_has(b, key(7), val(7)));
    CHECK_ERR(tu_put(b, "new", "1"), BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "run recover");

    CHECK_OK(bg_box_recover(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CORRUPT);
    CHECK_STR(rep.quarantine, "s/quarantine/b_corrupted_20261122.bak");
    uint8_t *q;
    size_t qlen;
    CHECK_OK(bg_sim_read_file(sim, rep.quarantine, &q, &qlen));
    CHECK_INT(qlen, ==, len);
    CHECK(!memcmp(q, f, len));
    free(q);

    /* Recover is idempotent and leaves a clean box. */
    CHECK_OK(bg_box_recover(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CLEAN);
    CHECK_OK(bg_box_verify(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CLEAN);
    CHECK_INT(rep.frames, ==, 19);
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    for (int i = 0; i < 20; i++)
        CHECK(tu_has(b, key(i), val(i)) == (i != 7));
    CHECK_OK(tu_put(b, "new", "1"));
    CHECK_OK(bg_store_close(s));

    /* A second damage on the same day gets its own quarantine copy. */
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &q, &qlen));
    q[BG__BOX_HDR_SIZE + 2] ^= 1;
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", q, qlen));
    free(q);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_recover(s, "b", &rep));
    CHECK_STR(rep.quarantine, "s/quarantine/b_corrupted_20261122-2.bak");
    CHECK_OK(bg_store_close(s));
    free(f);
    bg_sim_free(sim);
}

static void test_header_damage_salvages_frames(void)
{
    bg_sim *sim = bg_sim_new(7);
    uint8_t *f;
    size_t len;
    CHECK_OK(fill_read(sim, 5, &f, &len));
    f[3] = 'X';
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len));
    bg_store *s;
    bg_box *b;
    bg_box_report rep;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_verify(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CORRUPT);
    CHECK_INT(rep.header_ok, ==, 0);
    CHECK_OK(bg_box_recover(s, "b", &rep));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    for (int i = 0; i < 5; i++)
        CHECK(tu_has(b, key(i), val(i)));
    CHECK_OK(bg_store_close(s));
    free(f);
    bg_sim_free(sim);
}

/* A synced batch whose first frame is damaged afterwards looks, from the
 * file alone, like a batch a crash cut short: the open cuts it as a torn
 * tail. Its frames that still verify are never dropped unseen: the cut
 * bytes are copied to quarantine/ first, byte for byte, and the report
 * names the copy. A tail in which no frame verifies is cut without one. */
static void test_torn_tail_with_frames_is_kept(void)
{
    bg_sim *sim = bg_sim_new(13);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "k0", "0"));
    bg_write w[3] = {{0, "k1", 2, 0, "11", 2},
                     {0, "k2", 2, 0, "22", 2},
                     {0, "k3", 2, 0, "33", 2}};
    CHECK_OK(bg_box_write_batch(b, w, 3));
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &f, &len));
    /* The batch is the last three frames, of equal size. */
    size_t flen = (len - BG__BOX_HDR_SIZE) / 4;
    size_t first = BG__BOX_HDR_SIZE + flen;
    f[first + BG__FRAME_HDR] ^= 1; /* the key of the batch's first frame */
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    const bg_box_report *rep = bg_box_report_of(b);
    CHECK_INT(rep->status, ==, BG_BOX_TORN);
    CHECK_INT(rep->cut, ==, first);
    CHECK_INT(rep->tail_frames, ==, 2);
    CHECK_STR(rep->quarantine, "s/quarantine/b_torn_20261122.bak");
    CHECK(tu_has(b, "k0", "0"));
    CHECK_OK(bg_store_close(s));
    uint8_t *q, *g;
    size_t qlen, glen;
    CHECK_OK(
        bg_sim_read_file(sim, "s/quarantine/b_torn_20261122.bak", &q, &qlen));
    CHECK_INT(qlen, ==, len - first);
    CHECK(memcmp(q, f + first, qlen) == 0);
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
    CHECK_INT(glen, ==, first);
    free(q);
    free(g);

    /* A last frame cut mid-way: no frame of the tail verifies, no copy. */
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, first + flen - 3));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_TORN);
    CHECK_INT(bg_box_report_of(b)->tail_frames, ==, 0);
    CHECK_STR(bg_box_report_of(b)->quarantine, "");
    CHECK_OK(bg_store_close(s));
    CHECK_ERR(
        bg_sim_read_file(sim, "s/quarantine/b_torn_20261122-2.bak", &q, &qlen),
        BG_ENOTFOUND);

    /* recover does the same. */
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_box_report rr;
    CHECK_OK(bg_box_recover(s, "b", &rr));
    CHECK_INT(rr.status, ==, BG_BOX_TORN);
    CHECK_STR(rr.quarantine, "s/quarantine/b_torn_20261122-2.bak");
    CHECK_OK(bg_store_close(s));
    CHECK_OK(
        bg_sim_read_file(sim, "s/quarantine/b_torn_20261122-2.bak", &q, &qlen));
    CHECK(qlen == len - first && memcmp(q, f + first, qlen) == 0);
    free(q);
    free(f);
    bg_sim_free(sim);
}

/* Every read verifies the frame it reads: a byte of a value changed on
 * disk after the box was opened is BG_ECORRUPT, never a value the
 * application did not write. */
static void test_read_verifies_the_frame(void)
{
    bg_sim *sim = bg_sim_new(14);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &f, &len));
    /* The value "1" is the byte after the key "k" in the only frame. */
    CHECK_INT(f[BG__BOX_HDR_SIZE + BG__FRAME_HDR + 1], ==, '1');
    f[BG__BOX_HDR_SIZE + BG__FRAME_HDR + 1] = '2';
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len));
    uint32_t t;
    char *v = NULL;
    size_t n;
    CHECK_ERR(bg_box_get(b, "k", 1, &t, &v, &n), BG_ECORRUPT);
    CHECK(v == NULL);
    CHECK_OK(bg_store_close(s));
    free(f);
    bg_sim_free(sim);
}

/* A store whose box "b" holds n records of value v, with its header lost;
 * the damaged file is left in f. */
static void make_headless(bg_sim *sim, int n, const char *v, uint8_t **f,
                          size_t *len)
{
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    for (int i = 0; i < n; i++)
        CHECK_OK(tu_put(b, key(i), v));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", f, len));
    (*f)[3] = 'X';
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", *f, *len));
}

/* A box whose header is lost is salvaged with records whose check needs
 * memory (objects of 70 members). Every allocation of the recovery fails
 * in turn: it either keeps every record, or says BG_ENOMEM and leaves the
 * file as it was. A record is never dropped because memory ran out (the
 * first resync once took a failed check for damage and kept nothing). */
static void test_salvage_under_allocation_failures(void)
{
    enum { N = 4, MEMBERS = 70 };
    char v[MEMBERS * 12 + 4];
    size_t at = 0;
    v[at++] = '{';
    for (int m = 0; m < MEMBERS; m++)
        at += (size_t)snprintf(v + at, sizeof v - at, "%s\"m%d\":%d",
                               m ? "," : "", m, m);
    v[at++] = '}';
    v[at] = '\0';
    long total = 0, failed = 0; /* allocations of a run with memory to spare */
    for (long fail = 0; fail == 0 || fail <= total; fail++) {
        bg_sim *sim = bg_sim_new(12);
        uint8_t *f;
        size_t len;
        make_headless(sim, N, v, &f, &len);
        tu_alloc a = {.fail_at = fail};
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        bg_store *s;
        bg_box_report rep;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err) {
            err = bg_box_recover(s, "b", &rep);
            (void)bg_store_close(s);
        }
        CHECK_INT(a.live, ==, 0);
        if (fail == 0)
            total = a.n;
        uint8_t *g;
        size_t glen;
        CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
        if (err) {
            CHECK_INT(err, ==, BG_ENOMEM);
            CHECK(glen == len && memcmp(f, g, len) == 0);
            failed++;
        } else {
            CHECK_INT(rep.frames, ==, N);
            CHECK(glen != len || memcmp(f, g, len) != 0);
            bg_box *b;
            CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
            CHECK_OK(bg_box_open(s, "b", 0, &b));
            CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
            for (int i = 0; i < N; i++)
                CHECK(tu_has(b, key(i), v));
            CHECK_OK(bg_store_close(s));
        }
        free(g);
        free(f);
        bg_sim_free(sim);
    }
    CHECK_INT(failed, >, N);
}

/* Append name and a comma to the string at arg. */
static int collect_name(void *arg, const char *name)
{
    strcat(arg, name);
    strcat(arg, ",");
    return 0;
}

static int collect(void *arg, const bg_record *r)
{
    char k[BG_KEY_MAX + 1];
    memcpy(k, r->key, r->key_len);
    k[r->key_len] = '\0';
    return collect_name(arg, k);
}

static void test_compact_keeps_live_records(void)
{
    bg_sim *sim = bg_sim_new(8);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    for (int i = 0; i < 50; i++)
        CHECK_OK(tu_put(b, key(i % 10), val(i)));
    CHECK_OK(bg_box_del(b, key(3), strlen(key(3))));
    bg_box_stats before, after;
    bg_box_stats_of(b, &before);
    CHECK_OK(bg_box_compact(b));
    bg_box_stats_of(b, &after);
    CHECK_INT(after.records, ==, 9);
    CHECK_INT(after.frames, ==, 9);
    CHECK_INT(after.file_bytes, <, before.file_bytes);
    CHECK_INT(after.file_bytes, ==, after.live_bytes + BG__BOX_HDR_SIZE);
    char order[256] = "";
    CHECK_OK(bg_box_iterate(b, collect, order));
    CHECK_STR(order, "k0,k1,k2,k4,k5,k6,k7,k8,k9,");
    CHECK_OK(tu_put(b, key(3), val(99)));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    for (int i = 0; i < 10; i++)
        CHECK(tu_has(b, key(i), val(i == 3 ? 99 : 40 + i)));
    bg_box_stats_of(b, &after);
    CHECK_INT(after.next_seq, >, 51); /* sequences never go back */
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* Store "s" in GROUP mode with groups of size writes, and a new box "b". */
static bg_err open_group(bg_sim *sim, unsigned size, bg_store_opts *o,
                         bg_store **s, bg_box **b)
{
    *o = tu_opts(sim, BG_DURABILITY_GROUP);
    o->group_size = size;
    return tu_open_box_with(o, "b", BG_BOX_CREATE, s, b);
}

static void test_group_and_off_durability(void)
{
    bg_sim *sim = bg_sim_new(9);
    bg_store *s;
    bg_box *b;
    bg_store_opts o;
    CHECK_OK(open_group(sim, 4, &o, &s, &b));
    for (int i = 0; i < 6; i++)
        CHECK_OK(tu_put(b, key(i), val(i)));
    /* Power loss before close: the last two were never synced. */
    CHECK_OK(tu_kill(sim, s, BG_CRASH_DROP, 1));
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    for (int i = 0; i < 6; i++)
        CHECK(tu_has(b, key(i), val(i)) == (i < 4));
    CHECK_OK(tu_put(b, key(10), val(10)));
    CHECK_OK(bg_store_sync(s));
    CHECK_OK(tu_kill(sim, s, BG_CRASH_TORN, 5));
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    CHECK(tu_has(b, key(10), val(10)));
    CHECK_OK(bg_store_close(s));

    /* OFF: never synced until close; a reordered crash leaves a torn tail,
     * never corruption. */
    for (uint64_t seed = 0; seed < 20; seed++) {
        bg_sim *sim2 = bg_sim_new(seed);
        bg_store_opts o2 = tu_opts(sim2, BG_DURABILITY_OFF);
        CHECK_OK(tu_open_box_with(&o2, "b", BG_BOX_CREATE, &s, &b));
        for (int i = 0; i < 8; i++)
            CHECK_OK(tu_put(b, key(i), val(i)));
        CHECK_OK(
            tu_kill(sim2, s, (bg_crash_mode)(seed % BG_CRASH_MODES), seed));
        CHECK_OK(tu_open_box_with(&o2, "b", 0, &s, &b));
        CHECK_INT(bg_box_report_of(b)->status, !=, BG_BOX_CORRUPT);
        CHECK_OK(bg_store_close(s));
        bg_sim_free(sim2);
    }
    bg_sim_free(sim);
}

/* The size of a sim file, or 0. */
static size_t sim_size(bg_sim *sim, const char *path)
{
    uint8_t *f;
    size_t n;
    if (bg_sim_read_file(sim, path, &f, &n))
        return 0;
    free(f);
    return n;
}

/* A box that keeps a zeroed region ahead of its log: the first durable
 * write extends the file with synced zeros, later ones overwrite them
 * (one write and one sync each, the size unchanged), the region grows
 * when used up, reopening finds the log's end at the zeros and reports
 * them, and durability off keeps no region. */
static void test_zeroed_region_ahead_of_the_log(void)
{
    bg_sim *sim = bg_sim_new(31);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "z", BG_BOX_CREATE, &s, &b));
    bg__box_keep_zeroed(b, 1000, 1000);
    uint64_t c0 = bg_sim_get_stats(sim).changes;
    CHECK_OK(tu_put(b, key(0), val(0)));
    uint64_t end1 = bg__box_end(b);
    size_t flen = end1 - BG__BOX_HDR_SIZE;
    /* the zeros past the frame (one write: under 4096 bytes), the frame,
     * one sync for both */
    CHECK_INT(bg_sim_get_stats(sim).changes - c0, ==, 3);
    CHECK_INT(sim_size(sim, "s/z.box"), ==, BG__BOX_HDR_SIZE + flen + 1000);
    uint64_t c1 = bg_sim_get_stats(sim).changes;
    int fit = (int)(1000 / flen);
    for (int i = 1; i <= fit; i++)
        CHECK_OK(tu_put(b, key(0), val(0)));
    CHECK_INT(bg_sim_get_stats(sim).changes - c1, ==, 2 * (uint64_t)fit);
    CHECK_INT(sim_size(sim, "s/z.box"), ==, BG__BOX_HDR_SIZE + flen + 1000);
    uint64_t end = bg__box_end(b);
    CHECK_INT(end, ==, BG__BOX_HDR_SIZE + (fit + 1) * flen);
    /* used up: the next write extends again, by the step past its frame */
    CHECK_OK(tu_put(b, key(1), val(1)));
    CHECK_INT(bg__box_end(b), >, BG__BOX_HDR_SIZE + flen + 1000);
    end = bg__box_end(b);
    CHECK_INT(sim_size(sim, "s/z.box"), ==, end + 1000);
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    CHECK_INT(st.file_bytes, ==, end);
    CHECK_OK(bg_store_close(s));

    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/z.box", &f, &len));
    CHECK(!tu_nonzero(f + end, len - end));
    free(f);
    CHECK_OK(tu_open_box(sim, "z", 0, &s, &b));
    const bg_box_report *r = bg_box_report_of(b);
    CHECK_INT(r->status, ==, BG_BOX_CLEAN);
    CHECK_INT(r->valid_end, ==, end);
    CHECK_INT(r->zeroed, ==, len - end);
    CHECK_INT(r->lost_bytes, ==, 0);
    CHECK_INT(bg__box_end(b), ==, end);
    CHECK(tu_has(b, key(0), val(0)));
    CHECK(tu_has(b, key(1), val(1)));
    /* a box that does not ask for the region still writes over it */
    CHECK_OK(tu_put(b, key(2), val(2)));
    CHECK_INT(sim_size(sim, "s/z.box"), ==, len);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open_box(sim, "z", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK(tu_has(b, key(2), val(2)));
    CHECK_OK(bg_store_close(s));

    /* the step: a quarter of the file, within its bounds */
    CHECK_OK(tu_open_box(sim, "g", BG_BOX_CREATE, &s, &b));
    bg__box_keep_zeroed(b, 100, 300);
    size_t size = BG__BOX_HDR_SIZE;
    int grew = 0;
    for (int i = 0; i < 60; i++) {
        uint64_t before = bg__box_end(b);
        CHECK_OK(tu_put(b, key(i), val(i)));
        uint64_t after = bg__box_end(b), step = before / 4;
        step = step < 100 ? 100 : step > 300 ? 300 : step;
        size_t now = sim_size(sim, "s/g.box");
        if (now != size) {
            CHECK_INT(now, ==, after + step);
            grew++;
        }
        CHECK_INT(after, <=, now);
        size = now;
    }
    CHECK_INT(grew, >, 5);
    /* compaction leaves the file at its last frame; the next write makes
     * the region again */
    for (int i = 0; i < 50; i++) {
        const char *k = key(i);
        CHECK_OK(bg_box_del(b, k, strlen(k)));
    }
    CHECK_OK(bg_box_compact(b));
    uint64_t compacted = bg__box_end(b);
    CHECK_INT(sim_size(sim, "s/g.box"), ==, compacted);
    CHECK_INT(compacted / 4, >, 100);
    CHECK_INT(compacted / 4, <, 300);
    CHECK_OK(tu_put(b, key(0), val(0)));
    CHECK_INT(sim_size(sim, "s/g.box"), ==, bg__box_end(b) + compacted / 4);
    CHECK_OK(bg_store_close(s));

    /* durability off: nothing ahead */
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_OFF);
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_open(s, "off", BG_BOX_CREATE, &b));
    bg__box_keep_zeroed(b, 1000, 1000);
    CHECK_OK(tu_put(b, key(0), val(0)));
    CHECK_OK(bg_store_close(s));
    CHECK_INT(sim_size(sim, "s/off.box"), ==, BG__BOX_HDR_SIZE + flen);
    bg_sim_free(sim);
}

/* The region's edges: a failed extension changes nothing; zeros at a
 * frame boundary with a frame that verifies after them are damage, not
 * the end; zeros then garbage to the end are a torn tail, cut at the
 * boundary; a zeroed region shorter than a frame header is still the end. */
static void test_zeroed_region_edges(void)
{
    bg_sim *sim = bg_sim_new(32);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "z", BG_BOX_CREATE, &s, &b));
    bg__box_keep_zeroed(b, 1000, 1000);
    /* the zeros' write, the frame's write, their sync: each failure
     * leaves the file as it was, and the region is made again */
    for (uint64_t k = 1; k <= 3; k++) {
        uint64_t ops = bg_sim_get_stats(sim).ops;
        bg_sim_fail_at(sim, ops + k, BG_ENOSPACE);
        CHECK_ERR(tu_put(b, key(0), val(0)), BG_ENOSPACE);
        if (k == 1)
            CHECK_CONTAINS(bg_store_detail(s), "cannot extend");
        CHECK_INT(sim_size(sim, "s/z.box"), ==, BG__BOX_HDR_SIZE);
        CHECK_INT(bg__box_end(b), ==, BG__BOX_HDR_SIZE);
    }
    bg_sim_fail_at(sim, 0, 0);
    for (int i = 0; i < 3; i++)
        CHECK_OK(tu_put(b, key(i), val(i)));
    uint64_t end = bg__box_end(b);

    CHECK_OK(bg_store_close(s));

    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/z.box", &f, &len));
    uint64_t offs[3];
    CHECK_INT(tu_frames(f, end, offs, 3), ==, 3);
    uint32_t fl = tu_flen(f, offs[1]);
    CHECK_INT(len, ==, offs[1] + 1000); /* made by the first write */
    bg_box_report rep;

    /* the middle frame zeroed: the third still verifies after it */
    uint8_t *g = malloc(len);
    memcpy(g, f, len);
    memset(g + offs[1], 0, fl);
    CHECK_OK(bg_sim_write_file(sim, "s/z.box", g, len));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_verify(s, "z", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CORRUPT);
    CHECK_INT(rep.first_damage, ==, offs[1]);
    CHECK_INT(rep.zeroed, ==, 0);
    CHECK_OK(bg_store_close(s));

    /* zeros from the last frame's start with garbage after them: only its
     * header zeroed, or all of it and the region but for the last byte */
    for (int whole = 0; whole < 2; whole++) {
        memcpy(g, f, len);
        memset(g + offs[2], 0, whole ? len - offs[2] : BG__FRAME_HDR);
        if (whole)
            g[len - 1] = 0x5a;
        CHECK_OK(bg_sim_write_file(sim, "s/z.box", g, len));
        CHECK_OK(tu_open_box(sim, "z", 0, &s, &b));
        CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_TORN);
        CHECK_INT(bg_box_report_of(b)->cut, ==, offs[2]);
        CHECK(tu_has(b, key(1), val(1)));
        CHECK(!tu_has(b, key(2), val(2)));
        CHECK_OK(bg_store_close(s));
        CHECK_INT(sim_size(sim, "s/z.box"), ==, offs[2]);
    }

    /* ten zero bytes after the last frame: the end, not a torn frame */
    memcpy(g, f, end);
    memset(g + end, 0, 10);
    CHECK_OK(bg_sim_write_file(sim, "s/z.box", g, end + 10));
    CHECK_OK(tu_open_box(sim, "z", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->status, ==, BG_BOX_CLEAN);
    CHECK_INT(bg_box_report_of(b)->zeroed, ==, 10);
    CHECK(tu_has(b, key(2), val(2)));
    CHECK_OK(bg_store_close(s));
    CHECK_INT(sim_size(sim, "s/z.box"), ==, end + 10);
    free(g);
    free(f);
    bg_sim_free(sim);
}

/* The exact bytes a repair leaves: a writable open cuts a torn tail at the
 * end of the last whole frame (not a byte more), a recover keeps exactly
 * the frames that verify, a compaction exactly the live ones; each file
 * verifies clean, ends with its last frame, and is left byte for byte as
 * it is by a further open or recover. */
static void test_repairs_leave_exact_bytes(void)
{
    bg_sim *sim = bg_sim_new(31);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    uint8_t *f, *g;
    size_t len, glen;
    uint64_t offs[32];
    CHECK_OK(fill_read(sim, 10, &f, &len));
    CHECK_INT(tu_frames(f, len, offs, 32), ==, 10);
    /* Torn: the last frame cut in half; a writable open cuts it off. */
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len - 20));
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    CHECK_INT(bg_box_report_of(b)->cut, ==, offs[9]);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
    CHECK_INT(glen, ==, offs[9]);
    CHECK(!memcmp(g, f, glen));
    free(g);
    const char *bad = tu_repaired_exactly(sim, &o, "s", "b");
    if (bad)
        fprintf(stderr, "after the cut: %s\n", bad);
    CHECK(!bad);

    /* Damage: frame 4's value flipped; recover keeps the other 8. */
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
    g[offs[4] + 60] ^= 0x04;
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", g, glen));
    free(g);
    bg_box_report rep;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_recover(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CORRUPT);
    CHECK_OK(bg_store_close(s));
    uint64_t kept = BG__BOX_HDR_SIZE;
    for (int i = 0; i < 9; i++)
        kept += i == 4 ? 0 : tu_flen(f, offs[i]);
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
    CHECK_INT(glen, ==, kept);
    free(g);
    bad = tu_repaired_exactly(sim, &o, "s", "b");
    if (bad)
        fprintf(stderr, "after recover: %s\n", bad);
    CHECK(!bad);
    uint8_t *h;
    size_t hlen;
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_recover(s, "b", &rep)); /* a second recover */
    CHECK_INT(rep.status, ==, BG_BOX_CLEAN);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &h, &hlen));
    CHECK_INT(hlen, ==, glen);
    CHECK(!memcmp(g, h, glen));
    free(g);
    free(h);

    /* Compaction: exactly the header and the live frames. */
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    CHECK_OK(tu_put(b, key(0), val(30)));
    CHECK_OK(bg_box_del(b, key(1), strlen(key(1))));
    CHECK_OK(bg_box_compact(b));
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &g, &glen));
    CHECK_INT(glen, ==, st.file_bytes);
    CHECK_INT(tu_frames(g, glen, offs, 32), ==, 7);
    free(g);
    bad = tu_repaired_exactly(sim, &o, "s", "b");
    if (bad)
        fprintf(stderr, "after compaction: %s\n", bad);
    CHECK(!bad);
    free(f);
    bg_sim_free(sim);
}

/* A compaction whose newest frame was a delete drops it; the sequence
 * must not go back after a reopen (the header's floor keeps it). */
static void test_compaction_keeps_the_sequence_floor(void)
{
    bg_sim *sim = bg_sim_new(32);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    for (int i = 0; i < 6; i++)
        CHECK_OK(tu_put(b, key(i), val(i)));
    CHECK_OK(bg_box_del(b, key(5), strlen(key(5))));
    CHECK_OK(bg_box_del(b, key(4), strlen(key(4))));
    bg_box_stats before, after;
    bg_box_stats_of(b, &before);
    CHECK_INT(before.next_seq, ==, 9);
    CHECK_OK(bg_box_compact(b));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open_box(sim, "b", 0, &s, &b));
    bg_box_stats_of(b, &after);
    CHECK_INT(after.next_seq, ==, before.next_seq);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* The store's own boxes (meta, audit, the queue's pending_ops and
 * failed_ops) refuse writes through the public API: every put, delete,
 * batch and compaction says BG_EINVALID naming the box, and not a byte
 * changes. Reads stay open. */
static void test_reserved_box_refuses_user_writes(void)
{
    static const char *const own[] = {"meta", "audit", "pending_ops",
                                      "failed_ops"};
    bg_sim *sim = bg_sim_new(33);
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_queue *q;
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    CHECK_OK(bg_queue_open(s, &qo, &q));
    uint64_t id;
    CHECK_OK(bg_queue_enqueue(q, BG_LANE_NORMAL, "i1", "{}", 2, &id));
    bg_queue_close(q);
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        bg_box *m;
        CHECK_OK(bg_box_open(s, own[i], BG_BOX_CREATE, &m));
        uint64_t changes = bg_sim_get_stats(sim).changes;
        CHECK_ERR(tu_put(m, "schema_version", "9"), BG_EINVALID);
        CHECK_CONTAINS(bg_store_detail(s), "reserved for the store itself");
        CHECK_CONTAINS(bg_store_detail(s), own[i]);
        CHECK_ERR(bg_box_del(m, "schema_version", 14), BG_EINVALID);
        CHECK_CONTAINS(bg_store_detail(s), "reserved for the store itself");
        bg_write w = {0, "x", 1, 0, "1", 1};
        CHECK_ERR(bg_box_write_batch(m, &w, 1), BG_EINVALID);
        /* pending_ops is refused as the queue's (test below). */
        if (strcmp(own[i], "pending_ops")) {
            CHECK_ERR(bg_box_compact(m), BG_EINVALID);
            CHECK_CONTAINS(bg_store_detail(s), "reserved for the store itself");
        }
        CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes);
        CHECK_OK(bg_box_sync(m));
    }
    CHECK_OK(bg_store_close(s));
    /* The op is still there, leasable. */
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_queue_open(s, &qo, &q));
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, id);
    bg_queue_op_clear(&op);
    bg_queue_close(q);
    /* A box whose name only starts like one of them is the user's. */
    bg_box *u;
    CHECK_OK(bg_box_open(s, "metadata", BG_BOX_CREATE, &u));
    CHECK_OK(tu_put(u, "k", "1"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* GROUP: when the sync that closes a group fails, the earlier writes of
 * the group are unsure, so the box stops taking writes until reopened. */
static void test_failed_group_sync_stops_the_box(void)
{
    bg_sim *sim = bg_sim_new(34);
    bg_store *s;
    bg_box *b;
    bg_store_opts o;
    CHECK_OK(open_group(sim, 4, &o, &s, &b));
    for (int i = 0; i < 3; i++)
        CHECK_OK(tu_put(b, key(i), val(i)));
    /* The fourth put writes its frame, then syncs the group. */
    uint64_t ops = bg_sim_get_stats(sim).ops;
    bg_sim_fail_at(sim, ops + 2, BG_EIO);
    CHECK_ERR(tu_put(b, key(3), val(3)), BG_EIO);
    bg_sim_fail_at(sim, 0, 0);
    CHECK_ERR(tu_put(b, key(4), val(4)), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "stopped after an I/O error");
    (void)bg_store_close(s);
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    CHECK(!tu_has(b, key(3), val(3)));
    CHECK_OK(tu_put(b, key(4), val(4)));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static int iter_count(void *arg, const bg_record *r)
{
    (void)r;
    (*(size_t *)arg)++;
    return 0;
}

/* GROUP: the frames of a group gather in memory, so nothing reaches the
 * disk until the write that fills the group, which writes them with one
 * write and one sync (the file grows by exactly their frames); reads see
 * the gathered frames (get, overwrite, delete, iterate), and a power cut
 * loses only what has not been written. */
static void test_group_gathers_then_writes_once(void)
{
    bg_sim *sim = bg_sim_new(37);
    bg_store *s;
    bg_box *b;
    bg_store_opts o;
    CHECK_OK(open_group(sim, 4, &o, &s, &b));
    size_t size0 = sim_size(sim, "s/b.box");
    CHECK_INT(size0, ==, BG__BOX_HDR_SIZE);
    uint64_t changes = bg_sim_get_stats(sim).changes;
    size_t bytes = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(tu_put(b, key(i), val(i)));
        bytes += BG__FRAME_OVERHEAD + strlen(key(i)) + strlen(val(i));
    }
    CHECK_OK(tu_put(b, key(1), val(11))); /* the group's fourth write */
    bytes += BG__FRAME_OVERHEAD + strlen(key(1)) + strlen(val(11));
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes + 2);
    CHECK_INT(sim_size(sim, "s/b.box"), ==, size0 + bytes);
    changes = bg_sim_get_stats(sim).changes;

    /* The next group: gathered, not written, and readable. */
    CHECK_OK(tu_put(b, key(5), val(5)));
    CHECK_OK(tu_put(b, key(2), val(22)));
    CHECK_OK(bg_box_del(b, key(0), strlen(key(0))));
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes);
    CHECK_INT(sim_size(sim, "s/b.box"), ==, size0 + bytes);
    CHECK(tu_has(b, key(5), val(5)));
    CHECK(tu_has(b, key(2), val(22)));
    CHECK(tu_has(b, key(1), val(11)));
    CHECK(!tu_has(b, key(0), val(0)));
    size_t n = 0;
    CHECK_OK(bg_box_iterate(b, iter_count, &n));
    CHECK_INT(n, ==, 3);
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    CHECK_INT(st.file_bytes, >, size0 + bytes);

    /* A power cut: the gathered three were never written. */
    CHECK_OK(tu_kill(sim, s, BG_CRASH_DROP, 1));
    CHECK_INT(sim_size(sim, "s/b.box"), ==, size0 + bytes);
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    CHECK(tu_has(b, key(0), val(0)));
    CHECK(tu_has(b, key(1), val(11)));
    CHECK(tu_has(b, key(2), val(2)));
    CHECK(!tu_has(b, key(5), val(5)));

    /* bg_store_sync writes and syncs a part group: one write, one sync. */
    CHECK_OK(tu_put(b, key(6), val(6)));
    changes = bg_sim_get_stats(sim).changes;
    CHECK_OK(bg_store_sync(s));
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes + 2);
    CHECK_INT(sim_size(sim, "s/b.box"), ==,
              size0 + bytes + BG__FRAME_OVERHEAD + strlen(key(6)) +
                  strlen(val(6)));
    CHECK_OK(bg_store_sync(s)); /* nothing gathered: nothing to do */
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes + 2);
    CHECK_OK(tu_kill(sim, s, BG_CRASH_DROP, 2));
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    CHECK(tu_has(b, key(6), val(6)));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* GROUP: when the write that closes a group fails, the group's writes
 * (acknowledged while gathered) are lost with it: the file is as before
 * the group, and the box stops until reopened. */
static void test_failed_group_write_loses_the_group(void)
{
    bg_sim *sim = bg_sim_new(38);
    bg_store *s;
    bg_box *b;
    bg_store_opts o;
    CHECK_OK(open_group(sim, 3, &o, &s, &b));
    for (int i = 0; i < 3; i++)
        CHECK_OK(tu_put(b, key(i), val(i)));
    size_t size1 = sim_size(sim, "s/b.box");
    CHECK_OK(tu_put(b, key(3), val(3)));
    CHECK_OK(tu_put(b, key(4), val(4)));
    uint64_t ops = bg_sim_get_stats(sim).ops;
    bg_sim_fail_at(sim, ops + 1, BG_EIO); /* the group's one write */
    CHECK_ERR(tu_put(b, key(5), val(5)), BG_EIO);
    bg_sim_fail_at(sim, 0, 0);
    CHECK_INT(sim_size(sim, "s/b.box"), ==, size1);
    CHECK_ERR(tu_put(b, key(6), val(6)), BG_ESTATE);
    CHECK_ERR(bg_store_sync(s), BG_ESTATE);
    (void)bg_store_close(s);
    CHECK_INT(sim_size(sim, "s/b.box"), ==, size1);
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    for (int i = 0; i < 6; i++)
        CHECK(tu_has(b, key(i), val(i)) == (i < 3));
    CHECK_OK(tu_put(b, key(6), val(6)));
    CHECK_OK(bg_store_close(s));

    /* A write that fails as the first of a group loses only itself: the
     * box goes on. */
    CHECK_OK(tu_open_box_with(&o, "b", 0, &s, &b));
    size_t before = sim_size(sim, "s/b.box");
    ops = bg_sim_get_stats(sim).ops;
    bg_write w[3] = {
        {0, "x", 1, 0, "1", 1}, {0, "y", 1, 0, "2", 1}, {0, "z", 1, 0, "3", 1}};
    bg_sim_fail_at(sim, ops + 1, BG_EIO);
    CHECK_ERR(bg_box_write_batch(b, w, 3), BG_EIO);
    bg_sim_fail_at(sim, 0, 0);
    CHECK_INT(sim_size(sim, "s/b.box"), ==, before);
    CHECK(!tu_has(b, "x", "1"));
    CHECK_OK(bg_box_write_batch(b, w, 3));
    CHECK(tu_has(b, "z", "3"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* What a read-only store and an owned box refuse, each with its reason:
 * creating a box, writing, recovering; compacting the queue's own box
 * through bg_box_compact; opening the queue twice. */
static void test_read_only_and_owned_refusals(void)
{
    bg_sim *sim = bg_sim_new(35);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    bg_store_opts ro = tu_opts(sim, BG_DURABILITY_FULL);
    ro.read_only = 1;
    CHECK_OK(bg_store_open("s", &ro, &s));
    CHECK_ERR(bg_box_open(s, "new", BG_BOX_CREATE, &b), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "does not exist (read-only store)");
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK_ERR(tu_put(b, "k", "2"), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "is read-only");
    bg_box_report rep;
    CHECK_ERR(bg_box_recover(s, "b", &rep), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "store opened read-only");
    CHECK(tu_has(b, "k", "1"));
    CHECK_OK(bg_store_close(s));

    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    bg_queue *q, *q2;
    CHECK_OK(bg_queue_open(s, &qo, &q));
    CHECK_ERR(bg_queue_open(s, &qo, &q2), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "is already open");
    CHECK_OK(bg_box_open(s, "pending_ops", 0, &b));
    CHECK_ERR(bg_box_compact(b), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "is indexed by its owner");
    bg_queue_close(q);
    CHECK_OK(bg_store_close(s));

    bg_sim_free(sim);
}

/* Arguments at their edges, each refused with its code and nothing
 * written: names that are not box names, an empty key, an empty batch, a
 * read-only store's writes (a sync there has nothing to do). */
static void test_arguments_at_their_edges(void)
{
    bg_sim *sim = bg_sim_new(36);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    uint64_t changes = bg_sim_get_stats(sim).changes;
    char long_name[BG_BOX_NAME_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *bad[] = {NULL, "", "has space", "dot.", long_name};
    bg_box *x;
    bg_box_report rep;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_ERR(bg_box_open(s, bad[i], BG_BOX_CREATE, &x), BG_EINVALID);
        if (bad[i]) {
            CHECK_ERR(bg_box_verify(s, bad[i], &rep), BG_EINVALID);
            CHECK_ERR(bg_box_recover(s, bad[i], &rep), BG_EINVALID);
        }
    }
    uint32_t t;
    char *v;
    size_t n;
    CHECK_ERR(bg_box_get(b, "", 0, &t, &v, &n), BG_ENOTFOUND);
    CHECK_ERR(bg_box_del(b, "", 0), BG_EINVALID);
    CHECK_OK(bg_box_write_batch(b, NULL, 0));
    CHECK_OK(bg_box_sync(b)); /* nothing pending */
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes);
    CHECK_OK(bg_store_close(s));
    bg_store_opts ro = tu_opts(sim, BG_DURABILITY_GROUP);
    ro.read_only = 1;
    CHECK_OK(tu_open_box_with(&ro, "b", 0, &s, &b));
    CHECK_ERR(bg_box_del(b, "k", 1), BG_ESTATE);
    bg_write w = {0, "k", 1, 0, "2", 1};
    CHECK_ERR(bg_box_write_batch(b, &w, 1), BG_ESTATE);
    CHECK_ERR(bg_box_compact(b), BG_ESTATE);
    CHECK_OK(bg_box_sync(b));
    CHECK_OK(bg_store_sync(s));
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, changes);
    CHECK(tu_has(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_allocation_failures(void)
{
    /* Fail every allocation of a workload in turn: each run either succeeds
     * or reports BG_ENOMEM, never leaks, and the store stays readable. */
    long total = 0;
    for (long fail = 1;; fail++) {
        tu_alloc a = {.fail_at = fail};
        bg_sim *sim = bg_sim_new(10);
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        bg_store *s = NULL;
        bg_box *b;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err)
            err = bg_box_open(s, "b", BG_BOX_CREATE, &b);
        for (int i = 0; i < 70 && !err; i++)
            err = tu_put(b, key(i % 30), val(i));
        if (!err)
            err = bg_box_compact(b);
        if (!err) {
            uint32_t t;
            char *v;
            size_t n;
            err = bg_box_get(b, key(5), 2, &t, &v, &n);
            if (!err)
                bg_store_free(s, v);
        }
        if (s)
            (void)bg_store_close(s);
        CHECK_INT(a.live, ==, 0);
        if (err)
            CHECK_INT(err, ==, BG_ENOMEM);
        /* Whatever happened, a plain open reads a consistent box. */
        bg_store_opts plain = tu_opts(sim, BG_DURABILITY_FULL);
        if (!bg_store_open("s", &plain, &s)) {
            if (!bg_box_open(s, "b", 0, &b))
                CHECK_INT(bg_box_report_of(b)->status, !=, BG_BOX_CORRUPT);
            CHECK_OK(bg_store_close(s));
        }
        bg_sim_free(sim);
        if (!err && a.n < fail) { /* fewer allocations than fail: all done */
            total = fail;
            break;
        }
    }
    CHECK_INT(total, >, 10);
}

static void test_store_lists_boxes(void)
{
    bg_sim *sim = bg_sim_new(11);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "zeta", BG_BOX_CREATE, &s, &b));
    CHECK_OK(bg_box_open(s, "alpha", BG_BOX_CREATE, &b));
    char names[64] = "";
    CHECK_OK(bg_store_list_boxes(s, collect_name, names));
    CHECK_STR(names, "alpha,zeta,");
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

int main(void)
{
    RUN(test_put_get_del_iterate);
    RUN(test_refusals_change_nothing);
    RUN(test_lock_excludes_second_opener);
    RUN(test_batch_is_all_or_nothing);
    RUN(test_batch_over_the_read_window);
    RUN(test_torn_tail_is_cut_and_reported);
    RUN(test_corruption_is_detected_and_recovered);
    RUN(test_header_damage_salvages_frames);
    RUN(test_salvage_under_allocation_failures);
    RUN(test_torn_tail_with_frames_is_kept);
    RUN(test_read_verifies_the_frame);
    RUN(test_compact_keeps_live_records);
    RUN(test_group_and_off_durability);
    RUN(test_repairs_leave_exact_bytes);
    RUN(test_compaction_keeps_the_sequence_floor);
    RUN(test_reserved_box_refuses_user_writes);
    RUN(test_failed_group_sync_stops_the_box);
    RUN(test_group_gathers_then_writes_once);
    RUN(test_failed_group_write_loses_the_group);
    RUN(test_read_only_and_owned_refusals);
    RUN(test_arguments_at_their_edges);
    RUN(test_allocation_failures);
    RUN(test_store_lists_boxes);
    RUN(test_zeroed_region_ahead_of_the_log);
    RUN(test_zeroed_region_edges);
    return CHECK_DONE();
}
