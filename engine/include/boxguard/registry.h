/*
 * Type adapters and their registry.
 *
 * Every record carries a typeId. typeId 0 is built in: any JSON value, no
 * adapter needed. Every other typeId needs an adapter: a name, a version and
 * the fields a record of that type has (name, JSON type, required or not).
 * A record of an adapter's type must be a JSON object whose declared fields
 * have their declared types and whose required fields are present; other
 * members are allowed.
 *
 * A registry refuses a second adapter on a taken typeId, or a second
 * typeId for a taken name (BG_ECOLLISION, naming both). The same
 * declarations, written as a JSON manifest, are what `boxguard --adapters`
 * reads, what a store keeps as its schema lock, and what the static
 * `boxguard typeids check` scans:
 *
 *   {"adapters": [{"typeId": 3, "name": "User", "version": 1,
 *                  "fields": [{"name": "id", "type": "integer",
 *                              "required": true}]}]}
 *
 * Field types: any, null, bool, number, integer, string, array, object.
 */
#ifndef BOXGUARD_REGISTRY_H
#define BOXGUARD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BG_TYPE_NAME_MAX   64 /* adapter and field names: 1..64 bytes */
#define BG_TYPE_FIELDS_MAX 256

typedef enum bg_json_type {
    BG_JSON_ANY = 0,
    BG_JSON_NULL,
    BG_JSON_BOOL,
    BG_JSON_NUMBER,
    BG_JSON_INTEGER,
    BG_JSON_STRING,
    BG_JSON_ARRAY,
    BG_JSON_OBJECT
} bg_json_type;

typedef struct bg_field {
    const char *name;
    bg_json_type type;
    int required;
} bg_field;

typedef struct bg_adapter {
    uint32_t type_id; /* 1 .. UINT32_MAX */
    const char *name; /* [A-Za-z0-9_.$]{1,64} */
    uint32_t version; /* >= 1 */
    const bg_field *fields;
    size_t nfields;
} bg_adapter;

typedef struct bg_registry bg_registry;

/* A new empty registry, or NULL when out of memory. */
bg_registry *bg_registry_new(void);
void bg_registry_free(bg_registry *reg);

/* Add a copy of adapter a. Returns 0, or BG_ECOLLISION (typeId or name
 * taken; the detail names both adapters), BG_EINVALID (typeId 0, bad name,
 * version 0, a duplicate or bad field), BG_ENOMEM. On error the registry is
 * unchanged. */
BG_MUST_CHECK bg_err bg_registry_add(bg_registry *reg, const bg_adapter *a);

/* Add every adapter of a JSON manifest (format above), all or nothing.
 * Returns 0, or BG_EINVALID (malformed manifest; the detail says where),
 * BG_ECOLLISION, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_registry_add_json(bg_registry *reg, const char *json,
                                          size_t len);

/* The manifest of the registry, adapters by typeId, from malloc (caller
 * frees), or NULL when out of memory. */
char *bg_registry_to_json(const bg_registry *reg);

/* The adapter of type_id, or NULL. */
const bg_adapter *bg_registry_find(const bg_registry *reg, uint32_t type_id);
const bg_adapter *bg_registry_find_name(const bg_registry *reg,
                                        const char *name);
size_t bg_registry_count(const bg_registry *reg);
/* Adapters in typeId order; i < count. */
const bg_adapter *bg_registry_at(const bg_registry *reg, size_t i);

/* Check a record of type_id against its adapter. Returns 0, or BG_ESCHEMA
 * with the reason (the field, the expected and found JSON types) in why:
 * no adapter for a non-zero typeId, not an object, a required field
 * missing, a field of the wrong type. BG_EINVALID for JSON that does not
 * parse. */
BG_MUST_CHECK bg_err bg_registry_check(const bg_registry *reg, uint32_t type_id,
                                       const char *json, size_t len, char *why,
                                       size_t whylen);

/* The detail message of the registry's last error ("" when none). */
const char *bg_registry_detail(const bg_registry *reg);

const char *bg_json_type_name(bg_json_type t);

#ifdef __cplusplus
}
#endif
#endif
