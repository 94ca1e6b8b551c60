/*
 * Declarative migration plans (plan.h): the JSON parsed into migrations,
 * and the record transform that applies their operations (rename, add,
 * remove, retype with a conversion, move to another typeId). Nothing here
 * touches a store: the runner (migrate.c) calls the transform.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/plan.h"
#include "box_int.h"
#include "journal_int.h"
#include "json_int.h"

/* ---- plans ------------------------------------------------------------- */

typedef enum op_kind {
    OP_RENAME,
    OP_ADD,
    OP_REMOVE,
    OP_RETYPE,
    OP_MOVE
} op_kind;

typedef enum conv {
    CONV_FORMAT,
    CONV_PARSE,
    CONV_TRUNCATE,
    CONV_ROUND,
    CONV_NONZERO,
    CONV_WRAP
} conv;

typedef struct plan_op {
    op_kind kind;
    uint32_t type;
    char field[BG_TYPE_NAME_MAX + 1];
    char to[BG_TYPE_NAME_MAX + 1]; /* rename */
    cJSON *def;                    /* add */
    bg_json_type to_json;          /* retype */
    conv conv;
    uint32_t to_type; /* move */
} plan_op;

typedef struct plan_mig {
    bg_migration m;
    char id[BG_MIGRATION_ID_MAX + 1];
    char *description;
    char (*boxes)[BG_BOX_NAME_MAX + 1];
    const char **box_ptrs;
    plan_op *ops;
    size_t nops;
    bg_registry *adapters;
} plan_mig;

struct bg_plan {
    plan_mig *v;
    bg_migration *ms; /* v[i].m, side by side for bg_migrate_run */
    size_t n;
};

static const struct {
    const char *name;
    bg_json_type to;
    conv conv;
} conversions[] = {
    {"format", BG_JSON_STRING, CONV_FORMAT},
    {"parse", BG_JSON_NUMBER, CONV_PARSE},
    {"parse", BG_JSON_INTEGER, CONV_PARSE},
    {"truncate", BG_JSON_INTEGER, CONV_TRUNCATE},
    {"round", BG_JSON_INTEGER, CONV_ROUND},
    {"parse", BG_JSON_BOOL, CONV_PARSE},
    {"nonzero", BG_JSON_BOOL, CONV_NONZERO},
    {"wrap", BG_JSON_ARRAY, CONV_WRAP},
};

/* Convert v (a member of a record) for op, or say why not. */
static cJSON *convert(const plan_op *op, const cJSON *v, char *why, size_t cap)
{
    double d = v->valuedouble;
    switch (op->conv) {
    case CONV_FORMAT:
        if (cJSON_IsString(v))
            return cJSON_CreateString(v->valuestring);
        if (cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v)) {
            char *txt = bg__json_print(v);
            cJSON *s = txt ? cJSON_CreateString(txt) : NULL;
            cJSON_free(txt);
            return s;
        }
        break;
    case CONV_PARSE:
        if (op->to_json == BG_JSON_BOOL) {
            if (cJSON_IsBool(v))
                return cJSON_CreateBool(cJSON_IsTrue(v));
            if (cJSON_IsString(v) && !strcmp(v->valuestring, "true"))
                return cJSON_CreateTrue();
            if (cJSON_IsString(v) && !strcmp(v->valuestring, "false"))
                return cJSON_CreateFalse();
            break;
        }
        if (cJSON_IsString(v)) {
            cJSON *n = cJSON_Parse(v->valuestring);
            if (cJSON_IsNumber(n)) {
                d = n->valuedouble;
                cJSON_Delete(n);
                v = NULL;
            } else {
                cJSON_Delete(n);
                break;
            }
        } else if (!cJSON_IsNumber(v)) {
            break;
        }
        if (op->to_json == BG_JSON_INTEGER &&
            (d > 9007199254740992.0 || d < -9007199254740992.0 ||
             d != (double)(int64_t)d)) /* range first: see the cast */
            break;
        return cJSON_CreateNumber(d);
    case CONV_TRUNCATE:
    case CONV_ROUND:
        if (!cJSON_IsNumber(v) || d > 9007199254740992.0 ||
            d < -9007199254740992.0)
            break;
        if (op->conv == CONV_ROUND)
            d += d < 0 ? -0.5 : 0.5;
        return cJSON_CreateNumber((double)(int64_t)d);
    case CONV_NONZERO:
        if (cJSON_IsBool(v))
            return cJSON_CreateBool(cJSON_IsTrue(v));
        if (cJSON_IsNumber(v))
            return cJSON_CreateBool(d != 0);
        break;
    case CONV_WRAP: {
        cJSON *a = cJSON_CreateArray();
        if (cJSON_IsArray(v)) {
            cJSON_Delete(a);
            return cJSON_Duplicate(v, 1);
        }
        if (a && !cJSON_AddItemToArray(a, cJSON_Duplicate(v, 1))) {
            cJSON_Delete(a);
            a = NULL;
        }
        return a;
    }
    }
    char *txt = bg__json_print(v);
    snprintf(why, cap, "field '%s': cannot convert %.40s to %s", op->field,
             txt ? txt : "the value", bg_json_type_name(op->to_json));
    cJSON_free(txt);
    return NULL;
}

