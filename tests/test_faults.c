/*
 * I/O error injection: a workload of creates, puts, overwrites, deletes,
 * batches, reads, compactions and reopens runs once per I/O operation with
 * that operation failing, once with EIO and once with ENOSPC. The call that
 * meets the failure must report an error; later calls go on (or refuse with
 * a clear error). Afterwards the store must open, with every acknowledged
 * write intact: the final state is that of the workload with the failed
 * call either applied entirely or not at all, and every other failed call
 * not applied. The same holds after a power loss right after the run.
 */
#include "testutil.h"

#define NKEYS 8

enum { F_PUT, F_DEL, F_BATCH, F_GET, F_COMPACT, F_REOPEN };

typedef struct fop {
    int kind, key, key2;
    const char *val;
} fop;

static const fop ops[] = {
    {F_PUT, 0, 0, "{\"v\":0}"},
    {F_PUT, 1, 0, "[1,2,3]"},
    {F_GET, 0, 0, NULL},
    {F_PUT, 2, 0, "\"two\""},
    {F_PUT, 0, 0, "{\"v\":\"zero again\"}"},
    {F_DEL, 1, 0, NULL},
    {F_BATCH, 3, 4, "{\"batch\":true}"},
    {F_COMPACT, 0, 0, NULL},
    {F_PUT, 5, 0, "{\"after\":\"compact\"}"},
    {F_REOPEN, 0, 0, NULL},
    {F_GET, 5, 0, NULL},
    {F_DEL, 3, 0, NULL},
    {F_PUT, 6, 0, "null"},
    {F_BATCH, 7, 0, "{\"last\":1}"},
};
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

typedef struct model {
    const char *v[NKEYS];
} model;

static const char *kname(int k)
{
    static char buf[8];
    snprintf(buf, sizeof buf, "k%d", k);
    return buf;
}

static void apply(model *m, const fop *o)
{
    switch (o->kind) {
    case F_PUT:
        m->v[o->key] = o->val;
        break;
    case F_DEL:
        m->v[o->key] = NULL;
        break;
    case F_BATCH:
        m->v[o->key] = o->val;
        m->v[o->key2] = NULL; /* the batch also deletes key2 */
        break;
    }
}

static bg_err open_box(bg_sim *sim, bg_store **s, bg_box **b)
{
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, s);
    if (err) {
        *s = NULL;
        return err;
    }
    err = bg_box_open(*s, "b", BG_BOX_CREATE, b);
    if (err) {
        (void)bg_store_close(*s);
        *s = NULL;
    }
    return err;
}

static bg_err do_op(bg_sim *sim, const fop *o, bg_store **s, bg_box **b)
{
    if (!*s) { /* an earlier reopen failed: try again */
        bg_err err = open_box(sim, s, b);
        if (err)
            return err;
    }
    switch (o->kind) {
    case F_PUT:
        return tu_put(*b, kname(o->key), o->val);
    case F_DEL: {
        const char *k = kname(o->key);
        return bg_box_del(*b, k, strlen(k));
    }
    case F_BATCH: {
        char k1[8], k2[8];
        strcpy(k1, kname(o->key));
        strcpy(k2, kname(o->key2));
        bg_write w[2] = {{0, k1, strlen(k1), 0, o->val, strlen(o->val)},
                         {1, k2, strlen(k2), 0, NULL, 0}};
        return bg_box_write_batch(*b, w, 2);
    }
    case F_GET: {
        uint32_t t;
        char *v;
        size_t n;
        const char *k = kname(o->key);
        bg_err err = bg_box_get(*b, k, strlen(k), &t, &v, &n);
        if (!err)
            bg_store_free(*s, v);
        return err;
    }
    case F_COMPACT:
        return bg_box_compact(*b);
    case F_REOPEN: {
        bg_err err = bg_store_close(*s);
        *s = NULL;
        return err ? err : open_box(sim, s, b);
    }
    }
    return BG_EINVALID;
}

static int matches(bg_box *b, const model *m)
{
    for (int k = 0; k < NKEYS; k++) {
        if (m->v[k] ? !tu_has(b, kname(k), m->v[k])
                    : tu_has(b, kname(k), "\x01"))
            return 0;
        if (!m->v[k]) {
            uint32_t t;
            char *v;
            size_t n;
            if (bg_box_get(b, kname(k), 2, &t, &v, &n) != BG_ENOTFOUND)
                return 0;
        }
    }
    return 1;
}

