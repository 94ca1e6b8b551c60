/*
 * Boxes: typed JSON records in an append-only, checksummed log file
 * (<store>/<name>.box). The on-disk format is described in the README.
 *
 * In memory a box keeps an index key -> (offset, length, sequence, typeId);
 * values are read from disk on demand and verified on every read.
 *
 * Opening scans the file. A torn tail (an incomplete or bad last frame, or
 * an incomplete batch, with nothing durable after it) is the expected
 * artefact of a crash: a writable open cuts it off and reports it. Damage
 * followed by frames that were synced after it is corruption: the box opens
 * read-only (writes fail with BG_ECORRUPT) and bg_box_recover() repairs it.
 */
#ifndef BOXGUARD_BOX_H
#define BOXGUARD_BOX_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"
#include "boxguard/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_box bg_box;

#define BG_BOX_NAME_MAX      64 /* names: [A-Za-z0-9_-], 1..64 characters */
#define BG_BOX_REPORT_RANGES 16

enum bg_box_open_flags {
    BG_BOX_CREATE = 1, /* create the box when missing */
    BG_BOX_ENCRYPT = 2 /* with CREATE: seal its values (see rekey.h) */
};

typedef enum bg_box_status {
    BG_BOX_CLEAN = 0,
    BG_BOX_TORN = 1,   /* a torn tail (cut on a writable open) */
    BG_BOX_CORRUPT = 2 /* damage before durable frames: needs recover */
} bg_box_status;

typedef struct bg_box_range {
    uint64_t off, len;
} bg_box_range;

/* What a scan of a box file found. */
typedef struct bg_box_report {
    bg_box_status status;
    int header_ok;
    uint64_t file_size;
    uint64_t frames;        /* frames that verify */
    uint64_t valid_end;     /* end of the last good frame before damage */
    uint64_t zeroed;        /* zero bytes after the last frame, to the end
                               of the file: room kept for appends (clean) */
    uint64_t first_damage;  /* offset of the first damaged byte (if any) */
    uint64_t cut;           /* TORN: where the file is (to be) cut */
    uint64_t tail_frames;   /* TORN: verifying frames of the cut tail */
    uint64_t lost_bytes;    /* bytes in damaged ranges (and the cut tail) */
    uint64_t auth_failures; /* sealed boxes: frames whose checksum holds but
                               that do not authenticate (always damage) */
    uint64_t nranges;       /* damaged ranges found; the first
                               BG_BOX_REPORT_RANGES are listed */
    bg_box_range ranges[BG_BOX_REPORT_RANGES];
    char quarantine[256]; /* where the damaged file (recover), or a cut
                             torn tail holding frames that verify (a
                             writing open, recover), was copied; "" */
} bg_box_report;

typedef struct bg_box_stats {
    uint64_t records; /* live keys */
    uint64_t frames;  /* frames in the file */
    uint64_t file_bytes;
    uint64_t live_bytes; /* bytes of the frames of live records */
    uint64_t next_seq;
} bg_box_stats;

/* One record as handed to an iterator; pointers valid during the call. */
typedef struct bg_record {
    const char *key;
    size_t key_len;
    uint32_t type;
    const char *value;
    size_t value_len;
    uint64_t seq;
} bg_record;

typedef int (*bg_box_iter_fn)(void *arg, const bg_record *rec);

/* One write of a batch. */
typedef struct bg_write {
    int del; /* 1: delete key (type and value ignored) */
    const char *key;
    size_t key_len;
    uint32_t type;
    const char *value;
    size_t value_len;
} bg_write;

/* Open box name of the store (the handle is owned by the store and stays
 * valid until bg_store_close or bg_box_recover of that box). With
 * BG_BOX_CREATE a missing box is created durably. A writable open cuts a
 * torn tail; bg_box_report_of() tells what the open found.
 * Returns 0, or BG_EINVALID (bad name), BG_ENOTFOUND, BG_ESTATE (create on
 * a read-only store), BG_EIO, BG_ENOSPACE, BG_ENOMEM. A damaged box opens
 * (read-only) with status BG_BOX_CORRUPT. */
BG_MUST_CHECK bg_err bg_box_open(bg_store *store, const char *name, int flags,
                                 bg_box **out);

/* What opening found (status, cut, damaged ranges). */
const bg_box_report *bg_box_report_of(const bg_box *box);

