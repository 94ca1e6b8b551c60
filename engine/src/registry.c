/*
 * The adapter registry: adapters kept sorted by typeId, deep copies of the
 * caller's declarations, manifest parsing and printing with cJSON, and the
 * check of a record against its adapter.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "json_int.h"
#include "boxguard/registry.h"
#include "registry_int.h"

struct bg_registry {
    bg_adapter *v; /* sorted by type_id; names and fields owned */
    size_t n, cap;
    char detail[320];
};

static const char *const type_names[] = {
    "any", "null", "bool", "number", "integer", "string", "array", "object"};

const char *bg_json_type_name(bg_json_type t)
{
    return (unsigned)t < sizeof type_names / sizeof *type_names ? type_names[t]
                                                                : "unknown";
}

__attribute__((format(printf, 3, 4))) static bg_err
fail(bg_registry *r, bg_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return code;
}

bg_registry *bg_registry_new(void)
{
    return calloc(1, sizeof(bg_registry));
}

static void adapter_free(bg_adapter *a)
{
    for (size_t i = 0; a->fields && i < a->nfields; i++)
        free((char *)a->fields[i].name);
    free((bg_field *)a->fields);
    free((char *)a->name);
}

void bg_registry_free(bg_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        adapter_free(&r->v[i]);
    free(r->v);
    free(r);
}

const char *bg_registry_detail(const bg_registry *r)
{
    return r->detail;
}

size_t bg_registry_count(const bg_registry *r)
{
    return r ? r->n : 0;
}

const bg_adapter *bg_registry_at(const bg_registry *r, size_t i)
{
    return i < r->n ? &r->v[i] : NULL;
}

const bg_adapter *bg_registry_find(const bg_registry *r, uint32_t type_id)
{
    size_t lo = 0, hi = r ? r->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].type_id == type_id)
            return &r->v[mid];
        if (r->v[mid].type_id < type_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const bg_adapter *bg_registry_find_name(const bg_registry *r, const char *name)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (!strcmp(r->v[i].name, name))
            return &r->v[i];
    return NULL;
}

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > BG_TYPE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '$'))
            return 0;
    }
    return 1;
}

static bg_err check_adapter(bg_registry *r, const bg_adapter *a)
{
    if (a->type_id == 0)
        return fail(r, BG_EINVALID,
                    "typeId 0 is built in (any JSON value); adapter '%.64s' "
                    "needs another",
                    a->name ? a->name : "");
    if (!name_ok(a->name))
        return fail(r, BG_EINVALID,
                    "typeId %u: adapter name must be 1-%d of A-Z a-z 0-9 _ . $",
                    (unsigned)a->type_id, BG_TYPE_NAME_MAX);
    if (a->version == 0)
        return fail(r, BG_EINVALID, "adapter '%s' (typeId %u): version 0",
                    a->name, (unsigned)a->type_id);
    if (a->nfields > BG_TYPE_FIELDS_MAX || (a->nfields && !a->fields))
        return fail(r, BG_EINVALID, "adapter '%s': more than %d fields",
                    a->name, BG_TYPE_FIELDS_MAX);
    for (size_t i = 0; i < a->nfields; i++) {
        const bg_field *f = &a->fields[i];
        size_t n = f->name ? strlen(f->name) : 0;
        if (n == 0 || n > BG_TYPE_NAME_MAX)
            return fail(r, BG_EINVALID,
                        "adapter '%s': field %zu has a bad "
                        "name",
                        a->name, i);
        if ((unsigned)f->type > BG_JSON_OBJECT)
            return fail(r, BG_EINVALID, "adapter '%s', field '%s': bad type",
                        a->name, f->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(a->fields[j].name, f->name))
                return fail(r, BG_EINVALID,
                            "adapter '%s': field '%s' declared twice", a->name,
                            f->name);
    }
    const bg_adapter *t = bg_registry_find(r, a->type_id);
    if (t)
        return fail(r, BG_ECOLLISION,
                    "typeId %u is taken by adapter '%s' (version %u); cannot "
                    "register '%s' (version %u) on it",
                    (unsigned)a->type_id, t->name, (unsigned)t->version,
                    a->name, (unsigned)a->version);
    t = bg_registry_find_name(r, a->name);
    if (t)
        return fail(r, BG_ECOLLISION,
                    "adapter name '%s' is taken by typeId %u; cannot register "
                    "it on typeId %u too",
                    a->name, (unsigned)t->type_id, (unsigned)a->type_id);
    return 0;
}

