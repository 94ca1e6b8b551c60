/*
 * Target Functions: bg_box_put, bg_box_del, bg_box_write_batch,
 * bg_box_compact, bg_store_sync, bg_box_open (torn-tail repair) and the
 * simulated disk's crash model.
 *
 * The input picks the durability mode and whether the box is sealed
 * (encrypted writes, re-sealing compactions), then drives a sequence of
 * puts, deletes, batches, compactions,
 * syncs, reopens and power losses (at once, or in the middle of the next
 * operation, in any crash mode) on the simulated disk, against an in-memory
 * model. Properties: without a crash every operation succeeds and the store
 * agrees with the model; after a crash the store opens, is never reported
 * corrupt, and holds exactly the state after some prefix of the operations
 * since the last durable point (FULL: every acknowledged write; GROUP and
 * OFF: every write before the last sync, compaction or reopen).
 */
#include "fuzz_helpers.h"

#define NK      8
#define MAXHIST 512

typedef struct model {
    const char *v[NK];
} model;

typedef struct hop { /* one logical operation */
    int n;
    int key[4];
    const char *val[4]; /* NULL: delete */
} hop;

typedef struct state {
    bg_sim *sim;
    bg_store_opts o;
    bg_store *s;
    bg_box *b;
    int sealed;
    model cur;     /* what every operation so far made of it */
    model durable; /* what a crash cannot take away */
    hop hist[MAXHIST];
    int nhist; /* operations since the durable point */
    char *pool[4 * MAXHIST];
    int npool;
} state;

static const char *kname(int k)
{
    static const char *names[NK] = {
        "a", "b", "c", "key-d", "e", "f", "\xc3\xa9t\xc3\xa9", "h"};
    return names[k];
}

static const char *make_value(state *st, uint8_t a, uint8_t b)
{
    if (st->npool == (int)(sizeof st->pool / sizeof *st->pool))
        return "0";
    size_t pad = (size_t)b * 9;
    char *v = malloc(pad + 64);
    FUZZ_ASSERT(v);
    int n = snprintf(v, 64, "{\"n\":%d,\"p\":\"", st->npool * 256 + a);
    memset(v + n, 'a' + a % 26, pad);
    strcpy(v + n + pad, "\"}");
    st->pool[st->npool++] = v;
    return v;
}

static void apply(model *m, const hop *h)
{
    for (int i = 0; i < h->n; i++)
        m->v[h->key[i]] = h->val[i];
}

static void reopen(state *st)
{
    FUZZ_ASSERT(bg_store_open("s", &st->o, &st->s) == 0);
    bg_err err = bg_box_open(
        st->s, "b", BG_BOX_CREATE | (st->sealed ? BG_BOX_ENCRYPT : 0), &st->b);
    FUZZ_ASSERT_MSG(err == 0, "box open: %s (%s)", bg_err_name(err),
                    bg_store_detail(st->s));
    FUZZ_ASSERT(bg_box_report_of(st->b)->status != BG_BOX_CORRUPT);
}

static int agrees(state *st, const model *m)
{
    size_t want = 0;
    for (int k = 0; k < NK; k++) {
        uint32_t t;
        char *v;
        size_t n;
        bg_err err = bg_box_get(st->b, kname(k), strlen(kname(k)), &t, &v, &n);
        if (m->v[k]) {
            want++;
            if (err)
                return 0;
            int same = n == strlen(m->v[k]) && !memcmp(v, m->v[k], n);
            bg_store_free(st->s, v);
            if (!same)
                return 0;
        } else if (err != BG_ENOTFOUND) {
            if (!err)
                bg_store_free(st->s, v);
            return 0;
        }
    }
    bg_box_stats bs;
    bg_box_stats_of(st->b, &bs);
    return bs.records == want;
}

static void durable_point(state *st)
{
    st->durable = st->cur;
    st->nhist = 0;
}

/* Power loss now; the state must be a prefix of the history. */
static void crash(state *st, int mode, uint64_t seed)
{
    FUZZ_ASSERT(tu_kill(st->sim, st->s, (bg_crash_mode)mode, seed) == 0);
    reopen(st);
    model m = st->durable;
    int found = agrees(st, &m);
    for (int j = 0; j < st->nhist && !found; j++) {
        apply(&m, &st->hist[j]);
        found = agrees(st, &m);
    }
    FUZZ_ASSERT_MSG(found,
                    "state after crash (mode %d) is no prefix of the "
                    "%d operations since the durable point",
                    mode, st->nhist);
    st->cur = m;
    durable_point(st);
}

