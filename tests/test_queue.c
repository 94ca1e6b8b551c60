/*
 * The pending-ops queue: FIFO per lane, emergency first, idempotency,
 * at-least-once leases, nack and failure, retry and purge by the clock,
 * the processing lock with its audit record, rebuilds and reopens, and the
 * refusals.
 */
#include "testutil.h"

#include <xxhash.h>

#include "boxfile.h"
#include "lease_log_int.h"
#include "queue_int.h"

/* The queue of store "s" (FULL); when portable, its index checkpoint is
 * written and read entry by entry (bg__queue_portable_checkpoint). */
static bg_err qopen_layout(bg_sim *sim, bg_store **s, bg_queue **q,
                           int portable)
{
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, s);
    if (err)
        return err;
    bg__queue_portable_checkpoint(*s, portable);
    bg_queue_opts o;
    bg_queue_opts_init(&o);
    o.max_attempts = 3;
    err = bg_queue_open(*s, &o, q);
    if (err)
        (void)bg_store_close(*s);
    return err;
}

static bg_err qopen(bg_sim *sim, bg_store **s, bg_queue **q)
{
    return qopen_layout(sim, s, q, 0);
}

static void qclose(bg_store *s, bg_queue *q)
{
    bg_queue_close(q);
    (void)bg_store_close(s);
}

/* A queue with the default options on a store with durability off. */
static bg_err qopen_off(bg_sim *sim, bg_store **s, bg_queue **q)
{
    bg_err err = tu_open(sim, BG_DURABILITY_OFF, s);
    if (!err && (err = bg_queue_open(*s, NULL, q)))
        (void)bg_store_close(*s);
    return err;
}

static bg_err enq(bg_queue *q, bg_lane lane, const char *idem, uint64_t *id)
{
    char payload[128];
    snprintf(payload, sizeof payload, "{\"op\":\"%s\",\"n\":[1,2.50]}", idem);
    return bg_queue_enqueue(q, lane, idem, payload, strlen(payload), id);
}

static void test_fifo_lanes_and_idempotency(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b, c, e, dup;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "c", &c));
    CHECK_OK(enq(q, BG_LANE_EMERGENCY, "e", &e));
    CHECK_ERR(enq(q, BG_LANE_NORMAL, "b", &dup), BG_EEXISTS);
    CHECK_INT(dup, ==, b);
    CHECK_CONTAINS(bg_store_detail(s), "already pending");
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 3);
    CHECK_INT(st.pending[1], ==, 1);
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, e); /* emergency first */
    CHECK_STR(op.payload, "{\"op\":\"e\",\"n\":[1,2.50]}");
    CHECK_OK(bg_queue_ack(q, op.id));
    bg_queue_op_clear(&op);
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, a);
    CHECK_STR(op.idem, "a");
    bg_queue_op op2;
    CHECK_OK(bg_queue_lease(q, &op2)); /* a is leased: next is b */
    CHECK_INT(op2.id, ==, b);
    CHECK_OK(bg_queue_ack(q, op2.id)); /* out of order */
    bg_queue_op_clear(&op2);
    CHECK_ERR(bg_queue_ack(q, op2.id ? op2.id : b), BG_ENOTFOUND);
    /* b is gone: its key may be enqueued again. */
    uint64_t b2;
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b2));
    CHECK_INT(b2, >, e);
    bg_queue_op_clear(&op); /* its strings belong to the store */
    qclose(s, q);

    /* Reopen: a was leased, never acked: delivered again, first. */
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(bg_queue_lease(q, &op2));
    CHECK_INT(op2.id, ==, a);
    bg_queue_op_clear(&op2);
    CHECK_OK(bg_queue_lease(q, &op2));
    CHECK_INT(op2.id, ==, c);
    bg_queue_op_clear(&op2);
    CHECK_OK(bg_queue_lease(q, &op2));
    CHECK_INT(op2.id, ==, b2);
    bg_queue_op_clear(&op2);
    CHECK_ERR(bg_queue_lease(q, &op2), BG_ENOTFOUND);
    CHECK_ERR(enq(q, BG_LANE_NORMAL, "c", &dup), BG_EEXISTS);
    CHECK_OK(bg_queue_rebuild(q));
    CHECK_ERR(enq(q, BG_LANE_NORMAL, "a", &dup), BG_EEXISTS);
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 3);
    CHECK_INT(st.next_id, ==, b2 + 1);
    qclose(s, q);
    bg_sim_free(sim);
}

static void test_lease_expires(void)
{
    bg_sim *sim = bg_sim_new(2);
    bg_store *s;
    bg_queue *q;
    uint64_t a;
    int64_t saved = tu_now;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    bg_queue_op_clear(&op);
    CHECK_ERR(bg_queue_lease(q, &op), BG_ENOTFOUND);
    tu_now += 61 * 1000;
    CHECK_OK(bg_queue_lease(q, &op)); /* the lease ran out */
    CHECK_INT(op.id, ==, a);
    bg_queue_op_clear(&op);
    tu_now = saved;
    qclose(s, q);
    bg_sim_free(sim);
}

static int count_failed(void *arg, const bg_queue_op *op)
{
    (*(int *)arg)++;
    return strcmp(op->last_error, "HTTP 500") != 0;
}

static void test_nack_fail_retry_purge(void)
{
    bg_sim *sim = bg_sim_new(3);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b;
    int64_t saved = tu_now;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    int failed = 0;
    bg_queue_op op;
    for (int i = 1; i <= 3; i++) {
        CHECK_OK(bg_queue_lease(q, &op));
        CHECK_INT(op.id, ==, a); /* stays at the head */
        CHECK_INT(op.attempts, ==, i - 1);
        bg_queue_op_clear(&op);
        CHECK_OK(bg_queue_nack(q, a, "HTTP 500", &failed));
        CHECK_INT(failed, ==, i == 3);
    }
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 1);
    CHECK_INT(st.failed, ==, 1);
    int n = 0;
    CHECK_OK(bg_queue_list_failed(q, count_failed, &n));
    CHECK_INT(n, ==, 1);
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, b);
    bg_queue_op_clear(&op);
    uint64_t again;
    CHECK_OK(bg_queue_retry(q, "a", &again));
    CHECK_INT(again, >, b);
    CHECK_ERR(bg_queue_retry(q, "a", &again), BG_ENOTFOUND);
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.failed, ==, 0);
    CHECK_INT(st.pending[0], ==, 2);
    /* Fail it again, then purge past retention only. */
    for (int i = 0; i < 3; i++)
        CHECK_OK(bg_queue_nack(q, again, "timeout", &failed));
    CHECK_INT(failed, ==, 1);
    uint64_t purged;
    CHECK_OK(bg_queue_purge(q, &purged));
    CHECK_INT(purged, ==, 0);
    tu_now += 31LL * 24 * 3600 * 1000;
    CHECK_OK(bg_queue_purge(q, &purged));
    CHECK_INT(purged, ==, 1);
    tu_now = saved;
    CHECK_ERR(bg_queue_nack(q, 999, "x", &failed), BG_ENOTFOUND);
    qclose(s, q);
    bg_sim_free(sim);
}

static void test_processing_lock(void)
{
    bg_sim *sim = bg_sim_new(4);
    bg_store *s;
    bg_queue *q;
    int64_t saved = tu_now;
    int stale;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(bg_queue_lock(q, "worker-1", &stale));
    CHECK_INT(stale, ==, 0);
    CHECK_OK(bg_queue_lock(q, "worker-1", &stale)); /* refresh */
    CHECK_ERR(bg_queue_lock(q, "worker-2", &stale), BG_ELOCKED);
    CHECK_CONTAINS(bg_store_detail(s), "locked by 'worker-1'");
    tu_now += 121 * 1000;
    CHECK_OK(bg_queue_lock(q, "worker-2", &stale));
    CHECK_INT(stale, ==, 1);
    bg_box *audit;
    CHECK_OK(bg_box_open(s, "audit", 0, &audit));
    bg_box_stats as;
    bg_box_stats_of(audit, &as);
    CHECK_INT(as.records, ==, 1);
    CHECK_ERR(bg_queue_unlock(q, "worker-1"), BG_ESTATE);
    CHECK_OK(bg_queue_unlock(q, "worker-2"));
    CHECK_OK(bg_queue_lock(q, "worker-3", &stale));
    CHECK_INT(stale, ==, 0);
    tu_now = saved;
    qclose(s, q);
    bg_sim_free(sim);
}

static void test_refusals(void)
{
    bg_sim *sim = bg_sim_new(5);
    bg_store *s;
    bg_queue *q;
    uint64_t id;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_ERR(bg_queue_enqueue(q, BG_LANE_NORMAL, "", "1", 1, &id),
              BG_EINVALID);
    CHECK_ERR(bg_queue_enqueue(q, BG_LANE_NORMAL, "k", "{", 1, &id),
              BG_EINVALID);
    CHECK_CONTAINS(bg_store_detail(s), "truncated JSON");
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0] + st.pending[1], ==, 0);
    int stale;
    CHECK_ERR(bg_queue_lock(q, "", &stale), BG_EINVALID);
    qclose(s, q);
    bg_sim_free(sim);
}