bg_err bg_registry_add(bg_registry *r, const bg_adapter *a)
{
    r->detail[0] = '\0';
    bg_err err = check_adapter(r, a);
    if (err)
        return err;
    if (bg__alloc_grow(NULL, &r->v, r->n, &r->cap, sizeof *r->v, 8))
        return BG_ENOMEM;
    bg_adapter c = *a;
    bg_field *fields = calloc(a->nfields ? a->nfields : 1, sizeof *fields);
    c.name = strdup(a->name);
    c.fields = fields;
    int nomem = !fields || !c.name;
    for (size_t i = 0; i < a->nfields && !nomem; i++) {
        fields[i] = a->fields[i];
        fields[i].required = a->fields[i].required ? 1 : 0;
        fields[i].name = strdup(a->fields[i].name);
        nomem = !fields[i].name;
    }
    if (nomem) {
        adapter_free(&c);
        return BG_ENOMEM;
    }
    size_t at = r->n;
    while (at > 0 && r->v[at - 1].type_id > c.type_id)
        at--;
    memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
    r->v[at] = c;
    r->n++;
    return 0;
}

static int type_from_name(const char *s, bg_json_type *t)
{
    for (size_t i = 0; i < sizeof type_names / sizeof *type_names; i++) {
        if (!strcmp(s, type_names[i])) {
            *t = (bg_json_type)i;
            return 0;
        }
    }
    return -1;
}

static int as_u32(const cJSON *n, uint32_t *out)
{
    if (!cJSON_IsNumber(n) || n->valuedouble < 0 ||
        n->valuedouble > 4294967295.0 ||
        n->valuedouble != floor(n->valuedouble))
        return -1;
    *out = (uint32_t)n->valuedouble;
    return 0;
}

bg_err bg_registry_add_json(bg_registry *r, const char *json, size_t len)
{
    BG__JSON_SCOPE(NULL); /* a registry allocates from the C library */
    r->detail[0] = '\0';
    cJSON *doc;
    bg_err perr = bg__json_parse(json, len, &doc);
    if (perr == BG_ENOMEM)
        return fail(r, perr, "out of memory reading the adapter manifest");
    if (perr)
        return fail(r, BG_EINVALID, "adapter manifest is not valid JSON");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "adapters");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(list)) {
        cJSON_Delete(doc);
        return fail(r, BG_EINVALID,
                    "adapter manifest needs {\"adapters\": [...]}");
    }
    /* Build into a scratch registry so that a bad entry adds nothing. */
    bg_registry *tmp = bg_registry_new();
    bg_err err = tmp ? 0 : BG_ENOMEM;
    for (size_t i = 0; i < r->n && !err; i++)
        err = bg_registry_add(tmp, &r->v[i]);
    int idx = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (err)
            break;
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(it, "typeId");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(it, "version");
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(it, "fields");
        bg_adapter a = {0};
        if (!cJSON_IsObject(it) || as_u32(tid, &a.type_id) ||
            !cJSON_IsString(name) || (ver && as_u32(ver, &a.version)) ||
            (fl && !cJSON_IsArray(fl))) {
            err = fail(r, BG_EINVALID,
                       "adapter manifest entry %d needs \"typeId\" (integer), "
                       "\"name\" (string), optional \"version\" (integer) and "
                       "\"fields\" (array)",
                       idx);
            break;
        }
        if (!ver)
            a.version = 1;
        a.name = name->valuestring;
        int nf = fl ? cJSON_GetArraySize(fl) : 0;
        bg_field *fields = calloc(nf ? (size_t)nf : 1, sizeof *fields);
        if (!fields) {
            err = BG_ENOMEM;
            break;
        }
        const cJSON *f;
        int k = 0;
        cJSON_ArrayForEach(f, fl)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
            const cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
            const cJSON *fr = cJSON_GetObjectItemCaseSensitive(f, "required");
            if (!cJSON_IsString(fn) || (ft && !cJSON_IsString(ft)) ||
                (fr && !cJSON_IsBool(fr)) ||
                (ft && type_from_name(ft->valuestring, &fields[k].type))) {
                err = fail(r, BG_EINVALID,
                           "adapter manifest entry %d ('%.64s'), field %d: "
                           "needs \"name\", a \"type\" among any null bool "
                           "number integer string array object, optional "
                           "\"required\" (true/false)",
                           idx, a.name, k);
                break;
            }
            fields[k].name = fn->valuestring;
            fields[k].required = cJSON_IsTrue(fr);
            k++;
        }
        a.fields = fields;
        a.nfields = (size_t)k;
        if (!err) {
            err = bg_registry_add(tmp, &a);
            if (err)
                fail(r, err, "%s", tmp->detail);
        }
        free(fields);
        idx++;
    }
    cJSON_Delete(doc);
    if (!err) {
        /* Swap the contents in. */
        bg_registry old = *r;
        r->v = tmp->v;
        r->n = tmp->n;
        r->cap = tmp->cap;
        tmp->v = old.v;
        tmp->n = old.n;
        tmp->cap = old.cap;
    }
    bg_registry_free(tmp);
    return err;
}

