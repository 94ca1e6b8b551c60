/*
 * boxguard migrate: run a plan (with its dry run), status and rollback.
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

const char cli_migrate_usage[] =
    "usage: boxguard migrate --store DIR --plan FILE [--adapters FILE]\n"
    "                        [--dry-run] [--json]\n"
    "       boxguard migrate status --store DIR [--json]\n"
    "       boxguard migrate rollback --store DIR [--force] [--json]\n"
    "\n"
    "  (run)     apply the plan's migrations in order, each journaled in\n"
    "            DIR/migration.journal: backup to DIR/backups/<id>/, dry\n"
    "            run, migrate beside, verify, commit (or roll back). Every\n"
    "            record that fails the dry run is listed and nothing is\n"
    "            changed (exit 1). --adapters: the adapters the "
    "migrated\n"
    "            records must fit, for migrations whose plan names none\n"
    "            (default: the store's schema lock). Migrations the store\n"
    "            is already past are skipped.\n"
    "  --dry-run transform and check every record through the whole plan,\n"
    "            write nothing; exit 1 when any record would fail\n"
    "  status    open the store (which finishes or rolls back a migration\n"
    "            interrupted by a crash, and says which), print its schema\n"
    "            version and the migration history from the audit box\n"
    "  rollback  restore the backups of the last committed migration and\n"
    "            its schema version; refused when an affected box was\n"
    "            written since, unless --force (those writes are lost)\n"
    "\n"
    "Plan format: {\"migrations\":[{\"id\":\"user-email\",\"from\":1,"
    "\"to\":2,\n"
    "  \"description\":\"...\",\"boxes\":[\"users\"],\"adapters\":{...},\n"
    "  \"ops\":[{\"op\":\"add\",\"type\":3,\"field\":\"email\","
    "\"default\":\"\"}]}]}\n"
    "ops: rename (field, to), add (field, default), remove (field), retype\n"
    "(field, to, conversion: string/format, number/parse, integer/parse|\n"
    "truncate|round, bool/parse|nonzero, array/wrap), move (to_type).\n";

static void print_failure(void *ctx, const char *mig, const char *box,
                          const char *key, size_t klen, const char *why)
{
    int as_json = *(int *)ctx;
    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "failure", mig);
        cJSON_AddStringToObject(o, "box", box);
        char *k = strndup(key, klen);
        cJSON_AddStringToObject(o, "key", k ? k : "");
        free(k);
        cJSON_AddStringToObject(o, "why", why);
        cli_print_json(o);
    } else {
        printf("FAIL %s box=%s key=%.*s: %s\n", mig, box, (int)klen, key, why);
    }
}

static void print_migration(const char *what, const bg_migrate_report *r,
                            int as_json)
{
    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "result", what);
        cJSON_AddNumberToObject(o, "version_before", r->version_before);
        cJSON_AddNumberToObject(o, "version_after", r->version_after);
        cJSON_AddNumberToObject(o, "applied", r->applied);
        cJSON_AddNumberToObject(o, "skipped", r->skipped);
        cJSON_AddNumberToObject(o, "records", (double)r->records);
        cJSON_AddNumberToObject(o, "changed", (double)r->changed);
        cJSON_AddNumberToObject(o, "failed", (double)r->failed);
        cli_print_json(o);
        return;
    }
    printf("%s: schema version %u -> %u (%u applied, %u skipped; %" PRIu64
           " records, %" PRIu64 " changed, %" PRIu64 " failed)\n",
           what, (unsigned)r->version_before, (unsigned)r->version_after,
           r->applied, r->skipped, r->records, r->changed, r->failed);
}

typedef struct hist_print {
    int as_json;
    cJSON *arr;
} hist_print;

static int print_history(void *arg, const char *key, const char *json,
                         size_t len)
{
    hist_print *h = arg;
    cJSON *doc = cJSON_ParseWithLength(json, len);
    if (!doc)
        return 0;
    if (h->as_json) {
        cJSON_DeleteItemFromObject(doc, "old_lock");
        cJSON_AddStringToObject(doc, "key", key);
        cJSON_AddItemToArray(h->arr, doc);
        return 0;
    }
    const cJSON *id = cJSON_GetObjectItem(doc, "id"),
                *kind = cJSON_GetObjectItem(doc, "kind"),
                *out = cJSON_GetObjectItem(doc, "outcome"),
                *from = cJSON_GetObjectItem(doc, "from"),
                *to = cJSON_GetObjectItem(doc, "to"),
                *why = cJSON_GetObjectItem(doc, "reason");
    if (cJSON_IsString(id) && cJSON_IsString(kind) && cJSON_IsString(out) &&
        cJSON_IsNumber(from) && cJSON_IsNumber(to))
        printf("  %s %s %s (%d -> %d): %s%s%s\n", key, kind->valuestring,
               id->valuestring, from->valueint, to->valueint, out->valuestring,
               cJSON_IsString(why) ? ", " : "",
               cJSON_IsString(why) ? why->valuestring : "");
    cJSON_Delete(doc);
    return 0;
}

int cli_cmd_migrate(int argc, char **argv)
{
    int from = 2;
    const char *sub = "run";
    if (argc > 2 &&
        (!strcmp(argv[2], "status") || !strcmp(argv[2], "rollback")))
        sub = argv[2], from = 3;
    const char *store = NULL, *plan = NULL, *target = NULL;
    int as_json = 0, dry = 0, force = 0;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--plan", &plan, NULL},
                        {"--adapters", &target, NULL},
                        {"--dry-run", NULL, &dry},
                        {"--force", NULL, &force},
                        {"--json", NULL, &as_json},
                        {NULL, NULL, NULL}};
    if (cli_parse_opts(argc, argv, from, opts, "migrate", NULL, NULL))
        return EXIT_USAGE;
    if (!store) {
        cli_fail("migrate%s%s needs --store DIR (see boxguard migrate --help)",
                 from == 3 ? " " : "", from == 3 ? sub : "");
        return EXIT_USAGE;
    }
    int run = !strcmp(sub, "run");
    if (run && !plan) {
        cli_fail("migrate needs --plan FILE (see boxguard migrate --help)");
        return EXIT_USAGE;
    }
    if (!run && (plan || target || dry)) {
        cli_fail("migrate %s takes no --plan, --adapters or --dry-run", sub);
        return EXIT_USAGE;
    }
    if (force && strcmp(sub, "rollback")) {
        cli_fail("--force belongs to migrate rollback");
        return EXIT_USAGE;
    }
    bg_plan *p = NULL;
    bg_registry *reg = NULL;
    if (run) {
        size_t len;
        char *buf = cli_slurp(plan, &len);
        if (!buf) {
            cli_fail("cannot read plan '%s': %s", plan, strerror(errno));
            return EXIT_USAGE;
        }
        char detail[512];
        bg_err err = bg_plan_parse(buf, len, &p, detail, sizeof detail);
        free(buf);
        if (err) {
            cli_fail("plan '%s': %s", plan,
                     detail[0] ? detail : bg_strerror(err));
            return cli_exit_for(err);
        }
        if (target) {
            int rc = cli_load_adapters(target, &reg);
            if (rc) {
                bg_plan_free(p);
                return rc;
            }
        }
    }
    /* The store opens with its own schema lock: the target adapters are
     * the plan's business. */
    args a = {.cmd = "migrate", .store = store};
    session ss;
    int rc = cli_begin(&a, run ? !dry : 1, NULL, 0, &ss);
    bg_migrate_report rep;
    bg_migrate_opts mo = {reg, dry, print_failure, &as_json, force};
    bg_err err = 0;
    if (!rc && run) {
        err =
            bg_migrate_run(ss.s, bg_plan_at(p, 0), bg_plan_count(p), &mo, &rep);
        if (!err || rep.failed)
            print_migration(dry ? "dry run" : "migrated", &rep, as_json);
        if (err == BG_ESCHEMA && rep.failed) {
            cli_fail("%s", bg_store_detail(ss.s));
            rc = EXIT_NEGATIVE;
        } else if (err) {
            rc = cli_report(ss.s, err, "migrate");
        }
    } else if (!rc && !strcmp(sub, "rollback")) {
        err = bg_migrate_rollback(ss.s, &mo, &rep);
        if (err == BG_ESTATE && rep.needs_force) {
            /* A policy, not a failure: the user decides. */
            cli_fail("%s; pass --force to roll back anyway (those writes are "
                     "lost)",
                     bg_store_detail(ss.s));
            rc = EXIT_USAGE;
        } else if (err) {
            rc = cli_report(ss.s, err, "rollback");
        }
        if (!err)
            print_migration("rolled back", &rep, as_json);
    } else if (!rc) {
        bg_migrate_status st;
        hist_print h = {as_json, cJSON_CreateArray()};
        err = bg_migrate_get_status(ss.s, &st);
        if (!err && !as_json) {
            printf("schema version %u\n", (unsigned)st.version);
            if (st.resolved[0])
                printf("on open: %s\n", st.resolved);
            printf("history: %u migration record%s\n", st.history,
                   st.history == 1 ? "" : "s");
        }
        if (!err)
            err = bg_migrate_history(ss.s, print_history, &h);
        if (err) {
            rc = cli_report(ss.s, err, "migrate status");
            cJSON_Delete(h.arr);
        } else if (as_json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "version", st.version);
            cJSON_AddStringToObject(o, "resolved", st.resolved);
            cJSON_AddItemToObject(o, "history", h.arr);
            cli_print_json(o);
        } else {
            cJSON_Delete(h.arr);
        }
    }
    bg_plan_free(p);
    bg_registry_free(reg);
    return cli_end(&ss, rc);
}