/* Store value (one JSON document, validated) under key with typeId type.
 * Under FULL durability it is durable when this returns 0.
 * Returns 0, or:
 *   BG_EINVALID  bad key or JSON, a value over 16 MiB, or one of the
 *                store's own boxes (meta, audit, pending_ops, failed_ops),
 *                which take no public writes; nothing written;
 *   BG_ESCHEMA   the record does not fit its typeId's adapter, or the
 *                typeId has none;
 *   BG_ESTATE    read-only store, or a box stopped by an earlier failed
 *                sync or rollback (reopen it);
 *   BG_ECORRUPT  the box is damaged and needs bg_box_recover;
 *   BG_EIO, BG_ENOSPACE, BG_ENOMEM.
 * After an error the box is as it was before the call. */
BG_MUST_CHECK bg_err bg_box_put(bg_box *box, const void *key, size_t key_len,
                                uint32_t type, const char *value,
                                size_t value_len);

/* Delete key. Returns 0, BG_ENOTFOUND (nothing written), or the errors of
 * bg_box_put (BG_EINVALID also for one of the store's own boxes). */
BG_MUST_CHECK bg_err bg_box_del(bg_box *box, const void *key, size_t key_len);

/* Apply n writes all or nothing: after a crash either every one of them is
 * there or none is. Returns 0 or the errors of bg_box_put; on error nothing
 * of the batch is applied. Deleting a missing key is allowed in a batch. */
BG_MUST_CHECK bg_err bg_box_write_batch(bg_box *box, const bg_write *w,
                                        size_t n);

/* Read key. On 0, *value (NUL-terminated, from the store's allocator; free
 * with bg_store_free) holds value_len bytes and *type the typeId.
 * Returns 0, or:
 *   BG_ENOTFOUND  no such key (or an empty key);
 *   BG_ESCHEMA    the record's typeId has no adapter in the store's
 *                 registry (the detail names box, key and typeId);
 *   BG_ECORRUPT   the frame on disk no longer verifies;
 *   BG_EAUTH      sealed box: the frame's checksum holds but it does not
 *                 authenticate under the key (edited, swapped, replayed);
 *   BG_EIO, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_box_get(bg_box *box, const void *key, size_t key_len,
                                uint32_t *type, char **value,
                                size_t *value_len);

/* Call fn for every live record in write order; a non-zero return from fn
 * stops early (and is not an error). Every record is verified before it is
 * handed out. Returns 0, or the errors of bg_box_get but BG_ENOTFOUND. */
BG_MUST_CHECK bg_err bg_box_iterate(bg_box *box, bg_box_iter_fn fn, void *arg);

/* Rewrite the file with only the live records: written beside it, synced,
 * renamed over it, directory synced. Returns 0 or BG_EINVALID (one of the
 * store's own boxes: their owners compact them), BG_ESTATE, BG_ECORRUPT,
 * BG_EIO, BG_ENOSPACE, BG_ENOMEM; on error the box is unchanged. */
BG_MUST_CHECK bg_err bg_box_compact(bg_box *box);

/* Make every write to this box durable. Returns 0, BG_EIO or BG_ENOSPACE
 * (the box then takes no more writes: BG_ESTATE until reopened), or
 * BG_ESTATE for a box an earlier failure stopped. */
BG_MUST_CHECK bg_err bg_box_sync(bg_box *box);

void bg_box_stats_of(const bg_box *box, bg_box_stats *st);

/* Scan box name's file without changing a byte and report what it holds.
 * Returns 0 (see rep->status for damage), BG_EINVALID (bad name),
 * BG_ENOTFOUND, BG_EAUTH (sealed with a key the store does not have, or no
 * frame authenticates: a wrong key), BG_EIO, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_box_verify(bg_store *store, const char *name,
                                   bg_box_report *rep);

/* Repair box name. A torn tail is cut. A corrupt box is first copied to
 * quarantine/<name>_corrupted_YYYYMMDD.bak, then rewritten with every frame
 * that still verifies; rep lists the byte ranges lost. Idempotent: a clean
 * box is left as it is. Any open handle of the box is closed first.
 * Returns 0, or BG_ESTATE (read-only store), BG_EINVALID, BG_ENOTFOUND,
 * BG_EAUTH (as bg_box_verify), BG_EIO, BG_ENOSPACE, BG_ENOMEM; on error
 * the box file is unchanged. */
BG_MUST_CHECK bg_err bg_box_recover(bg_store *store, const char *name,
                                    bg_box_report *rep);

#ifdef __cplusplus
}
#endif
#endif
