/*
 * The pending-ops queue: the FIFO of operations an offline app still has to
 * send, kept in the store's `pending_ops` box, with failed operations in
 * `failed_ops` and the processing lock in `meta`.
 *
 * - enqueue appends an operation to a lane (the emergency lane is served
 *   before the normal one) under an idempotency key: a key already pending
 *   is not enqueued again (BG_EEXISTS, with the pending op's id).
 * - lease hands out the oldest unleased operation (at-least-once: a lease
 *   that is not acked, because the process died or the lease ran out, is
 *   handed out again); ack removes it; nack counts an attempt and records
 *   the error, and past max_attempts moves the operation to failed_ops.
 * - retry puts a failed operation back under its idempotency key; purge
 *   drops failed operations older than the retention (30 days by default,
 *   by the store's clock).
 * - The processing lock has an owner and a start time and goes stale after
 *   lock_stale_ms (2 minutes); taking a stale lock writes an audit record
 *   to the `audit` box.
 *
 * Memory: per pending operation the queue keeps its id, file offset and
 * length (16 bytes) and a slot of its idempotency set (8 bytes, a table at
 * most three quarters full); payloads stay on disk. The set holds the low
 * half of each id: an op that stays pending while more than 2^32 later ops
 * are enqueued is no longer recognised as a duplicate. Enqueue, lease, ack and
 * nack cost O(1) whatever the depth (leases are found by id through a table
 * of their own); none of them compacts the box, which bg_queue_maintain
 * does when the app has time. The in-memory index is rebuilt on open: from
 * pending_ops.index when it matches the log, else by a scan of the log
 * with tables presized from the file's size (and on demand by
 * bg_queue_rebuild).
 */
#ifndef BOXGUARD_QUEUE_H
#define BOXGUARD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"
#include "boxguard/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_queue bg_queue;

typedef enum bg_lane { BG_LANE_NORMAL = 0, BG_LANE_EMERGENCY = 1 } bg_lane;

typedef struct bg_queue_opts {
    uint32_t max_attempts; /* default 5 */
    int64_t retention_ms;  /* failed ops kept this long; default 30 days */
    int64_t lease_ms;      /* an unacked lease expires; default 30 s */
    int64_t lock_stale_ms; /* processing lock goes stale; default 2 min */
} bg_queue_opts;

void bg_queue_opts_init(bg_queue_opts *o);

/* One operation, as lease and the failed-op listing hand it out. The
 * strings come from the store's allocator: free them with
 * bg_queue_op_clear, before the store is closed. */
typedef struct bg_queue_op {
    bg_store *store; /* whose allocator holds the strings; set by the queue */
    uint64_t id;
    bg_lane lane;
    uint32_t attempts;
    int64_t enqueued_ms;
    int64_t failed_ms;      /* failed ops only */
    int64_t lease_until_ms; /* leased ops: when the lease runs out */
    char *idem;             /* idempotency key */
    char *payload;          /* the operation's JSON */
    size_t payload_len;
    char *last_error; /* NULL when none */
} bg_queue_op;

typedef struct bg_queue_stats {
    uint64_t pending[2]; /* by lane */
    uint64_t leased;
    uint64_t failed;
    uint64_t next_id;
    int64_t oldest_ms; /* enqueue time of the oldest pending op, or 0 */
    int compact_due;   /* bg_queue_maintain would compact */
} bg_queue_stats;

/* Open the queue of a store (creating its boxes when the store is
 * writable), rebuild the index, and settle an interrupted move to
 * failed_ops or retry. Returns 0, or the errors of bg_box_open, BG_ENOMEM.
 * The queue must be closed before the store. */
BG_MUST_CHECK bg_err bg_queue_open(bg_store *s, const bg_queue_opts *o,
                                   bg_queue **out);
/* Close the queue, writing its index checkpoint (pending_ops.index: the
 * next open loads it and scans only the log after it). Returns 0, or the
 * error that kept the checkpoint from being written; the queue is closed
 * either way and the next open scans the log instead. */
bg_err bg_queue_close(bg_queue *q);

/* Enqueue payload (one JSON value) under idem (1..1024 bytes of UTF-8).
 * Returns 0 with *id; BG_EEXISTS when idem is already pending (*id is
 * that op's, nothing is written); BG_EINVALID for a bad key or payload;
 * the write errors of bg_box_put. */
BG_MUST_CHECK bg_err bg_queue_enqueue(bg_queue *q, bg_lane lane,
                                      const char *idem, const char *payload,
                                      size_t len, uint64_t *id);

/* Lease the oldest unleased op, emergency lane first. Returns 0 (free op
 * with bg_queue_op_clear), BG_ENOTFOUND when nothing is leasable, BG_EIO,
 * BG_ECORRUPT, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_queue_lease(bg_queue *q, bg_queue_op *op);

/* Remove a pending op for good. Returns 0, BG_ENOTFOUND when id is not
 * pending, or the write errors of bg_box_del (BG_ESTATE, BG_ECORRUPT,
 * BG_EIO, BG_ENOSPACE, BG_ENOMEM: the op stays pending). An ack never
 * compacts (see bg_queue_maintain). */
