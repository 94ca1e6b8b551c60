/*
 * The lease log: the queue's leases, kept beside pending_ops so that a
 * lease taken by one process holds in the next (a visibility timeout, as
 * SQS's). The file `pending_ops.leases` is a run of 40-byte records,
 * little-endian:
 *
 *   0  "BGL1"       magic
 *   4  u32          the op's attempts when it was leased
 *   8  u64          the op's id
 *   16 i64          the op's enqueue time (ms), from its envelope
 *   24 i64          the lease's end (ms, the store's clock)
 *   32 u64          XXH3-64 of bytes 0..31
 *
 * A record binds the lease to one delivery of one op: an ack removes the
 * op, a nack changes its attempts, so neither has to write here. Nothing in
 * the file is ever synced: losing a lease to a power cut only hands its op
 * out again early, which at-least-once delivery allows. A record that does
 * not verify (torn, a partial tail, garbage) is no lease.
 */
#ifndef BOXGUARD_LEASE_LOG_INT_H
#define BOXGUARD_LEASE_LOG_INT_H

#include <stdint.h>

#include "handle_int.h"

#define BG__LEASE_FILE "pending_ops.leases"
/* The queue's other file beside pending_ops: its index checkpoint
 * (queue.c), which the store's erase also removes. */
#define BG__QUEUE_INDEX "pending_ops.index"
#define BG__LEASE_REC   40

typedef struct bg__lease {
    uint64_t id;
    int64_t at;    /* the op's enqueue time */
    int64_t until; /* the lease ends then */
    uint32_t attempts;
} bg__lease;

typedef struct bg__lease_log {
    bg_file *f;        /* open for writing once a lease was written */
    uint64_t end;      /* where the next record goes */
    uint64_t appended; /* records written since the file was last rewritten */
} bg__lease_log;

void bg__lease_encode(const bg__lease *l, uint8_t out[BG__LEASE_REC]);
/* 0 with *l, or BG_ECORRUPT for bytes that are not a record. */
BG_MUST_CHECK bg_err bg__lease_decode(const uint8_t in[BG__LEASE_REC],
                                      bg__lease *l);

/* Call fn for every record that verifies, in file order (a non-zero return
 * stops). A missing file has none. *records counts the whole records the
 * file holds, valid or not, and *tail is 1 when it ends in a partial one.
 * Returns 0, BG_EIO, BG_ENOMEM. */
typedef int (*bg__lease_fn)(void *arg, const bg__lease *l);
BG_MUST_CHECK bg_err bg__lease_log_read(bg_store *s, bg__lease_fn fn, void *arg,
                                        uint64_t *records, int *tail);

/* Append one record (no sync; the file is made on the first). Returns 0,
 * BG_EIO, BG_ENOSPACE. */
BG_MUST_CHECK bg_err bg__lease_log_append(bg_store *s, bg__lease_log *lg,
                                          const bg__lease *l);

/* Replace the file's content with the n records of v (truncate, then one
 * write; no sync). With n == 0 and no file, nothing is made. Returns 0,
 * BG_EIO, BG_ENOSPACE, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg__lease_log_rewrite(bg_store *s, bg__lease_log *lg,
                                           const bg__lease *v, size_t n);

void bg__lease_log_close(bg_store *s, bg__lease_log *lg);

#endif