/* Run one write; returns 0, or the error when the disk froze under it. */
static bg_err write_op(state *st, const hop *h)
{
    bg_write w[4];
    for (int i = 0; i < h->n; i++) {
        const char *k = kname(h->key[i]);
        w[i] = (bg_write){h->val[i] == NULL, k,
                          strlen(k),         0,
                          h->val[i],         h->val[i] ? strlen(h->val[i]) : 0};
    }
    bg_err err = h->n == 1 && !h->val[0]
                     ? bg_box_del(st->b, w[0].key, w[0].key_len)
                     : bg_box_write_batch(st->b, w, (size_t)h->n);
    if (st->nhist < MAXHIST)
        st->hist[st->nhist++] = *h;
    if (err) {
        FUZZ_ASSERT_MSG(bg_sim_frozen(st->sim), "write failed: %s (%s)",
                        bg_err_name(err), bg_store_detail(st->s));
        return err;
    }
    apply(&st->cur, h);
    if (st->o.durability == BG_DURABILITY_FULL || st->nhist == MAXHIST)
        durable_point(st);
    return 0;
}

static void read_hop(state *st, fuzz_producer *p, int batch, hop *h)
{
    h->n = batch ? 2 + fuzz_byte(p) % 3 : 1;
    model m = st->cur;
    for (int i = 0; i < h->n; i++) {
        uint8_t a = fuzz_byte(p), b = fuzz_byte(p);
        h->key[i] = a % NK;
        /* Deletes only of keys that exist (a missing one is refused). */
        int del = (b % 5 == 0) && (batch || m.v[h->key[i]]);
        h->val[i] = del ? NULL : make_value(st, a, b);
        m.v[h->key[i]] = h->val[i];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_producer p = {data, size};
    state *st = calloc(1, sizeof *st);
    FUZZ_ASSERT(st);
    uint8_t cfg = fuzz_byte(&p);
    bg_durability d = (bg_durability)(cfg % 3);
    st->sim = bg_sim_new(cfg);
    st->o = tu_opts(st->sim, d);
    st->o.group_size = 1 + (cfg >> 2) % 5;
    st->sealed = fuzz_byte(&p) & 1;
    reopen(st);
    durable_point(st);
    for (int step = 0; step < 150 && p.size; step++) {
        uint8_t c = fuzz_byte(&p);
        hop h;
        switch (c % 12) {
        case 0:
        case 1:
        case 2:
        case 3:
            read_hop(st, &p, 0, &h);
            FUZZ_ASSERT(write_op(st, &h) == 0);
            break;
        case 4: { /* delete, maybe of a missing key */
            int k = fuzz_byte(&p) % NK;
            if (!st->cur.v[k]) {
                FUZZ_ASSERT(bg_box_del(st->b, kname(k), strlen(kname(k))) ==
                            BG_ENOTFOUND);
                break;
            }
            h = (hop){1, {k}, {NULL}};
            FUZZ_ASSERT(write_op(st, &h) == 0);
            break;
        }
        case 5:
            read_hop(st, &p, 1, &h);
            FUZZ_ASSERT(write_op(st, &h) == 0);
            break;
        case 6:
            FUZZ_ASSERT(bg_box_compact(st->b) == 0);
            durable_point(st);
            break;
        case 7:
            FUZZ_ASSERT(bg_store_sync(st->s) == 0);
            durable_point(st);
            break;
        case 8:
            FUZZ_ASSERT(bg_store_close(st->s) == 0);
            reopen(st);
            durable_point(st);
            FUZZ_ASSERT(agrees(st, &st->cur));
            break;
        case 9: {
            uint8_t m = fuzz_byte(&p);
            crash(st, m % BG_CRASH_MODES, m);
            break;
        }
        case 10: { /* power loss in the middle of the next write */
            uint8_t m = fuzz_byte(&p);
            uint64_t now = bg_sim_get_stats(st->sim).changes;
            bg_sim_crash_after(st->sim, now + 1 + m % 6);
            read_hop(st, &p, m & 1, &h);
            (void)write_op(st, &h);
            if (m & 8)
                if (bg_box_compact(st->b)) { /* may meet the crash */
                }
            crash(st, (m >> 1) % BG_CRASH_MODES, m);
            break;
        }
        default:
            FUZZ_ASSERT(agrees(st, &st->cur));
        }
    }
    FUZZ_ASSERT(agrees(st, &st->cur));
    FUZZ_ASSERT(bg_store_close(st->s) == 0);
    for (int i = 0; i < st->npool; i++)
        free(st->pool[i]);
    bg_sim_free(st->sim);
    free(st);
    return 0;
}
