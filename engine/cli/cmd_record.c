/*
 * The record commands: put, get, del, dump (one JSON object per record,
 * per line) and load (those lines back, in one batch: all or none).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxguard/boxguard.h"
#include "cli.h"
#include "boxguard/typeids.h"

int cli_cmd_put(const args *a)
{
    uint32_t type;
    if (cli_parse_type(a->type, &type)) {
        cli_fail("--type must be an integer from 0 to 4294967295, not '%s'",
                 a->type);
        return EXIT_USAGE;
    }
    char *owned;
    const char *json;
    size_t len;
    int vrc = cli_value_arg(a->json, "value", &owned, &json, &len);
    if (vrc)
        return vrc;
    session ss;
    int rc = cli_begin(a, 1, a->box,
                       BG_BOX_CREATE | (a->encrypt ? BG_BOX_ENCRYPT : 0), &ss);
    if (!rc) {
        bg_err err = bg_box_put(ss.b, a->key, strlen(a->key), type, json, len);
        if (err)
            rc = cli_report(ss.s, err, "put failed");
    }
    free(owned);
    return cli_end(&ss, rc);
}

static void write_value(const char *v, size_t n)
{
    /* A raw line break can only be whitespace between JSON tokens; keep
     * one record per line. */
    for (size_t i = 0; i < n; i++)
        putchar(v[i] == '\n' || v[i] == '\r' ? ' ' : v[i]);
}

int cli_cmd_get(const args *a)
{
    session ss;
    int rc = cli_begin(a, 0, a->box, 0, &ss);
    if (!rc) {
        uint32_t t;
        char *v;
        size_t n;
        bg_err err = bg_box_get(ss.b, a->key, strlen(a->key), &t, &v, &n);
        if (err) {
            rc = cli_report(ss.s, err, "get failed");
        } else {
            fwrite(v, 1, n, stdout);
            putchar('\n');
            bg_store_free(ss.s, v);
            if (bg_box_report_of(ss.b)->status == BG_BOX_CORRUPT)
                rc = EXIT_DAMAGED;
        }
    }
    return cli_end(&ss, rc);
}

int cli_cmd_del(const args *a)
{
    session ss;
    int rc = cli_begin(a, 1, a->box, 0, &ss);
    if (!rc) {
        bg_err err = bg_box_del(ss.b, a->key, strlen(a->key));
        if (err)
            rc = cli_report(ss.s, err, "del failed");
    }
    return cli_end(&ss, rc);
}

static int dump_one(void *arg, const bg_record *r)
{
    (void)arg;
    char *k = malloc(r->key_len + 1);
    if (!k)
        return 1;
    memcpy(k, r->key, r->key_len);
    k[r->key_len] = '\0';
    cJSON *ks = cJSON_CreateString(k);
    char *kj = ks ? cJSON_PrintUnformatted(ks) : NULL;
    if (kj) {
        printf("{\"key\":%s,\"type\":%" PRIu32 ",\"value\":", kj, r->type);
        write_value(r->value, r->value_len);
        fputs("}\n", stdout);
    }
    cJSON_free(kj);
    cJSON_Delete(ks);
    free(k);
    return kj ? 0 : 1;
}

int cli_cmd_dump(const args *a)
{
    session ss;
    int rc = cli_begin(a, 0, a->box, 0, &ss);
    if (!rc) {
        bg_err err = bg_box_iterate(ss.b, dump_one, NULL);
        if (err)
            rc = cli_report(ss.s, err, "dump failed");
        else if (bg_box_report_of(ss.b)->status == BG_BOX_CORRUPT)
            rc = EXIT_DAMAGED;
    }
    return cli_end(&ss, rc);
}

/* ---- load ------------------------------------------------------------- */

typedef struct line_rec {
    char *key;
    uint32_t type;
    const char *value; /* into the input buffer */
    size_t value_len;
} line_rec;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Parse one {"key":...,"type":N,"value":...} line, member order free. The
 * value keeps its exact bytes: cJSON finds where it ends. */
