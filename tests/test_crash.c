/*
 * Crash-point enumeration for box workloads on the simulated disk.
 *
 * Each workload (puts, overwrites, deletes, batches, compactions, reopens)
 * runs once to count its state-changing I/O operations. Then, for every
 * operation n and every crash mode (several seeds for the random ones), the
 * workload runs again with the disk frozen after operation n, power is cut,
 * and the store is reopened. The reopened box must hold exactly the state
 * after some prefix of the workload that includes every operation
 * acknowledged as durable and nothing beyond the one in flight:
 *   - FULL: every put, delete and batch that returned success, with its
 *     exact bytes, and at most the one that was interrupted;
 *   - GROUP: everything up to the last sync, then a prefix of the rest.
 * The box must not be reported corrupt, must accept a new write, and that
 * write must survive a reopen.
 *
 * The same enumeration covers key rotation, the queue, and migrations (a
 * migration adding a required field, with its backup, dry run, migrate,
 * verify and commit, and the rollback of a committed one): after the crash
 * startup validation says the store is ready or needs recovery (never
 * anything else), a writable open leaves every record entirely at the old
 * or entirely at the new version with the schema version to match, and
 * validation then says ready at that version.
 */
#include "testutil.h"
#include "boxfile.h"

#include "migrate_fixture.h"
#include "queue_model.h"
#include "box_int.h"

#define NKEYS  12
#define MAXOPS 64
#define SEEDS  6

enum { W_PUT, W_DEL, W_BATCH, W_COMPACT, W_REOPEN, W_SYNC };

typedef struct wop {
    int kind;
    int n; /* writes in this op (1, or 2..4 for a batch) */
    int key[4];
    int del[4];
    char *val[4];
} wop;

typedef struct workload {
    const char *name;
    bg_durability dur;
    unsigned group_size;
    unsigned zero_step; /* keep a zeroed region of this many bytes ahead */
    wop ops[MAXOPS];
    int nops;
} workload;

typedef struct model {
    const char *v[NKEYS];
} model;

static unsigned long long states, violations;

static uint64_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static char *make_value(int op, int k, int size)
{
    char *v = malloc((size_t)size + 64);
    int n = snprintf(v, 64, "{\"op\":%d,\"k\":%d,\"pad\":\"", op, k);
    memset(v + n, 'a' + (op + k) % 26, (size_t)size);
    strcpy(v + n + size, "\"}");
    return v;
}

static void apply(model *m, const wop *o)
{
    if (o->kind != W_PUT && o->kind != W_DEL && o->kind != W_BATCH)
        return;
    for (int i = 0; i < o->n; i++)
        m->v[o->key[i]] = o->del[i] ? NULL : o->val[i];
}

/* A random workload; compaction, reopen and batches at fixed places so
 * that every kind of operation is covered. */
static void generate(workload *w, uint64_t seed, int nops)
{
    static const int sizes[] = {4, 180, 700, 1500};
    model m = {0};
    w->nops = nops;
    for (int i = 0; i < nops; i++) {
        wop *o = &w->ops[i];
        memset(o, 0, sizeof *o);
        int r = (int)(rnd(&seed) % 100);
        if (i % 13 == 7)
            r = 90; /* compact */
        else if (i % 17 == 11)
            r = 96; /* reopen */
        else if (i % 9 == 4)
            r = 75; /* batch */
        if (r < 60 || r >= 98) {
            o->kind = W_PUT;
        } else if (r < 70) {
            o->kind = W_DEL;
        } else if (r < 85) {
            o->kind = W_BATCH;
        } else if (r < 93) {
            o->kind = W_COMPACT;
        } else {
            o->kind =
                w->dur == BG_DURABILITY_GROUP && r == 97 ? W_SYNC : W_REOPEN;
        }
        if (o->kind == W_PUT || o->kind == W_DEL || o->kind == W_BATCH) {
            o->n = o->kind == W_BATCH ? 2 + (int)(rnd(&seed) % 3) : 1;
            for (int j = 0; j < o->n; j++) {
                int k = (int)(rnd(&seed) % NKEYS);
                int del = o->kind == W_DEL ||
                          (o->kind == W_BATCH && rnd(&seed) % 4 == 0);
                if (o->kind == W_DEL && !m.v[k]) {
                    /* delete something that exists, or put instead */
                    for (int t = 0; t < NKEYS && !m.v[k]; t++)
                        k = (k + 1) % NKEYS;
                    if (!m.v[k])
                        o->kind = W_PUT, del = 0;
                }
                o->key[j] = k;
                o->del[j] = del;
                if (!del)
                    o->val[j] = make_value(i, k, sizes[rnd(&seed) % 4]);
            }
        }
        apply(&m, o);
    }
}

