/*
 * Target Functions: bg_queue_enqueue, bg_queue_lease, bg_queue_ack,
 * bg_queue_nack, bg_queue_retry, bg_queue_purge, bg_queue_list_failed,
 * bg_queue_lock, bg_queue_unlock, bg_queue_compact, bg_queue_rebuild,
 * bg_queue_open (index rebuild and the settling of interrupted moves), on
 * the simulated disk, with the injected clock.
 *
 * The input drives enqueues (a few hot idempotency keys and up to 160
 * distinct ones, so that the rings and the idempotency set grow past their
 * first capacity), lease+ack, lease+nack, leases held past and short of
 * their expiry, retries, the clock moving on by amounts at the edges of the
 * lease (30 s), the lock (2 min) and retention (30 days), purges, the
 * processing lock taken and released by two owners, compactions, index
 * rebuilds, reopens and power losses (at once, or in the middle of the next
 * operation, in any crash mode) against an in-memory model. Properties:
 * without a crash every operation does what the model says (a lock refused
 * exactly while another owner's lock is fresh); after a crash the queue
 * holds exactly the model's state after every acknowledged operation, with
 * or without the one cut short: an ack never undone, an enqueue never
 * lost, lane order kept, no key pending twice; leases kept across
 * reopens and index rebuilds, and after a crash each pending op either
 * handed out or held by a lease taken before it (a lease may be lost, never
 * invented); the index stays in id order with its dead entries
 * counted; ids never go back, compaction included.
 */
#include "fuzz_helpers.h"
#include "queue_int.h"
#include "queue_model.h"

#define QHOT    6   /* the keys most ops pick from */
#define QWIDE   160 /* and the wider range of the rest (< QM_KEYS) */
#define BASE_MS 1795348800000LL

typedef qm_op op;

typedef struct st {
    bg_sim *sim;
    bg_store *s;
    bg_queue *q;
    qm_model m;
} st;

static void payload(int i, char *out, size_t cap)
{
    snprintf(out, cap, "{\"k\":%d,\"pad\":\"%0*d\"}", i, 40 + 97 * (i % QHOT),
             7);
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
        if (!err && atoi(lo.idem + 1) != qm_head(&t->m)) {
            err = BG_ESTATE; /* leased another op than the model's */
        }
        if (!err)
            err = o->kind == QM_ACK ? bg_queue_ack(t->q, lo.id)
                                    : bg_queue_nack(t->q, lo.id, "e", &failed);
        bg_queue_op_clear(&lo);
        return err;
    case QM_RETRY:
        err = bg_queue_retry(t->q, name, &id);
        return err == BG_ENOTFOUND || err == BG_EEXISTS ? 0 : err;
    case QM_HOLD:
        err = bg_queue_lease(t->q, &lo);
        if (err == BG_ENOTFOUND)
            return 0;
        if (!err) {
            int want = qm_head(&t->m);
            if (want < 0 || atoi(lo.idem + 1) != want)
                err = BG_ESTATE; /* leased another op than the model's */
        }
        bg_queue_op_clear(&lo);
        return err;
    case QM_TICK:
        tu_now = BASE_MS + t->m.now + o->ms;
        return 0;
    case QM_PURGE: {
        uint64_t purged;
        return bg_queue_purge(t->q, &purged);
    }
    case QM_LOCK: {
        int stale;
        snprintf(name, sizeof name, "w%d", o->owner);
        err = bg_queue_lock(t->q, name, &stale);
        if (qm_lock_refused(&t->m, o->owner))
            return err == BG_ELOCKED ? 0 : BG_ESTATE;
        return err;
    }
    case QM_UNLOCK:
        snprintf(name, sizeof name, "w%d", o->owner);
        err = bg_queue_unlock(t->q, name);
        if (t->m.lock_owner != o->owner)
            return err == BG_ESTATE ? 0 : BG_EINVALID;
        return err;
    default:
        return 0;
    }
}

static int count_failed(void *arg, const bg_queue_op *fo)
{
    int i = atoi(fo->idem + 1);
    if (i >= 0 && i < QM_KEYS)
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
    int counts[QM_KEYS] = {0};
    FUZZ_ASSERT(bg_queue_list_failed(t->q, count_failed, counts) == 0);
    for (int i = 0; i < QM_KEYS && ok; i++)
        ok = counts[i] == m->nfailed[i];
    return ok;
}

/* The queue's counts by lane, and of failed ops, are the model's. */
static void counts_match(st *t, int step)
{
    bg_queue_stats qs;
    bg_queue_stats_of(t->q, &qs);
    uint64_t want[2] = {0, 0}, failed = 0;
    for (int i = 0; i < QM_KEYS; i++) {
        if (t->m.status[i] == 1)
            want[t->m.lane[i]]++;
        failed += (uint64_t)t->m.nfailed[i];
    }
    FUZZ_ASSERT_MSG(qs.pending[0] == want[0] && qs.pending[1] == want[1] &&
                        qs.failed == failed,
                    "step %d: pending %llu+%llu failed %llu, the model "
                    "%llu+%llu failed %llu",
                    step, (unsigned long long)qs.pending[0],
                    (unsigned long long)qs.pending[1],
                    (unsigned long long)qs.failed, (unsigned long long)want[0],
                    (unsigned long long)want[1], (unsigned long long)failed);
}

static const int64_t ticks[] = {
    1, 999, 29999, 30000, 119999, 120000, 86400000LL, 30LL * 24 * 3600 * 1000};

