/*
 * boxguard guard: the runtime guardrails (guard.h) over a store, for a
 * monitor or CI; boxguard metrics: the counts the runbook watches, in the
 * Prometheus text exposition format (for a node exporter's textfile
 * collector). Both read-only.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "boxguard/guard.h"
#include "cli.h"

const char cli_guard_usage[] =
    "usage: boxguard guard --store DIR [--policy FILE] [--adapters FILE]\n"
    "                      [--schema-version N] [--fail-on critical|warning]\n"
    "                      [--json]\n"
    "\n"
    "Evaluates every runtime invariant of the store, read-only, and prints\n"
    "each with ok, warning or critical, what was measured, its bound and\n"
    "the action:\n"
    "  pending_count      the index, the op records and a rebuilt index\n"
    "                     agree; pending_ops holds nothing else (critical)\n"
    "  emergency_lane     its head not leased or failing for longer than\n"
    "                     emergency_blocked_seconds (critical)\n"
    "  encryption_policy  every sensitive box sealed, its key present\n"
    "                     (critical)\n"
    "  adapters           --adapters agree with the schema lock (critical)\n"
    "  schema_version     the store's against --schema-version: newer is\n"
    "                     critical, older a warning\n"
    "  failed_ops         at most failed_max failed ops (warning)\n"
    "  processing_lock    not held longer than lock_stale_seconds (warning)\n"
    "The policy file (JSON, every member optional):\n"
    "  {\"failed_max\": 20, \"lock_stale_seconds\": 120,\n"
    "   \"emergency_blocked_seconds\": 300, \"sensitive_boxes\": [\"vault\"]}\n"
    "\n"
    "exit codes: 0 healthy (nothing at or above --fail-on, default\n"
    "critical); 1 a violation at or above it, or no store; 2 bad usage or a\n"
    "bad policy; 3 an invariant could not be evaluated (I/O).\n";

const char cli_metrics_usage[] =
    "usage: boxguard metrics --store DIR [--policy FILE]\n"
    "\n"
    "Prints, read-only, in the Prometheus text exposition format (0.0.4),\n"
    "what the runbook monitors: boxguard_queue_pending_ops{lane},\n"
    "boxguard_queue_leased_ops, boxguard_queue_failed_ops,\n"
    "boxguard_queue_oldest_pending_age_seconds, boxguard_box_records{box},\n"
    "boxguard_box_file_bytes{box}, boxguard_schema_version,\n"
    "boxguard_last_migration_duration_seconds (absent before the first\n"
    "migration) and boxguard_guard_violations{severity} (the guardrails\n"
    "under --policy FILE, as boxguard guard). Write it to NAME.prom in a node "
    "exporter's\n"
    "textfile directory (write beside, then rename).\n"
    "\n"
    "exit codes: 0 printed; 1 the store does not exist; 2 bad usage; 3 I/O\n"
    "error.\n";

static int open_ro(const char *cmd, const char *store, session *ss)
{
    args a;
    memset(&a, 0, sizeof a);
    a.cmd = cmd;
    a.store = store;
    a.accept_schema = 1; /* the guard reports the lock, it does not refuse */
    return cli_begin(&a, 0, NULL, 0, ss);
}

/* The policy of --policy FILE (the defaults without it), or an exit code. */
static int load_policy(const char *cmd, const char *path, bg_guard_policy *p)
{
    bg_guard_policy_init(p);
    if (!path)
        return 0;
    size_t len;
    char *txt = cli_slurp(path, &len);
    if (!txt) {
        cli_fail("%s: cannot read the policy '%s'", cmd, path);
        return EXIT_USAGE;
    }
    char why[256] = "";
    bg_err err = bg_guard_policy_parse(txt, len, p, why, sizeof why);
    free(txt);
    if (err) {
        cli_fail("%s: policy '%s': %s", cmd, path,
                 why[0] ? why : bg_strerror(err));
        return err == BG_ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
    }
    return 0;
}