static void test_compaction(void)
{
    bg_sim *sim = bg_sim_new(6);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen(sim, &s, &q));
    char idem[32], body[1200];
    /* Churn: ~2.5 MiB of acked ops must not stay in the box. */
    for (int i = 0; i < 2500; i++) {
        uint64_t id;
        snprintf(idem, sizeof idem, "op-%d", i);
        snprintf(body, sizeof body, "{\"i\":%d,\"pad\":\"%0900d\"}", i, 0);
        CHECK_OK(
            bg_queue_enqueue(q, BG_LANE_NORMAL, idem, body, strlen(body), &id));
        if (i % 10 != 9) /* every tenth stays pending */
            CHECK_OK(bg_queue_ack(q, id));
        int compacted; /* the app's upkeep */
        CHECK_OK(bg_queue_maintain(q, &compacted));
    }
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &n));
    free(f);
    CHECK_INT(n, <, 1u << 20); /* compacted along the way */
    CHECK_OK(bg_queue_compact(q));
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    uint64_t next = st.next_id;
    qclose(s, q);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 250);
    CHECK_INT(st.next_id, ==, next); /* ids never go back */
    for (int i = 9; i < 2500; i += 10) {
        bg_queue_op op;
        CHECK_OK(bg_queue_lease(q, &op));
        snprintf(idem, sizeof idem, "op-%d", i);
        CHECK_STR(op.idem, idem);
        CHECK_OK(bg_queue_ack(q, op.id));
        bg_queue_op_clear(&op);
    }
    /* Everything acked and compacted away: ids still go on, by the
     * compaction's marker alone when the checkpoint is unusable. */
    CHECK_OK(bg_queue_compact(q));
    qclose(s, q);
    CHECK_OK(
        bg_sim_write_file(sim, "s/" BG__QUEUE_INDEX, (const uint8_t *)"", 0));
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_INT(bg__queue_from_checkpoint(q), ==, 0);
    uint64_t id;
    CHECK_OK(bg_queue_enqueue(q, BG_LANE_NORMAL, "after", "1", 1, &id));
    CHECK_INT(id, ==, next);
    qclose(s, q);
    bg_sim_free(sim);
}

/* pending_ops keeps a zeroed region ahead of its log: the first durable
 * enqueue makes it (BG__QUEUE_ZERO_MIN past its frame), the next ones
 * overwrite it without changing the file's size, a reopen finds every op
 * and takes the zeros as the clean end; with durability off there is no
 * region. */
static void test_pending_ops_keeps_zeros_ahead(void)
{
    bg_sim *sim = bg_sim_new(40);
    bg_store *s;
    bg_queue *q;
    uint64_t id;
    CHECK_OK(qopen(sim, &s, &q));
    uint8_t *f;
    size_t n0, n;
    CHECK_OK(enq(q, BG_LANE_NORMAL, "z-0", &id));
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &n0));
    /* the first frame's end plus the minimum step */
    CHECK_INT(n0, ==,
              BG__BOX_HDR_SIZE + tu_flen(f, BG__BOX_HDR_SIZE) +
                  BG__QUEUE_ZERO_MIN);
    free(f);
    for (int i = 1; i < 20; i++) {
        char idem[16];
        snprintf(idem, sizeof idem, "z-%d", i);
        CHECK_OK(enq(q, BG_LANE_NORMAL, idem, &id));
    }
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &n));
    CHECK_INT(n, ==, n0);
    qclose(s, q);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = 1;
    bg_box_report rep;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_verify(s, "pending_ops", &rep));
    CHECK_OK(bg_store_close(s));
    CHECK_INT(rep.status, ==, BG_BOX_CLEAN);
    CHECK_INT(rep.file_size, ==, n);
    CHECK_INT(rep.valid_end + rep.zeroed, ==, n);
    CHECK_INT(rep.zeroed, >, 0);
    CHECK(!tu_nonzero(f + rep.valid_end, n - rep.valid_end));
    free(f);
    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[BG_LANE_NORMAL], ==, 20);
    /* a compaction writes the file to its last frame; the next durable
     * enqueue makes the region again */
    for (int i = 0; i < 15; i++) {
        bg_queue_op op;
        CHECK_OK(bg_queue_lease(q, &op));
        CHECK_OK(bg_queue_ack(q, op.id));
        bg_queue_op_clear(&op);
    }
    CHECK_OK(bg_queue_compact(q));
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &n));
    free(f);
    CHECK_INT(n, <, rep.valid_end);
    CHECK_OK(enq(q, BG_LANE_NORMAL, "z-20", &id));
    qclose(s, q);
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_verify(s, "pending_ops", &rep));
    CHECK_OK(bg_store_close(s));
    CHECK_INT(rep.status, ==, BG_BOX_CLEAN);
    CHECK_INT(rep.zeroed, >=, BG__QUEUE_ZERO_MIN);

    bg_sim *off = bg_sim_new(41);
    o = tu_opts(off, BG_DURABILITY_OFF);
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_queue_open(s, NULL, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "z-0", &id));
    qclose(s, q);
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_verify(s, "pending_ops", &rep));
    CHECK_OK(bg_store_close(s));
    CHECK_INT(rep.zeroed, ==, 0);
    CHECK_INT(rep.valid_end, ==, rep.file_size);
    bg_sim_free(off);
    bg_sim_free(sim);
}

/* ---- the index checkpoint ---------------------------------------------- */

#define CK_FILE "s/" BG__QUEUE_INDEX

/* The store the checkpoint tests share, closed (its checkpoint written):
 * ops in both lanes, one acked out of turn while others are leased (a
 * dead entry inside the ring), one nacked (rewritten in place), one acked
 * deep in the lane, and the leases given back. */
static bg_sim *ck_build(void)
{
    bg_sim *sim = bg_sim_new(50);
    bg_store *s;
    bg_queue *q;
    uint64_t id, deep = 0;
    char idem[16];
    if (qopen(sim, &s, &q))
        return sim;
    for (int i = 0; i < 24; i++) {
        snprintf(idem, sizeof idem, "ck-%d", i);
        if (enq(q, i % 5 ? BG_LANE_NORMAL : BG_LANE_EMERGENCY, idem, &id))
            return sim;
        if (i == 17)
            deep = id;
    }
    bg_queue_op a, b, c;
    int failed;
    if (bg_queue_lease(q, &a) || bg_queue_lease(q, &b) ||
        bg_queue_lease(q, &c) || bg_queue_ack(q, b.id) ||
        bg_queue_nack(q, a.id, "boom", &failed) || bg_queue_ack(q, deep) ||
        bg_queue_nack(q, c.id, "again", &failed))
        return sim;
    bg_queue_op_clear(&a);
    bg_queue_op_clear(&b);
    bg_queue_op_clear(&c);
    qclose(s, q);
    return sim;
}

/* Open the queue of sim and drain it: every op, in the order leased, as
 * "id idem attempts payload;" in out. *from says whether the open loaded
 * the checkpoint. NULL, or what went wrong. */
static const char *ck_drain_layout(bg_sim *sim, char *out, size_t cap,
                                   int *from, int portable)
{
    bg_store *s;
    bg_queue *q;
    out[0] = '\0';
    if (qopen_layout(sim, &s, &q, portable))
        return "the queue does not open";
    *from = bg__queue_from_checkpoint(q);
    const char *bad = bg__queue_check(q);
    bg_queue_op op;
    while (!bad && bg_queue_lease(q, &op) == 0) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%llu %s %u %.*s;",
                 (unsigned long long)op.id, op.idem, (unsigned)op.attempts,
                 (int)op.payload_len, op.payload);
        if (bg_queue_ack(q, op.id))
            bad = "an op does not ack";
        bg_queue_op_clear(&op);
    }
    uint64_t id = 0;
    if (!bad && enq(q, BG_LANE_NORMAL, "after", &id))
        bad = "no enqueue after";
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "next %llu", (unsigned long long)id);
    qclose(s, q);
    return bad;
}

static const char *ck_drain(bg_sim *sim, char *out, size_t cap, int *from)
{
    return ck_drain_layout(sim, out, cap, from, 0);
}

