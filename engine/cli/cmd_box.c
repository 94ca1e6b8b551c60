/*
 * The box commands: verify (read-only), recover, compact, stats and rekey.
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

/* ---- verify, recover, compact, stats ----------------------------------- */

static int add_name(void *arg, const char *name)
{
    names *ns = arg;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 8;
        char **p = realloc(ns->v, cap * sizeof *p);
        if (!p)
            return 1;
        ns->v = p;
        ns->cap = cap;
    }
    ns->v[ns->n] = strdup(name);
    if (ns->v[ns->n])
        ns->n++;
    return 0;
}

static void free_names(names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

/* A session on the store and the boxes the command works on: --box, or
 * every box of the store. */
static int begin_boxes(const args *a, int writable, session *ss, names *ns)
{
    int rc = cli_begin(a, writable, NULL, 0, ss);
    if (rc)
        return rc;
    if (a->box)
        return add_name(ns, a->box) ? EXIT_SYSTEM : EXIT_OK;
    bg_err err = bg_store_list_boxes(ss->s, add_name, ns);
    return err ? cli_report(ss->s, err, "cannot list boxes") : EXIT_OK;
}

/* End what begin_boxes began: print the JSON array of the answers (or
 * drop it after an error), close the store, and when all went well return
 * found (the exit code of what was found, 0 for nothing). */
static int end_boxes(session *ss, names *ns, cJSON *arr, int rc, int found)
{
    if (arr && rc == EXIT_OK)
        cli_print_json(arr);
    else
        cJSON_Delete(arr);
    free_names(ns);
    rc = cli_end(ss, rc);
    return rc == EXIT_OK ? found : rc;
}

/* A torn tail in which frames verify is called damage: it may be a synced
 * batch damaged since, and its frames are worth a look before they go. */
static const char *status_name(const bg_box_report *r)
{
    if (r->status == BG_BOX_TORN)
        return r->tail_frames ? "damaged_tail" : "torn";
    return r->status == BG_BOX_CLEAN ? "clean" : "corrupt";
}

static cJSON *report_json(const char *name, const bg_box_report *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "box", name);
    cJSON_AddStringToObject(o, "status", status_name(r));
    cJSON_AddNumberToObject(o, "file_size", (double)r->file_size);
    cJSON_AddNumberToObject(o, "frames", (double)r->frames);
    cJSON_AddBoolToObject(o, "header_ok", r->header_ok);
    cJSON_AddNumberToObject(o, "zeroed", (double)r->zeroed);
    if (r->status != BG_BOX_CLEAN) {
        cJSON_AddNumberToObject(o, "first_damage", (double)r->first_damage);
        cJSON_AddNumberToObject(o, "lost_bytes", (double)r->lost_bytes);
        if (r->status == BG_BOX_TORN)
            cJSON_AddNumberToObject(o, "cut", (double)r->cut);
        cJSON *rs = cJSON_AddArrayToObject(o, "ranges");
        for (uint64_t i = 0; i < r->nranges && i < BG_BOX_REPORT_RANGES; i++) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair,
                                 cJSON_CreateNumber((double)r->ranges[i].off));
            cJSON_AddItemToArray(pair,
                                 cJSON_CreateNumber((double)r->ranges[i].len));
            cJSON_AddItemToArray(rs, pair);
        }
        cJSON_AddNumberToObject(o, "damaged_ranges", (double)r->nranges);
    }
    if (r->quarantine[0])
        cJSON_AddStringToObject(o, "quarantine", r->quarantine);
    return o;
}

static void print_ranges(const bg_box_report *r)
{
    for (uint64_t i = 0; i < r->nranges && i < BG_BOX_REPORT_RANGES; i++)
        printf("  damaged bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64 " bytes)\n",
               r->ranges[i].off, r->ranges[i].off + r->ranges[i].len,
               r->ranges[i].len);
    if (r->nranges > BG_BOX_REPORT_RANGES)
        printf("  ... and %" PRIu64 " more damaged ranges\n",
               r->nranges - BG_BOX_REPORT_RANGES);
}

static void print_report(const char *dir, const char *name,
                         const bg_box_report *r, int fixed)
{
    switch (r->status) {
    case BG_BOX_CLEAN:
        printf("box '%s': clean (%" PRIu64 " frames, %" PRIu64 " bytes)%s\n",
               name, r->frames, r->file_size, fixed ? ", nothing to do" : "");
        break;
    case BG_BOX_TORN:
        if (!r->tail_frames) {
            printf("box '%s': torn tail: %" PRIu64 " bytes at offset %" PRIu64
                   " %s (an interrupted write; %" PRIu64
                   " earlier frames intact)\n",
                   name, r->lost_bytes, r->cut, fixed ? "cut" : "to cut",
                   r->frames);
            break;
        }
        printf("box '%s': DAMAGED tail: %" PRIu64 " bytes at offset %" PRIu64
               " %s; %" PRIu64 " frame(s) in it verify (a synced batch damaged "
               "since, or a batch a crash cut short); %" PRIu64
               " earlier frames intact\n",
               name, r->lost_bytes, r->cut, fixed ? "cut" : "to cut",
               r->tail_frames, r->frames - r->tail_frames);
        if (fixed)
            printf("  the tail was copied to %s\n", r->quarantine);
        else
            printf("  run `boxguard recover --store %s --box %s`: it keeps a "
                   "copy of the tail in quarantine/\n",
                   dir, name);
        break;
    case BG_BOX_CORRUPT:
        printf("box '%s': CORRUPT: first damaged byte at offset %" PRIu64
               "%s; %" PRIu64 " frames verify\n",
               name, r->first_damage, r->header_ok ? "" : " (header)",
               r->frames);
        print_ranges(r);
        if (fixed)
            printf("  recovered: kept the %" PRIu64
                   " frames that verify; damaged file copied to %s\n",
                   r->frames, r->quarantine);
        else
            printf("  run `boxguard recover --store %s --box %s`\n", dir, name);
        break;
    }
}

