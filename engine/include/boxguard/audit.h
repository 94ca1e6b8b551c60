/*
 * The audit log: the store's durable record of what the engine did to it,
 * kept in its own box (audit.box), one record per event, written durably
 * before the call that did it returns. Events:
 *   migration              a migration applied (outcome committed),
 *                          rolled back (rolled_back) or undone by a
 *                          rollback (restored), with its boxes;
 *   corruption_recovery    a recover that changed a box: the box, the
 *                          damage kind, the byte ranges lost, the copy kept;
 *   stale_queue_lock_taken the queue's processing lock taken over;
 *   key_rotation           a new data key, the boxes resealed, the old keys
 *                          destroyed;
 *   backup_created, backup_restored  the file, its boxes, records and
 *                          schema version (backup.h).
 * Each record is a JSON object with "event", "at" (milliseconds from the
 * store's clock) and the event's details. An erase removes the audit box
 * with everything else; its report is what an app keeps elsewhere.
 */
#ifndef BOXGUARD_AUDIT_H
#define BOXGUARD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/box.h"
#include "boxguard/err.h"
#include "boxguard/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_audit_record {
    const char *key; /* time-ordered, unique */
    int64_t at_ms;   /* 0 when the record has none */
    const char *event;
    const char *json; /* the whole record, as stored */
    size_t json_len;
} bg_audit_record;

/* Calls fn for every record in write order; a non-zero return stops.
 * Valid only during the call. Returns 0 (no audit box: no records),
 * BG_ECORRUPT for a record that is not a JSON object with an "event", or
 * the errors of reading a box (BG_EIO, BG_ECORRUPT, BG_ENOMEM). */
typedef int (*bg_audit_fn)(void *arg, const bg_audit_record *r);
BG_MUST_CHECK bg_err bg_audit_list(bg_store *store, bg_audit_fn fn, void *arg);

/* The record as one line of the export, without its newline, into *line
 * (free with bg_store_free): {"key":K,"at":T,"event":E,"payload":P} where
 * P holds every other member of the record, or is {"redacted":true} when
 * redact is set. Returns 0, BG_ECORRUPT or BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_audit_line(bg_store *store, const bg_audit_record *r,
                                   int redact, char **line, size_t *len);

/* Write every record as an export line (JSON lines) to path through the
 * store's vfs: beside it (path.tmp), synced, renamed over it, its
 * directory synced; *count records. path may be anywhere. Returns 0, the
 * errors of bg_audit_list and bg_audit_line, or BG_EIO, BG_ENOSPACE (path
 * is left as it was). */
BG_MUST_CHECK bg_err bg_audit_export(bg_store *store, const char *path,
                                     int redact, uint64_t *count);

/* bg_box_recover, and when it changed the box (a torn tail cut, damage
 * repaired) a corruption_recovery record in the audit log, durably, with
 * the ranges lost. Returns what bg_box_recover returns, or the error of
 * writing the record (the box is then recovered, the record missing). */
BG_MUST_CHECK bg_err bg_recover_box(bg_store *store, const char *name,
                                    bg_box_report *rep);

#ifdef __cplusplus
}
#endif
#endif