static void release(workload *w)
{
    for (int i = 0; i < w->nops; i++)
        for (int j = 0; j < 4; j++)
            free(w->ops[i].val[j]);
}

static const char *kname(int k)
{
    static char buf[8];
    snprintf(buf, sizeof buf, "key%d", k);
    return buf;
}

typedef struct outcome {
    int box_made;  /* the box's creation was acknowledged */
    int durable;   /* ops[0..durable) are promised durable */
    int attempted; /* ops[0..attempted) were started */
    int failed;    /* the last one attempted returned an error */
} outcome;

static bg_err open_box(bg_sim *sim, const workload *w, bg_store **s, bg_box **b)
{
    bg_store_opts o = tu_opts(sim, w->dur);
    if (w->group_size)
        o.group_size = w->group_size;
    bg_err err = bg_store_open("s", &o, s);
    if (err)
        return err;
    err = bg_box_open(*s, "b", BG_BOX_CREATE, b);
    if (!err && w->zero_step)
        bg__box_keep_zeroed(*b, w->zero_step, w->zero_step);
    if (err) {
        (void)bg_store_close(*s);
        *s = NULL;
    }
    return err;
}

static bg_err do_op(bg_sim *sim, const workload *w, const wop *o, bg_store **s,
                    bg_box **b)
{
    switch (o->kind) {
    case W_PUT:
        return tu_put(*b, kname(o->key[0]), o->val[0]);
    case W_DEL: {
        const char *k = kname(o->key[0]);
        return bg_box_del(*b, k, strlen(k));
    }
    case W_BATCH: {
        bg_write wr[4];
        char keys[4][8];
        for (int i = 0; i < o->n; i++) {
            strcpy(keys[i], kname(o->key[i]));
            wr[i] = (bg_write){
                o->del[i], keys[i],   strlen(keys[i]),
                0,         o->val[i], o->val[i] ? strlen(o->val[i]) : 0};
        }
        return bg_box_write_batch(*b, wr, (size_t)o->n);
    }
    case W_COMPACT:
        return bg_box_compact(*b);
    case W_SYNC:
        return bg_store_sync(*s);
    case W_REOPEN: {
        bg_err err = bg_store_close(*s);
        *s = NULL;
        if (err)
            return err;
        return open_box(sim, w, s, b);
    }
    }
    return BG_EINVALID;
}

static void run(bg_sim *sim, const workload *w, outcome *out)
{
    bg_store *s = NULL;
    bg_box *b = NULL;
    memset(out, 0, sizeof *out);
    if (open_box(sim, w, &s, &b))
        return;
    out->box_made = 1;
    unsigned gathered = 0; /* GROUP: writes since the last sync */
    for (int i = 0; i < w->nops; i++) {
        out->attempted = i + 1;
        if (do_op(sim, w, &w->ops[i], &s, &b)) {
            out->failed = 1;
            break;
        }
        int kind = w->ops[i].kind;
        if (kind == W_PUT || kind == W_DEL || kind == W_BATCH)
            gathered += (unsigned)w->ops[i].n;
        /* On the sim the sync is the closing write's own (no thread), so
         * the write that fills a group returns with it durable. */
        if (w->dur == BG_DURABILITY_FULL || kind == W_COMPACT ||
            kind == W_REOPEN || kind == W_SYNC ||
            (w->dur == BG_DURABILITY_GROUP &&
             gathered >= (w->group_size ? w->group_size : 100))) {
            out->durable = i + 1;
            gathered = 0;
        }
    }
    if (s)
        (void)bg_store_close(s);
}

static int iter_count(void *arg, const bg_record *r)
{
    (void)r;
    (*(size_t *)arg)++;
    return 0;
}

/* 1 when box b holds exactly the state m. */
static int matches(bg_box *b, const model *m)
{
    size_t want = 0, got = 0;
    for (int k = 0; k < NKEYS; k++) {
        const char *kn = kname(k);
        uint32_t t;
        char *v;
        size_t n;
        bg_err err = bg_box_get(b, kn, strlen(kn), &t, &v, &n);
        if (m->v[k]) {
            want++;
            if (err || n != strlen(m->v[k]) || memcmp(v, m->v[k], n)) {
                if (!err)
                    free(v);
                return 0;
            }
            free(v);
        } else if (err != BG_ENOTFOUND) {
            if (!err)
                free(v);
            return 0;
        }
    }
    if (bg_box_iterate(b, iter_count, &got))
        return 0;
    return got == want;
}