/* One op on a record (doc may be any JSON value). */
static bg_err apply_op(const plan_op *op, cJSON *doc, uint32_t *type,
                       int *changed, char *why, size_t cap)
{
    if (op->kind == OP_MOVE) {
        *type = op->to_type;
        *changed = 1;
        return 0;
    }
    if (!cJSON_IsObject(doc)) {
        snprintf(why, cap, "field '%s': the record is not a JSON object",
                 op->field);
        return BG_ESCHEMA;
    }
    cJSON *f = cJSON_GetObjectItemCaseSensitive(doc, op->field);
    switch (op->kind) {
    case OP_RENAME:
        if (!f)
            return 0;
        if (cJSON_GetObjectItemCaseSensitive(doc, op->to)) {
            snprintf(why, cap,
                     "rename '%s' to '%s': the record already has '%s'",
                     op->field, op->to, op->to);
            return BG_ESCHEMA;
        }
        cJSON_DetachItemViaPointer(doc, f);
        if (!cJSON_AddItemToObject(doc, op->to, f)) {
            cJSON_Delete(f);
            return BG_ENOMEM;
        }
        break;
    case OP_ADD:
        if (f)
            return 0;
        if (bg__json_put(doc, op->field, cJSON_Duplicate(op->def, 1)))
            return BG_ENOMEM;
        break;
    case OP_REMOVE:
        if (!f)
            return 0;
        cJSON_DeleteItemFromObjectCaseSensitive(doc, op->field);
        break;
    case OP_RETYPE: {
        if (!f)
            return 0;
        cJSON *nv = convert(op, f, why, cap);
        if (!nv)
            return why[0] ? BG_ESCHEMA : BG_ENOMEM;
        if (cJSON_Compare(nv, f, 1)) {
            cJSON_Delete(nv);
            return 0;
        }
        if (bg__json_put(doc, op->field, nv))
            return BG_ENOMEM;
        break;
    }
    case OP_MOVE:
        break;
    }
    *changed = 1;
    return 0;
}

static bg_err plan_transform(void *arg, const char *box, const bg_record *in,
                             uint32_t *type, char **value, size_t *value_len,
                             char *why, size_t whylen)
{
    (void)box;
    const plan_mig *pm = arg;
    *type = in->type;
    cJSON *doc = NULL;
    int changed = 0;
    bg_err err = 0;
    for (size_t i = 0; i < pm->nops && !err; i++) {
        if (pm->ops[i].type != *type)
            continue;
        if (!doc) {
            bg_err perr = bg__json_parse(in->value, in->value_len, &doc);
            if (perr == BG_ENOMEM)
                return perr;
            if (perr) {
                snprintf(why, whylen, "the stored value does not parse");
                return BG_ESCHEMA;
            }
        }
        why[0] = '\0';
        err = apply_op(&pm->ops[i], doc, type, &changed, why, whylen);
    }
    /* A conversion that ran out of memory is not a value that cannot be
     * converted. */
    if (err == BG_ESCHEMA && bg__json_failed())
        err = BG_ENOMEM;
    if (!err && changed && doc) {
        /* A transform's value comes from malloc (the runner frees it);
         * cJSON's from the store's allocator. */
        char *txt = bg__json_print(doc);
        size_t n = txt ? strlen(txt) : 0;
        char *v = txt ? malloc(n + 1) : NULL;
        if (v)
            memcpy(v, txt, n + 1);
        else
            err = BG_ENOMEM;
        cJSON_free(txt);
        *value = v;
        *value_len = n;
    }
    cJSON_Delete(doc);
    return err;
}

static void plan_mig_free(plan_mig *pm)
{
    for (size_t i = 0; i < pm->nops; i++)
        cJSON_Delete(pm->ops[i].def);
    free(pm->ops);
    free(pm->boxes);
    free(pm->box_ptrs);
    free(pm->description);
    bg_registry_free(pm->adapters);
}

