/*
 * Runtime guardrails (guard.h): each invariant measured and held to its
 * bound. Read-only: the queue's census rebuilds an index in memory, and
 * nothing is written.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "boxguard/guard.h"
#include "box_int.h"
#include "handle_int.h"
#include "json_int.h"
#include "keys_int.h"
#include "meta_int.h"

void bg_guard_policy_init(bg_guard_policy *p)
{
    memset(p, 0, sizeof *p);
    p->failed_max = 20;
    p->lock_stale_ms = 2 * 60 * 1000;
    p->emergency_blocked_ms = 5 * 60 * 1000;
}

const char *bg_guard_severity_name(bg_guard_severity v)
{
    return v == BG_GUARD_CRITICAL  ? "critical"
           : v == BG_GUARD_WARNING ? "warning"
                                   : "ok";
}

/* A whole number in [lo, hi], or -1. */
static int whole(const cJSON *it, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(it))
        return -1;
    double d = it->valuedouble;
    if (d < lo || d > hi || d != (double)(int64_t)d)
        return -1;
    *out = d;
    return 0;
}

bg_err bg_guard_policy_parse(const char *json, size_t len, bg_guard_policy *p,
                             char *why, size_t whylen)
{
    BG__JSON_SCOPE(NULL);
    bg_guard_policy_init(p);
    cJSON *doc;
    bg_err err = bg__json_parse(json, len, &doc);
    if (err == BG_ENOMEM)
        return err;
    if (err || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        snprintf(why, whylen, "a policy is one JSON object");
        return BG_EINVALID;
    }
    err = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        double d = 0;
        const char *k = it->string;
        if (!strcmp(k, "failed_max")) {
            if (whole(it, 0, 1e15, &d))
                err = BG_EINVALID;
            else
                p->failed_max = (uint64_t)d;
        } else if (!strcmp(k, "lock_stale_seconds") ||
                   !strcmp(k, "emergency_blocked_seconds")) {
            if (whole(it, 1, 1e9, &d))
                err = BG_EINVALID;
            else if (k[0] == 'l')
                p->lock_stale_ms = (int64_t)d * 1000;
            else
                p->emergency_blocked_ms = (int64_t)d * 1000;
        } else if (!strcmp(k, "sensitive_boxes")) {
            const cJSON *b;
            int n = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1;
            if (n < 0 || n > BG_GUARD_SENSITIVE_MAX)
                err = BG_EINVALID;
            cJSON_ArrayForEach(b, it)
            {
                if (err)
                    break;
                if (!cJSON_IsString(b) || !b->valuestring[0] ||
                    strlen(b->valuestring) > BG_BOX_NAME_MAX) {
                    err = BG_EINVALID;
                    break;
                }
                snprintf(p->sensitive[p->nsensitive++], BG_BOX_NAME_MAX + 1,
                         "%s", b->valuestring);
            }
        } else {
            snprintf(why, whylen,
                     "unknown member \"%.64s\" (failed_max, "
                     "lock_stale_seconds, emergency_blocked_seconds, "
                     "sensitive_boxes)",
                     k);
            cJSON_Delete(doc);
            return BG_EINVALID;
        }
        if (err) {
            snprintf(why, whylen, "\"%.64s\" must be %s", k,
                     !strcmp(k, "failed_max") ? "a whole number from 0"
                     : !strcmp(k, "sensitive_boxes")
                         ? "an array of at most 32 box names"
                         : "a whole number of seconds from 1");
            cJSON_Delete(doc);
            return BG_EINVALID;
        }
    }
    cJSON_Delete(doc);
    return 0;
}