static cJSON *report_json(const bg_guard_report *r)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "status", bg_guard_severity_name(r->worst));
    cJSON *arr = cJSON_AddArrayToObject(doc, "checks");
    for (int i = 0; i < BG_GUARD_CHECKS; i++) {
        const bg_guard_result *c = &r->checks[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", c->name);
        cJSON_AddStringToObject(o, "severity",
                                bg_guard_severity_name(c->severity));
        cJSON_AddNumberToObject(o, "measured", (double)c->measured);
        cJSON_AddNumberToObject(o, "bound", (double)c->bound);
        cJSON_AddStringToObject(o, "message", c->message);
        if (c->severity)
            cJSON_AddStringToObject(o, "action", c->action);
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

int cli_cmd_guard(int argc, char **argv)
{
    const char *store = NULL, *policy = NULL, *adapters = NULL, *version = NULL,
               *fail_on = "critical";
    int as_json = 0;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--policy", &policy, NULL},
                        {"--adapters", &adapters, NULL},
                        {"--schema-version", &version, NULL},
                        {"--fail-on", &fail_on, NULL},
                        {"--json", NULL, &as_json},
                        {NULL, NULL, NULL}};
    if (cli_parse_opts(argc, argv, 2, opts, "guard", NULL, NULL))
        return EXIT_USAGE;
    if (!store) {
        cli_fail("guard needs --store DIR (see boxguard guard --help)");
        return EXIT_USAGE;
    }
    bg_guard_severity threshold =
        !strcmp(fail_on, "critical")  ? BG_GUARD_CRITICAL
        : !strcmp(fail_on, "warning") ? BG_GUARD_WARNING
                                      : BG_GUARD_OK;
    if (threshold == BG_GUARD_OK) {
        cli_fail("--fail-on must be critical or warning, not '%s'", fail_on);
        return EXIT_USAGE;
    }
    unsigned long long code = 0;
    if (version && cli_parse_number(version, 1, UINT32_MAX, &code)) {
        cli_fail("--schema-version must be a version from 1, not '%s'",
                 version);
        return EXIT_USAGE;
    }
    bg_guard_policy p;
    int prc = load_policy("guard", policy, &p);
    if (prc)
        return prc;
    bg_registry *reg = NULL;
    if (adapters) {
        int rc = cli_load_adapters(adapters, &reg);
        if (rc)
            return rc;
    }
    session ss;
    int rc = open_ro("guard", store, &ss);
    if (rc) {
        bg_registry_free(reg);
        return cli_end(&ss, rc);
    }
    bg_guard_report r;
    bg_err err = bg_guard_check(ss.s, NULL, reg, (uint32_t)code, &p, &r);
    bg_registry_free(reg);
    if (err) {
        rc = cli_report(ss.s, err, "guard: an invariant could not be checked");
        return cli_end(&ss, rc == EXIT_NEGATIVE ? EXIT_SYSTEM : rc);
    }
    if (as_json) {
        cli_print_json(report_json(&r));
    } else {
        for (int i = 0; i < BG_GUARD_CHECKS; i++) {
            const bg_guard_result *c = &r.checks[i];
            printf("%-8s %-18s %s (measured %" PRId64 ", bound %" PRId64 ")\n",
                   bg_guard_severity_name(c->severity), c->name, c->message,
                   c->measured, c->bound);
            if (c->severity)
                printf("         action: %s\n", c->action);
        }
        printf("guard: %s\n", bg_guard_severity_name(r.worst));
    }
    return cli_end(&ss, r.worst >= threshold ? EXIT_NEGATIVE : EXIT_OK);
}

typedef struct boxes_ctx {
    bg_store *s;
    cJSON *rows; /* [name, records, bytes] */
    bg_err err;
} boxes_ctx;

static int box_row(void *arg, const char *name)
{
    boxes_ctx *c = arg;
    bg_box *b;
    c->err = bg_box_open(c->s, name, 0, &b);
    if (c->err == BG_EAUTH) { /* sealed, its key gone: its size still counts */
        c->err = 0;
        return 0;
    }
    if (c->err)
        return 1;
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    cJSON *row = cJSON_CreateArray();
    cJSON_AddItemToArray(row, cJSON_CreateString(name));
    cJSON_AddItemToArray(row, cJSON_CreateNumber((double)st.records));
    cJSON_AddItemToArray(row, cJSON_CreateNumber((double)st.file_bytes));
    cJSON_AddItemToArray(c->rows, row);
    return 0;
}

typedef struct mig_ctx {
    double seconds;
    int found;
} mig_ctx;

static int last_migration(void *arg, const char *key, const char *json,
                          size_t len)
{
    (void)key;
    mig_ctx *m = arg;
    cJSON *d = cJSON_ParseWithLength(json, len);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(d, "kind");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(d, "outcome");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "started_at");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(d, "at");
    if (cJSON_IsString(kind) && !strcmp(kind->valuestring, "migrate") &&
        cJSON_IsString(out) && !strcmp(out->valuestring, "committed") &&
        cJSON_IsNumber(st) && cJSON_IsNumber(at) &&
        at->valuedouble >= st->valuedouble) {
        m->seconds = (at->valuedouble - st->valuedouble) / 1000.0;
        m->found = 1;
    }
    cJSON_Delete(d);
    return 0;
}