static void violation(const char *name, uint64_t n, int mode, uint64_t seed,
                      const char *what)
{
    if (violations++ < 10)
        fprintf(stderr,
                "VIOLATION %s: crash after op %llu, mode %d, seed %llu: %s\n",
                name, (unsigned long long)n, mode, (unsigned long long)seed,
                what);
}

/* One durable workload of the enumeration. */
typedef struct scenario {
    const char *name;
    int (*setup)(bg_sim *sim); /* before the counted operations; optional */
    void (*run)(bg_sim *sim, void *ctx); /* until done or the disk freezes */
    const char *(*clean)(void *ctx);     /* an uncrashed run went as planned? */
    const char *(*check)(bg_sim *sim, void *ctx); /* after the power cut */
    void *ctx;
} scenario;

/* Run sc once to count its state-changing I/O operations, then once per
 * operation n, crash mode and seed: freeze the disk after operation n, cut
 * the power, and check what is left. */
static void enumerate_crashes(const scenario *sc)
{
    unsigned long long before = states;
    bg_sim *sim = bg_sim_new(1);
    const char *bad = sc->setup && sc->setup(sim) ? "setup fails" : NULL;
    uint64_t base = bg_sim_get_stats(sim).changes;
    if (!bad) {
        sc->run(sim, sc->ctx);
        bad = sc->clean(sc->ctx);
    }
    uint64_t total = bg_sim_get_stats(sim).changes - base;
    if (!bad)
        bad = sc->check(sim, sc->ctx);
    bg_sim_free(sim);
    if (bad)
        violation(sc->name, 0, -1, 0, bad);
    for (uint64_t n = 1; n <= total; n++) {
        for (int mode = 0; mode < BG_CRASH_MODES; mode++) {
            int seeds = mode == BG_CRASH_DROP ? 1 : SEEDS;
            for (int sd = 0; sd < seeds; sd++) {
                uint64_t seed = n * 1000 + (uint64_t)sd;
                sim = bg_sim_new(seed);
                bad = sc->setup && sc->setup(sim) ? "setup fails" : NULL;
                if (!bad) {
                    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + n);
                    sc->run(sim, sc->ctx);
                    states++;
                    bad = bg_sim_crash(sim, (bg_crash_mode)mode, seed)
                              ? "sim out of memory"
                              : sc->check(sim, sc->ctx);
                }
                if (bad)
                    violation(sc->name, n, mode, seed, bad);
                bg_sim_free(sim);
            }
        }
    }
    printf("  %-24s %4llu I/O operations, %6llu crash states\n", sc->name,
           (unsigned long long)total, states - before);
}

typedef struct box_ctx {
    const workload *w;
    outcome oc;
} box_ctx;

static void box_run(bg_sim *sim, void *ctx)
{
    box_ctx *c = ctx;
    run(sim, c->w, &c->oc);
}

static const char *box_clean(void *ctx)
{
    const box_ctx *c = ctx;
    if (c->oc.attempted != c->w->nops || c->oc.failed || !c->oc.box_made)
        return "workload fails without a crash";
    return NULL;
}

static const char *box_check(bg_sim *sim, void *ctx)
{
    const box_ctx *c = ctx;
    const workload *w = c->w;
    bg_store *s;
    bg_box *b;
    bg_store_opts o = tu_opts(sim, w->dur);
    if (bg_store_open("s", &o, &s))
        return "store does not open";
    const char *bad = NULL;
    bg_err err = bg_box_open(s, "b", 0, &b);
    if (err == BG_ENOTFOUND && !c->oc.box_made)
        goto out;
    if (err) {
        bad = "box does not open";
        goto out;
    }
    if (bg_box_report_of(b)->status == BG_BOX_CORRUPT) {
        bad = "box reported corrupt after a crash";
        goto out;
    }
    /* The state must be that after ops[0..j) for some j in
     * [durable, attempted]. */
    model m = {0};
    int ok = 0;
    for (int j = 0; j <= c->oc.attempted && !ok; j++) {
        if (j > 0)
            apply(&m, &w->ops[j - 1]);
        if (j >= c->oc.durable)
            ok = matches(b, &m);
    }
    if (!ok) {
        bad = "state is not that of an allowed prefix of the workload";
        goto out;
    }
    (void)bg_store_close(s);
    s = NULL;
    /* The repair left exact bytes: the file ends where its last frame
     * ends, verifies clean, and another writable open changes no byte. */
    bad = tu_repaired_exactly(sim, &o, "s", "b");
    if (bad)
        goto out;
    if (bg_store_open("s", &o, &s) || bg_box_open(s, "b", 0, &b)) {
        bad = "box does not open again";
        goto out;
    }
    err = tu_put(b, "post", "{\"after\":true}");
    bg_err cerr = bg_store_close(s);
    s = NULL;
    if (err || cerr)
        return "no write possible after the crash";
    if (bg_store_open("s", &o, &s) || bg_box_open(s, "b", 0, &b) ||
        !tu_has(b, "post", "{\"after\":true}") ||
        bg_box_report_of(b)->status != BG_BOX_CLEAN)
        bad = "write after the crash was lost";
out:
    if (s)
        (void)bg_store_close(s);
    return bad;
}