static void ck_sum(uint8_t *b, size_t len)
{
    uint64_t h = XXH3_64bits(b, len - 8);
    for (int i = 0; i < 8; i++)
        b[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
}

static void ck_add64(uint8_t *b, size_t off, int64_t d)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[off + (size_t)i] << (8 * i);
    v += (uint64_t)d;
    for (int i = 0; i < 8; i++)
        b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* An open loads the checkpoint and scans only the log after it, to the
 * same queue as a full scan; a checkpoint that does not verify, does not
 * hold together or does not match the log is ignored, every way it can
 * go wrong, and the queue is exactly as a full scan makes it. */
static void test_index_checkpoint(void)
{
    static char want[8192], got[8192];
    int from = -1;
    /* the truth: a full scan (an empty checkpoint does not verify) */
    bg_sim *sim = ck_build();
    CHECK_OK(bg_sim_write_file(sim, CK_FILE, (const uint8_t *)"", 0));
    CHECK(!ck_drain(sim, want, sizeof want, &from));
    CHECK_INT(from, ==, 0);
    CHECK(strstr(want, "ck-0 1 ") != NULL); /* nacked, then emergency */
    bg_sim_free(sim);

    uint8_t *ck;
    size_t len;
    sim = ck_build();
    CHECK_OK(bg_sim_read_file(sim, CK_FILE, &ck, &len));
    bg_sim_free(sim);
    CHECK(len > 128 + 8 && !memcmp(ck, "BGQI", 4));
    /* 22 pending ops, and the two acked out of turn left dead in their
     * rings */
    uint64_t n0 = ck[80] | (uint64_t)ck[81] << 8, n1 = ck[88];
    CHECK_INT(n0 + n1, ==, 24);
    CHECK_INT(ck[96] + ck[104], ==, 2);
    CHECK_INT(ck[120], ==, 22);
    size_t e0 = 128, e1 = 128 + 16; /* lane 0's first two entries */

    size_t empty = 128 + 16 * (size_t)(n0 + n1); /* the set's first */
    while (empty + 16 <= len && memcmp(ck + empty, "\0\0\0\0", 4))
        empty += 8;
    CHECK_INT(empty + 16, <=, len);

    enum { NCASES = 21 };
    for (int k = 0; k < NCASES; k++) {
        sim = ck_build();
        uint8_t *b = malloc(len + 1);
        memcpy(b, ck, len);
        size_t n = len;
        int fix = 1;
        switch (k) {
        case 0: /* as written: taken */
            break;
        case 1: /* magic */
            b[0] ^= 1;
            fix = 0;
            break;
        case 2: /* an entry, sum kept */
            b[e1 + 3] ^= 4;
            fix = 0;
            break;
        case 3: /* the sum */
            b[len - 1] ^= 1;
            fix = 0;
            break;
        case 4: /* cut short */
            n = len - 1;
            fix = 0;
            break;
        case 5: /* a byte more */
            b[len] = 0;
            n = len + 1;
            fix = 0;
            break;
        case 6: /* empty */
            n = 0;
            fix = 0;
            break;
        case 7: /* another version */
            b[4] ^= 1;
            break;
        case 8: /* another box's id */
            b[8] ^= 1;
            break;
        case 9: /* another sequence floor */
            ck_add64(b, 24, 1);
            break;
        case 10: /* the end moved */
            ck_add64(b, 32, 1);
            break;
        case 11: /* the last frame elsewhere */
            ck_add64(b, 40, -1);
            break;
        case 12: /* its sequence */
            ck_add64(b, 48, 1);
            break;
        case 13: /* claims no frames */
            memset(b + 40, 0, 24);
            break;
        case 14: /* next_id below the ids */
            ck_add64(b, 64, -20);
            break;
        case 15: /* ids out of order */
            memcpy(b + e1, b + e0, 8);
            break;
        case 16: /* past the end */
            ck_add64(b, e1 + 8, 1ll << 30);
            break;
        case 17: /* set count */
            ck_add64(b, 120, 1);
            break;
        case 18: /* dead count */
            ck_add64(b, 96, 1);
            break;
        case 19: /* next_id ahead: allowed */
            ck_add64(b, 64, 5);
            break;
        case 20: /* a used slot more than counted */
            b[empty] = 3;
            b[empty + 4] = 1;
            break;
        }
        if (fix && n >= 8)
            ck_sum(b, n);
        CHECK_OK(bg_sim_write_file(sim, CK_FILE, b, n));
        free(b);
        const char *bad = ck_drain(sim, got, sizeof got, &from);
        if (bad || from != (k == 0 || k == 19))
            printf("  checkpoint case %d: %s, from %d\n", k, bad ? bad : "ok",
                   from);
        CHECK(!bad);
        CHECK_INT(from, ==, k == 0 || k == 19);
        if (k == 19) { /* ids go on from the checkpoint's next_id */
            CHECK(strstr(got, "next 30") != NULL);
        } else {
            CHECK_STR(got, want);
        }
        bg_sim_free(sim);
    }

    /* a checkpoint from before a compaction: the floor moved */
    sim = ck_build();
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(bg_queue_compact(q));
    qclose(s, q);
    CHECK_OK(bg_sim_write_file(sim, CK_FILE, ck, len));
    CHECK(!ck_drain(sim, got, sizeof got, &from));
    CHECK_INT(from, ==, 0);
    CHECK_STR(got, want);
    bg_sim_free(sim);

    /* a checkpoint from another store's queue */
    sim = bg_sim_new(51);
    CHECK_OK(qopen(sim, &s, &q));
    uint64_t id;
    CHECK_OK(enq(q, BG_LANE_NORMAL, "other", &id));
    qclose(s, q);
    uint8_t *other;
    size_t olen;
    CHECK_OK(bg_sim_read_file(sim, CK_FILE, &other, &olen));
    bg_sim_free(sim);
    sim = ck_build();
    CHECK_OK(bg_sim_write_file(sim, CK_FILE, other, olen));
    CHECK(!ck_drain(sim, got, sizeof got, &from));
    CHECK_INT(from, ==, 0);
    CHECK_STR(got, want);
    bg_sim_free(sim);
    free(other);

    /* an old checkpoint and a log that went on without a close: loaded,
     * and the tail after it scanned (an ack and a new op) */
    sim = ck_build();
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_INT(bg__queue_from_checkpoint(q), ==, 1);
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_OK(bg_queue_ack(q, op.id));
    bg_queue_op_clear(&op);
    CHECK_OK(enq(q, BG_LANE_NORMAL, "tail", &id));
    /* power loss: the disk freezes before the close writes anything */
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes);
    CHECK_ERR(bg_queue_close(q), BG_EIO);
    CHECK_OK(tu_kill(sim, s, BG_CRASH_DROP, 1));
    CHECK(!ck_drain(sim, got, sizeof got, &from));
    CHECK_INT(from, ==, 1);
    const char *first = strchr(want, ';');
    CHECK(first != NULL);
    /* the first op is gone, "tail" is last before the op after */
    CHECK(!strncmp(got, first + 1, strlen(first + 1) - strlen("next 30")));
    CHECK(strstr(got, " tail 0 ") != NULL);
    bg_sim_free(sim);
    free(ck);
}

/* A queue whose normal lane's ring has wrapped (its head moved past 900
 * acks, then 900 new ops ran past the end of its array), with a dead
 * entry, ops in both lanes, a set of several 512-slot pieces and the two
 * emergency ops leased at its close: closed, its checkpoint written as
 * arrays or (portable) entry by entry. */
static bg_sim *ck_build_wrapped(int portable)
{
    bg_sim *sim = bg_sim_new(52);
    bg_store *s;
    bg_queue *q;
    uint64_t id, mid = 0;
    char idem[16];
    bg_queue_op op;
    if (qopen_layout(sim, &s, &q, portable))
        return sim;
    for (int i = 0; i < 1905; i++) {
        if (i == 1000) { /* the head moves on */
            for (int k = 0; k < 900; k++) {
                if (bg_queue_lease(q, &op) || bg_queue_ack(q, op.id))
                    return sim;
                bg_queue_op_clear(&op);
            }
        }
        snprintf(idem, sizeof idem, "w-%d", i);
        if (enq(q, i < 1900 ? BG_LANE_NORMAL : BG_LANE_EMERGENCY, idem, &id))
            return sim;
        if (i == 1500)
            mid = id;
    }
    if (bg_queue_ack(q, mid))
        return sim;
    for (int k = 0; k < 2; k++) {
        if (bg_queue_lease(q, &op))
            return sim;
        bg_queue_op_clear(&op);
    }
    qclose(s, q);
    return sim;
}

/* Where the in-memory layout is not the file's (a big-endian machine), the
 * checkpoint is converted entry by entry: the same bytes as the arrays
 * written whole, a wrapped ring and leased ops included, and read back
 * either way to the queue a full scan makes, leases held or run out. */
static void test_checkpoint_written_entry_by_entry(void)
{
    static char want[131072], got[131072];
    int64_t saved = tu_now;
    uint8_t *a, *b;
    size_t alen, blen;
    int from = -1;
    bg_sim *sa = ck_build_wrapped(0), *sb = ck_build_wrapped(1);
    CHECK_OK(bg_sim_read_file(sa, CK_FILE, &a, &alen));
    CHECK_OK(bg_sim_read_file(sb, CK_FILE, &b, &blen));
    CHECK_INT(alen, ==, blen);
    CHECK(alen == blen && !memcmp(a, b, alen));
    /* 1000 normal entries (one dead), then the 5 emergency ones, the first
     * two leased: bit 63 of their second word */
    CHECK_INT(a[80] | a[81] << 8, ==, 1000);
    CHECK_INT(a[88], ==, 5);
    CHECK_INT(a[96], ==, 1);
    size_t lane1 = 128 + 16 * 1000;
    for (int k = 0; k < 5; k++)
        CHECK_INT(a[lane1 + 16 * (size_t)k + 15] >> 7, ==, k < 2);
    free(a);
    free(b);

    for (int expired = 0; expired < 2; expired++) {
        int64_t later = saved + (expired ? 30 * 1000 : 30 * 1000 - 1);
        /* the truth: a full scan */
        bg_sim *sc = ck_build_wrapped(0);
        CHECK_OK(bg_sim_write_file(sc, CK_FILE, (const uint8_t *)"", 0));
        tu_now = later;
        CHECK(!ck_drain(sc, want, sizeof want, &from));
        tu_now = saved;
        CHECK_INT(from, ==, 0);
        bg_sim_free(sc);
        /* the emergency ops come first when their leases have run out */
        CHECK_INT(!strncmp(want, "1901 w-1900 ", 12), ==, expired);
        for (int way = 0; way < 4; way++) {
            /* written as arrays or entry by entry, read either way */
            bg_sim *sim = ck_build_wrapped(way & 1);
            tu_now = later;
            const char *bad =
                ck_drain_layout(sim, got, sizeof got, &from, way >> 1);
            tu_now = saved;
            if (bad)
                printf("  checkpoint way %d, expired %d: %s\n", way, expired,
                       bad);
            CHECK(!bad);
            CHECK_INT(from, ==, 1);
            CHECK_STR(got, want);
            bg_sim_free(sim);
        }
    }
    tu_now = saved;
    bg_sim_free(sa);
    bg_sim_free(sb);
}

