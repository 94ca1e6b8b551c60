/*
 * The static typeId / adapter-registration check that CI runs.
 *
 * It scans source trees for type adapter declarations and registrations:
 *   - C: boxguard's own `bg_adapter NAME = {typeId, "Name", ...}`
 *     declarations (positional or designated, single or arrays) and
 *     `bg_registry_add(reg, &NAME)` registrations;
 *   - Dart (Hive): `@HiveType(typeId: N)` on a class or enum, adapter
 *     classes `extends TypeAdapter<T>` with their `typeId` (hand-written or
 *     generated *.g.dart), `registerAdapter(XAdapter())` calls, hive_ce's
 *     generated registrar (hive_registrar.g.dart) and its
 *     `hive_adapters.g.yaml` schema; typeIds written as constants
 *     (`HiveTypeIds.note`, `p.HiveTypeIds.note`, `kNote`) are resolved
 *     against the integer constants of every file scanned;
 *   - pubspec.yaml and pubspec.lock: Dart packages, their dependencies and
 *     their hive / hive_ce versions (the range: hive 0..223, hive_ce from
 *     2.10.0 0..65439, hive_ce_flutter's 200 and 201 reserved). Packages
 *     that depend on one another are one app; collisions, registrations
 *     and the lock are matched within an app;
 *   - JSON adapter manifests (the `{"adapters": [...]}` of registry.h).
 * and reports: two names on one typeId (both locations), a typeId outside
 * its allowed range (Hive: 0..223; per-domain ranges from a policy file),
 * a declared adapter never registered, a registration with no declaration,
 * a generated adapter whose typeId differs from its annotation, and, against
 * a lock file, a typeId reused for another name or a name moved to another
 * typeId. C and JSON declarations share the boxguard namespace; Dart and
 * the Hive schema share the hive namespace.
 *
 * Lock file (typeids.lock, written by bg_typeids_lock_json):
 *   {"typeids": [{"ns": "hive", "typeId": 3, "name": "User",
 *                 "package": "notes_app"}, ...]}
 * ("package" only for a declaration in a Dart package).
 * An entry that is no longer declared stays in the lock ("removed": true)
 * so that its typeId is never reused.
 *
 * Policy file:
 *   {"ranges": [{"domain": "billing", "paths": ["lib/billing/"],
 *                "min": 100, "max": 149}]}
 */
#ifndef BOXGUARD_TYPEIDS_H
#define BOXGUARD_TYPEIDS_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_typeids bg_typeids;

typedef struct bg_typeids_finding {
    const char *code; /* collision, range, unregistered, undeclared,
                         stale-generated, stale-registrar, unresolved,
                         reused, moved, parse */
    const char *file;
    unsigned line;
    const char *message; /* one line; names the other location if any */
} bg_typeids_finding;

/* A new scanner, or NULL when out of memory. */
bg_typeids *bg_typeids_new(void);
void bg_typeids_free(bg_typeids *t);

/* Scan one file's text; the language comes from path (.c .h .dart
 * .g.dart hive_adapters.g.yaml .json; others are ignored). Returns 0 or
 * BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_typeids_scan_text(bg_typeids *t, const char *path,
                                          const char *text, size_t len);

/* Scan a file or a directory tree (skipping .git, build, .dart_tool and
 * node_modules). Returns 0; BG_ENOTFOUND when path does not exist;
 * BG_EIO when a file or directory of the tree cannot be read or the tree
 * is deeper than 64 directories; BG_EINVALID for a file larger than
 * 64 MiB (refused whole: never checked in part); BG_ENOMEM. Any error
 * fails the check: what was not read was not checked. bg_typeids_detail says
 * which file. */
BG_MUST_CHECK bg_err bg_typeids_scan_path(bg_typeids *t, const char *path);

/* What stopped the last bg_typeids_scan_path that failed ("" if none). */
const char *bg_typeids_detail(const bg_typeids *t);

/* Load a lock file or a policy file. Returns 0 or BG_EINVALID (the
 * message says where) or BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_typeids_load_lock(bg_typeids *t, const char *json,
                                          size_t len, char *why, size_t whylen);
BG_MUST_CHECK bg_err bg_typeids_load_policy(bg_typeids *t, const char *json,
                                            size_t len, char *why,
                                            size_t whylen);

/* Run the checks: *out holds *n findings, valid until the next call or
 * free, sorted by file, line and code. Returns 0, or BG_ENOMEM (and no
 * findings) when memory ran out here or in any earlier call on t: a
 * partial answer is never given. */
BG_MUST_CHECK bg_err bg_typeids_check(bg_typeids *t,
                                      const bg_typeids_finding **out,
                                      size_t *n);

/* How many declarations and registrations were found. */
void bg_typeids_counts(const bg_typeids *t, size_t *decls, size_t *regs);

/* The lock file for what was scanned (plus removed entries of a loaded
 * lock), from malloc; NULL when out of memory. Call it after
 * bg_typeids_check, which resolves constants and packages. */
char *bg_typeids_lock_json(const bg_typeids *t);

#ifdef __cplusplus
}
#endif
#endif