static int runs, reported;

/* Run the workload with operation fail_at failing with err; 0 when every
 * property held. */
static int one_run(uint64_t fail_at, bg_err err, uint64_t *total_ops)
{
    bg_sim *sim = bg_sim_new(fail_at);
    bg_sim_fail_at(sim, fail_at, err);
    bg_store *s = NULL;
    bg_box *b = NULL;
    model with = {{0}}, without = {{0}};
    int hit = -1, bad = 0;
    /* Creating the store and box can meet the failure too. */
    uint64_t before = bg_sim_get_stats(sim).ops;
    bg_err e = open_box(sim, &s, &b);
    if (e && !(fail_at > before && fail_at <= bg_sim_get_stats(sim).ops))
        bad = 1; /* failed without meeting the injected error */
    for (int i = 0; i < NOPS && !bad; i++) {
        before = bg_sim_get_stats(sim).ops;
        e = do_op(sim, &ops[i], &s, &b);
        uint64_t after = bg_sim_get_stats(sim).ops;
        int met = fail_at > before && fail_at <= after;
        if (met) {
            hit = i;
            if (!e && ops[i].kind != F_REOPEN)
                bad = 2; /* the failure went unreported */
            if (e && e != err && e != BG_ESTATE && e != BG_ENOTFOUND &&
                !(ops[i].kind == F_GET && e == BG_EIO))
                bad = 3;
            apply(&with, &ops[i]);
            if (!e) /* a reopen whose failed sync had nothing to sync */
                apply(&without, &ops[i]);
        } else if (!e) {
            apply(&with, &ops[i]);
            apply(&without, &ops[i]);
        }
    }
    if (s)
        (void)bg_store_close(s);
    if (total_ops)
        *total_ops = bg_sim_get_stats(sim).ops;
    bg_sim_fail_at(sim, 0, 0);
    /* Reopen as is, then again after a power loss. */
    for (int pass = 0; pass < 2 && !bad; pass++) {
        if (pass == 1 && bg_sim_crash(sim, BG_CRASH_DROP, 1))
            bad = 4;
        if (open_box(sim, &s, &b)) {
            bad = 5;
            break;
        }
        if (bg_box_report_of(b)->status == BG_BOX_CORRUPT)
            bad = 6;
        else if (!matches(b, &without) && !matches(b, &with))
            bad = 7;
        (void)bg_store_close(s);
    }
    if (bad && reported++ < 10)
        fprintf(stderr,
                "fault at op %llu (%s), during workload op %d: "
                "property %d violated\n",
                (unsigned long long)fail_at, bg_err_name(err), hit, bad);
    runs++;
    bg_sim_free(sim);
    return bad;
}

static void test_every_operation_fails_once(void)
{
    uint64_t total = 0;
    CHECK_INT(one_run(0, 0, &total), ==, 0);
    CHECK_INT(total, >, 50);
    int failures = 0;
    for (uint64_t n = 1; n <= total; n++) {
        failures += one_run(n, BG_EIO, NULL) != 0;
        failures += one_run(n, BG_ENOSPACE, NULL) != 0;
    }
    printf("fault runs: %d over %llu I/O operations, failures: %d\n", runs,
           (unsigned long long)total, failures);
    CHECK_INT(failures, ==, 0);
}

/* ---- the read and repair paths under faults ---------------------------- */

static int count_fn(void *arg, const bg_record *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

/* A store with a plain box p, a sealed box e and a plain box d damaged in
 * the middle, each of keys k0..k9 with known values. */
static const char *rval(char box, int i)
{
    static char v[128];
    snprintf(v, sizeof v, "{\"box\":\"%c\",\"i\":%d,\"pad\":\"%0*d\"}", box, i,
             i * 7, 0);
    return v;
}

static bg_err read_setup(bg_sim *sim)
{
    bg_store *s;
    bg_box *b;
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, &s);
    const char *boxes = "ped";
    for (int x = 0; x < 3 && !err; x++) {
        char name[2] = {boxes[x], 0};
        err = bg_box_open(
            s, name, BG_BOX_CREATE | (boxes[x] == 'e' ? BG_BOX_ENCRYPT : 0),
            &b);
        for (int i = 0; i < 10 && !err; i++)
            err = tu_put(b, kname(i), rval(boxes[x], i));
    }
    if (s)
        (void)bg_store_close(s);
    uint8_t *f;
    size_t n;
    if (!err)
        err = bg_sim_read_file(sim, "s/d.box", &f, &n);
    if (!err) {
        f[n / 2] ^= 0x08; /* a frame in the middle */
        err = bg_sim_write_file(sim, "s/d.box", f, n);
        free(f);
    }
    return err;
}

