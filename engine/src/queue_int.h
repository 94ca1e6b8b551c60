/*
 * Internals of the queue for its tests and fuzzers.
 */
#ifndef BOXGUARD_QUEUE_INT_H
#define BOXGUARD_QUEUE_INT_H

#include "boxguard/queue.h"

/* The zeroed region pending_ops keeps ahead of its log (durability full
 * or group): a durable enqueue overwrites zeros, so its sync does not
 * change the file's size. */
#define BG__QUEUE_ZERO_MIN (4u << 10)
#define BG__QUEUE_ZERO_MAX (4u << 20)

/* 1 when this open loaded the index from pending_ops.index and scanned
 * only the log after it; 0 when it scanned the whole log. */
int bg__queue_from_checkpoint(const bg_queue *q);

/* Queues opened on s from now on write and read their index checkpoint
 * entry by entry, converting each, as where the in-memory layout is not
 * the file's (a big-endian machine), instead of as whole arrays. The
 * bytes must be the same either way. */
void bg__queue_portable_checkpoint(bg_store *s, int on);

/* Check the in-memory index: each lane in id order, dead entries counted.
 * Returns NULL, or a message naming the broken invariant (in a static
 * buffer). */
const char *bg__queue_check(bg_queue *q);

/* The idempotency set's table size; while it grows, the old table's size
 * and how many of its slots have been moved (else 0 and 0). */
void bg__queue_set_state(const bg_queue *q, size_t *cap, size_t *ocap,
                         size_t *omoved);

/* Read text as an envelope both ways: by the scan of env_build's plain
 * layout and by the general parse. Returns 1 when the scan took it and
 * both read the same fields, 0 when the scan left it to the general
 * parse, -1 when they differ, -2 when memory ran out. */
int bg__queue_env_agree(bg_store *s, const char *text, size_t len);

#endif