static void enumerate(const workload *w)
{
    box_ctx c = {.w = w};
    scenario sc = {w->name, NULL, box_run, box_clean, box_check, &c};
    enumerate_crashes(&sc);
}

static workload wl;

static void test_full_durability_workloads(void)
{
    static const char *names[] = {"full/a", "full/b", "full/c", "full/d"};
    for (int i = 0; i < 4; i++) {
        memset(&wl, 0, sizeof wl);
        wl.name = names[i];
        wl.dur = BG_DURABILITY_FULL;
        generate(&wl, 100 + (uint64_t)i, 40);
        enumerate(&wl);
        release(&wl);
    }
    CHECK_INT(violations, ==, 0);
}

static void test_group_durability_workloads(void)
{
    static const char *names[] = {"group/a", "group/b"};
    for (int i = 0; i < 2; i++) {
        memset(&wl, 0, sizeof wl);
        wl.name = names[i];
        wl.dur = BG_DURABILITY_GROUP;
        wl.group_size = 3;
        generate(&wl, 200 + (uint64_t)i, 40);
        enumerate(&wl);
        release(&wl);
    }
    CHECK_INT(violations, ==, 0);
}

/* Appends that overwrite a zeroed region kept ahead of the log: crashes
 * while it is extended (its zeros torn, dropped or half written) and
 * frames torn into it. A small step extends it every few writes. */
static void test_zeroed_tail_workloads(void)
{
    static const char *names[] = {"zeroed/full", "zeroed/group"};
    for (int i = 0; i < 2; i++) {
        memset(&wl, 0, sizeof wl);
        wl.name = names[i];
        wl.dur = i ? BG_DURABILITY_GROUP : BG_DURABILITY_FULL;
        wl.group_size = 3;
        wl.zero_step = 700;
        generate(&wl, 300 + (uint64_t)i, 40);
        enumerate(&wl);
        release(&wl);
    }
    CHECK_INT(violations, ==, 0);
}

/* ---- key rotation ------------------------------------------------------ */

static const char *rk_boxes[] = {"a", "b", "p"};
static const int rk_sealed[] = {1, 1, 0};

static const char *rk_value(int box, int i)
{
    static char v[1200];
    int pad = (box * 7 + i * 333) % 1000;
    snprintf(v, sizeof v, "{\"box\":%d,\"i\":%d,\"pad\":\"%.*s\"}", box, i, pad,
             "");
    char *end = v + strlen(v) - 2;
    memmove(end + pad, end, 3);
    memset(end, 'x', (size_t)pad);
    return v;
}

static int rk_setup(bg_sim *sim)
{
    bg_store *s;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return -1;
    for (int bx = 0; bx < 3; bx++) {
        bg_box *b;
        if (bg_box_open(s, rk_boxes[bx],
                        BG_BOX_CREATE | (rk_sealed[bx] ? BG_BOX_ENCRYPT : 0),
                        &b))
            return -1;
        for (int i = 0; i < 4 - bx; i++) {
            char k[16];
            snprintf(k, sizeof k, "r%d", i);
            if (tu_put(b, k, rk_value(bx, i)))
                return -1;
        }
    }
    return bg_store_close(s);
}

/* Every box opens under a key the store has and holds its records. */
static const char *rk_check(bg_sim *sim)
{
    bg_store *s;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return "store does not open";
    const char *bad = NULL;
    for (int bx = 0; bx < 3 && !bad; bx++) {
        bg_box *b;
        if (bg_box_open(s, rk_boxes[bx], 0, &b)) {
            bad = "a box does not open under any key of the store";
            break;
        }
        if (bg_box_report_of(b)->status != BG_BOX_CLEAN)
            bad = "a box is damaged after the crash";
        bg_box_stats st;
        bg_box_stats_of(b, &st);
        if ((int)st.records != 4 - bx)
            bad = "records lost or added";
        for (int i = 0; i < 4 - bx && !bad; i++) {
            char k[16];
            snprintf(k, sizeof k, "r%d", i);
            if (!tu_has(b, k, rk_value(bx, i)))
                bad = "a record changed";
        }
    }
    (void)bg_store_close(s);
    return bad;
}