/* Verify, open, read, iterate, recover, compact (re-sealing) and rekey;
 * every error is a reported one. Returns how many calls failed. */
static int read_workload(bg_sim *sim)
{
    bg_store *s;
    bg_box *b;
    int failed = 0;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return 1;
    bg_box_report rep;
    const char *names[] = {"p", "e", "d"};
    for (int x = 0; x < 3; x++)
        failed += bg_box_verify(s, names[x], &rep) != 0;
    for (int x = 0; x < 3; x++) {
        if (bg_box_open(s, names[x], 0, &b)) {
            failed++;
            continue;
        }
        for (int i = 0; i < 10; i++) {
            uint32_t t;
            char *v;
            size_t n;
            bg_err e = bg_box_get(b, kname(i), strlen(kname(i)), &t, &v, &n);
            if (!e)
                bg_store_free(s, v);
            failed += e != 0 && e != BG_ENOTFOUND;
        }
        int count = 0;
        failed += bg_box_iterate(b, count_fn, &count) != 0;
    }
    failed += bg_box_recover(s, "d", &rep) != 0;
    if (!bg_box_open(s, "e", 0, &b))
        failed += bg_box_compact(b) != 0;
    bg_rekey_report rk;
    failed += bg_rekey_run(s, &rk) != 0;
    failed += bg_store_close(s) != 0;
    /* Startup validation reads every box again: an error it meets is an
     * error or a finding, never "ready". */
    bg_validation v;
    bg_validate_opts vo = {bg_sim_vfs(sim), NULL, 0};
    failed += bg_validate("s", &vo, &v) != 0 || v.status != BG_READY;
    return failed;
}

/* After the faulty run, with a sound disk: every box opens, p and e hold
 * all their records, d at most its written ones, each with its value. */
static const char *read_check(bg_sim *sim)
{
    bg_store *s;
    bg_box *b;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return "store does not open";
    const char *bad = NULL;
    const char *boxes = "ped";
    for (int x = 0; x < 3 && !bad; x++) {
        char name[2] = {boxes[x], 0};
        if (bg_box_open(s, name, 0, &b)) {
            bad = "a box does not open";
            break;
        }
        for (int i = 0; i < 10 && !bad; i++) {
            uint32_t t;
            char *v;
            size_t n;
            bg_err e = bg_box_get(b, kname(i), strlen(kname(i)), &t, &v, &n);
            if (!e) {
                if (n != strlen(rval(boxes[x], i)) ||
                    memcmp(v, rval(boxes[x], i), n))
                    bad = "a record reads back wrong";
                bg_store_free(s, v);
            } else if (boxes[x] != 'd') {
                bad = "a record of an undamaged box is gone";
            }
        }
    }
    (void)bg_store_close(s);
    return bad;
}

static void test_read_paths_under_faults(void)
{
    bg_sim *counter = bg_sim_new(3);
    CHECK_OK(read_setup(counter));
    uint64_t base = bg_sim_get_stats(counter).ops;
    CHECK_INT(read_workload(counter), ==, 0); /* damage is an answer */
    uint64_t total = bg_sim_get_stats(counter).ops - base;
    bg_sim_free(counter);
    CHECK_INT(total, >, 50);
    int said = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int e = 0; e < 2; e++) {
            bg_sim *sim = bg_sim_new(3);
            CHECK_OK(read_setup(sim));
            bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + n,
                           e ? BG_ENOSPACE : BG_EIO);
            said += read_workload(sim) > 0;
            bg_sim_fail_at(sim, 0, 0);
            const char *bad = read_check(sim);
            if (bad)
                fprintf(stderr, "op %llu failing (%s): %s\n",
                        (unsigned long long)n, e ? "ENOSPC" : "EIO", bad);
            CHECK(!bad);
            bg_sim_free(sim);
        }
    }
    printf("  read paths: %llu operations failed in turn, %d runs reported "
           "it\n",
           (unsigned long long)total, said);
    CHECK_INT(said, ==, 2 * (int)total); /* no failure swallowed */
}

/* The queue: enqueue, lease, ack, nack to failure, retry, purge, the lock
 * and compaction, with each I/O operation failing in turn. Returns how
 * many calls reported an error. */
