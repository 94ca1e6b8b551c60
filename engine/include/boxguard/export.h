/*
 * Export to SQLite: every box of a store copied into a table of an SQLite
 * database, resumable after a crash or a kill at any point.
 *
 * Box NAME becomes table "box_NAME" with columns key (primary key),
 * type_id, seq, json (the record as stored), and one column per field that
 * the adapters of the box's typeIds declare, filled from the record when
 * it has the field (numbers, strings and bools as SQLite values, arrays
 * and objects as JSON text; NULL when absent). Rows go in by sequence
 * number in chunked transactions; each chunk commits together with the
 * table's row in migration_sync_status (the last sequence number copied,
 * rows so far, the box's record count and next sequence number), so a run
 * cut short anywhere resumes where the last commit left it, with no row
 * twice (the key is the primary key) and none missing. A box that changed
 * since its table was begun is exported again from the start.
 * migration_history holds the store's migration records from the audit
 * box and one row per export run; migration_backups the backup files the
 * committed migrations left. The run ends by counting every table against
 * its box and running PRAGMA integrity_check.
 */
#ifndef BOXGUARD_EXPORT_H
#define BOXGUARD_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"
#include "boxguard/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_export_opts {
    size_t chunk; /* rows per transaction; 0: 1000 */
    /* Called after each committed chunk with the rows of the box so far;
     * optional. */
    void (*on_commit)(void *ctx, const char *box, uint64_t rows);
    void *ctx;
} bg_export_opts;

typedef struct bg_export_report {
    unsigned tables;    /* boxes exported (complete now) */
    unsigned restarted; /* tables begun again because their box changed */
    unsigned skipped;   /* tables already complete and current */
    uint64_t rows;      /* rows in all tables at the end */
    uint64_t copied;    /* rows this run inserted */
    uint64_t resumed;   /* rows an earlier, interrupted run had committed */
    uint64_t chunks;    /* transactions committed */
} bg_export_report;

/* Export every box of store (except the store's own meta box) into the
 * SQLite database at db_path (created when missing). Progress goes to the
 * store's progress hook ("export NAME").
 * Returns 0, or:
 *   BG_ESTATE    a migration journal is pending (open the store for
 *                writing first);
 *   BG_ECORRUPT  a box is damaged, a table's count differs from its box
 *                after the export, or integrity_check fails (the detail
 *                says which);
 *   BG_EIO, BG_ENOSPACE, BG_ELOCKED (the database is busy), BG_ENOMEM;
 *                the detail carries SQLite's message. What was committed
 *                stays, and the next run resumes from it. */
BG_MUST_CHECK bg_err bg_export_sqlite(bg_store *store, const char *db_path,
                                      const bg_export_opts *opts,
                                      bg_export_report *rep);

#ifdef __cplusplus
}
#endif
#endif
