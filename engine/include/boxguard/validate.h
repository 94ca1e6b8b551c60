/*
 * Startup validation: may this app open this store, and if not, what must
 * happen first? bg_validate opens the store read-only and changes nothing.
 *
 * It answers, from least to most serious:
 *   BG_READY            open it;
 *   BG_NEEDS_MIGRATION  the stored schema version is older than the code's;
 *   BG_NEEDS_RECOVERY   a box is damaged, or a migration or erase was
 *                       interrupted (the next writable open or
 *                       `boxguard recover` finishes or repairs it);
 *   BG_BLOCKED          the code must not touch the store: the stored schema
 *                       version is newer than the code's (never downgrade
 *                       data), adapters contradict the schema lock, a box is
 *                       sealed with a key the store does not have.
 * with each finding and the action for it.
 */
#ifndef BOXGUARD_VALIDATE_H
#define BOXGUARD_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"
#include "boxguard/store.h"
#include "boxguard/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bg_readiness {
    BG_READY = 0,
    BG_NEEDS_MIGRATION = 1,
    BG_NEEDS_RECOVERY = 2,
    BG_BLOCKED = 3
} bg_readiness;

#define BG_VALIDATE_MAX_FINDINGS 32

typedef struct bg_finding {
    bg_readiness severity;
    char code[32]; /* schema_newer, schema_older, adapters, box_damaged,
                      box_damaged_tail, box_torn, box_key,
                      migration_interrupted, schema_unreadable,
                      erase_interrupted, store_missing, store_unreadable,
                      store_locked */
    char message[256];
    char action[160];
} bg_finding;

typedef struct bg_validation {
    bg_readiness status;
    uint32_t stored_version; /* schema version in meta.box (1 if none);
                                0 when the store could not be opened */
    size_t nfindings;        /* the first BG_VALIDATE_MAX_FINDINGS kept */
    bg_finding findings[BG_VALIDATE_MAX_FINDINGS];
} bg_validation;

typedef struct bg_validate_opts {
    const bg_vfs *vfs;           /* NULL: posix */
    const bg_registry *registry; /* the code's adapters; NULL: not checked */
    uint32_t code_version;       /* the code's schema version; 0: not
                                    checked */
} bg_validate_opts;

/* Validate the store in dir without changing a byte. Returns 0 with *out
 * filled (see out->status), or BG_ENOMEM, or the I/O error (BG_EIO,
 * BG_ENOSPACE) that kept it from looking for an interrupted migration or
 * erase or from listing the boxes: a check that could not run fails, it
 * never answers ready. A store that is missing or locked, and a box that
 * cannot be read, are findings, not errors. */
BG_MUST_CHECK bg_err bg_validate(const char *dir, const bg_validate_opts *o,
                                 bg_validation *out);

const char *bg_readiness_name(bg_readiness r);

#ifdef __cplusplus
}
#endif
#endif