static void rk_run(bg_sim *sim, void *ctx)
{
    bg_rekey_report *rep = ctx;
    bg_store *s;
    memset(rep, 0, sizeof *rep);
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return;
    if (bg_rekey_run(s, rep)) {
        /* cut short by the frozen disk */
    }
    (void)bg_store_close(s);
}

static const char *rk_clean(void *ctx)
{
    const bg_rekey_report *rep = ctx;
    return rep->resealed == 2 ? NULL : "rekey does not re-seal both boxes";
}

/* After the crash: every box readable under a key the store has; then a
 * second rekey finishes, leaving one key and every box on it. */
static const char *rk_after(bg_sim *sim, void *ctx)
{
    (void)ctx;
    const char *bad = rk_check(sim);
    bg_store *s;
    bg_rekey_report rep;
    if (!bad) {
        if (tu_open(sim, BG_DURABILITY_FULL, &s) || bg_rekey_run(s, &rep) ||
            bg_store_close(s))
            bad = "rekey does not finish after the crash";
        else if (rep.boxes != 2)
            bad = "a sealed box went missing";
    }
    if (!bad)
        bad = rk_check(sim);
    int keys = 0;
    for (int g = 1; g <= 4 && !bad; g++) {
        char path[32];
        uint8_t *k;
        size_t kn;
        snprintf(path, sizeof path, "s/keys/%d.key", g);
        if (!bg_sim_read_file(sim, path, &k, &kn)) {
            keys++;
            free(k);
        }
    }
    if (!bad && keys != 1)
        bad = "more than one key left after rotation";
    return bad;
}

static void test_rekey_workload(void)
{
    bg_rekey_report rep;
    scenario sc = {"rekey", rk_setup, rk_run, rk_clean, rk_after, &rep};
    enumerate_crashes(&sc);
    CHECK_INT(violations, ==, 0);
}

/* ---- the first sealed box: its key file and keys/ ----------------------- */

/* A store's first sealed box makes keys/, the key file and the box, then
 * one put: after a crash at any of its operations, a put that returned is
 * readable, which needs the key and its directory entry to be durable
 * before the box is. */
typedef struct first_ctx {
    int put_done;
    bg_err err;
} first_ctx;

static void first_run(bg_sim *sim, void *ctx)
{
    first_ctx *c = ctx;
    bg_store *s;
    bg_box *b;
    c->put_done = 0;
    c->err = tu_open(sim, BG_DURABILITY_FULL, &s);
    if (c->err)
        return;
    c->err = bg_box_open(s, "a", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b);
    if (!c->err)
        c->err = tu_put(b, "k", "{\"secret\":1}");
    if (!c->err)
        c->put_done = 1;
    (void)bg_store_close(s);
}

static const char *first_clean(void *ctx)
{
    const first_ctx *c = ctx;
    return c->err || !c->put_done ? "the uncrashed run fails" : NULL;
}

static const char *first_check(bg_sim *sim, void *ctx)
{
    const first_ctx *c = ctx;
    bg_store *s;
    bg_box *b;
    if (tu_open(sim, BG_DURABILITY_FULL, &s))
        return "store does not open";
    const char *bad = NULL;
    bg_err err = bg_box_open(s, "a", 0, &b);
    if (err == BG_ENOTFOUND && !c->put_done)
        bad = NULL;
    else if (err)
        bad = "the sealed box does not open (its key is gone?)";
    else if (c->put_done && !tu_has(b, "k", "{\"secret\":1}"))
        bad = "an acknowledged sealed put is lost";
    (void)bg_store_close(s);
    return bad;
}

static void test_first_sealed_box_workload(void)
{
    first_ctx c = {0};
    scenario sc = {"first sealed box", NULL,        first_run,
                   first_clean,        first_check, &c};
    enumerate_crashes(&sc);
    CHECK_INT(violations, ==, 0);
}

/* ---- the queue ----------------------------------------------------------- */

/* The model's ops, and two that change no state. */
enum {
    Q_ENQ = QM_ENQ,
    Q_ACK = QM_ACK,
    Q_NACK = QM_NACK,
    Q_RETRY = QM_RETRY,
    Q_HOLD = QM_HOLD,
    Q_REOPEN = 100,
    Q_COMPACT
};
typedef qm_op qop;
#define QN            QM_KEYS
#define QMAX_ATTEMPTS 2