__attribute__((format(printf, 6, 7))) static void
set(bg_guard_result *r, bg_guard_severity sev, int64_t measured, int64_t bound,
    const char *action, const char *fmt, ...)
{
    r->severity = sev;
    r->measured = measured;
    r->bound = bound;
    snprintf(r->action, sizeof r->action, "%s", sev ? action : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

static bg_err check_pending(bg_queue *q, bg_guard_result *r)
{
    if (!q) {
        set(r, BG_GUARD_OK, 0, 0, "", "the store has no queue");
        return 0;
    }
    bg_queue_census c;
    BG_TRY(bg_queue_census_of(q, &c));
    int bad = c.indexed != c.stored || c.indexed != c.rebuilt || c.foreign;
    set(r, bad ? BG_GUARD_CRITICAL : BG_GUARD_OK, (int64_t)c.indexed,
        (int64_t)c.stored,
        "stop processing, run `boxguard queue rebuild-index` and `boxguard "
        "verify --box pending_ops`; keep the store for inspection",
        "pending ops: %" PRIu64 " in the index, %" PRIu64
        " op records in pending_ops, %" PRIu64 " after a rebuild; %" PRIu64
        " records that are no op",
        c.indexed, c.stored, c.rebuilt, c.foreign);
    return 0;
}

static bg_err check_emergency(bg_store *s, bg_queue *q,
                              const bg_guard_policy *p, bg_guard_result *r)
{
    bg_queue_head h;
    bg_err err = q ? bg_queue_head_of(q, BG_LANE_EMERGENCY, &h) : BG_ENOTFOUND;
    if (err == BG_ENOTFOUND) {
        set(r, BG_GUARD_OK, 0, p->emergency_blocked_ms, "",
            "the emergency lane is empty");
        return 0;
    }
    BG_TRY(err);
    int64_t age = bg__handle_now_ms(s) - h.enqueued_ms;
    int stuck = h.lease_until_ms || h.attempts;
    int bad = stuck && age > p->emergency_blocked_ms;
    set(r, bad ? BG_GUARD_CRITICAL : BG_GUARD_OK, age, p->emergency_blocked_ms,
        "find why the emergency op fails (`boxguard queue failed`, the sync "
        "log); nack it past its attempts or fix the server",
        "the emergency lane's head (op %" PRIu64 ") has waited %" PRId64
        " ms, %s, %u failed deliveries",
        h.id, age, h.lease_until_ms ? "leased" : "not leased",
        (unsigned)h.attempts);
    return 0;
}

static bg_err check_sealed(bg_store *s, const bg_guard_policy *p,
                           bg_guard_result *r)
{
    char names[200] = "";
    int64_t bad = 0;
    for (size_t i = 0; i < p->nsensitive; i++) {
        const char *name = p->sensitive[i];
        bg_box *b;
        bg_err err = bg_box_open(s, name, 0, &b);
        if (err == BG_ENOTFOUND)
            continue; /* nothing stored in it yet */
        const char *why = NULL;
        if (err == BG_EAUTH)
            why = "its key is missing";
        else if (err)
            return err;
        else if (!bg__box_key_id(b))
            why = "not sealed";
        else {
            BG_TRY(bg__keys_load(s));
            if (!bg__keys_find(s, bg__box_key_id(b)))
                why = "its key is missing";
        }
        if (why) {
            size_t at = strlen(names);
            snprintf(names + at, sizeof names - at, "%s'%s' (%s)",
                     bad ? ", " : "", name, why);
            bad++;
        }
    }
    if (bad)
        set(r, BG_GUARD_CRITICAL, bad, 0,
            "seal the box (`boxguard rekey`, or recreate it sealed) or "
            "restore its key; treat its data as exposed",
            "sensitive boxes not sealed as the policy requires: %s", names);
    else
        set(r, BG_GUARD_OK, 0, 0, "",
            "%zu sensitive box%s: each sealed, its key present", p->nsensitive,
            p->nsensitive == 1 ? "" : "es");
    return 0;
}

static void check_adapters(bg_store *s, const bg_registry *code,
                           bg_guard_result *r)
{
    if (!code || !s->types) {
        set(r, BG_GUARD_OK, 0, 0, "",
            code ? "no schema lock yet" : "no adapters given to compare");
        return;
    }
    char first[200] = "";
    size_t n = bg__meta_schema_compare(s->types, code, first, sizeof first);
    if (n)
        set(r, BG_GUARD_CRITICAL, (int64_t)n, 0,
            "register the adapters the schema lock names, under their "
            "typeIds; never reuse a typeId",
            "%zu finding%s against the schema lock, first: %s", n,
            n == 1 ? "" : "s", first);
    else
        set(r, BG_GUARD_OK, 0, 0, "",
            "the adapters agree with the schema lock");
}

static bg_err check_schema(bg_store *s, uint32_t code_version,
                           bg_guard_result *r)
{
    uint32_t v;
    BG_TRY(bg__meta_schema_version(s, &v));
    if (!code_version)
        set(r, BG_GUARD_OK, v, 0, "",
            "the store is at schema version %u (the code's not given)",
            (unsigned)v);
    else if (v > code_version)
        set(r, BG_GUARD_CRITICAL, v, code_version,
            "update the app; never downgrade stored data",
            "the store is at schema version %u, newer than the code's %u",
            (unsigned)v, (unsigned)code_version);
    else if (v < code_version)
        set(r, BG_GUARD_WARNING, v, code_version,
            "run the migrations to the code's version",
            "the store is at schema version %u, older than the code's %u",
            (unsigned)v, (unsigned)code_version);
    else
        set(r, BG_GUARD_OK, v, code_version, "",
            "the store is at the code's schema version %u", (unsigned)v);
    return 0;
}

static void check_failed(bg_queue *q, const bg_guard_policy *p,
                         bg_guard_result *r)
{
    bg_queue_stats st = {0};
    if (q)
        bg_queue_stats_of(q, &st);
    set(r, st.failed > p->failed_max ? BG_GUARD_WARNING : BG_GUARD_OK,
        (int64_t)st.failed, (int64_t)p->failed_max,
        "look at `boxguard queue failed`: fix the cause, then retry or purge",
        "%" PRIu64 " failed ops (bound %" PRIu64 ")", st.failed, p->failed_max);
}

static bg_err check_lock(bg_store *s, bg_queue *q, const bg_guard_policy *p,
                         bg_guard_result *r)
{
    char owner[256] = "";
    int64_t since = 0;
    if (q)
        BG_TRY(bg_queue_lock_info(q, owner, sizeof owner, &since));
    if (!owner[0]) {
        set(r, BG_GUARD_OK, 0, p->lock_stale_ms, "",
            "the processing lock is free");
        return 0;
    }
    int64_t age = bg__handle_now_ms(s) - since;
    set(r, age > p->lock_stale_ms ? BG_GUARD_WARNING : BG_GUARD_OK, age,
        p->lock_stale_ms,
        "the owner has likely died: the next processor takes the lock over "
        "(audited); check that process",
        "the processing lock is held by '%.100s' for %" PRId64 " ms", owner,
        age);
    return 0;
}

bg_err bg_guard_check(bg_store *s, bg_queue *q, const bg_registry *code,
                      uint32_t code_version, const bg_guard_policy *p,
                      bg_guard_report *out)
{
    static const char *const names[BG_GUARD_CHECKS] = {
        "pending_count",  "emergency_lane", "encryption_policy", "adapters",
        "schema_version", "failed_ops",     "processing_lock"};
    memset(out, 0, sizeof *out);
    for (int i = 0; i < BG_GUARD_CHECKS; i++)
        out->checks[i].name = names[i];
    bg_guard_policy dflt;
    if (!p) {
        bg_guard_policy_init(&dflt);
        p = &dflt;
    }
    bg_queue *own = NULL;
    int has = 0;
    if (!q) { /* never made here: a store without a queue keeps none */
        bg_err err = bg__handle_has(s, BG__PENDING_BOX ".box", &has);
        if (!err && has)
            err = bg_queue_open(s, NULL, &own);
        if (err && err != BG_ENOTFOUND)
            return err;
        q = own;
    }
    bg_err err = check_pending(q, &out->checks[0]);
    if (!err)
        err = check_emergency(s, q, p, &out->checks[1]);
    if (!err)
        err = check_sealed(s, p, &out->checks[2]);
    if (!err)
        check_adapters(s, code, &out->checks[3]);
    if (!err)
        err = check_schema(s, code_version, &out->checks[4]);
    if (!err)
        check_failed(q, p, &out->checks[5]);
    if (!err)
        err = check_lock(s, q, p, &out->checks[6]);
    if (own)
        bg_queue_close(own);
    for (int i = 0; i < BG_GUARD_CHECKS; i++)
        if (out->checks[i].severity > out->worst)
            out->worst = out->checks[i].severity;
    return err;
}
