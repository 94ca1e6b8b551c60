/*
 * The in-memory model of the pending-ops queue that the crash enumeration
 * (tests/test_crash.c) and fuzz_queue_model check the real queue against.
 * Keys are small integers; ops are leased and acked or nacked at the head
 * (emergency lane first, then enqueue order).
 */
#ifndef BOXGUARD_QUEUE_MODEL_H
#define BOXGUARD_QUEUE_MODEL_H

#define QM_KEYS 8

enum { QM_ENQ, QM_ACK, QM_NACK, QM_RETRY };

typedef struct qm_op {
    int kind; /* QM_*; other values change nothing */
    int idem; /* QM_ENQ, QM_RETRY */
    int lane; /* QM_ENQ */
} qm_op;

typedef struct qm_model {
    int max_attempts;
    int status[QM_KEYS];  /* 0 never, 1 pending, 2 gone */
    int nfailed[QM_KEYS]; /* records in failed_ops under the key */
    int lane[QM_KEYS], attempts[QM_KEYS], order[QM_KEYS], clock;
} qm_model;

/* The key the queue leases next, or -1. */
static inline int qm_head(const qm_model *m)
{
    for (int lane = 1; lane >= 0; lane--) {
        int best = -1;
        for (int i = 0; i < QM_KEYS; i++)
            if (m->status[i] == 1 && m->lane[i] == lane &&
                (best < 0 || m->order[i] < m->order[best]))
                best = i;
        if (best >= 0)
            return best;
    }
    return -1;
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
        }
        break;
    case QM_ACK:
        if ((h = qm_head(m)) >= 0)
            m->status[h] = 2;
        break;
    case QM_NACK:
        if ((h = qm_head(m)) >= 0 && ++m->attempts[h] >= m->max_attempts) {
            m->status[h] = 2;
            m->nfailed[h]++;
        }
        break;
    case QM_RETRY: /* back at the end of the normal lane */
        if (m->nfailed[o->idem] && m->status[o->idem] != 1) {
            m->nfailed[o->idem]--;
            m->status[o->idem] = 1;
            m->lane[o->idem] = 0;
            m->attempts[o->idem] = 0;
            m->order[o->idem] = ++m->clock;
        }
        break;
    }
}

#endif
