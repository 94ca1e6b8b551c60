/*
 * Declarative migration plans: JSON that describes migrations (versions,
 * boxes, target adapters, and field operations), parsed into bg_migration
 * values that bg_migrate_run takes, each with a record transform that
 * applies its operations.
 */
#ifndef BOXGUARD_PLAN_H
#define BOXGUARD_PLAN_H

#include <stddef.h>

#include "boxguard/err.h"
#include "boxguard/migrate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A declarative plan: several migrations in order, as JSON.
 *
 *   {"migrations": [{"id": "user-email", "from": 1, "to": 2,
 *     "description": "...", "boxes": ["users"],
 *     "adapters": {"adapters": [...]},            (optional, version `to`)
 *     "ops": [
 *       {"op": "rename", "type": 3, "field": "name", "to": "full_name"},
 *       {"op": "add", "type": 3, "field": "email", "default": ""},
 *       {"op": "remove", "type": 3, "field": "legacy"},
 *       {"op": "retype", "type": 3, "field": "age", "to": "string",
 *        "conversion": "format"},
 *       {"op": "move", "type": 3, "to_type": 4}]}]}
 *
 * Ops apply in order to records whose typeId (as the earlier ops left it)
 * is "type". rename fails a record that already has the new field; add
 * keeps a field that is there; remove and retype leave a record without
 * the field alone. retype conversions, by target type:
 *   string:  "format"  (number, bool or null as its JSON text)
 *   number:  "parse"   (a string holding a JSON number)
 *   integer: "parse"   (a string holding an integer), "truncate" or
 *            "round"   (a number)
 *   bool:    "parse"   ("true"/"false"), "nonzero" (a number)
 *   array:   "wrap"    (any value v becomes [v])
 * A value the conversion cannot take fails the record (the dry run
 * reports it). */
typedef struct bg_plan bg_plan;

/* Parse a plan. Returns 0 and *out, or BG_EINVALID with what and where in
 * detail (unknown op, missing member, bad conversion, versions that do not
 * chain, a bad adapters manifest...), or BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_plan_parse(const char *json, size_t len, bg_plan **out,
                                   char *detail, size_t detail_len);
void bg_plan_free(bg_plan *plan);
size_t bg_plan_count(const bg_plan *plan);
/* Migration i of the plan (i < count; NULL past it); valid until
 * bg_plan_free. The migrations lie side by side: bg_plan_at(plan, 0) and
 * bg_plan_count(plan) are what bg_migrate_run takes. */
const bg_migration *bg_plan_at(const bg_plan *plan, size_t i);

#ifdef __cplusplus
}
#endif
#endif