/* A lane's ring grows while it wraps, its head anywhere: the ring of 64
 * entries is full with its head at k (k acked, k more enqueued), and the
 * next op doubles it, moving the side of the wrap before the head (k up to
 * 32) or the side from it (above). Every op is found, in order, and
 * again after a reopen. */
static void test_ring_grows_across_its_wrap(void)
{
    static const int heads[] = {1, 10, 32, 33, 50, 63};
    static char got[16384], want[16384];
    int64_t saved = tu_now;
    for (size_t t = 0; t < sizeof heads / sizeof *heads; t++) {
        int k = heads[t];
        bg_sim *sim = bg_sim_new(60 + (unsigned)t);
        bg_store *s;
        bg_queue *q;
        uint64_t id;
        char idem[16];
        bg_queue_op op;
        CHECK_OK(qopen(sim, &s, &q));
        want[0] = '\0';
        for (int i = 0; i < 64 + k + 3; i++) {
            if (i == 64) {
                for (int a = 0; a < k; a++) {
                    CHECK_OK(bg_queue_lease(q, &op));
                    CHECK_OK(bg_queue_ack(q, op.id));
                    bg_queue_op_clear(&op);
                }
            }
            snprintf(idem, sizeof idem, "g-%d", i);
            CHECK_OK(enq(q, BG_LANE_NORMAL, idem, &id));
            if (i >= k) {
                size_t n = strlen(want);
                snprintf(want + n, sizeof want - n, "%s;", idem);
            }
        }
        const char *bad = bg__queue_check(q);
        CHECK(!bad);
        for (int pass = 0; pass < 2; pass++) {
            got[0] = '\0';
            while (bg_queue_lease(q, &op) == 0) {
                size_t n = strlen(got);
                snprintf(got + n, sizeof got - n, "%s;", op.idem);
                bg_queue_op_clear(&op);
            }
            if (strcmp(got, want))
                printf("  head %d, pass %d: %s\n", k, pass, got);
            CHECK_STR(got, want);
            /* the same from the checkpoint, leases run out */
            qclose(s, q);
            tu_now += 31 * 1000;
            CHECK_OK(qopen(sim, &s, &q));
            CHECK(!bg__queue_check(q));
        }
        qclose(s, q);
        bg_sim_free(sim);
    }
    tu_now = saved;
}

/* The processing lock is stale at exactly lock_stale_ms (2 minutes), not a
 * millisecond before. */
static void test_lock_staleness_at_its_edge(void)
{
    bg_sim *sim = bg_sim_new(7);
    bg_store *s;
    bg_queue *q;
    int64_t saved = tu_now;
    int stale;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(bg_queue_lock(q, "worker-1", &stale));
    tu_now = saved + 2 * 60 * 1000 - 1;
    CHECK_ERR(bg_queue_lock(q, "worker-2", &stale), BG_ELOCKED);
    CHECK_INT(stale, ==, 0);
    tu_now = saved + 2 * 60 * 1000;
    CHECK_OK(bg_queue_lock(q, "worker-2", &stale));
    CHECK_INT(stale, ==, 1);
    tu_now = saved;
    qclose(s, q);
    bg_sim_free(sim);
}

/* The lease log's bytes: *n records, each decoded into v (at most 8). */
static size_t lease_log(bg_sim *sim, bg__lease *v, int *bad)
{
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    *bad = 0;
    if (bg_sim_read_file(sim, "s/" BG__LEASE_FILE, &buf, &len))
        return 0;
    if (len % BG__LEASE_REC)
        *bad = 1;
    for (size_t i = 0; i + BG__LEASE_REC <= len; i += BG__LEASE_REC, n++)
        if (n < 8 && bg__lease_decode(buf + i, &v[n]))
            *bad = 1;
    free(buf);
    return n;
}

static uint64_t lease_id(bg_queue *q)
{
    bg_queue_op op;
    if (bg_queue_lease(q, &op))
        return 0;
    uint64_t id = op.id;
    bg_queue_op_clear(&op);
    return id;
}

/* A lease taken by one process holds in the next: the op is not handed out
 * again until its time runs out; the log holds one exact record per lease,
 * and a lease costs one write and no sync. */
static void test_lease_held_across_processes(void)
{
    bg_sim *sim = bg_sim_new(31);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b, c;
    int64_t saved = tu_now;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "c", &c));
    bg_sim_stats before = bg_sim_get_stats(sim);
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, a);
    CHECK_INT(op.lease_until_ms, ==, tu_now + 30 * 1000);
    int64_t a_at = op.enqueued_ms;
    bg_queue_op_clear(&op);
    /* The first lease makes the file and writes it; nothing is synced. */
    CHECK_INT(bg_sim_get_stats(sim).changes - before.changes, ==, 2);
    qclose(s, q);

    bg__lease v[8];
    int bad;
    CHECK_INT(lease_log(sim, v, &bad), ==, 1);
    CHECK_INT(bad, ==, 0);
    CHECK_INT(v[0].id, ==, a);
    CHECK_INT(v[0].attempts, ==, 0);
    CHECK_INT(v[0].at, ==, a_at);
    CHECK_INT(v[0].until, ==, saved + 30 * 1000);

    tu_now = saved + 30 * 1000 - 1;
    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 1);
    before = bg_sim_get_stats(sim);
    CHECK_INT(lease_id(q), ==, b); /* a is held by the first process */
    CHECK_INT(bg_sim_get_stats(sim).changes - before.changes, ==, 1);
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 2);
    qclose(s, q);
    CHECK_INT(lease_log(sim, v, &bad), ==, 2);
    CHECK_INT(v[1].id, ==, b);
    CHECK_INT(v[1].until, ==, saved + 60 * 1000 - 1);

    /* a's lease has run out: a comes back; b's still holds. */
    tu_now = saved + 30 * 1000;
    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 1);
    CHECK_INT(lease_id(q), ==, a);
    CHECK_INT(lease_id(q), ==, c);
    CHECK_INT(lease_id(q), ==, 0);
    qclose(s, q);
    /* The open dropped a's spent record: b's, then the two new ones. */
    CHECK_INT(lease_log(sim, v, &bad), ==, 3);
    CHECK_INT(v[0].id, ==, b);
    CHECK_INT(v[1].id, ==, a);
    CHECK_INT(v[1].until, ==, saved + 60 * 1000);
    CHECK_INT(v[2].id, ==, c);
    tu_now = saved;
    bg_sim_free(sim);
}

/* An ack or a nack ends a lease another process took; neither writes to
 * the log, and the next open keeps only the records that still count. */
/* An ack of a leased op reads nothing: the lease kept its op's key (a
 * lease loaded by the next process too); the ack is one append. An op
 * acked without a lease has its key read back from its frame. */
static void test_ack_of_a_lease_reads_nothing(void)
{
    bg_sim *sim = bg_sim_new(33);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b, c;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_EMERGENCY, "b", &b));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "c", &c));
    CHECK_INT(lease_id(q), ==, b);
    bg_sim_stats s0 = bg_sim_get_stats(sim);
    CHECK_OK(bg_queue_ack(q, b));
    bg_sim_stats s1 = bg_sim_get_stats(sim);
    CHECK_INT(s1.ops - s0.ops, ==, s1.changes - s0.changes); /* no read */
    CHECK_INT(lease_id(q), ==, a);
    qclose(s, q);
    CHECK_OK(qopen(sim, &s, &q)); /* a's lease comes back from the log */
    s0 = bg_sim_get_stats(sim);
    CHECK_OK(bg_queue_ack(q, a));
    s1 = bg_sim_get_stats(sim);
    CHECK_INT(s1.ops - s0.ops, ==, s1.changes - s0.changes);
    s0 = bg_sim_get_stats(sim);
    CHECK_OK(bg_queue_ack(q, c)); /* never leased: its key is read */
    s1 = bg_sim_get_stats(sim);
    CHECK_INT(s1.ops - s0.ops, >, s1.changes - s0.changes);
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0] + st.pending[1], ==, 0);
    qclose(s, q);
    /* Every ack reached the box: nothing is pending after a reopen. */
    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0] + st.pending[1], ==, 0);
    CHECK(bg__queue_check(q) == NULL);
    qclose(s, q);
    bg_sim_free(sim);
}

static void test_ack_and_nack_end_a_lease_across_processes(void)
{
    bg_sim *sim = bg_sim_new(32);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    CHECK_INT(lease_id(q), ==, a);
    CHECK_INT(lease_id(q), ==, b);
    qclose(s, q);

    CHECK_OK(qopen(sim, &s, &q));
    int failed;
    CHECK_OK(bg_queue_nack(q, a, "HTTP 503", &failed));
    CHECK_OK(bg_queue_ack(q, b));
    qclose(s, q);
    bg__lease v[8];
    int bad;
    CHECK_INT(lease_log(sim, v, &bad), ==, 2); /* not written since */

    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 0);
    /* The open dropped both records: a's delivery is over (its attempts
     * moved on), b is gone. */
    CHECK_INT(lease_log(sim, v, &bad), ==, 0);
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, a);
    CHECK_INT(op.attempts, ==, 1);
    bg_queue_op_clear(&op);
    qclose(s, q);
    bg_sim_free(sim);
}

/* The log is advisory: a damaged record, a partial tail or a lost file
 * only hand an op out early, never hide one, and the open rewrites the
 * log to whole records that count. */