/* A reopen keeps every lease: the next process reads the lease log. */
static void reopen(st *t)
{
    qclose(t);
    qopen(t);
}

/* A reopen without the lease log: every lease is gone. */
static void reopen_forgetting(st *t)
{
    qclose(t);
    tu_forget_leases(t->sim, "s");
    qopen(t);
    qm_forget_leases(&t->m);
}

/* Lease all that is leasable now; held[k] = 1 for the keys that were not
 * handed out although pending. Leaves leases behind. */
static void lease_all(st *t, int *got)
{
    bg_queue_op lo;
    memset(got, 0, QM_KEYS * sizeof *got);
    while (bg_queue_lease(t->q, &lo) == 0) {
        int k = atoi(lo.idem + 1);
        FUZZ_ASSERT_MSG(k >= 0 && k < QM_KEYS && !got[k],
                        "key %d handed out twice", k);
        got[k] = 1;
        bg_queue_op_clear(&lo);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_producer p = {data, size};
    static st t;
    memset(&t, 0, sizeof t);
    t.m.max_attempts = 3; /* qopen sets the queue's limit to match */
    tu_now = BASE_MS;
    t.sim = bg_sim_new(size);
    FUZZ_ASSERT(t.sim);
    qopen(&t);
    for (int step = 0; step < 400 && p.size; step++) {
        uint8_t c = fuzz_byte(&p), a = fuzz_byte(&p);
        int key = c & 0x80 ? a % QWIDE : a % QHOT;
        op o = {QM_ENQ, key, (a >> 3) & 1, 1 + (a & 1), 0};
        switch (c % 20) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
        case 5:
            o.kind = QM_ENQ;
            break;
        case 6:
        case 7:
        case 8:
            o.kind = QM_ACK;
            break;
        case 9:
            o.kind = QM_NACK;
            break;
        case 10:
            o.kind = QM_RETRY;
            break;
        case 11:
            o.kind = QM_HOLD;
            break;
        case 12:
            o.kind = QM_TICK;
            o.ms = ticks[a % 8];
            break;
        case 13:
            o.kind = QM_PURGE;
            break;
        case 14:
            o.kind = QM_LOCK;
            break;
        case 15:
            o.kind = QM_UNLOCK;
            break;
        case 16: { /* the index rebuilt from the box */
            bg_err err = bg_queue_rebuild(t.q);
            FUZZ_ASSERT_MSG(err == 0, "rebuild: %s", bg_err_name(err));
            const char *broken = bg__queue_check(t.q);
            FUZZ_ASSERT_MSG(!broken, "index after rebuild: %s", broken);
            continue; /* the leases are read back from their log */
        }
        case 17: /* reopen, or compact */
            if (a & 1)
                FUZZ_ASSERT(bg_queue_compact(t.q) == 0);
            else
                reopen(&t);
            continue;
        default: { /* power loss, at once or inside the next op */
            uint64_t now = bg_sim_get_stats(t.sim).changes;
            bg_sim_crash_after(t.sim, now + (a & 1 ? 0 : 1 + a % 5));
            o.kind = (a >> 4) % 4;
            o.idem = (a >> 1) % QHOT;
            bg_err err = bg_sim_frozen(t.sim) ? BG_EIO : run(&t, &o);
            qm_model before = t.m, after = t.m;
            if (!err)
                qm_apply(&before, &o);
            qm_apply(&after, &o);
            bg_sim_crash_after(t.sim, bg_sim_get_stats(t.sim).changes);
            qclose(&t);
            FUZZ_ASSERT(bg_sim_crash(t.sim, (bg_crash_mode)(a % 4), a) == 0);
            /* What a lease held before the crash may still hold: what
             * can be leased now is every pending op but some held ones. */
            qopen(&t);
            int got[QM_KEYS];
            lease_all(&t, got);
            qm_model held = t.m;
            /* An ack or nack leases first: that lease may hold too. */
            int cut_lease =
                o.kind == QM_ACK || o.kind == QM_NACK ? qm_head(&held) : -1;
            qm_forget_leases(&before);
            qm_forget_leases(&after);
            reopen_forgetting(&t);
            if (drain_matches(&t, &before))
                t.m = before;
            else {
                reopen_forgetting(&t);
                FUZZ_ASSERT_MSG(drain_matches(&t, &after),
                                "after a crash the queue matches neither "
                                "model state");
                t.m = after;
            }
            for (int k = 0; k < QM_KEYS; k++) {
                FUZZ_ASSERT_MSG(!got[k] || t.m.status[k] == 1,
                                "key %d leased but not pending", k);
                FUZZ_ASSERT_MSG(got[k] || t.m.status[k] != 1 ||
                                    held.held_until[k] > held.now ||
                                    k == cut_lease,
                                "key %d pending, not leased before the "
                                "crash, and not handed out",
                                k);
            }
            reopen_forgetting(&t);
            continue;
        }
        }
        bg_err err = run(&t, &o);
        FUZZ_ASSERT_MSG(err == 0, "op %d: %s (%s)", o.kind, bg_err_name(err),
                        bg_store_detail(t.s));
        const char *broken = bg__queue_check(t.q);
        FUZZ_ASSERT_MSG(!broken, "index: %s", broken);
        qm_apply(&t.m, &o);
        counts_match(&t, step);
    }
    FUZZ_ASSERT(drain_matches(&t, &t.m));
    qclose(&t);
    bg_sim_free(t.sim);
    tu_now = BASE_MS;
    return 0;
}