BG_MUST_CHECK bg_err bg_queue_ack(bg_queue *q, uint64_t id);

/* Count a failed attempt of a pending op with its error. Past
 * max_attempts the op moves to failed_ops (*failed = 1). The lease ends.
 * Returns 0, BG_ENOTFOUND when id is not pending, or the write errors of
 * bg_box_put (BG_EINVALID when an op that moves to failed_ops carries an
 * error text that is not valid UTF-8); on a write
 * error the op is where it was (a crash between the two writes of a move
 * is settled by the next bg_queue_open). */
BG_MUST_CHECK bg_err bg_queue_nack(bg_queue *q, uint64_t id, const char *error,
                                   int *failed);

/* Put the failed op with idempotency key idem back at the end of the
 * normal lane, attempts reset. Returns 0 with *id, BG_ENOTFOUND, BG_EEXISTS
 * (that key is pending already), or write errors. */
BG_MUST_CHECK bg_err bg_queue_retry(bg_queue *q, const char *idem,
                                    uint64_t *id);

/* Drop failed ops older than the retention. *purged counts them.
 * Returns 0 or the write errors of bg_box_del (those purged before the
 * error stay purged). */
BG_MUST_CHECK bg_err bg_queue_purge(bg_queue *q, uint64_t *purged);

/* Call fn for every failed op (oldest first); a non-zero return from fn
 * stops early. Returns 0, or the errors of bg_box_iterate. */
typedef int (*bg_queue_op_fn)(void *arg, const bg_queue_op *op);
BG_MUST_CHECK bg_err bg_queue_list_failed(bg_queue *q, bg_queue_op_fn fn,
                                          void *arg);

void bg_queue_stats_of(const bg_queue *q, bg_queue_stats *st);

/* Rewrite pending_ops with only the pending ops (written beside, synced,
 * renamed into place), at a cost of O(pending ops). Returns 0 or the errors
 * of bg_box_compact; on error the box is as it was. */
BG_MUST_CHECK bg_err bg_queue_compact(bg_queue *q);

/* The upkeep no op does by itself: compact pending_ops when it is due,
 * that is over 1 MiB and over three times the frames of its pending ops
 * (*compacted = 1). Acks leave the acked frames in the box, so that no ack
 * pays a compaction; call this when the app has time (idle, in the
 * background, after a sync). A lease that finds nothing pending compacts
 * by itself, as there is nothing to copy then. bg_queue_stats's
 * compact_due says whether it is due. Returns 0, BG_ESTATE on a read-only
 * store, or the errors of bg_queue_compact. */
BG_MUST_CHECK bg_err bg_queue_maintain(bg_queue *q, int *compacted);

/* Rebuild the in-memory index from the pending_ops box. Returns 0,
 * BG_ECORRUPT (the box needs recover), BG_EIO, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_queue_rebuild(bg_queue *q);

/* Take the processing lock for owner. Returns 0 (*was_stale = 1 when a
 * stale lock of another owner was taken over, which is audited),
 * BG_ELOCKED when another owner holds a fresh lock (detail names it),
 * BG_EINVALID for an owner that is not a valid key, or the write errors
 * of bg_box_put.
 * Taking it again as the same owner refreshes it. */
BG_MUST_CHECK bg_err bg_queue_lock(bg_queue *q, const char *owner,
                                   int *was_stale);
/* Release the lock if owner holds it; BG_ESTATE otherwise. */
BG_MUST_CHECK bg_err bg_queue_unlock(bg_queue *q, const char *owner);

/* The processing lock as stored: its owner ("" when the queue is not
 * locked) and when it was taken. Returns 0 or the read errors of
 * bg_box_get. */
BG_MUST_CHECK bg_err bg_queue_lock_info(bg_queue *q, char *owner, size_t cap,
                                        int64_t *since_ms);

/* The op at the head of a lane, not leased by this call. */
typedef struct bg_queue_head {
    uint64_t id;
    uint32_t attempts; /* failed deliveries so far */
    int64_t enqueued_ms;
    int64_t lease_until_ms; /* a lease that still holds, or 0 */
} bg_queue_head;

/* Returns 0 with *h, BG_ENOTFOUND for an empty lane, or the read errors
 * of the op's frame. */
BG_MUST_CHECK bg_err bg_queue_head_of(bg_queue *q, bg_lane lane,
                                      bg_queue_head *h);

/* The pending count three ways, which must agree: the in-memory index,
 * the op records of pending_ops counted from its frames, and an index
 * rebuilt from the box by the queue's own indexing (beside q's, which
 * stays as it is); and the live records of pending_ops that are no op. */
typedef struct bg_queue_census {
    uint64_t indexed, stored, rebuilt, foreign;
} bg_queue_census;

BG_MUST_CHECK bg_err bg_queue_census_of(bg_queue *q, bg_queue_census *c);

void bg_queue_op_clear(bg_queue_op *op);

#ifdef __cplusplus
}
#endif
#endif