static const qop qwork[] = {
    {Q_ENQ, 0, 0, 0, 0},     {Q_ENQ, 1, 0, 0, 0},  {Q_ENQ, 2, 1, 0, 0},
    {Q_ENQ, 1, 0, 0, 0},     {Q_ACK, 0, 0, 0, 0},  {Q_ENQ, 3, 0, 0, 0},
    {Q_NACK, 0, 0, 0, 0},    {Q_NACK, 0, 0, 0, 0}, {Q_ENQ, 4, 1, 0, 0},
    {Q_REOPEN, 0, 0, 0, 0},  {Q_ACK, 0, 0, 0, 0},  {Q_COMPACT, 0, 0, 0, 0},
    {Q_RETRY, 0, 0, 0, 0},   {Q_ENQ, 5, 0, 0, 0},  {Q_ACK, 0, 0, 0, 0},
    {Q_NACK, 0, 0, 0, 0},    {Q_ENQ, 2, 0, 0, 0},  {Q_ACK, 0, 0, 0, 0},
    {Q_ENQ, 6, 1, 0, 0},     {Q_ACK, 0, 0, 0, 0},  {Q_REOPEN, 0, 0, 0, 0},
    {Q_ACK, 0, 0, 0, 0},     {Q_ENQ, 7, 0, 0, 0},  {Q_NACK, 0, 0, 0, 0},
    {Q_COMPACT, 0, 0, 0, 0}, {Q_NACK, 0, 0, 0, 0}, {Q_HOLD, 0, 0, 0, 0},
    {Q_ENQ, 8, 1, 0, 0},     {Q_HOLD, 0, 0, 0, 0}, {Q_REOPEN, 0, 0, 0, 0},
    {Q_ACK, 0, 0, 0, 0},     {Q_HOLD, 0, 0, 0, 0}, {Q_ENQ, 9, 0, 0, 0},
};
#define QWORK ((int)(sizeof qwork / sizeof qwork[0]))

static const char *qidem(int i)
{
    static char b[16];
    snprintf(b, sizeof b, "op-%d", i);
    return b;
}

static void qpayload(int i, char *out, size_t cap)
{
    snprintf(out, cap, "{\"idem\":%d,\"body\":\"%0*d\"}", i, 100 + i * 90, i);
}

static bg_err qopen_store(bg_sim *sim, bg_store **s, bg_queue **q)
{
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, s);
    if (err)
        return err;
    bg_queue_opts o;
    bg_queue_opts_init(&o);
    o.max_attempts = QMAX_ATTEMPTS;
    err = bg_queue_open(*s, &o, q);
    if (err) {
        (void)bg_store_close(*s);
        *s = NULL; /* the caller must not close it again */
    }
    return err;
}

/* Runs the workload; returns the number of ops that returned success
 * (the next one, if any, was cut short). */
static int qrun(bg_sim *sim)
{
    bg_store *s;
    bg_queue *q;
    if (qopen_store(sim, &s, &q))
        return -1;
    int done = 0;
    for (int i = 0; i < QWORK; i++) {
        const qop *o = &qwork[i];
        bg_err err = 0;
        uint64_t id;
        bg_queue_op op;
        int failed;
        char payload[1200];
        switch (o->kind) {
        case Q_ENQ:
            qpayload(o->idem, payload, sizeof payload);
            err = bg_queue_enqueue(q, (bg_lane)o->lane, qidem(o->idem), payload,
                                   strlen(payload), &id);
            if (err == BG_EEXISTS)
                err = 0;
            break;
        case Q_ACK:
        case Q_NACK:
        case Q_HOLD:
            err = bg_queue_lease(q, &op);
            if (err == BG_ENOTFOUND) {
                err = 0;
                break;
            }
            if (!err && o->kind != Q_HOLD)
                err = o->kind == Q_ACK
                          ? bg_queue_ack(q, op.id)
                          : bg_queue_nack(q, op.id, "boom", &failed);
            bg_queue_op_clear(&op);
            break;
        case Q_RETRY:
            err = bg_queue_retry(q, qidem(o->idem), &id);
            if (err == BG_ENOTFOUND || err == BG_EEXISTS)
                err = 0;
            break;
        case Q_COMPACT:
            err = bg_queue_compact(q);
            break;
        case Q_REOPEN:
            bg_queue_close(q);
            err = bg_store_close(s);
            s = NULL;
            if (!err)
                err = qopen_store(sim, &s, &q);
            break;
        }
        if (err)
            break;
        done = i + 1;
    }
    if (s) {
        bg_queue_close(q);
        (void)bg_store_close(s);
    }
    return done;
}

typedef struct qseen {
    int idem[64];
    int lane[64];
    uint64_t id[64];
    int n;
    int failed[QN];
    int bad_payload;
} qseen;

