/*
 * Schema migrations that survive power loss.
 *
 * A migration takes the store from schema version `from` to `to` by
 * transforming every record of the boxes it names, one record at a time,
 * with a C callback or a declarative plan (bg_plan_parse, plan.h). The runner
 * persists its phase in migration.journal before each step:
 *
 *   not_started -> backup_created -> dry_run_passed -> migrating ->
 *   migrated -> verifying -> verified -> committed   (or rolled_back)
 *
 * backup_created: each affected box is copied to backups/<id>/.
 * dry_run_passed: every record was transformed and checked against the
 *   target adapters without writing; any record that fails stops the
 *   migration (nothing written, every failure reported).
 * migrated: the new version of each box is written beside it, synced.
 * verified: each new box holds exactly the transformed records (same keys,
 *   same count, each one again transformed and compared, each one fitting
 *   its adapter); a verification that fails rolls back.
 * committed: the new boxes are renamed over the old ones, and the schema
 *   version and schema lock in meta.box are written with them.
 *
 * A store opened for writing with a journal left by a crash finishes the
 * migration (from "verified" on) or rolls it back (before), first thing:
 * every affected box is then entirely at the old version or entirely at
 * the new one, and meta.box's schema version says which. Every outcome is
 * recorded in the audit box (bg_migrate_history).
 */
#ifndef BOXGUARD_MIGRATE_H
#define BOXGUARD_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/box.h"
#include "boxguard/err.h"
#include "boxguard/store.h"
#include "boxguard/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BG_MIGRATION_ID_MAX 64 /* ids: [A-Za-z0-9_.-], 1..64 characters */

/* Transform one record of box. Set *type and, for a new value, *value (from
 * malloc, NUL-terminated; the runner frees it) and *value_len; leaving
 * *value NULL keeps the value as it is. Return 0, or BG_ESCHEMA with the
 * reason in why when the record cannot be migrated. The transform must be
 * a pure function of its input: the runner calls it once for the dry run,
 * once to write and once to verify. */
typedef bg_err (*bg_transform_fn)(void *arg, const char *box,
                                  const bg_record *in, uint32_t *type,
                                  char **value, size_t *value_len, char *why,
                                  size_t whylen);

typedef struct bg_migration {
    const char *id;          /* names the backup and the audit record */
    const char *description; /* may be NULL */
    uint32_t from, to;       /* schema versions, from < to */
    const char *const *boxes;
    size_t nboxes;
    bg_transform_fn transform;
    void *arg;
    /* The complete adapter set of version `to`: every migrated record
     * must fit it, and it becomes the schema lock on commit. NULL:
     * bg_migrate_opts.adapters. */
    const bg_registry *adapters;
} bg_migration;

/* Every record that fails the dry run, as it is found. */
typedef void (*bg_migrate_failure_fn)(void *ctx, const char *migration,
                                      const char *box, const char *key,
                                      size_t key_len, const char *why);

typedef struct bg_migrate_opts {
    /* Target adapters of migrations that name none; NULL: the store's. */
    const bg_registry *adapters;
    /* Transform and check every record of the plan, chained in memory,
     * and write nothing (no journal, no backup). */
    int dry_run;
    bg_migrate_failure_fn on_failure; /* optional */
    void *failure_ctx;
    /* bg_migrate_rollback: roll back even though an affected box was
     * written after the migration (those writes are lost). */
    int force;
} bg_migrate_opts;

typedef struct bg_migrate_report {
    uint32_t version_before, version_after;
    unsigned applied; /* migrations committed (rolled back by rollback) */
    unsigned skipped; /* already at or past their `to` */
    uint64_t records; /* records transformed (dry run: checked) */
    uint64_t changed; /* of which a value or typeId changed */
    uint64_t failed;  /* records that failed the dry run */
    char migration[BG_MIGRATION_ID_MAX + 1]; /* the last one run */
    int needs_force; /* rollback refused (BG_ESTATE): a box was written
                        after the migration; opts->force overrides */
} bg_migrate_report;

/* Run migrations m[0..n) in order on a store opened for writing. Each one
 * runs when the store is at its `from` version and is skipped when the
 * store is at or past its `to`. Open handles of affected boxes are closed.
 * Progress goes to the store's progress hook ("migrate <id>").
 * Returns 0, or:
 *   BG_EINVALID  a bad migration (no id, from >= to, no boxes, a reserved
 *                or missing box, a target adapter set missing);
 *   BG_ESTATE    read-only store;
 *   BG_ESCHEMA   the store is at a version no migration starts from, or
 *                records fail the dry run (rep->failed; nothing changed);
 *   BG_ECORRUPT  a box is damaged (recover it first), or verification
 *                failed (rolled back; nothing changed);
 *   BG_EIO, BG_ENOSPACE, BG_ENOMEM: the migration is rolled back, or, if
 *                the rollback cannot be written either, the journal makes
 *                the next open roll it back.
 * Migrations committed before an error stay committed. */
BG_MUST_CHECK bg_err bg_migrate_run(bg_store *store, const bg_migration *m,
                                    size_t n, const bg_migrate_opts *opts,
                                    bg_migrate_report *rep);

/* Undo the last committed migration still in effect: restore its backups
 * over the affected boxes and set the schema version and lock back, as
 * journaled work that a crash cannot leave half done.
 * Returns 0, or BG_ENOTFOUND (no migration to roll back), BG_ESTATE
 * (read-only store; an affected box was written after the migration and
 * opts->force is not set; the store is not at that migration's version),
 * BG_ECORRUPT (a backup is missing or does not match), BG_EIO,
 * BG_ENOSPACE, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_migrate_rollback(bg_store *store,
                                         const bg_migrate_opts *opts,
                                         bg_migrate_report *rep);

typedef struct bg_migrate_status {
    uint32_t version;   /* schema version in meta.box (1 if none) */
    char resolved[256]; /* what opening the store did with a journal left
                           by a crash ("" when there was none) */
    unsigned history;   /* migration records in the audit box */
} bg_migrate_status;

BG_MUST_CHECK bg_err bg_migrate_get_status(bg_store *store,
                                           bg_migrate_status *st);

/* Call fn with each migration record of the audit box (JSON: kind, id,
 * from, to, outcome, reason, records, boxes, backup, at), in write order.
 * Returns 0 or the errors of bg_box_iterate. */
typedef int (*bg_migrate_history_fn)(void *arg, const char *key,
                                     const char *json, size_t len);
BG_MUST_CHECK bg_err bg_migrate_history(bg_store *store,
                                        bg_migrate_history_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