static void test_damaged_or_lost_lease_log(void)
{
    bg_sim *sim = bg_sim_new(33);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b, c;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "c", &c));
    CHECK_INT(lease_id(q), ==, a);
    CHECK_INT(lease_id(q), ==, b);
    qclose(s, q);
    uint8_t *buf;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/" BG__LEASE_FILE, &buf, &len));
    CHECK_INT(len, ==, 2 * BG__LEASE_REC);
    uint8_t grown[3 * BG__LEASE_REC];
    memcpy(grown, buf, len);
    grown[BG__LEASE_REC + 24] ^= 1; /* b's end, 1 ms off: no checksum */
    memset(grown + len, 0xab, 7);   /* a partial record */
    CHECK_OK(bg_sim_write_file(sim, "s/" BG__LEASE_FILE, grown, len + 7));
    free(buf);

    CHECK_OK(qopen(sim, &s, &q));
    CHECK_INT(lease_id(q), ==, b); /* its lease is no lease */
    CHECK_INT(lease_id(q), ==, c);
    CHECK_INT(lease_id(q), ==, 0);
    qclose(s, q);
    bg__lease v[8];
    int bad;
    CHECK_INT(lease_log(sim, v, &bad), ==, 3);
    CHECK_INT(bad, ==, 0);
    CHECK_INT(v[0].id, ==, a);
    CHECK_INT(v[1].id, ==, b);
    CHECK_INT(v[2].id, ==, c);

    /* A power cut loses what was not synced: the rewrite and the leases
     * of b and c; a's record was on disk (written above), so a holds. */
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_INT(lease_id(q), ==, b);
    CHECK_INT(lease_id(q), ==, c);
    CHECK_INT(lease_id(q), ==, 0);
    qclose(s, q);
    bg_sim_free(sim);

    /* A lease log never synced is gone after a power cut: the op is
     * handed out again. */
    sim = bg_sim_new(36);
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_INT(lease_id(q), ==, a);
    qclose(s, q);
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_INT(lease_id(q), ==, a);
    qclose(s, q);
    bg_sim_free(sim);
}

/* Read-only, a queue counts the leases others hold and takes none. */
static void test_read_only_counts_leases(void)
{
    bg_sim *sim = bg_sim_new(34);
    bg_store *s;
    bg_queue *q;
    uint64_t a;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_INT(lease_id(q), ==, a);
    qclose(s, q);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = 1;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_queue_open(s, NULL, &q));
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 1);
    bg_queue_op op;
    CHECK_ERR(bg_queue_lease(q, &op), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "read-only");
    int compacted = -1;
    CHECK_ERR(bg_queue_maintain(q, &compacted), BG_ESTATE);
    CHECK_INT(compacted, ==, 0);
    CHECK_CONTAINS(bg_store_detail(s), "read-only");
    qclose(s, q);
    bg_sim_free(sim);
}

/* Past 1024 records with most of them spent, a lease rewrites the log to
 * the leases that still hold: it stays small however many ops pass. */
static void test_lease_log_stays_small(void)
{
    bg_sim *sim = bg_sim_new(35);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen(sim, &s, &q));
    enum { OPS = 1100 };
    for (int i = 0; i < OPS; i++) {
        char idem[16];
        uint64_t id;
        snprintf(idem, sizeof idem, "op%d", i);
        CHECK_OK(enq(q, BG_LANE_NORMAL, idem, &id));
        CHECK_INT(lease_id(q), ==, id);
        CHECK_OK(bg_queue_ack(q, id));
    }
    qclose(s, q);
    uint8_t *buf;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/" BG__LEASE_FILE, &buf, &len));
    free(buf);
    /* Lease 1025 found 1025 records for 1 lease held: the log was
     * rewritten to that one, and the 75 leases after it appended. */
    CHECK_INT(len, ==, (1 + (OPS - 1025)) * BG__LEASE_REC);
    bg_sim_free(sim);
}

/* A lease is held until lease_ms has passed: at until - 1 the op is not
 * handed out; at until it is, with the same id. */
static void test_lease_expiry_at_its_edge(void)
{
    bg_sim *sim = bg_sim_new(8);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b;
    int64_t saved = tu_now;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, a);
    bg_queue_op_clear(&op);
    tu_now = saved + 30 * 1000 - 1;
    CHECK_OK(bg_queue_lease(q, &op)); /* a is held: b comes next */
    CHECK_INT(op.id, ==, b);
    bg_queue_op_clear(&op);
    tu_now = saved + 30 * 1000;
    CHECK_OK(bg_queue_lease(q, &op)); /* a's lease ran out this very ms */
    CHECK_INT(op.id, ==, a);
    bg_queue_op_clear(&op);
    tu_now = saved;
    qclose(s, q);
    bg_sim_free(sim);
}

/* A nack below the limit ends the lease: the op is handed out again at
 * once, with the attempt counted; at exactly max_attempts it moves to
 * failed_ops. */
static void test_attempt_limit_at_its_edge(void)
{
    bg_sim *sim = bg_sim_new(9);
    bg_store *s;
    bg_queue *q;
    uint64_t a;
    int failed = -1;
    CHECK_OK(qopen(sim, &s, &q)); /* max_attempts 3 */
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    bg_queue_op op;
    for (uint32_t i = 0; i < 2; i++) {
        CHECK_OK(bg_queue_lease(q, &op));
        CHECK_INT(op.id, ==, a);
        CHECK_INT(op.attempts, ==, i);
        bg_queue_op_clear(&op);
        CHECK_OK(bg_queue_nack(q, a, "HTTP 503", &failed));
        CHECK_INT(failed, ==, 0);
    }
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 0);
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.attempts, ==, 2);
    CHECK_STR(op.last_error, "HTTP 503");
    bg_queue_op_clear(&op);
    CHECK_OK(bg_queue_nack(q, a, "HTTP 503", &failed));
    CHECK_INT(failed, ==, 1);
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 0);
    CHECK_INT(st.failed, ==, 1);
    qclose(s, q);
    bg_sim_free(sim);
}

/* Retention: an op that failed exactly retention_ms ago stays; one
 * millisecond later it is purged. */
static void test_retention_at_its_edge(void)
{
    bg_sim *sim = bg_sim_new(10);
    bg_store *s;
    bg_queue *q;
    uint64_t a;
    int failed;
    int64_t saved = tu_now;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    for (int i = 0; i < 3; i++)
        CHECK_OK(bg_queue_nack(q, a, "gone", &failed));
    CHECK_INT(failed, ==, 1);
    uint64_t purged;
    tu_now = saved + 30LL * 24 * 3600 * 1000;
    CHECK_OK(bg_queue_purge(q, &purged));
    CHECK_INT(purged, ==, 0);
    tu_now += 1;
    CHECK_OK(bg_queue_purge(q, &purged));
    CHECK_INT(purged, ==, 1);
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.failed, ==, 0);
    tu_now = saved;
    qclose(s, q);
    bg_sim_free(sim);
}

/* Compaction on ack starts at the first ack after which the box is over
 * 1 MiB and over three times its live ops, and not one ack earlier:
 * every op has the same frame length, so the test predicts each ack. */
static void test_compaction_trigger_at_its_edge(void)
{
    bg_sim *sim = bg_sim_new(11);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(tu_open(sim, BG_DURABILITY_OFF, &s));
    bg_queue_opts o;
    bg_queue_opts_init(&o);
    CHECK_OK(bg_queue_open(s, &o, &q));
    bg_box *pb;
    CHECK_OK(bg_box_open(s, "pending_ops", 0, &pb));
    enum { N = 1400 };
    uint64_t ids[N], before, put_len = 0;
    char idem[16], body[1024];
    bg_box_stats bs;
    for (int i = 0; i < N; i++) {
        snprintf(idem, sizeof idem, "op-%05d", i);
        snprintf(body, sizeof body, "{\"i\":%d,\"pad\":\"%0900d\"}", 100000 + i,
                 0);
        bg_box_stats_of(pb, &bs);
        before = bs.file_bytes;
        CHECK_OK(bg_queue_enqueue(q, BG_LANE_NORMAL, idem, body, strlen(body),
                                  &ids[i]));
        bg_box_stats_of(pb, &bs);
        if (i && bs.file_bytes - before != put_len)
            CHECK_INT(bs.file_bytes - before, ==, put_len);
        put_len = bs.file_bytes - before;
    }
    uint64_t del_len = 0;
    int compactions = 0, near = 0;
    bg_queue_stats st;
    for (int i = 0; i < N; i++) {
        bg_box_stats_of(pb, &bs);
        before = bs.file_bytes;
        uint64_t live_after = (uint64_t)(N - i - 1) * put_len;
        CHECK_OK(bg_queue_ack(q, ids[i]));
        bg_box_stats_of(pb, &bs);
        if (!del_len)
            del_len = bs.file_bytes - before;
        /* An ack appends its delete and never compacts. */
        CHECK_INT(bs.file_bytes - before, ==, del_len);
        uint64_t end_after = before + del_len;
        int want = end_after > (1u << 20) && end_after > 3 * live_after;
        near += end_after > (1u << 20) && end_after > 3 * live_after - put_len;
        bg_queue_stats_of(q, &st);
        CHECK_INT(st.compact_due, ==, want);
        int compacted;
        CHECK_OK(bg_queue_maintain(q, &compacted));
        bg_box_stats_of(pb, &bs);
        if (compacted != want)
            fprintf(stderr, "ack %d: end %" PRIu64 " live %" PRIu64 "\n", i,
                    end_after, live_after);
        CHECK_INT(compacted, ==, want);
        CHECK_INT(bs.file_bytes < end_after, ==, want);
        compactions += compacted;
        bg_queue_stats_of(q, &st);
        CHECK_INT(st.compact_due, ==, 0);
    }
    CHECK_INT(compactions, ==, 1);
    CHECK_INT(near, >=, 1);
    qclose(s, q);
    bg_sim_free(sim);
}

