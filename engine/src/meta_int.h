/*
 * The meta box (schema version, schema lock) and the audit box (meta.c),
 * for the modules above them.
 */
#ifndef BOXGUARD_META_INT_H
#define BOXGUARD_META_INT_H

#include <stddef.h>
#include <stdint.h>

#include "handle_int.h"

struct cJSON;

/* Write record rec under key in the audit box (created when missing),
 * durably. */
BG_MUST_CHECK bg_err bg__meta_audit(bg_store *s, const char *key,
                                    struct cJSON *rec);

/* The schema version kept in meta.box (1 when none was ever written).
 * BG_ECORRUPT when it is there but unreadable. */
BG_MUST_CHECK bg_err bg__meta_schema_version(bg_store *s, uint32_t *version);
/* Write the schema version, and the schema lock (a registry manifest; NULL
 * leaves it) with it in one batch, durably. */
BG_MUST_CHECK bg_err bg__meta_set_schema(bg_store *s, uint32_t version,
                                         const char *lock);

/* Compare the adapters of a schema lock with the code's: the number of
 * findings (a locked adapter missing or renamed, a name moved), the first
 * one described in first. */
size_t bg__meta_schema_compare(const bg_registry *lock, const bg_registry *code,
                               char *first, size_t cap);

/* At open: load the schema lock from meta.box, compare it with the code's
 * adapters (o->registry), settle the store's effective registry, and write
 * the lock when it changed. BG_ESCHEMA on a finding unless
 * o->accept_schema; BG_ECORRUPT when the lock is unreadable. */
BG_MUST_CHECK bg_err bg__meta_open_schema(bg_store *s, const bg_store_opts *o);

#endif
