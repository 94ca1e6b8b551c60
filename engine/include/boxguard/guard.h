/*
 * Runtime guardrails: the invariants a running store must keep, checked on
 * demand (bg_guard_check) or by `boxguard guard` from a monitor. Every
 * invariant is evaluated each time and answers ok, warning or critical,
 * with what was measured, the bound it was held to and the action:
 *
 *   pending_count      critical: the pending count of the in-memory index,
 *                      of the op records in pending_ops and of a rebuilt
 *                      index differ, or pending_ops holds records that are
 *                      no op;
 *   emergency_lane     critical: the emergency lane's head is leased, or has
 *                      failed deliveries, and has waited longer than
 *                      emergency_blocked_ms (everything behind it waits);
 *   encryption_policy  critical: a box the policy names sensitive is not
 *                      sealed, or is sealed with a key the store lacks;
 *   adapters           critical: the code's adapters contradict the schema
 *                      lock (a locked typeId renamed or missing, a name on
 *                      another typeId);
 *   schema_version     critical when the stored version is newer than the
 *                      code's (never downgrade), warning when older
 *                      (migrate);
 *   failed_ops         warning: more failed ops than failed_max (20);
 *   processing_lock    warning: the queue's processing lock is older than
 *                      lock_stale_ms (2 minutes): its owner died.
 *
 * Policy file (JSON; every member optional, no others allowed):
 *   {"failed_max": 20, "lock_stale_seconds": 120,
 *    "emergency_blocked_seconds": 300, "sensitive_boxes": ["vault"]}
 */
#ifndef BOXGUARD_GUARD_H
#define BOXGUARD_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/box.h"
#include "boxguard/err.h"
#include "boxguard/queue.h"
#include "boxguard/registry.h"
#include "boxguard/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bg_guard_severity {
    BG_GUARD_OK = 0,
    BG_GUARD_WARNING = 1,
    BG_GUARD_CRITICAL = 2
} bg_guard_severity;

#define BG_GUARD_SENSITIVE_MAX 32

typedef struct bg_guard_policy {
    uint64_t failed_max;
    int64_t lock_stale_ms;
    int64_t emergency_blocked_ms;
    size_t nsensitive;
    char sensitive[BG_GUARD_SENSITIVE_MAX][BG_BOX_NAME_MAX + 1];
} bg_guard_policy;

/* The defaults: 20 failed ops, 2 minutes, 5 minutes, no sensitive box. */
void bg_guard_policy_init(bg_guard_policy *p);

/* Read a policy file's text into p (defaults for what it leaves out).
 * Returns 0, or BG_EINVALID with why (the member, what it must be). */
BG_MUST_CHECK bg_err bg_guard_policy_parse(const char *json, size_t len,
                                           bg_guard_policy *p, char *why,
                                           size_t whylen);

enum { BG_GUARD_CHECKS = 7 };

typedef struct bg_guard_result {
    const char *name; /* pending_count, emergency_lane, encryption_policy,
                         adapters, schema_version, failed_ops,
                         processing_lock */
    bg_guard_severity severity; /* BG_GUARD_OK when it holds */
    int64_t measured, bound;
    char message[256];
    char action[192];
} bg_guard_result;

typedef struct bg_guard_report {
    bg_guard_result checks[BG_GUARD_CHECKS]; /* in the order above */
    bg_guard_severity worst;
} bg_guard_report;

/* Evaluate every invariant on store s. q is the app's open queue (its
 * index is what is checked), or NULL to open one here (a store without a
 * queue passes the queue's invariants). code (may be NULL) is the code's
 * adapters, code_version (0: not checked) its schema version; p NULL
 * means the defaults. Changes nothing on disk (the store may be open
 * read-only). Returns 0 with *out, or the error that kept an invariant
 * from being evaluated (BG_EIO, BG_ECORRUPT, BG_ENOMEM): a check that
 * could not run never passes. */
BG_MUST_CHECK bg_err bg_guard_check(bg_store *s, bg_queue *q,
                                    const bg_registry *code,
                                    uint32_t code_version,
                                    const bg_guard_policy *p,
                                    bg_guard_report *out);

const char *bg_guard_severity_name(bg_guard_severity v);

#ifdef __cplusplus
}
#endif
#endif
