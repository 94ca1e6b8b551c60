/*
 * Target Functions: bg_queue_enqueue, bg_queue_lease, bg_queue_ack,
 * bg_queue_nack, bg_queue_retry, bg_queue_list_failed, bg_queue_compact,
 * bg_queue_open (index
 * rebuild and the settling of interrupted moves), on the simulated disk.
 *
 * The input drives enqueues (6 idempotency keys, two lanes), lease+ack,
 * lease+nack, retries, compactions, reopens and power losses (at once, or in
 * the middle of the next operation, in any crash mode) against an in-memory
 * model. Properties: without a crash every operation does what the model says;
 * after a crash the queue holds exactly the model's state after every
 * acknowledged operation, with or without the one cut short: an ack never
 * undone, an enqueue never lost, lane order kept, no key pending twice,
 * leased-but-unacked ops delivered again; the index stays in id order with
 * its dead entries counted; ids never go back, compaction included.
 */
#include "fuzz_helpers.h"
#include "queue_int.h"
#include "queue_model.h"

#define QN 6 /* keys the input picks from, of the model's QM_KEYS */

typedef qm_op op;

typedef struct st {
    bg_sim *sim;
    bg_store *s;
    bg_queue *q;
    qm_model m;
} st;

static void payload(int i, char *out, size_t cap)
{
    snprintf(out, cap, "{\"k\":%d,\"pad\":\"%0*d\"}", i, 40 + 97 * i, 7);
}

static void qopen(st *t)
{
    bg_store_opts o = tu_opts(t->sim, BG_DURABILITY_FULL);
    FUZZ_ASSERT(bg_store_open("s", &o, &t->s) == 0);
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    qo.max_attempts = 3;
    bg_err err = bg_queue_open(t->s, &qo, &t->q);
    FUZZ_ASSERT_MSG(err == 0, "queue open: %s (%s)", bg_err_name(err),
                    bg_store_detail(t->s));
}

static void qclose(st *t)
{
    bg_queue_close(t->q);
    (void)bg_store_close(t->s);
}

static bg_err run(st *t, const op *o)
{
    char name[8], body[1024];
    snprintf(name, sizeof name, "k%d", o->idem);
    bg_queue_op lo;
    uint64_t id;
    int failed;
    bg_err err;
    switch (o->kind) {
    case QM_ENQ:
        payload(o->idem, body, sizeof body);
        err = bg_queue_enqueue(t->q, (bg_lane)o->lane, name, body, strlen(body),
                               &id);
        return err == BG_EEXISTS ? 0 : err;
    case QM_ACK:
    case QM_NACK:
        err = bg_queue_lease(t->q, &lo);
        if (err == BG_ENOTFOUND)
            return 0;
        if (!err)
            err = o->kind == QM_ACK ? bg_queue_ack(t->q, lo.id)
                                    : bg_queue_nack(t->q, lo.id, "e", &failed);
        bg_queue_op_clear(&lo);
        return err;
    default:
        err = bg_queue_retry(t->q, name, &id);
        return err == BG_ENOTFOUND || err == BG_EEXISTS ? 0 : err;
    }
}

static int count_failed(void *arg, const bg_queue_op *fo)
{
    int i = atoi(fo->idem + 1);
    if (i >= 0 && i < QN)
        ((int *)arg)[i]++;
    return 0;
}

/* Lease everything and compare with m; 1 when equal. Leaves leases
 * behind: the caller reopens. */
static int drain_matches(st *t, const qm_model *m)
{
    qm_model d = *m;
    bg_queue_op lo;
    int h, ok = 1;
    while (ok && (h = qm_head(&d)) >= 0) {
        if (bg_queue_lease(t->q, &lo)) {
            ok = 0;
            break;
        }
        char body[1024];
        payload(h, body, sizeof body);
        ok = atoi(lo.idem + 1) == h && (int)lo.lane == d.lane[h] &&
             (int)lo.attempts == d.attempts[h] && !strcmp(lo.payload, body);
        bg_queue_op_clear(&lo);
        d.status[h] = 2;
    }
    if (ok && bg_queue_lease(t->q, &lo) == 0) {
        bg_queue_op_clear(&lo);
        ok = 0;
    }
    int counts[QN] = {0};
    FUZZ_ASSERT(bg_queue_list_failed(t->q, count_failed, counts) == 0);
    for (int i = 0; i < QN && ok; i++)
        ok = counts[i] == m->nfailed[i];
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_producer p = {data, size};
    st t = {0};
    t.m.max_attempts = 3; /* qopen sets the queue's limit to match */
    t.sim = bg_sim_new(size);
    FUZZ_ASSERT(t.sim);
    qopen(&t);
    for (int step = 0; step < 120 && p.size; step++) {
        uint8_t c = fuzz_byte(&p), a = fuzz_byte(&p);
        op o = {QM_ENQ, a % QN, (a >> 3) & 1};
        switch (c % 9) {
        case 0:
        case 1:
        case 2:
            o.kind = QM_ENQ;
            break;
        case 3:
        case 4:
            o.kind = QM_ACK;
            break;
        case 5:
            o.kind = QM_NACK;
            break;
        case 6:
            o.kind = QM_RETRY;
            break;
        case 7: /* reopen, or compact */
            if (a & 1) {
                FUZZ_ASSERT(bg_queue_compact(t.q) == 0);
            } else {
                qclose(&t);
                qopen(&t);
            }
            continue;
        default: { /* power loss, at once or inside the next op */
            uint64_t now = bg_sim_get_stats(t.sim).changes;
            bg_sim_crash_after(t.sim, now + (a & 1 ? 0 : 1 + a % 5));
            o.kind = (a >> 4) % 4;
            o.idem = (a >> 1) % QN;
            bg_err err = bg_sim_frozen(t.sim) ? BG_EIO : run(&t, &o);
            qm_model before = t.m, after = t.m;
            if (!err)
                qm_apply(&before, &o);
            qm_apply(&after, &o);
            bg_sim_crash_after(t.sim, bg_sim_get_stats(t.sim).changes);
            qclose(&t);
            FUZZ_ASSERT(bg_sim_crash(t.sim, (bg_crash_mode)(a % 4), a) == 0);
            qopen(&t);
            if (drain_matches(&t, &before))
                t.m = before;
            else {
                qclose(&t);
                qopen(&t);
                FUZZ_ASSERT_MSG(drain_matches(&t, &after),
                                "after a crash the queue matches neither "
                                "model state");
                t.m = after;
            }
            qclose(&t);
            qopen(&t);
            continue;
        }
        }
        bg_err err = run(&t, &o);
        FUZZ_ASSERT_MSG(err == 0, "op %d: %s (%s)", o.kind, bg_err_name(err),
                        bg_store_detail(t.s));
        const char *broken = bg__queue_check(t.q);
        FUZZ_ASSERT_MSG(!broken, "index: %s", broken);
        qm_apply(&t.m, &o);
    }
    FUZZ_ASSERT(drain_matches(&t, &t.m));
    qclose(&t);
    bg_sim_free(t.sim);
    return 0;
}
