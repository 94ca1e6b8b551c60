/*
 * The in-memory model of the pending-ops queue that the crash enumeration
 * (tests/test_crash.c) and fuzz_queue_model check the real queue against.
 * Keys are small integers; ops are leased and acked or nacked at the head
 * (emergency lane first, then enqueue order), skipping ops that are held
 * under a lease, across reopens. The model has a clock: leases expire, failed
 * ops are purged past retention, and the processing lock goes stale.
 */
#ifndef BOXGUARD_QUEUE_MODEL_H
#define BOXGUARD_QUEUE_MODEL_H

#include <stdint.h>

#define QM_KEYS  256
#define QM_FAILS 512

enum {
    QM_ENQ,
    QM_ACK,
    QM_NACK,
    QM_RETRY,
    QM_HOLD,  /* lease the head and keep it (no ack) */
    QM_TICK,  /* the clock moves on by ms */
    QM_PURGE, /* failed ops older than retention go */
    QM_LOCK,  /* owner takes the processing lock (refused while fresh) */
    QM_UNLOCK
};

typedef struct qm_op {
    int kind;   /* QM_*; other values change nothing */
    int idem;   /* QM_ENQ, QM_RETRY */
    int lane;   /* QM_ENQ */
    int owner;  /* QM_LOCK, QM_UNLOCK: 1 or 2 */
    int64_t ms; /* QM_TICK */
} qm_op;

typedef struct qm_model {
    int max_attempts;
    int64_t lease_ms, retention_ms, stale_ms; /* 0: the queue's defaults */
    int status[QM_KEYS];                      /* 0 never, 1 pending, 2 gone */
    int nfailed[QM_KEYS]; /* records in failed_ops under the key */
    int lane[QM_KEYS], attempts[QM_KEYS], order[QM_KEYS], clock;
    int64_t now;                 /* ms since the start */
    int64_t held_until[QM_KEYS]; /* a lease held until then */
    struct {
        int key;
        int64_t at;
    } fails[QM_FAILS]; /* failed_ops in the order they failed */
    int nfails;
    int lock_owner; /* 0: free */
    int64_t lock_since;
} qm_model;

static inline int64_t qm_lease_ms(const qm_model *m)
{
    return m->lease_ms ? m->lease_ms : 30 * 1000;
}

static inline int64_t qm_retention_ms(const qm_model *m)
{
    return m->retention_ms ? m->retention_ms : 30LL * 24 * 3600 * 1000;
}

static inline int64_t qm_stale_ms(const qm_model *m)
{
    return m->stale_ms ? m->stale_ms : 2 * 60 * 1000;
}

/* The key the queue leases next, or -1. */
static inline int qm_head(const qm_model *m)
{
    for (int lane = 1; lane >= 0; lane--) {
        int best = -1;
        for (int i = 0; i < QM_KEYS; i++)
            if (m->status[i] == 1 && m->lane[i] == lane &&
                m->held_until[i] <= m->now &&
                (best < 0 || m->order[i] < m->order[best]))
                best = i;
        if (best >= 0)
            return best;
    }
    return -1;
}

/* Whether owner's QM_LOCK is refused: another owner holds a fresh lock. */
static inline int qm_lock_refused(const qm_model *m, int owner)
{
    return m->lock_owner && m->lock_owner != owner &&
           m->now - m->lock_since < qm_stale_ms(m);
}

static inline void qm_fail_drop(qm_model *m, int at)
{
    m->nfailed[m->fails[at].key]--;
    for (int j = at + 1; j < m->nfails; j++)
        m->fails[j - 1] = m->fails[j];
    m->nfails--;
}

/* Leases outlive the process that took them (the lease log), but a power
 * cut may lose them, and a test may drop the log: then they are gone. */
static inline void qm_forget_leases(qm_model *m)
{
    for (int i = 0; i < QM_KEYS; i++)
        m->held_until[i] = 0;
}

static inline void qm_apply(qm_model *m, const qm_op *o)
{
    int h;
    switch (o->kind) {
    case QM_ENQ: /* a key already pending is not enqueued twice */
        if (m->status[o->idem] != 1) {
            m->status[o->idem] = 1;
            m->lane[o->idem] = o->lane;
            m->attempts[o->idem] = 0;
            m->order[o->idem] = ++m->clock;
            m->held_until[o->idem] = 0;
        }
        break;
    case QM_ACK:
        if ((h = qm_head(m)) >= 0)
            m->status[h] = 2;
        break;
    case QM_NACK:
        if ((h = qm_head(m)) < 0)
            break;
        m->held_until[h] = 0; /* a nack ends the lease */
        if (++m->attempts[h] >= m->max_attempts) {
            m->status[h] = 2;
            m->nfailed[h]++;
            if (m->nfails < QM_FAILS) {
                m->fails[m->nfails].key = h;
                m->fails[m->nfails].at = m->now;
                m->nfails++;
            }
        }
        break;
    case QM_RETRY: /* the oldest failure, back at the end of the normal lane */
        if (m->nfailed[o->idem] && m->status[o->idem] != 1) {
            for (int j = 0; j < m->nfails; j++)
                if (m->fails[j].key == o->idem) {
                    qm_fail_drop(m, j);
                    break;
                }
            m->status[o->idem] = 1;
            m->lane[o->idem] = 0;
            m->attempts[o->idem] = 0;
            m->order[o->idem] = ++m->clock;
            m->held_until[o->idem] = 0;
        }
        break;
    case QM_HOLD:
        if ((h = qm_head(m)) >= 0)
            m->held_until[h] = m->now + qm_lease_ms(m);
        break;
    case QM_TICK:
        m->now += o->ms;
        break;
    case QM_PURGE:
        for (int j = 0; j < m->nfails;)
            if (m->fails[j].at < m->now - qm_retention_ms(m))
                qm_fail_drop(m, j);
            else
                j++;
        break;
    case QM_LOCK:
        if (!qm_lock_refused(m, o->owner)) {
            m->lock_owner = o->owner;
            m->lock_since = m->now;
        }
        break;
    case QM_UNLOCK:
        if (m->lock_owner == o->owner)
            m->lock_owner = 0;
        break;
    }
}

#endif