/* Acks out of turn: while the head is leased, later ops are leased and
 * acked, so the lane's last entries die first; then the head is acked. A
 * reopen rebuilds the index from the box: every ack must hold, none of
 * the ops may come back. */
static void test_acks_out_of_turn_survive_a_reopen(void)
{
    bg_sim *sim = bg_sim_new(12);
    bg_store *s;
    bg_queue *q;
    uint64_t a, b, c, d;
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "a", &a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "b", &b));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "c", &c));
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op)); /* a, held */
    CHECK_INT(op.id, ==, a);
    bg_queue_op_clear(&op);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(bg_queue_lease(q, &op));
        CHECK_INT(op.id, ==, i ? c : b);
        CHECK_OK(bg_queue_ack(q, op.id));
        bg_queue_op_clear(&op);
    }
    CHECK_OK(bg_queue_ack(q, a));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "d", &d));
    qclose(s, q);
    CHECK_OK(qopen(sim, &s, &q));
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 1);
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_INT(op.id, ==, d);
    bg_queue_op_clear(&op);
    CHECK_OK(bg_queue_rebuild(q));
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.pending[0], ==, 1);
    qclose(s, q);
    bg_sim_free(sim);
}

/* Every allocation of a queue workload fails in turn (through the store's
 * allocator, which the queue's index, envelopes and handed-out strings all
 * use): each call succeeds or reports BG_ENOMEM, nothing leaks, and a
 * plain reopen finds a queue whose index checks out and that hands every
 * op out once. */
#define TRY(expr)                                                              \
    do {                                                                       \
        bg_err try_e = (expr);                                                 \
        if (try_e)                                                             \
            return try_e;                                                      \
    } while (0)

static bg_err alloc_workload(bg_store *s, bg_queue *q)
{
    uint64_t id;
    int failed, stale;
    bg_queue_op op;
    char idem[16];
    for (int i = 0; i < 6; i++) {
        snprintf(idem, sizeof idem, "op-%d", i);
        TRY(enq(q, i % 3 ? BG_LANE_NORMAL : BG_LANE_EMERGENCY, idem, &id));
    }
    TRY(bg_queue_lease(q, &op));
    bg_err err = bg_queue_ack(q, op.id);
    bg_queue_op_clear(&op);
    TRY(err);
    for (int i = 0; i < 3; i++) {
        TRY(bg_queue_lease(q, &op));
        /* A tab to escape: these envelopes are read by the general parse,
         * the others by the scan of the plain layout. */
        err = bg_queue_nack(q, op.id, "HTTP\t500", &failed);
        bg_queue_op_clear(&op);
        TRY(err);
    }
    int nf = 0;
    TRY(bg_queue_list_failed(q, count_failed, &nf));
    if (nf != 1)
        return BG_ESTATE; /* a failed op went unlisted: an error swallowed */
    TRY(bg_queue_retry(q, "op-3", &id));
    TRY(bg_queue_lock(q, "w", &stale));
    TRY(bg_queue_compact(q));
    TRY(bg_queue_rebuild(q));
    int n = 0;
    TRY(bg_queue_list_failed(q, count_failed, &n));
    uint64_t purged;
    TRY(bg_queue_purge(q, &purged));
    TRY(bg_queue_unlock(q, "w"));
    (void)s;
    return 0;
}

/* A compaction whose last step (the directory sync after the swap) fails
 * reports it, and the queue goes on from the new file: every op still
 * leases with its payload and acks. */
static void test_compaction_whose_directory_sync_fails(void)
{
    /* The compaction's I/O: the rewrite, whose last step is the directory
     * sync, then the index checkpoint; the sync is found from the end. */
    static uint64_t span;
    int found = 0;
    for (int measure = 1, k = 0; measure >= 0 && !found; measure = 0, k++) {
        bg_sim *sim = bg_sim_new(8);
        bg_store *s;
        bg_queue *q;
        uint64_t id[6];
        char idem[8];
        CHECK_OK(qopen(sim, &s, &q));
        for (int i = 0; i < 6; i++) {
            snprintf(idem, sizeof idem, "c%d", i);
            CHECK_OK(enq(q, BG_LANE_NORMAL, idem, &id[i]));
        }
        for (int i = 0; i < 3; i++)
            CHECK_OK(bg_queue_ack(q, id[i]));
        uint64_t before = bg_sim_get_stats(sim).ops;
        if (measure) {
            CHECK_OK(bg_queue_compact(q));
            span = bg_sim_get_stats(sim).ops - before;
        } else {
            if ((uint64_t)k >= span)
                break;
            bg_sim_fail_at(sim, before + span - (uint64_t)k, BG_EIO);
            if (bg_queue_compact(q) != BG_EIO ||
                !strstr(bg_store_detail(s), "directory could not be synced")) {
                qclose(s, q);
                bg_sim_free(sim);
                continue;
            }
            found = 1;
        }
        for (int i = 3; i < 6; i++) {
            bg_queue_op op;
            CHECK_OK(bg_queue_lease(q, &op));
            CHECK_INT(op.id, ==, id[i]);
            char want[128];
            snprintf(want, sizeof want, "{\"op\":\"c%d\",\"n\":[1,2.50]}", i);
            CHECK(op.payload_len == strlen(want) &&
                  !memcmp(op.payload, want, op.payload_len));
            bg_queue_op_clear(&op);
            CHECK_OK(bg_queue_ack(q, id[i]));
        }
        qclose(s, q);
        bg_sim_free(sim);
    }
    CHECK(found);
}

/* The processing lock of another owner, fresh, is never taken, whichever
 * allocation fails on the way: the answer is BG_ELOCKED or BG_ENOMEM. */
static void test_lock_held_under_allocation_failure(void)
{
    long runs = 0;
    for (long fail = 1;; fail++) {
        bg_sim *sim = bg_sim_new(9);
        bg_store *s;
        bg_queue *q;
        int stale = 0;
        CHECK_OK(qopen(sim, &s, &q));
        CHECK_OK(bg_queue_lock(q, "w1", &stale));
        qclose(s, q);
        tu_alloc a = {.fail_at = fail};
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        bg_queue_opts qo;
        bg_queue_opts_init(&qo);
        bg_err err = bg_store_open("s", &o, &s);
        if (!err) {
            err = bg_queue_open(s, &qo, &q);
            if (!err) {
                err = bg_queue_lock(q, "w2", &stale);
                bg_queue_close(q);
            }
            (void)bg_store_close(s);
        }
        CHECK_INT(a.live, ==, 0);
        if (err != BG_ELOCKED && err != BG_ENOMEM)
            fprintf(stderr, "allocation %ld: %s\n", fail, bg_err_name(err));
        CHECK(err == BG_ELOCKED || err == BG_ENOMEM);
        bg_sim_free(sim);
        runs++;
        if (err == BG_ELOCKED && a.n < fail)
            break;
    }
    printf("  lock held: %ld allocations failed in turn\n", runs - 1);
    CHECK_INT(runs, >, 10);
}

static void test_allocation_failures(void)
{
    long total = 0;
    for (long fail = 1;; fail++) {
        tu_alloc a = {.fail_at = fail};
        bg_sim *sim = bg_sim_new(13);
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        bg_store *s = NULL;
        bg_queue *q = NULL;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err) {
            bg_queue_opts qo;
            bg_queue_opts_init(&qo);
            qo.max_attempts = 3;
            err = bg_queue_open(s, &qo, &q);
        }
        if (!err)
            err = alloc_workload(s, q);
        if (q)
            bg_queue_close(q);
        if (s)
            (void)bg_store_close(s);
        CHECK_INT(a.live, ==, 0);
        if (err && err != BG_ENOMEM)
            fprintf(stderr, "allocation %ld: %s\n", fail, bg_err_name(err));
        CHECK(!err || err == BG_ENOMEM);
        /* Whatever happened, a plain open finds a sound queue. */
        CHECK_OK(qopen(sim, &s, &q));
        const char *broken = bg__queue_check(q);
        if (broken)
            fprintf(stderr, "allocation %ld: %s\n", fail, broken);
        CHECK(!broken);
        char seen[8] = {0};
        bg_queue_op op;
        while (!bg_queue_lease(q, &op)) {
            int i = op.idem[3] - '0';
            CHECK(i >= 0 && i < 6 && !seen[i]);
            seen[i] = 1;
            CHECK_OK(bg_queue_ack(q, op.id));
            bg_queue_op_clear(&op);
        }
        qclose(s, q);
        bg_sim_free(sim);
        if (!err && a.n < fail) { /* fewer allocations than fail: all done */
            total = fail;
            break;
        }
    }
    printf("  queue: %ld allocations failed in turn\n", total - 1);
    CHECK_INT(total, >, 50);
}

/* Envelopes are read by a scan of the layout the queue writes; any other
 * text goes to the general parse, and the two read the same fields. */
typedef struct env_case {
    const char *text;
    int want; /* 1: the scan takes it; 0: the general parse decides */
} env_case;