static int qfailed_fn(void *arg, const bg_queue_op *op)
{
    qseen *sn = arg;
    int i = atoi(op->idem + 3);
    if (i >= 0 && i < QN)
        sn->failed[i]++;
    return 0;
}

static const char *qcheck(bg_sim *sim, int done)
{
    bg_store *s;
    bg_queue *q;
    bg_queue_op op;
    /* What can be leased now: every pending op but those a lease taken
     * before the crash still holds. */
    int now_free[QN] = {0};
    if (qopen_store(sim, &s, &q))
        return "queue does not open";
    while (bg_queue_lease(q, &op) == 0) {
        int i = atoi(op.idem + 3);
        if (i < 0 || i >= QN || now_free[i]++)
            return "an op handed out twice";
        bg_queue_op_clear(&op);
    }
    bg_queue_close(q);
    (void)bg_store_close(s);
    /* Then without the lease log: every pending op comes out. */
    tu_forget_leases(sim, "s");
    if (qopen_store(sim, &s, &q))
        return "queue does not open";
    qseen sn = {{0}, {0}, {0}, 0, {0}, 0};
    const char *bad = NULL;
    while (!bad && sn.n < 64 && bg_queue_lease(q, &op) == 0) {
        int i = atoi(op.idem + 3);
        char payload[1200];
        qpayload(i, payload, sizeof payload);
        if (strcmp(op.payload, payload))
            bad = "a payload changed";
        sn.idem[sn.n] = i;
        sn.lane[sn.n] = op.lane;
        sn.id[sn.n] = op.id;
        sn.n++;
        bg_queue_op_clear(&op);
    }
    if (!bad && bg_queue_list_failed(q, qfailed_fn, &sn))
        bad = "failed ops unreadable";
    bg_queue_close(q);
    (void)bg_store_close(s);
    if (bad)
        return bad;
    /* Order: emergency first, ids increasing within a lane. */
    for (int k = 1; k < sn.n; k++) {
        if (sn.lane[k] > sn.lane[k - 1])
            return "emergency op served after a normal one";
        if (sn.lane[k] == sn.lane[k - 1] && sn.id[k] <= sn.id[k - 1])
            return "order within a lane not kept";
        for (int j = 0; j < k; j++)
            if (sn.idem[j] == sn.idem[k])
                return "one idempotency key pending twice";
    }
    /* State: that after `done` ops, or after the one cut short too. */
    for (int extra = 0; extra <= (done < QWORK ? 1 : 0); extra++) {
        qm_model m = {.max_attempts = QMAX_ATTEMPTS};
        for (int i = 0; i < done + extra; i++)
            qm_apply(&m, &qwork[i]);
        /* The op cut short leased first when it was an ack, nack or hold:
         * that lease may hold after the crash. */
        int cut = -1;
        if (done < QWORK &&
            (qwork[done].kind == Q_ACK || qwork[done].kind == Q_NACK ||
             qwork[done].kind == Q_HOLD)) {
            qm_model pre = {.max_attempts = QMAX_ATTEMPTS};
            for (int i = 0; i < done; i++)
                qm_apply(&pre, &qwork[i]);
            cut = qm_head(&pre);
        }
        int ok = 1, k = 0;
        for (int i = 0; i < QN && ok; i++)
            ok = now_free[i]
                     ? m.status[i] == 1
                     : m.status[i] != 1 || m.held_until[i] > m.now || i == cut;
        qm_model drain = m;
        qm_forget_leases(&drain);
        int h;
        while (ok && (h = qm_head(&drain)) >= 0) {
            ok = k < sn.n && sn.idem[k] == h && sn.lane[k] == drain.lane[h];
            drain.status[h] = 2;
            k++;
        }
        ok = ok && k == sn.n;
        for (int i = 0; i < QN && ok; i++)
            ok = sn.failed[i] == m.nfailed[i];
        if (ok)
            return NULL;
    }
    return "queue state is not that of an allowed prefix";
}

static void q_run(bg_sim *sim, void *ctx)
{
    *(int *)ctx = qrun(sim);
}

static const char *q_clean(void *ctx)
{
    return *(int *)ctx == QWORK ? NULL : "queue workload fails without a crash";
}

static const char *q_check(bg_sim *sim, void *ctx)
{
    int done = *(int *)ctx;
    return qcheck(sim, done < 0 ? 0 : done);
}

static void test_queue_workload(void)
{
    int done;
    scenario sc = {"queue", NULL, q_run, q_clean, q_check, &done};
    enumerate_crashes(&sc);
    CHECK_INT(violations, ==, 0);
}

/* ---- migrations -------------------------------------------------------- */

#define MIG_USERS 5