static int cmd_verify_or_recover(const args *a, int fix)
{
    session ss;
    names ns = {0};
    int rc = begin_boxes(a, fix, &ss, &ns);
    bg_store *s = ss.s;
    cJSON *arr = a->as_json ? cJSON_CreateArray() : NULL;
    int damaged = 0;
    for (size_t i = 0; i < ns.n && rc == EXIT_OK; i++) {
        bg_box_report r;
        bg_err err = fix ? bg_recover_box(s, ns.v[i], &r)
                         : bg_box_verify(s, ns.v[i], &r);
        if (err) {
            rc = cli_report(s, err, fix ? "recover failed" : "verify failed");
            break;
        }
        if (r.status != BG_BOX_CLEAN)
            damaged = 1;
        if (arr)
            cJSON_AddItemToArray(arr, report_json(ns.v[i], &r));
        else
            print_report(a->store, ns.v[i], &r, fix);
    }
    return end_boxes(&ss, &ns, arr, rc, damaged && !fix ? EXIT_NEGATIVE : 0);
}

int cli_cmd_compact(const args *a)
{
    session ss;
    int rc = cli_begin(a, 1, a->box, 0, &ss);
    if (!rc) {
        bg_box_stats before, after;
        bg_box_stats_of(ss.b, &before);
        bg_err err = bg_box_compact(ss.b);
        if (err) {
            rc = cli_report(ss.s, err, "compact failed");
        } else {
            bg_box_stats_of(ss.b, &after);
            printf("box '%s': compacted %" PRIu64 " -> %" PRIu64
                   " bytes (%" PRIu64 " records)\n",
                   a->box, before.file_bytes, after.file_bytes, after.records);
        }
    }
    return cli_end(&ss, rc);
}

int cli_cmd_stats(const args *a)
{
    session ss;
    names ns = {0};
    int rc = begin_boxes(a, 0, &ss, &ns);
    bg_store *s = ss.s;
    cJSON *arr = a->as_json ? cJSON_CreateArray() : NULL;
    if (!arr && rc == EXIT_OK)
        printf("%-24s %10s %10s %12s %12s %s\n", "box", "records", "frames",
               "bytes", "live bytes", "status");
    int damaged = 0;
    for (size_t i = 0; i < ns.n && rc == EXIT_OK; i++) {
        bg_box *b;
        bg_err err = bg_box_open(s, ns.v[i], 0, &b);
        if (err) {
            rc = cli_report(s, err, "cannot open box");
            break;
        }
        bg_box_stats st;
        bg_box_stats_of(b, &st);
        const bg_box_report *r = bg_box_report_of(b);
        damaged |= r->status == BG_BOX_CORRUPT;
        if (arr) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "box", ns.v[i]);
            cJSON_AddNumberToObject(o, "records", (double)st.records);
            cJSON_AddNumberToObject(o, "frames", (double)st.frames);
            cJSON_AddNumberToObject(o, "bytes", (double)st.file_bytes);
            cJSON_AddNumberToObject(o, "live_bytes", (double)st.live_bytes);
            cJSON_AddStringToObject(o, "status", status_name(r));
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%-24s %10" PRIu64 " %10" PRIu64 " %12" PRIu64 " %12" PRIu64
                   " %s\n",
                   ns.v[i], st.records, st.frames, st.file_bytes, st.live_bytes,
                   status_name(r));
        }
    }
    return end_boxes(&ss, &ns, arr, rc, damaged ? EXIT_DAMAGED : 0);
}

int cli_cmd_rekey(const args *a)
{
    session ss;
    int rc = cli_begin(a, 1, NULL, 0, &ss);
    if (rc)
        return cli_end(&ss, rc);
    bg_rekey_report r;
    bg_err err = bg_rekey_run(ss.s, &r);
    if (err)
        rc = cli_report(ss.s, err, "rekey failed");
    else
        printf("rekeyed: %u encrypted box%s under key %08x (%u re-sealed "
               "now), %u old key%s destroyed\n",
               r.boxes, r.boxes == 1 ? "" : "es", (unsigned)r.key_id,
               r.resealed, r.keys_removed, r.keys_removed == 1 ? "" : "s");
    return cli_end(&ss, rc);
}

/* ---- typeids check ------------------------------------------------------ */

/* GitHub workflow commands: escape data and property values. */
int cli_cmd_verify(const args *a)
{
    return cmd_verify_or_recover(a, 0);
}

int cli_cmd_recover(const args *a)
{
    return cmd_verify_or_recover(a, 1);
}