static const env_case env_cases[] = {
    {"{\"idem\":\"k\",\"lane\":0,\"at\":1,\"attempts\":0,\"op\":1}", 1},
    {"{\"idem\":\"k\",\"lane\":1,\"at\":-5,\"attempts\":2,\"err\":\"e\","
     "\"failed_at\":-3,\"retry_of\":7,\"op\":{}}",
     1},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":999999999999999,\"attempts\":0,"
     "\"op\":1}",
     1}, /* 15 digits: exact as a double */
    {"{\"idem\":\"k\",\"lane\":0,\"at\":9999999999999999,\"attempts\":0,"
     "\"op\":1}",
     0}, /* 16 */
    {"{\"idem\":\"a\\\"b\",\"lane\":0,\"at\":1,\"attempts\":0,\"op\":1}", 0},
    {"{\"idem\":\"a\tb\",\"lane\":0,\"at\":1,\"attempts\":0,\"op\":1}", 0},
    {"{\"idem\":\"k\",\"lane\":-1,\"at\":1,\"attempts\":0,\"op\":1}", 0},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":01,\"attempts\":0,\"op\":1}", 0},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":1e3,\"attempts\":0,\"op\":1}", 0},
    {"{\"idem\": \"k\",\"lane\":0,\"at\":1,\"attempts\":0,\"op\":1}", 0},
    {"{\"lane\":0,\"idem\":\"k\",\"at\":1,\"attempts\":0,\"op\":1}", 0},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":1,\"attempts\":0,\"op\":1", 0},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":1,\"attempts\":0}", 0},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":1,\"attempts\":0,\"retry_of\":-1,"
     "\"op\":1}",
     0},
    {"{\"idem\":\"k\",\"lane\":0,\"at\":-,\"attempts\":0,\"op\":1}", 0},
};

/* How the puts of a box file read as envelopes: by the scan of the
 * queue's layout (plain), by the general parse only (other), or
 * differently by the two (differ). The store is not encrypted: values are
 * the frames' bytes. */
typedef struct env_walk {
    int plain, other, differ;
} env_walk;

static env_walk walk_envelopes(bg_sim *sim, bg_store *s, const char *path)
{
    env_walk w = {0, 0, 0};
    uint8_t *f;
    size_t n;
    uint64_t offs[64];
    if (bg_sim_read_file(sim, path, &f, &n)) {
        w.differ = -1; /* no file */
        return w;
    }
    size_t k = tu_frames(f, n, offs, 64);
    for (size_t i = 0; i < k; i++) {
        const uint8_t *p = f + offs[i];
        uint16_t klen = (uint16_t)(p[10] | p[11] << 8);
        uint32_t vlen = (uint32_t)p[40] | (uint32_t)p[41] << 8 |
                        (uint32_t)p[42] << 16 | (uint32_t)p[43] << 24;
        if (p[8] != BG__KIND_PUT || p[BG__FRAME_HDR] == '~')
            continue; /* deletes; the compaction's marker */
        int a = bg__queue_env_agree(s, (const char *)p + BG__FRAME_HDR + klen,
                                    vlen);
        if (a < 0)
            w.differ++;
        else if (a == 1)
            w.plain++;
        else
            w.other++;
    }
    free(f);
    return w;
}

static void test_envelopes_read_by_their_layout(void)
{
    bg_sim *sim = bg_sim_new(61);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen(sim, &s, &q));
    for (size_t i = 0; i < sizeof env_cases / sizeof *env_cases; i++) {
        const env_case *c = &env_cases[i];
        int got = bg__queue_env_agree(s, c->text, strlen(c->text));
        if (got != c->want)
            fprintf(stderr, "case %zu: %d, want %d\n", i, got, c->want);
        CHECK_INT(got, ==, c->want);
    }
    /* What the queue writes is the scan's layout, but for keys and errors
     * that need escapes. */
    uint64_t a, b, c, d;
    int failed;
    CHECK_OK(enq(q, BG_LANE_NORMAL, "plain", &a));
    CHECK_OK(enq(q, BG_LANE_EMERGENCY, "\xc3\xa9t\xc3\xa9", &b));
    CHECK_OK(bg_queue_enqueue(q, BG_LANE_NORMAL, "q\"uote", "[]", 2, &c));
    CHECK_OK(enq(q, BG_LANE_NORMAL, "to-fail", &d));
    CHECK_OK(bg_queue_nack(q, a, "HTTP 503", &failed));
    CHECK_OK(bg_queue_nack(q, b, "line\nbreak", &failed));
    for (int i = 0; i < 3; i++)
        CHECK_OK(bg_queue_nack(q, d, "gone", &failed));
    CHECK_INT(failed, ==, 1);
    uint64_t again;
    CHECK_OK(bg_queue_retry(q, "to-fail", &again));
    CHECK_OK(bg_queue_nack(q, again, "once more", &failed));
    for (int i = 0; i < 2; i++)
        CHECK_OK(bg_queue_nack(q, again, "and again", &failed));
    CHECK_INT(failed, ==, 1);
    env_walk w = walk_envelopes(sim, s, "s/pending_ops.box");
    CHECK_INT(w.differ, ==, 0);
    /* enqueued: "plain", the key with an accent, "to-fail", its retry;
     * rewritten by a nack: "plain" (HTTP 503), "to-fail" twice, the retry
     * twice */
    CHECK_INT(w.plain, ==, 9);
    CHECK_INT(w.other, ==, 2); /* the key with '"'; the newline */
    w = walk_envelopes(sim, s, "s/failed_ops.box");
    CHECK_INT(w.differ, ==, 0);
    CHECK_INT(w.plain, ==, 2); /* failed, and again with its retry link */
    CHECK_INT(w.other, ==, 0);
    /* Each is read back as written, whichever reader took it. */
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_STR(op.idem, "\xc3\xa9t\xc3\xa9");
    CHECK_STR(op.last_error, "line\nbreak");
    bg_queue_op_clear(&op);
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_STR(op.idem, "plain");
    CHECK_STR(op.last_error, "HTTP 503");
    CHECK_INT(op.attempts, ==, 1);
    bg_queue_op_clear(&op);
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_STR(op.idem, "q\"uote");
    CHECK(op.last_error == NULL);
    bg_queue_op_clear(&op);
    qclose(s, q);
    bg_sim_free(sim);
}

/* Many leases held at once are each found by their op's id: acks and
 * nacks in a scrambled order end exactly the lease they name, and the
 * table behind them stays whole (bg__queue_check) through growth, removal
 * and reuse. */
static void test_many_leases_found_by_id(void)
{
    enum { N = 600 };
    bg_sim *sim = bg_sim_new(62);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen_off(sim, &s, &q));
    static uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        char idem[16];
        snprintf(idem, sizeof idem, "m-%d", i);
        CHECK_OK(bg_queue_enqueue(q, i % 5 ? BG_LANE_NORMAL : BG_LANE_EMERGENCY,
                                  idem, "1", 1, &ids[i]));
    }
    bg_queue_op op;
    for (int i = 0; i < N; i++) {
        CHECK_OK(bg_queue_lease(q, &op));
        bg_queue_op_clear(&op);
    }
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, N);
    const char *broken = bg__queue_check(q);
    CHECK(!broken);
    /* Ack two of every three in a scrambled order (a step coprime with
     * N), nack the third: each ends its own lease. */
    int acked = 0, nacked = 0;
    for (int k = 0; k < N; k++) {
        int i = (int)(((long)k * 337) % N);
        int failed;
        if (i % 3) {
            CHECK_OK(bg_queue_ack(q, ids[i]));
            acked++;
        } else {
            CHECK_OK(bg_queue_nack(q, ids[i], "later", &failed));
            nacked++;
        }
        if ((broken = bg__queue_check(q)))
            fprintf(stderr, "after %d: %s\n", k, broken);
        CHECK(!broken);
        bg_queue_stats_of(q, &st);
        CHECK_INT(st.leased, ==, N - acked - nacked);
    }
    /* The nacked ones lease again, each once, and ack. */
    int again = 0;
    while (!bg_queue_lease(q, &op)) {
        CHECK_INT(op.attempts, ==, 1);
        CHECK_OK(bg_queue_ack(q, op.id));
        bg_queue_op_clear(&op);
        again++;
    }
    CHECK_INT(again, ==, nacked);
    CHECK(!bg__queue_check(q));
    qclose(s, q);
    bg_sim_free(sim);
}

/* Leases of ids far apart share slots: seven held while two thousand later
 * ops come and go, one of the seven picked at random acked as each new
 * lease is taken. The held ids scatter, so runs form in the table (16
 * slots in a new queue) and an ack often empties a slot before later ones
 * of its run. */
static void test_lease_table_runs(void)
{
    bg_sim *sim = bg_sim_new(63);
    bg_store *s;
    bg_queue *q;
    bg_queue_op op;
    bg_queue_stats st;
    const char *broken;
    CHECK_OK(qopen_off(sim, &s, &q));
    enum { HELD = 7, CHURN = 2000 };
    uint64_t win[HELD], id;
    for (int i = 0; i < HELD + CHURN; i++) {
        char idem[16];
        snprintf(idem, sizeof idem, "c-%d", i);
        CHECK_OK(bg_queue_enqueue(q, BG_LANE_NORMAL, idem, "2", 1, &id));
    }
    uint32_t rnd = 62;
    for (int i = 0; i < HELD + CHURN; i++) {
        CHECK_OK(bg_queue_lease(q, &op));
        int k = i;
        if (i >= HELD) {
            rnd = rnd * 1103515245u + 12345u;
            k = (int)((rnd >> 16) % HELD);
            CHECK_OK(bg_queue_ack(q, win[k]));
        }
        win[k] = op.id;
        bg_queue_op_clear(&op);
        bg_queue_stats_of(q, &st);
        CHECK_INT(st.leased, ==, i < HELD ? i + 1 : HELD);
        if ((broken = bg__queue_check(q)))
            fprintf(stderr, "churn %d: %s\n", i, broken);
        CHECK(!broken);
    }
    for (int i = 0; i < HELD; i++)
        CHECK_OK(bg_queue_ack(q, win[i]));
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.leased, ==, 0);
    CHECK_INT(st.pending[0] + st.pending[1], ==, 0);
    CHECK(!bg__queue_check(q));
    qclose(s, q);
    bg_sim_free(sim);
}