/* A label value as the exposition format quotes it. */
static void label(const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            putchar('\\');
        if (*v == '\n')
            fputs("\\n", stdout);
        else
            putchar(*v);
    }
}

static void family(const char *name, const char *help)
{
    printf("# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

int cli_cmd_metrics(int argc, char **argv)
{
    const char *store = NULL, *policy = NULL;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--policy", &policy, NULL},
                        {NULL, NULL, NULL}};
    if (cli_parse_opts(argc, argv, 2, opts, "metrics", NULL, NULL))
        return EXIT_USAGE;
    if (!store) {
        cli_fail("metrics needs --store DIR (see boxguard metrics --help)");
        return EXIT_USAGE;
    }
    bg_guard_policy p;
    int prc = load_policy("metrics", policy, &p);
    if (prc)
        return prc;
    session ss;
    int rc = open_ro("metrics", store, &ss);
    if (rc)
        return cli_end(&ss, rc);
    bg_queue_stats qs = {0};
    bg_queue *q = NULL;
    bg_err err = bg_queue_open(ss.s, NULL, &q);
    if (err == BG_ENOTFOUND)
        err = 0;
    if (q)
        bg_queue_stats_of(q, &qs);
    boxes_ctx bc = {ss.s, cJSON_CreateArray(), 0};
    if (!err)
        err = bg_store_list_boxes(ss.s, box_row, &bc);
    if (!err)
        err = bc.err;
    mig_ctx mg = {0, 0};
    if (!err)
        err = bg_migrate_history(ss.s, last_migration, &mg);
    bg_migrate_status ms = {0};
    if (!err)
        err = bg_migrate_get_status(ss.s, &ms);
    bg_guard_report gr;
    if (!err)
        err = bg_guard_check(ss.s, q, NULL, 0, &p, &gr);
    if (q)
        bg_queue_close(q);
    if (err) {
        cJSON_Delete(bc.rows);
        rc = cli_report(ss.s, err, "metrics");
        return cli_end(&ss, rc == EXIT_NEGATIVE ? EXIT_SYSTEM : rc);
    }
    family("boxguard_queue_pending_ops", "Pending operations, by lane.");
    printf("boxguard_queue_pending_ops{lane=\"normal\"} %" PRIu64 "\n",
           qs.pending[BG_LANE_NORMAL]);
    printf("boxguard_queue_pending_ops{lane=\"emergency\"} %" PRIu64 "\n",
           qs.pending[BG_LANE_EMERGENCY]);
    family("boxguard_queue_leased_ops", "Operations under a lease now.");
    printf("boxguard_queue_leased_ops %" PRIu64 "\n", qs.leased);
    family("boxguard_queue_failed_ops",
           "Operations past their attempts, in failed_ops.");
    printf("boxguard_queue_failed_ops %" PRIu64 "\n", qs.failed);
    family("boxguard_queue_oldest_pending_age_seconds",
           "Age of the oldest pending operation (0: none).");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the clock the store runs on */
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    printf("boxguard_queue_oldest_pending_age_seconds %.3f\n",
           qs.oldest_ms ? (double)(now_ms - qs.oldest_ms) / 1000.0 : 0.0);
    family("boxguard_box_records", "Live records of a box.");
    const cJSON *row;
    cJSON_ArrayForEach(row, bc.rows)
    {
        printf("boxguard_box_records{box=\"");
        label(cJSON_GetArrayItem(row, 0)->valuestring);
        printf("\"} %.0f\n", cJSON_GetArrayItem(row, 1)->valuedouble);
    }
    family("boxguard_box_file_bytes", "Size of a box file.");
    cJSON_ArrayForEach(row, bc.rows)
    {
        printf("boxguard_box_file_bytes{box=\"");
        label(cJSON_GetArrayItem(row, 0)->valuestring);
        printf("\"} %.0f\n", cJSON_GetArrayItem(row, 2)->valuedouble);
    }
    family("boxguard_schema_version", "The store's schema version.");
    printf("boxguard_schema_version %u\n", (unsigned)ms.version);
    if (mg.found) {
        family("boxguard_last_migration_duration_seconds",
               "How long the last committed migration ran.");
        printf("boxguard_last_migration_duration_seconds %.3f\n", mg.seconds);
    }
    family("boxguard_guard_violations",
           "Guardrail invariants violated, by severity.");
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < BG_GUARD_CHECKS; i++)
        counts[gr.checks[i].severity]++;
    printf("boxguard_guard_violations{severity=\"warning\"} %d\n", counts[1]);
    printf("boxguard_guard_violations{severity=\"critical\"} %d\n", counts[2]);
    cJSON_Delete(bc.rows);
    return cli_end(&ss, EXIT_OK);
}
