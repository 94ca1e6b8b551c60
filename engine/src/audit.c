/*
 * The audit log for its readers (audit.h): the records of the audit box
 * in write order, their export lines with the payload redacted or not, the
 * export to a file; and the recovery that records what it lost. The meta
 * module writes the records (bg__meta_audit); the modules that act write
 * their own events through it.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "boxguard/audit.h"
#include "box_int.h"
#include "handle_int.h"
#include "json_int.h"
#include "meta_int.h"

typedef struct list_ctx {
    bg_store *s;
    bg_audit_fn fn;
    void *arg;
    bg_err err;
} list_ctx;

static int list_one(void *arg, const bg_record *r)
{
    list_ctx *c = arg;
    cJSON *doc;
    c->err = bg__json_parse(r->value, r->value_len, &doc);
    if (c->err == BG_EINVALID || (!c->err && !cJSON_IsObject(doc)))
        c->err = BG_ECORRUPT;
    const char *event = c->err ? NULL : bg__json_str(doc, "event");
    if (!c->err && !event)
        c->err = BG_ECORRUPT;
    if (c->err) {
        cJSON_Delete(doc);
        bg__handle_fail(c->s, c->err, "audit record '%.*s' is unreadable",
                        (int)(r->key_len > 200 ? 200 : r->key_len), r->key);
        return 1;
    }
    char key[256];
    size_t kn = r->key_len < sizeof key - 1 ? r->key_len : sizeof key - 1;
    memcpy(key, r->key, kn);
    key[kn] = '\0';
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(doc, "at");
    bg_audit_record rec = {key,
                           cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0,
                           event, r->value, r->value_len};
    int stop = c->fn ? c->fn(c->arg, &rec) : 0;
    cJSON_Delete(doc);
    return stop;
}

bg_err bg_audit_list(bg_store *s, bg_audit_fn fn, void *arg)
{
    BG__JSON_SCOPE(&s->alloc);
    bg_box *audit;
    bg_err err = bg_box_open(s, BG__AUDIT_BOX, 0, &audit);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    list_ctx c = {s, fn, arg, 0};
    BG_TRY(bg__box_iterate_raw(audit, list_one, &c));
    return c.err;
}

bg_err bg_audit_line(bg_store *s, const bg_audit_record *r, int redact,
                     char **line, size_t *len)
{
    BG__JSON_SCOPE(&s->alloc);
    *line = NULL;
    cJSON *doc;
    bg_err err = bg__json_parse(r->json, r->json_len, &doc);
    if (err)
        return err == BG_ENOMEM ? err : BG_ECORRUPT;
    cJSON *out = cJSON_CreateObject();
    cJSON *payload = redact ? cJSON_CreateObject() : doc;
    if (redact)
        cJSON_AddBoolToObject(payload, "redacted", 1);
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "event");
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "at");
    cJSON_AddStringToObject(out, "key", r->key);
    cJSON_AddNumberToObject(out, "at", (double)r->at_ms);
    cJSON_AddStringToObject(out, "event", r->event);
    (void)bg__json_put(out, "payload", payload);
    if (redact)
        cJSON_Delete(doc);
    char *txt = bg__json_print(out);
    cJSON_Delete(out);
    if (!txt)
        return BG_ENOMEM;
    size_t n = strlen(txt);
    *line = bg__handle_malloc(s, n + 1);
    if (*line) {
        memcpy(*line, txt, n + 1);
        *len = n;
    }
    cJSON_free(txt);
    return *line ? 0 : BG_ENOMEM;
}

typedef struct export_ctx {
    bg_store *s;
    int redact;
    char *buf;
    size_t len, cap;
    uint64_t n;
    bg_err err;
} export_ctx;

static int export_one(void *arg, const bg_audit_record *r)
{
    export_ctx *c = arg;
    char *line;
    size_t n;
    c->err = bg_audit_line(c->s, r, c->redact, &line, &n);
    if (c->err)
        return 1;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = bg__handle_realloc(c->s, c->buf, cap);
        if (!p) {
            bg__handle_free(c->s, line);
            c->err = BG_ENOMEM;
            return 1;
        }
        c->buf = p;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, line, n);
    c->buf[c->len + n] = '\n';
    c->len += n + 1;
    c->n++;
    bg__handle_free(c->s, line);
    return 0;
}

bg_err bg_audit_export(bg_store *s, const char *path, int redact,
                       uint64_t *count)
{
    *count = 0;
    char tmp[BG_PATH_MAX], dir[BG_PATH_MAX];
    BG_FAIL_IF(!path[0] || strlen(path) + 5 > sizeof tmp, s, BG_EINVALID,
               "export path '%.200s' is empty or too long", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    bg__handle_parent(path, dir, sizeof dir);
    export_ctx c = {.s = s, .redact = redact};
    bg_err err = bg_audit_list(s, export_one, &c);
    if (!err)
        err = c.err;
    if (!err) {
        err = bg__handle_write_file(s, tmp, path, dir, c.buf ? c.buf : "",
                                    c.len, 0);
        if (err)
            bg__handle_fail(s, err, "cannot write the audit export '%s'", path);
    }
    bg__handle_free(s, c.buf);
    if (!err)
        *count = c.n;
    return err;
}

bg_err bg_recover_box(bg_store *s, const char *name, bg_box_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    BG_TRY(bg_box_recover(s, name, rep));
    if (rep->status == BG_BOX_CLEAN)
        return 0;
    int64_t now = bg__handle_now_ms(s);
    cJSON *rec = cJSON_CreateObject();
    if (!rec)
        return BG_ENOMEM;
    cJSON_AddStringToObject(rec, "event", "corruption_recovery");
    cJSON_AddNumberToObject(rec, "at", (double)now);
    cJSON_AddStringToObject(rec, "box", name);
    cJSON_AddStringToObject(
        rec, "damage", rep->status == BG_BOX_TORN ? "torn_tail" : "corrupt");
    cJSON_AddNumberToObject(rec, "lost_bytes", (double)rep->lost_bytes);
    cJSON_AddNumberToObject(rec, "frames_kept", (double)rep->frames);
    cJSON *ranges = cJSON_AddArrayToObject(rec, "ranges");
    for (uint64_t i = 0; i < rep->nranges && i < BG_BOX_REPORT_RANGES; i++) {
        cJSON *pair = cJSON_CreateArray();
        (void)bg__json_push(pair,
                            cJSON_CreateNumber((double)rep->ranges[i].off));
        (void)bg__json_push(pair,
                            cJSON_CreateNumber((double)rep->ranges[i].len));
        (void)bg__json_push(ranges, pair);
    }
    cJSON_AddNumberToObject(rec, "damaged_ranges", (double)rep->nranges);
    if (rep->status == BG_BOX_TORN)
        cJSON_AddNumberToObject(rec, "cut", (double)rep->cut);
    if (rep->quarantine[0])
        cJSON_AddStringToObject(rec, "quarantine", rep->quarantine);
    uint8_t r[4];
    bg__vfs_random(s, r, sizeof r);
    /* The key names no box: an export shows keys unredacted. */
    char key[48];
    snprintf(key, sizeof key, "%016" PRIx64 "-%02x%02x%02x%02x-recover",
             (uint64_t)now, r[0], r[1], r[2], r[3]);
    bg_err err = bg__meta_audit(s, key, rec);
    cJSON_Delete(rec);
    BG_FAIL_IF(err, s, err,
               "box '%s' was recovered, but its audit record could not be "
               "written",
               name);
    return 0;
}