void bg_plan_free(bg_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        plan_mig_free(&p->v[i]);
    free(p->v);
    free(p->ms);
    free(p);
}

size_t bg_plan_count(const bg_plan *p)
{
    return p->n;
}

const bg_migration *bg_plan_at(const bg_plan *p, size_t i)
{
    return i < p->n ? &p->ms[i] : NULL;
}

/* A JSON integer in [lo, hi], or -1. */
static int64_t jint(const cJSON *obj, const char *name, int64_t lo, int64_t hi)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(it) || it->valuedouble < (double)lo ||
        it->valuedouble > (double)hi ||
        it->valuedouble != (double)(int64_t)it->valuedouble)
        return -1;
    return (int64_t)it->valuedouble;
}

static int field_name(char *dst, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n == 0 || n > BG_TYPE_NAME_MAX)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static const char *parse_op(const cJSON *o, plan_op *op)
{
    const char *kind = bg__json_str(o, "op");
    int64_t type = jint(o, "type", 0, UINT32_MAX);
    if (!kind)
        return "needs \"op\" (rename, add, remove, retype or move)";
    if (type < 0)
        return "needs \"type\": the typeId (0..4294967295) it applies to";
    op->type = (uint32_t)type;
    if (!strcmp(kind, "move")) {
        int64_t to = jint(o, "to_type", 0, UINT32_MAX);
        if (to < 0)
            return "move needs \"to_type\": a typeId";
        op->kind = OP_MOVE;
        op->to_type = (uint32_t)to;
        return NULL;
    }
    if (field_name(op->field, bg__json_str(o, "field")))
        return "needs \"field\": a name of 1..64 bytes";
    if (!strcmp(kind, "rename")) {
        op->kind = OP_RENAME;
        if (field_name(op->to, bg__json_str(o, "to")))
            return "rename needs \"to\": a name of 1..64 bytes";
    } else if (!strcmp(kind, "add")) {
        op->kind = OP_ADD;
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "default");
        if (!d)
            return "add needs \"default\": the value records without the "
                   "field get";
        if (!(op->def = cJSON_Duplicate(d, 1)))
            return "out of memory";
    } else if (!strcmp(kind, "remove")) {
        op->kind = OP_REMOVE;
    } else if (!strcmp(kind, "retype")) {
        op->kind = OP_RETYPE;
        const char *to = bg__json_str(o, "to"),
                   *cv = bg__json_str(o, "conversion");
        if (!to || !cv)
            return "retype needs \"to\" (a JSON type) and \"conversion\"";
        for (size_t i = 0; i < sizeof conversions / sizeof conversions[0];
             i++) {
            if (!strcmp(bg_json_type_name(conversions[i].to), to) &&
                !strcmp(conversions[i].name, cv)) {
                op->to_json = conversions[i].to;
                op->conv = conversions[i].conv;
                return NULL;
            }
        }
        return "retype: no such conversion to that type (string: format; "
               "number: parse; integer: parse, truncate, round; bool: parse, "
               "nonzero; array: wrap)";
    } else {
        return "unknown op (rename, add, remove, retype or move)";
    }
    return NULL;
}