static int queue_workload(bg_sim *sim)
{
    bg_store *s;
    bg_queue *q;
    int failed = 0;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return 1;
    bg_queue_opts o;
    bg_queue_opts_init(&o);
    o.max_attempts = 2;
    if (bg_queue_open(s, &o, &q)) {
        (void)bg_store_close(s);
        return 1;
    }
    uint64_t id[3] = {0};
    const char *idem[] = {"qa", "qb", "qc"};
    for (int i = 0; i < 3; i++)
        failed +=
            bg_queue_enqueue(q, i == 2 ? BG_LANE_EMERGENCY : BG_LANE_NORMAL,
                             idem[i], "{\"n\":1}", 7, &id[i]) != 0;
    bg_queue_op op;
    bg_err e = bg_queue_lease(q, &op);
    failed += e != 0;
    if (!e)
        failed += bg_queue_ack(q, op.id) != 0;
    bg_queue_op_clear(&op);
    int gone = 0;
    for (int i = 0; i < 2; i++)
        failed += bg_queue_nack(q, id[0], "HTTP 503", &gone) != 0;
    uint64_t again, purged;
    failed += bg_queue_retry(q, "qa", &again) != 0;
    failed += bg_queue_purge(q, &purged) != 0;
    int stale;
    failed += bg_queue_lock(q, "worker", &stale) != 0;
    failed += bg_queue_unlock(q, "worker") != 0;
    failed += bg_queue_compact(q) != 0;
    failed += bg_queue_close(q) != 0;
    failed += bg_store_close(s) != 0;
    return failed;
}

/* After the faulty run, on a sound disk: the queue opens, and every op in
 * it is one that was enqueued, each idempotency key at most once. */
static const char *queue_check(bg_sim *sim)
{
    bg_store *s;
    bg_queue *q;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return "store does not open";
    bg_queue_opts o;
    bg_queue_opts_init(&o);
    if (bg_queue_open(s, &o, &q)) {
        (void)bg_store_close(s);
        return "queue does not open";
    }
    const char *bad = NULL;
    int seen[3] = {0};
    bg_queue_op op;
    bg_err e;
    while (!bad && !(e = bg_queue_lease(q, &op))) {
        int k = op.idem && strlen(op.idem) == 2 && op.idem[0] == 'q'
                    ? op.idem[1] - 'a'
                    : -1;
        if (k < 0 || k > 2 || seen[k]++)
            bad = "an op that was not enqueued, or one twice";
        else if (op.payload_len != 7 || memcmp(op.payload, "{\"n\":1}", 7))
            bad = "an op's payload changed";
        else if (bg_queue_ack(q, op.id))
            bad = "an op cannot be acked";
        bg_queue_op_clear(&op);
    }
    if (!bad && e != BG_ENOTFOUND)
        bad = "lease fails";
    bg_queue_close(q);
    (void)bg_store_close(s);
    return bad;
}

static void test_queue_under_faults(void)
{
    bg_sim *counter = bg_sim_new(4);
    uint64_t base = bg_sim_get_stats(counter).ops;
    CHECK_INT(queue_workload(counter), ==, 0);
    uint64_t total = bg_sim_get_stats(counter).ops - base;
    bg_sim_free(counter);
    CHECK_INT(total, >, 30);
    int said = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int e = 0; e < 2; e++) {
            bg_sim *sim = bg_sim_new(4);
            bg_sim_fail_at(sim, n, e ? BG_ENOSPACE : BG_EIO);
            int w = queue_workload(sim);
            said += w > 0;
            if (!w)
                fprintf(stderr,
                        "queue, op %llu failing (%s): no call said so\n",
                        (unsigned long long)n, e ? "ENOSPC" : "EIO");
            bg_sim_fail_at(sim, 0, 0);
            const char *bad = queue_check(sim);
            if (bad)
                fprintf(stderr, "queue, op %llu failing (%s): %s\n",
                        (unsigned long long)n, e ? "ENOSPC" : "EIO", bad);
            CHECK(!bad);
            bg_sim_free(sim);
        }
    }
    printf("  queue: %llu operations failed in turn, %d runs reported it\n",
           (unsigned long long)total, said);
    CHECK_INT(said, ==, 2 * (int)total); /* no failure swallowed */
}

int main(void)
{
    RUN(test_every_operation_fails_once);
    RUN(test_read_paths_under_faults);
    RUN(test_queue_under_faults);
    return CHECK_DONE();
}