/* A drained queue compacts at the lease that finds nothing (no frame to
 * copy); one with ops still pending does not: that is bg_queue_maintain's. */
static void test_drained_queue_compacts_at_an_empty_lease(void)
{
    bg_sim *sim = bg_sim_new(64);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen_off(sim, &s, &q));
    char idem[16], body[1024];
    uint64_t id, keep = 0;
    for (int i = 0; i < 1500; i++) {
        snprintf(idem, sizeof idem, "d-%d", i);
        snprintf(body, sizeof body, "{\"pad\":\"%0900d\"}", i);
        CHECK_OK(
            bg_queue_enqueue(q, BG_LANE_NORMAL, idem, body, strlen(body), &id));
        if (i == 1499)
            keep = id;
    }
    bg_queue_op op;
    for (int i = 0; i < 1499; i++) {
        CHECK_OK(bg_queue_lease(q, &op));
        CHECK_OK(bg_queue_ack(q, op.id));
        bg_queue_op_clear(&op);
    }
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.compact_due, ==, 1);
    uint8_t *f;
    size_t big, n;
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &big));
    free(f);
    CHECK_INT(big, >, 1u << 20);
    /* One op leased and pending: nothing to lease, and no compaction. */
    CHECK_OK(bg_queue_lease(q, &op));
    bg_queue_op_clear(&op);
    CHECK_ERR(bg_queue_lease(q, &op), BG_ENOTFOUND);
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &n));
    free(f);
    CHECK_INT(n, ==, big);
    CHECK_OK(bg_queue_ack(q, keep));
    CHECK_ERR(bg_queue_lease(q, &op), BG_ENOTFOUND);
    CHECK_OK(bg_sim_read_file(sim, "s/pending_ops.box", &f, &n));
    free(f);
    CHECK_INT(n, <, 4096);
    bg_queue_stats_of(q, &st);
    CHECK_INT(st.compact_due, ==, 0);
    qclose(s, q);
    bg_sim_free(sim);
}

/* A full scan (the checkpoint unusable) starts from tables presized for
 * the file: 800 ops' worth for a file of 200 KiB, more than its 300 ops, in
 * both lanes; the queue it builds drains exactly, in lane order, with
 * every key still known to the idempotency set. */
static void test_full_scan_presized(void)
{
    enum { N = 300 };
    bg_sim *sim = bg_sim_new(65);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen(sim, &s, &q));
    char idem[16], body[700];
    uint64_t id;
    for (int i = 0; i < N; i++) {
        snprintf(idem, sizeof idem, "p-%03d", i);
        snprintf(body, sizeof body, "{\"i\":%d,\"pad\":\"%0500d\"}", i, 0);
        CHECK_OK(bg_queue_enqueue(q, i % 4 ? BG_LANE_NORMAL : BG_LANE_EMERGENCY,
                                  idem, body, strlen(body), &id));
    }
    qclose(s, q);
    CHECK_OK(
        bg_sim_write_file(sim, "s/" BG__QUEUE_INDEX, (const uint8_t *)"", 0));
    CHECK_OK(qopen(sim, &s, &q));
    CHECK_INT(bg__queue_from_checkpoint(q), ==, 0);
    CHECK(!bg__queue_check(q));
    for (int i = 0; i < N; i++) {
        snprintf(idem, sizeof idem, "p-%03d", i);
        CHECK_ERR(bg_queue_enqueue(q, BG_LANE_NORMAL, idem, "1", 1, &id),
                  BG_EEXISTS);
    }
    bg_queue_op op;
    int n = 0, last_e = -4, last_n = -1;
    while (!bg_queue_lease(q, &op)) {
        int i = atoi(op.idem + 2);
        if (i % 4 == 0) { /* the emergency lane first, in order */
            CHECK_INT(i, ==, last_e + 4);
            last_e = i;
        } else {
            CHECK_INT(last_e, ==, N - 4);
            CHECK(i > last_n);
            last_n = i;
        }
        CHECK_OK(bg_queue_ack(q, op.id));
        bg_queue_op_clear(&op);
        n++;
    }
    CHECK_INT(n, ==, N);
    qclose(s, q);
    bg_sim_free(sim);
}

/* The idempotency set grows without a rehash in one op: the enqueue that
 * fills it makes a table twice the size and moves 8 slots of the old one,
 * each later enqueue 8 more, until the old one is gone, long before the
 * next growth. Throughout, a pending op's key is refused with its id, an
 * acked op's key is taken again, and the index holds together (one slot
 * per live op across both tables). */
static void test_set_grows_in_steps(void)
{
    bg_sim *sim = bg_sim_new(61);
    bg_store *s;
    bg_queue *q;
    CHECK_OK(qopen_off(sim, &s, &q));
    enum { N = 3000 };
    static uint64_t ids[N];
    size_t cap, ocap, omoved, grows = 0, steps = 0;
    uint64_t acked_upto = 0, dup;
    char idem[32];
    for (int i = 0; i < N; i++) {
        snprintf(idem, sizeof idem, "op-%d", i);
        size_t was_cap, was_moved, was_ocap;
        bg__queue_set_state(q, &was_cap, &was_ocap, &was_moved);
        CHECK_OK(enq(q, BG_LANE_NORMAL, idem, &ids[i]));
        bg__queue_set_state(q, &cap, &ocap, &omoved);
        if (cap != was_cap) {
            grows++;
            CHECK_INT(was_ocap, ==, 0); /* the last move was over */
            CHECK_INT(cap, ==, was_cap ? 2 * was_cap : 64);
            if (was_cap) {
                CHECK_INT(ocap, ==, was_cap);
                CHECK_INT(omoved, ==, 8);
            }
        } else if (was_ocap) {
            steps++;
            CHECK(ocap == 0 ? was_moved + 8 >= was_ocap
                            : omoved == was_moved + 8);
        }
        const char *bad = bg__queue_check(q);
        if (bad)
            fprintf(stderr, "after enqueue %d: %s\n", i, bad);
        CHECK(bad == NULL);
        if (i % 7 == 3) { /* a pending key, in either table */
            int k =
                (int)(acked_upto + (uint64_t)(i * 31) % (i + 1 - acked_upto));
            snprintf(idem, sizeof idem, "op-%d", k);
            CHECK_ERR(enq(q, BG_LANE_NORMAL, idem, &dup), BG_EEXISTS);
            CHECK_INT(dup, ==, ids[k]);
        }
        if (i % 5 == 4) { /* the oldest acked: its key is free again */
            bg_queue_op op;
            CHECK_OK(bg_queue_lease(q, &op));
            CHECK_INT(op.id, ==, ids[acked_upto]);
            CHECK_OK(bg_queue_ack(q, op.id));
            bg_queue_op_clear(&op);
            snprintf(idem, sizeof idem, "op-%d", (int)acked_upto);
            acked_upto++;
            CHECK_OK(enq(q, BG_LANE_NORMAL, idem, &dup));
            CHECK_OK(bg_queue_ack(q, dup)); /* and gone again */
        }
    }
    CHECK_INT(grows, >=, 5);
    CHECK_INT(steps, >, 100);
    qclose(s, q);
    bg_sim_free(sim);
}

int main(void)
{
    RUN(test_fifo_lanes_and_idempotency);
    RUN(test_lease_expires);
    RUN(test_nack_fail_retry_purge);
    RUN(test_processing_lock);
    RUN(test_refusals);
    RUN(test_compaction);
    RUN(test_lock_staleness_at_its_edge);
    RUN(test_lease_expiry_at_its_edge);
    RUN(test_lease_held_across_processes);
    RUN(test_ack_and_nack_end_a_lease_across_processes);
    RUN(test_ack_of_a_lease_reads_nothing);
    RUN(test_damaged_or_lost_lease_log);
    RUN(test_read_only_counts_leases);
    RUN(test_lease_log_stays_small);
    RUN(test_attempt_limit_at_its_edge);
    RUN(test_retention_at_its_edge);
    RUN(test_compaction_trigger_at_its_edge);
    RUN(test_acks_out_of_turn_survive_a_reopen);
    RUN(test_compaction_whose_directory_sync_fails);
    RUN(test_lock_held_under_allocation_failure);
    RUN(test_allocation_failures);
    RUN(test_pending_ops_keeps_zeros_ahead);
    RUN(test_index_checkpoint);
    RUN(test_checkpoint_written_entry_by_entry);
    RUN(test_ring_grows_across_its_wrap);
    RUN(test_envelopes_read_by_their_layout);
    RUN(test_many_leases_found_by_id);
    RUN(test_lease_table_runs);
    RUN(test_drained_queue_compacts_at_an_empty_lease);
    RUN(test_full_scan_presized);
    RUN(test_set_grows_in_steps);
    return CHECK_DONE();
}