static int parse_line(const char *p, const char *end, line_rec *r, char *why,
                      size_t whylen)
{
    int have_key = 0, have_type = 0, have_value = 0;
    p = skip_ws(p, end);
    if (p == end || *p != '{') {
        snprintf(why, whylen, "expected '{' at column %d", 1);
        return -1;
    }
    const char *line = p;
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == '}' && !have_key && !have_type && !have_value)
            break;
        const char *kend = NULL;
        cJSON *name = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &kend, 0);
        if (!name || !cJSON_IsString(name)) {
            cJSON_Delete(name);
            snprintf(why, whylen, "expected a member name at column %d",
                     (int)(p - line) + 1);
            return -1;
        }
        char field[16] = "";
        snprintf(field, sizeof field, "%s", name->valuestring);
        cJSON_Delete(name);
        p = skip_ws(kend, end);
        if (p == end || *p != ':') {
            snprintf(why, whylen, "expected ':' at column %d",
                     (int)(p - line) + 1);
            return -1;
        }
        p = skip_ws(p + 1, end);
        const char *vend = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &vend, 0);
        if (!v) {
            snprintf(why, whylen, "bad JSON value for \"%s\" at column %d",
                     field, (int)(p - line) + 1);
            return -1;
        }
        int bad = 0;
        if (!strcmp(field, "key") && !have_key) {
            if (!cJSON_IsString(v) ||
                memmem(p, (size_t)(vend - p), "\\u0000", 6))
                bad = 1;
            else
                r->key = strdup(v->valuestring), have_key = 1;
        } else if (!strcmp(field, "type") && !have_type) {
            double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
            if (d < 0 || d > UINT32_MAX || d != (double)(uint32_t)d)
                bad = 1;
            else
                r->type = (uint32_t)d, have_type = 1;
        } else if (!strcmp(field, "value") && !have_value) {
            r->value = p;
            r->value_len = (size_t)(vend - p);
            have_value = 1;
        } else {
            snprintf(why, whylen, "unexpected or repeated member \"%s\"",
                     field);
            cJSON_Delete(v);
            return -1;
        }
        cJSON_Delete(v);
        if (bad) {
            snprintf(why, whylen, "\"%s\" must be %s", field,
                     field[0] == 'k' ? "a string without \\u0000"
                                     : "an integer from 0 to 4294967295");
            return -1;
        }
        p = skip_ws(vend, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}')
            break;
        snprintf(why, whylen, "expected ',' or '}' at column %d",
                 (int)(p - line) + 1);
        return -1;
    }
    p = skip_ws(p + 1, end);
    if (p != end) {
        snprintf(why, whylen, "trailing data at column %d",
                 (int)(p - line) + 1);
        return -1;
    }
    if (!have_key || !have_type || !have_value) {
        snprintf(why, whylen, "missing \"%s\"",
                 !have_key    ? "key"
                 : !have_type ? "type"
                              : "value");
        return -1;
    }
    return 0;
}

int cli_cmd_load(const args *a)
{
    size_t len;
    char *in = cli_read_stdin(SIZE_MAX / 4, &len);
    if (!in) {
        cli_fail("cannot read stdin: %s", strerror(errno));
        return EXIT_SYSTEM;
    }
    size_t n = 0, cap = 1024;
    line_rec *recs = calloc(cap, sizeof *recs);
    int rc = recs ? EXIT_OK : EXIT_SYSTEM;
    int tty = isatty(STDERR_FILENO);
    size_t lineno = 0;
    for (char *p = in; rc == EXIT_OK && p < in + len;) {
        char *nl = memchr(p, '\n', (size_t)(in + len - p));
        char *end = nl ? nl : in + len;
        lineno++;
        if (skip_ws(p, end) != end) {
            if (n == cap) {
                line_rec *q = realloc(recs, 2 * cap * sizeof *q);
                if (!q) {
                    rc = EXIT_SYSTEM;
                    break;
                }
                memset(q + cap, 0, cap * sizeof *q);
                recs = q;
                cap *= 2;
            }
            char why[160];
            if (parse_line(p, end, &recs[n], why, sizeof why)) {
                cli_fail("stdin line %zu: %s; nothing was loaded", lineno, why);
                free(recs[n].key);
                rc = EXIT_USAGE;
                break;
            }
            n++;
        }
        if (tty && lineno % 10000 == 0)
            fprintf(stderr, "\rload: parsed %zu lines", lineno);
        p = end + 1;
    }
    if (tty && lineno >= 10000)
        fprintf(stderr, "\rload: parsed %zu lines\n", lineno);
    session ss = {0};
    if (rc == EXIT_OK)
        rc = cli_begin(a, 1, a->box,
                       BG_BOX_CREATE | (a->encrypt ? BG_BOX_ENCRYPT : 0), &ss);
    if (rc == EXIT_OK && n) {
        bg_write *w = malloc(n * sizeof *w);
        if (!w) {
            rc = EXIT_SYSTEM;
        } else {
            for (size_t i = 0; i < n; i++)
                w[i] = (bg_write){0,
                                  recs[i].key,
                                  strlen(recs[i].key),
                                  recs[i].type,
                                  recs[i].value,
                                  recs[i].value_len};
            bg_err err = bg_box_write_batch(ss.b, w, n);
            if (err) {
                rc = cli_report(ss.s, err, "load failed");
                cli_fail("nothing was loaded");
            }
            free(w);
        }
    }
    rc = cli_end(&ss, rc);
    if (rc == EXIT_OK)
        fprintf(stderr, "loaded %zu records into box '%s'\n", n, a->box);
    for (size_t i = 0; i < n; i++)
        free(recs[i].key);
    free(recs);
    free(in);
    return rc;
}