static const char *parse_migration(const cJSON *o, plan_mig *pm, uint32_t prev,
                                   char *sub, size_t subcap)
{
    const char *id = bg__json_str(o, "id");
    int64_t from = jint(o, "from", 1, UINT32_MAX);
    int64_t to = jint(o, "to", 1, UINT32_MAX);
    const cJSON *boxes = cJSON_GetObjectItemCaseSensitive(o, "boxes");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(o, "ops");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(o, "description");
    if (!cJSON_IsObject(o))
        return "is not an object";
    if (!id || !bg__journal_id_ok(id))
        return "needs \"id\": 1..64 of A-Z a-z 0-9 _ . -";
    snprintf(pm->id, sizeof pm->id, "%s", id);
    if (from < 0 || to < 0 || from >= to)
        return "needs integer \"from\" < \"to\" (schema versions, >= 1)";
    if (prev && from != prev)
        return "does not start where the previous migration ends";
    if (desc && !cJSON_IsString(desc))
        return "\"description\" must be a string";
    if (!cJSON_IsArray(boxes) || !cJSON_GetArraySize(boxes))
        return "needs \"boxes\": the names of the boxes it affects";
    if (!cJSON_IsArray(ops))
        return "needs \"ops\": a list of operations";
    size_t nb = (size_t)cJSON_GetArraySize(boxes);
    pm->boxes = calloc(nb, sizeof *pm->boxes);
    pm->box_ptrs = calloc(nb, sizeof *pm->box_ptrs);
    size_t nops = (size_t)cJSON_GetArraySize(ops);
    pm->ops = calloc(nops ? nops : 1, sizeof *pm->ops);
    if (!pm->boxes || !pm->box_ptrs || !pm->ops ||
        (desc && !(pm->description = strdup(desc->valuestring))))
        return "out of memory";
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, boxes)
    {
        if (!cJSON_IsString(it) || bg__box_check_name(it->valuestring))
            return "\"boxes\" holds a bad box name";
        for (size_t j = 0; j < i; j++)
            if (!strcmp(pm->boxes[j], it->valuestring))
                return "\"boxes\" names a box twice";
        strcpy(pm->boxes[i], it->valuestring);
        pm->box_ptrs[i] = pm->boxes[i];
        i++;
    }
    cJSON_ArrayForEach(it, ops)
    {
        const char *bad = parse_op(it, &pm->ops[pm->nops]);
        pm->nops++;
        if (bad) {
            snprintf(sub, subcap, "op %zu", pm->nops);
            return bad;
        }
    }
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(o, "adapters");
    if (ad) {
        char *txt = bg__json_print(ad);
        pm->adapters = bg_registry_new();
        if (!txt || !pm->adapters) {
            cJSON_free(txt);
            return "out of memory";
        }
        bg_err err = bg_registry_add_json(pm->adapters, txt, strlen(txt));
        cJSON_free(txt);
        if (err == BG_ENOMEM)
            return "out of memory";
        if (err) {
            snprintf(sub, subcap, "adapters: %s",
                     bg_registry_detail(pm->adapters));
            return "bad \"adapters\" manifest";
        }
    }
    pm->m = (bg_migration){pm->id,         pm->description,
                           (uint32_t)from, (uint32_t)to,
                           pm->box_ptrs,   nb,
                           plan_transform, pm,
                           pm->adapters};
    return NULL;
}

bg_err bg_plan_parse(const char *json, size_t len, bg_plan **out, char *detail,
                     size_t dcap)
{
    BG__JSON_SCOPE(NULL); /* a plan allocates from the C library */
    *out = NULL;
    char dummy[8];
    if (!detail || !dcap)
        detail = dummy, dcap = sizeof dummy;
    detail[0] = '\0';
    cJSON *doc;
    if (bg__json_parse(json, len, &doc) == BG_ENOMEM) {
        snprintf(detail, dcap, "plan: out of memory");
        return BG_ENOMEM;
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(doc, "migrations");
    if (!cJSON_IsArray(ms) || !cJSON_GetArraySize(ms)) {
        if (doc)
            snprintf(detail, dcap,
                     "plan: needs \"migrations\", a non-empty list");
        else
            snprintf(detail, dcap, "plan: not JSON");
        cJSON_Delete(doc);
        return BG_EINVALID;
    }
    bg_plan *p = calloc(1, sizeof *p);
    size_t n = (size_t)cJSON_GetArraySize(ms);
    if (p) {
        p->v = calloc(n, sizeof *p->v);
        p->ms = calloc(n, sizeof *p->ms);
    }
    if (!p || !p->v || !p->ms) {
        if (p)
            free(p->v), free(p->ms);
        free(p);
        cJSON_Delete(doc);
        return BG_ENOMEM;
    }
    const cJSON *it;
    uint32_t prev = 0;
    const char *bad = NULL;
    cJSON_ArrayForEach(it, ms)
    {
        char sub[300] = "";
        plan_mig *pm = &p->v[p->n++];
        bad = parse_migration(it, pm, prev, sub, sizeof sub);
        if (bad) {
            snprintf(detail, dcap, "plan: migration %zu%s%s%s%s%s: %s", p->n,
                     pm->id[0] ? " ('" : "", pm->id, pm->id[0] ? "')" : "",
                     sub[0] ? ", " : "", sub, bad);
            break;
        }
        prev = pm->m.to;
    }
    cJSON_Delete(doc);
    if (bad) {
        int nomem = !strcmp(bad, "out of memory");
        bg_plan_free(p);
        return nomem ? BG_ENOMEM : BG_EINVALID;
    }
    for (size_t i = 0; i < p->n; i++)
        p->ms[i] = p->v[i].m;
    *out = p;
    return 0;
}
