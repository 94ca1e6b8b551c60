/*
 * The migration journal, migration.journal: what a migration (or the
 * rollback of one) is doing, written atomically (beside, synced, renamed,
 * directory synced) before each step, so that a store opened after a crash
 * can finish the work or undo it. It is a JSON object:
 *
 *   {"format":1, "kind":"migrate"|"rollback", "phase":"...", "id":"...",
 *    "description":"...", "from":F, "to":T, "version":V, "boxes":[...],
 *    "backup":"backups/<id>", "started_at":ms, "lock":{manifest},
 *    "audit_key":"...", "records":N, "reason":"..."}
 *
 * version is the schema version the store is at when the work is finished
 * (to for a migration, from for a rollback) and lock the schema lock that
 * goes with it. A migration writes each affected box's new version beside
 * it as <box>.mig.box; its commit point is the phase "verified": before it
 * a crash rolls back (the staged files go, the boxes were never touched),
 * from it on the staged files are renamed over the boxes. A rollback copies
 * each box's backup beside it as <box>.rb.box and renames it over the box;
 * it only ever goes forward.
 */
#ifndef BOXGUARD_JOURNAL_INT_H
#define BOXGUARD_JOURNAL_INT_H

#include <cjson/cJSON.h>

#include "handle_int.h"

#define BG__JOURNAL     "migration.journal"
#define BG__STAGE_MIG   ".mig"
#define BG__STAGE_RB    ".rb"
#define BG__BACKUPS_DIR "backups"

/* The string member name of doc, or NULL. */
/* A migration id: 1..BG_MIGRATION_ID_MAX of [A-Za-z0-9_.-], not . or ..
 * (it names a directory under backups/). */
int bg__journal_id_ok(const char *id);

/* The file of box name, or of its staged copy (stage "" for the box, or
 * BG__STAGE_MIG, BG__STAGE_RB). */
void bg__journal_box_file(bg_store *s, const char *name, const char *stage,
                          char *out, size_t cap);

/* Close any open handle of box name and of its staged copies: their files
 * are about to be replaced. */
BG_MUST_CHECK bg_err bg__journal_close_box(bg_store *s, const char *name);

/* The journal, parsed. BG_ENOTFOUND when there is none; BG_ECORRUPT when
 * it does not parse or lacks a member. */
BG_MUST_CHECK bg_err bg__journal_read(bg_store *s, cJSON **doc);

/* Set doc's phase and write it atomically. */
BG_MUST_CHECK bg_err bg__journal_write(bg_store *s, cJSON *doc,
                                       const char *phase);

/* Undo a migration that has not reached "verified": phase rolled_back,
 * staged files removed, an audit record with reason, journal removed. */
BG_MUST_CHECK bg_err bg__journal_abort(bg_store *s, cJSON *doc,
                                       const char *reason);

/* Finish the work of a journal at or past its commit point: the staged
 * (or restored) files renamed over the boxes, the schema version and lock
 * written, an audit record, the journal removed. Idempotent, so a crash
 * anywhere in it is finished by the next open. */
BG_MUST_CHECK bg_err bg__journal_finish(bg_store *s, cJSON *doc);

/* On a writable open: finish or undo whatever a journal left, and say
 * what in s->resolved. No journal: nothing. */
BG_MUST_CHECK bg_err bg__journal_resolve(bg_store *s);

/* Name doc's outcome in the audit box ("audit_key": its start time, a
 * random tag, kind and id), once, when the journal is made: every attempt
 * to finish it writes the same record. */
BG_MUST_CHECK bg_err bg__journal_name(bg_store *s, cJSON *doc);

#endif