typedef struct mig_ctx {
    int rollback; /* run the rollback of a committed migration */
    int sealed;
    int flaky; /* a transform whose verification fails: never commits */
    bg_err err;
} mig_ctx;

static bg_err mig_flaky(bg_sim *sim)
{
    bg_store *s;
    static const char *const boxes[] = {"users"};
    bg_migration m = {"flaky", NULL, 1, 2, boxes, 1, mf_flaky, NULL, NULL};
    bg_migrate_report rep;
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, &s);
    if (!err)
        err = bg_migrate_run(s, &m, 1, NULL, &rep);
    (void)bg_store_close(s);
    return err;
}

/* The sealed variant runs with durability off: the runner must sync
 * everything it relies on itself. */
static bg_err mig_migrate(bg_sim *sim, bg_durability d)
{
    bg_store *s;
    bg_plan *p;
    bg_err err = bg_plan_parse(MF_PLAN, strlen(MF_PLAN), &p, NULL, 0);
    if (err)
        return err;
    bg_migrate_report rep;
    err = tu_open(sim, d, &s);
    if (!err)
        err = bg_migrate_run(s, bg_plan_at(p, 0), bg_plan_count(p), NULL, &rep);
    if (!err && rep.applied != 1)
        err = BG_ESTATE;
    bg_plan_free(p);
    (void)bg_store_close(s);
    return err;
}

static mig_ctx mig_setup_ctx;

static int mig_setup(bg_sim *sim)
{
    if (mf_setup(sim, MIG_USERS, mig_setup_ctx.sealed))
        return -1;
    return mig_setup_ctx.rollback ? mig_migrate(sim, BG_DURABILITY_FULL) : 0;
}

static void mig_run(bg_sim *sim, void *ctx)
{
    mig_ctx *c = ctx;
    if (c->flaky) {
        c->err = mig_flaky(sim);
        return;
    }
    if (!c->rollback) {
        c->err = mig_migrate(sim, c->sealed ? BG_DURABILITY_OFF
                                            : BG_DURABILITY_FULL);
        return;
    }
    bg_store *s;
    bg_migrate_report rep;
    c->err = tu_open(sim, BG_DURABILITY_FULL, &s);
    if (!c->err)
        c->err = bg_migrate_rollback(s, NULL, &rep);
    (void)bg_store_close(s);
}

static const char *mig_clean(void *ctx)
{
    const mig_ctx *c = ctx;
    if (c->flaky)
        return c->err == BG_ECORRUPT ? NULL
                                     : "the failing verification is not caught";
    return c->err ? "the uncrashed run fails" : NULL;
}

static const char *mig_check(bg_sim *sim, void *ctx)
{
    bg_validation v;
    bg_validate_opts vo = {bg_sim_vfs(sim), NULL, 0};
    if (bg_validate("s", &vo, &v))
        return "validate fails";
    if (v.status != BG_READY && v.status != BG_NEEDS_RECOVERY)
        return "validate says neither ready nor needs_recovery";
    uint32_t ver;
    const char *bad = mf_check(sim, MIG_USERS, &ver);
    if (bad)
        return bad;
    if (((const mig_ctx *)ctx)->flaky && ver != 1)
        return "a migration whose verification fails was committed";
    bg_registry *r;
    if (mf_registry(ver == 2 ? MF_ADAPTERS_V2 : MF_ADAPTERS_V1, &r))
        return "no registry";
    vo.registry = r;
    vo.code_version = ver;
    bad = bg_validate("s", &vo, &v) || v.status != BG_READY
              ? "not ready at its own version after a writable open"
              : NULL;
    bg_registry_free(r);
    return bad;
}

static void test_migration_workloads(void)
{
    static const char *names[] = {"migrate", "migrate sealed, dur. off",
                                  "migrate rollback", "migrate, verify fails"};
    for (int i = 0; i < 4; i++) {
        mig_ctx c = {i == 2, i == 1, i == 3, 0};
        mig_setup_ctx = c;
        scenario sc = {names[i], mig_setup, mig_run, mig_clean, mig_check, &c};
        enumerate_crashes(&sc);
    }
    CHECK_INT(violations, ==, 0);
}

static void test_enough_states(void)
{
    printf("crash states explored: %llu\n", states);
    printf("violations: %llu\n", violations);
    CHECK_INT(states, >=, 5000);
}

int main(void)
{
    RUN(test_full_durability_workloads);
    RUN(test_group_durability_workloads);
    RUN(test_zeroed_tail_workloads);
    RUN(test_rekey_workload);
    RUN(test_first_sealed_box_workload);
    RUN(test_queue_workload);
    RUN(test_migration_workloads);
    RUN(test_enough_states);
    return CHECK_DONE();
}