char *bg_registry_to_json(const bg_registry *r)
{
    BG__JSON_SCOPE(NULL); /* a registry allocates from the C library */
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(doc, "adapters");
    for (size_t i = 0; list && i < r->n; i++) {
        const bg_adapter *a = &r->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(list, o);
        cJSON_AddNumberToObject(o, "typeId", a->type_id);
        cJSON_AddStringToObject(o, "name", a->name);
        cJSON_AddNumberToObject(o, "version", a->version);
        cJSON *fl = cJSON_AddArrayToObject(o, "fields");
        for (size_t j = 0; j < a->nfields; j++) {
            cJSON *f = cJSON_CreateObject();
            if (bg__json_push(fl, f))
                break;
            cJSON_AddStringToObject(f, "name", a->fields[j].name);
            cJSON_AddStringToObject(f, "type",
                                    bg_json_type_name(a->fields[j].type));
            cJSON_AddBoolToObject(f, "required", a->fields[j].required);
        }
    }
    char *out = bg__json_print(doc);
    cJSON_Delete(doc);
    return out;
}

static int fits(const cJSON *v, bg_json_type t)
{
    switch (t) {
    case BG_JSON_ANY:
        return 1;
    case BG_JSON_NULL:
        return cJSON_IsNull(v);
    case BG_JSON_BOOL:
        return cJSON_IsBool(v);
    case BG_JSON_NUMBER:
        return cJSON_IsNumber(v);
    case BG_JSON_INTEGER:
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
               fabs(v->valuedouble) <= 9007199254740992.0;
    case BG_JSON_STRING:
        return cJSON_IsString(v);
    case BG_JSON_ARRAY:
        return cJSON_IsArray(v);
    case BG_JSON_OBJECT:
        return cJSON_IsObject(v);
    }
    return 0;
}

static const char *kind_of(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "bool";
    if (cJSON_IsNumber(v))
        return v->valuedouble == floor(v->valuedouble) ? "integer" : "number";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsArray(v))
        return "array";
    return "object";
}

bg_err bg_registry_check(const bg_registry *r, uint32_t type_id,
                         const char *json, size_t len, char *why, size_t whylen)
{
    BG__JSON_SCOPE(NULL); /* a registry allocates from the C library */
    /* Parse only when there are fields to look at. */
    const bg_adapter *a = type_id ? bg_registry_find(r, type_id) : NULL;
    if (!a || !a->nfields)
        return bg__registry_check_doc(r, type_id, NULL, why, whylen);
    cJSON *doc;
    bg_err perr = bg__json_parse(json, len, &doc);
    if (perr) {
        snprintf(why, whylen,
                 perr == BG_ENOMEM ? "out of memory" : "not valid JSON");
        return perr;
    }
    bg_err err = bg__registry_check_doc(r, type_id, doc, why, whylen);
    cJSON_Delete(doc);
    return err;
}

bg_err bg__registry_check_doc(const bg_registry *r, uint32_t type_id,
                              const cJSON *doc, char *why, size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    if (type_id == 0)
        return 0;
    const bg_adapter *a = bg_registry_find(r, type_id);
    if (!a) {
        snprintf(why, whylen, "typeId %u has no adapter", (unsigned)type_id);
        return BG_ESCHEMA;
    }
    if (a->nfields == 0)
        return 0; /* an adapter without fields takes any JSON value */
    bg_err err = 0;
    if (!cJSON_IsObject(doc)) {
        snprintf(why, whylen,
                 "a '%s' (typeId %u) record must be an object, "
                 "not %s",
                 a->name, (unsigned)type_id, kind_of(doc));
        err = BG_ESCHEMA;
    }
    for (size_t i = 0; i < a->nfields && !err; i++) {
        const bg_field *f = &a->fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, f->name);
        if (!v && f->required) {
            snprintf(why, whylen, "field '%s' is required by '%s' (typeId %u)",
                     f->name, a->name, (unsigned)type_id);
            err = BG_ESCHEMA;
        } else if (v && !fits(v, f->type)) {
            snprintf(why, whylen,
                     "field '%s' must be %s for '%s' (typeId %u), not %s",
                     f->name, bg_json_type_name(f->type), a->name,
                     (unsigned)type_id, kind_of(v));
            err = BG_ESCHEMA;
        }
    }
    return err;
}
