/*
 * The meta box and the audit box: the store's schema version and schema
 * lock (the adapters the data was written under), and the durable record
 * of what the engine did to the store (migrations, recoveries, stale
 * locks). Above the box layer, below whole-store operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "box_int.h"
#include "handle_int.h"
#include "json_int.h"
#include "meta_int.h"

#define SCHEMA_KEY  "schema_lock"
#define VERSION_KEY "schema_version"

static bg_err registry_clone(const bg_registry *src, bg_registry **out)
{
    bg_registry *r = bg_registry_new();
    if (!r)
        return BG_ENOMEM;
    for (size_t i = 0; i < bg_registry_count(src); i++) {
        bg_err err = bg_registry_add(r, bg_registry_at(src, i));
        if (err) {
            bg_registry_free(r);
            return err;
        }
    }
    *out = r;
    return 0;
}

size_t bg__meta_schema_compare(const bg_registry *lock, const bg_registry *code,
                               char *first, size_t cap)
{
    size_t findings = 0;
    for (size_t i = 0; i < bg_registry_count(lock); i++) {
        const bg_adapter *l = bg_registry_at(lock, i);
        const bg_adapter *c = bg_registry_find(code, l->type_id);
        const bg_adapter *moved =
            c ? NULL : bg_registry_find_name(code, l->name);
        if (c && !strcmp(c->name, l->name))
            continue;
        if (findings++)
            continue;
        if (c)
            snprintf(first, cap,
                     "typeId %u is registered as '%s' but the store knows it "
                     "as '%s'",
                     (unsigned)l->type_id, c->name, l->name);
        else if (moved)
            snprintf(first, cap,
                     "adapter '%s' moved from typeId %u to typeId %u", l->name,
                     (unsigned)l->type_id, (unsigned)moved->type_id);
        else
            snprintf(first, cap,
                     "adapter '%s' (typeId %u) is in the store's schema lock "
                     "but is not registered",
                     l->name, (unsigned)l->type_id);
    }
    /* A name on another typeId whose old typeId the code still has (under
     * another name): that move was not counted above. */
    for (size_t i = 0; i < bg_registry_count(code); i++) {
        const bg_adapter *c = bg_registry_at(code, i);
        const bg_adapter *l = bg_registry_find_name(lock, c->name);
        if (l && l->type_id != c->type_id &&
            bg_registry_find(code, l->type_id) && !findings++)
            snprintf(first, cap,
                     "adapter '%s' moved from typeId %u to typeId %u", c->name,
                     (unsigned)l->type_id, (unsigned)c->type_id);
    }
    return findings;
}

/* Load the schema lock from meta.box, compare it with the code's adapters,
 * settle the effective registry, and write the lock when it changed. */
bg_err bg__meta_open_schema(bg_store *s, const bg_store_opts *o)
{
    bg_registry_free(s->types); /* a finished migration may have set it */
    s->types = NULL;
    bg_registry *lock = bg_registry_new();
    if (!lock)
        return BG_ENOMEM;
    bg_box *meta = NULL;
    char *v = NULL, *code_json = NULL, *lock_json = NULL;
    bg_err err = bg_box_open(s, BG__META_BOX, 0, &meta);
    if (err == BG_ENOTFOUND) {
        err = 0;
        meta = NULL;
    }
    if (err)
        goto out;
    if (meta) {
        uint32_t t;
        size_t n;
        err = bg_box_get(meta, SCHEMA_KEY, strlen(SCHEMA_KEY), &t, &v, &n);
        if (err == BG_ENOTFOUND)
            err = 0;
        else if (!err && (err = bg_registry_add_json(lock, v, n)))
            err = bg__handle_fail(
                s, err == BG_ENOMEM ? err : BG_ECORRUPT,
                "store '%s': the schema lock in meta.box is unreadable: %s",
                s->dir, bg_registry_detail(lock));
        if (err)
            goto out;
    }
    if (!o->registry) {
        s->types = lock;
        lock = NULL;
        goto out;
    }
    const bg_registry *code = o->registry;
    char first[256] = "";
    size_t findings = bg__meta_schema_compare(lock, code, first, sizeof first);
    if (findings && !o->accept_schema) {
        err =
            bg__handle_fail(s, BG_ESCHEMA,
                            "store '%s': %s (%zu finding%s against the schema "
                            "lock; never accepted silently)",
                            s->dir, first, findings, findings > 1 ? "s" : "");
        goto out;
    }
    BG_TRY_OUT(registry_clone(code, &s->types));
    if (s->read_only)
        goto out;
    code_json = bg_registry_to_json(code);
    lock_json = bg_registry_to_json(lock);
    if (!code_json || !lock_json) {
        err = BG_ENOMEM;
        goto out;
    }
    if (strcmp(code_json, lock_json) || !meta) {
        if (!meta)
            BG_TRY_OUT(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
        BG_TRY_OUT(bg__box_put_internal(meta, SCHEMA_KEY, code_json,
                                        strlen(code_json)));
    }
out:
    bg_registry_free(lock);
    bg__handle_free(s, v);
    free(code_json);
    free(lock_json);
    return err;
}

bg_err bg__meta_audit(bg_store *s, const char *key, cJSON *rec)
{
    char *txt = bg__json_print(rec);
    if (!txt)
        return BG_ENOMEM;
    bg_box *audit;
    bg_err err = bg_box_open(s, BG__AUDIT_BOX, BG_BOX_CREATE, &audit);
    if (!err)
        err = bg__box_put_internal(audit, key, txt, strlen(txt));
    if (!err)
        err = bg_box_sync(audit);
    cJSON_free(txt);
    return err;
}

bg_err bg__meta_schema_version(bg_store *s, uint32_t *version)
{
    *version = 1;
    bg_box *meta;
    bg_err err = bg_box_open(s, BG__META_BOX, 0, &meta);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    uint32_t t;
    char *v;
    size_t n;
    err = bg_box_get(meta, VERSION_KEY, strlen(VERSION_KEY), &t, &v, &n);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    cJSON *doc;
    err = bg__json_parse(v, n, &doc);
    if (err == BG_ENOMEM) {
        bg__handle_free(s, v);
        return err;
    }
    err = 0;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(doc, "version");
    if (cJSON_IsNumber(ver) && ver->valuedouble >= 1 &&
        ver->valuedouble <= 4294967295.0 &&
        ver->valuedouble == (double)(uint32_t)ver->valuedouble)
        *version = (uint32_t)ver->valuedouble;
    else
        err = bg__handle_fail(s, BG_ECORRUPT,
                              "store '%s': the schema version in meta.box is "
                              "unreadable",
                              s->dir);
    cJSON_Delete(doc);
    bg__handle_free(s, v);
    return err;
}

bg_err bg__meta_set_schema(bg_store *s, uint32_t version, const char *lock)
{
    char ver[48];
    snprintf(ver, sizeof ver, "{\"version\":%u}", (unsigned)version);
    bg_write w[2] = {
        {0, VERSION_KEY, strlen(VERSION_KEY), 0, ver, strlen(ver)},
        {0, SCHEMA_KEY, strlen(SCHEMA_KEY), 0, lock, lock ? strlen(lock) : 0},
    };
    bg_box *meta;
    BG_TRY(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
    BG_TRY(bg__box_write_trusted(meta, w, lock ? 2 : 1));
    return bg_box_sync(meta);
}
