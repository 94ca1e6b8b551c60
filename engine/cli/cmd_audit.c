/*
 * boxguard audit list|export: the store's audit log (audit.h), its
 * payloads redacted unless --no-redact.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char cli_audit_usage[] =
    "usage:\n"
    "  boxguard audit list --store DIR [--no-redact] [--json]\n"
    "  boxguard audit export --store DIR --out FILE [--no-redact]\n"
    "\n"
    "The store's audit log (DIR/audit.box): what the engine did to the\n"
    "store, one record per event, in the order they happened: migration\n"
    "(committed, rolled_back, restored), corruption_recovery (the box, the\n"
    "damage, the byte ranges lost, the copy kept), stale_queue_lock_taken,\n"
    "key_rotation, backup_created, backup_restored. Each has a time (the\n"
    "store's clock), an event name and its details, the payload.\n"
    "  list     one line per record: time, event, key, payload; --json: an\n"
    "           array of the records as export writes them\n"
    "  export   the records as JSON lines to FILE, one object per line:\n"
    "           {\"key\":K,\"at\":MS,\"event\":E,\"payload\":{...}}; FILE is\n"
    "           written beside, synced and renamed: all of it or nothing\n"
    "Payloads (box names, ids, owners, paths) are replaced by\n"
    "{\"redacted\":true} unless --no-redact is given. Read-only on the store.\n"
    "An erase removes the audit log with everything else.\n"
    "\n"
    "options:\n"
    "  --store DIR    the store directory\n"
    "  --out FILE     where export writes\n"
    "  --no-redact    keep the payloads\n"
    "  --json         list as JSON\n"
    "\n"
    "exit codes: 0 success; 1 the store does not exist; 2 bad usage; 3 I/O\n"
    "or system error; 4 an audit record is unreadable.\n";

typedef struct list_ctx {
    bg_store *s;
    int redact, as_json;
    cJSON *arr;
    bg_err err;
} list_ctx;

static int list_one(void *arg, const bg_audit_record *r)
{
    list_ctx *c = arg;
    char *line;
    size_t len;
    c->err = bg_audit_line(c->s, r, c->redact, &line, &len);
    if (c->err)
        return 1;
    if (c->as_json) {
        cJSON_AddItemToArray(c->arr, cJSON_ParseWithLength(line, len));
    } else {
        time_t t = (time_t)(r->at_ms / 1000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON *doc = cJSON_ParseWithLength(line, len);
        char *payload =
            doc ? cJSON_PrintUnformatted(cJSON_GetObjectItem(doc, "payload"))
                : NULL;
        printf("%s  %-24s %s\n    %s\n", when, r->event, r->key,
               payload ? payload : "");
        cJSON_free(payload);
        cJSON_Delete(doc);
    }
    bg_store_free(c->s, line);
    return 0;
}

int cli_cmd_audit(int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '-') {
        fputs(cli_audit_usage, stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[2], *store = NULL, *out = NULL;
    int no_redact = 0, as_json = 0;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--out", &out, NULL},
                        {"--no-redact", NULL, &no_redact},
                        {"--json", NULL, &as_json},
                        {NULL, NULL, NULL}};
    int list = !strcmp(sub, "list"), export = !strcmp(sub, "export");
    if (!list && !export) {
        cli_fail("audit: unknown subcommand '%s' (see boxguard audit --help)",
                 sub);
        return EXIT_USAGE;
    }
    if (cli_parse_opts(argc, argv, 3, opts, "audit", NULL, NULL))
        return EXIT_USAGE;
    if (!store) {
        cli_fail("audit %s needs --store DIR (see boxguard audit --help)", sub);
        return EXIT_USAGE;
    }
    if (export && !out) {
        cli_fail("audit export needs --out FILE (see boxguard audit --help)");
        return EXIT_USAGE;
    }
    if (list && out) {
        cli_fail("audit list takes no --out (export writes a file)");
        return EXIT_USAGE;
    }
    if (export && as_json) {
        cli_fail("audit export writes JSON lines; it takes no --json");
        return EXIT_USAGE;
    }
    args a;
    memset(&a, 0, sizeof a);
    a.cmd = "audit";
    a.store = store;
    session ss;
    int rc = cli_begin(&a, 0, NULL, 0, &ss);
    if (rc)
        return cli_end(&ss, rc);
    bg_err err;
    if (export) {
        uint64_t n;
        err = bg_audit_export(ss.s, out, !no_redact, &n);
        if (!err)
            printf("exported %" PRIu64 " audit record%s to %s%s\n", n,
                   n == 1 ? "" : "s", out,
                   no_redact ? "" : " (payloads redacted)");
    } else {
        list_ctx c = {ss.s, !no_redact, as_json, NULL, 0};
        if (as_json)
            c.arr = cJSON_CreateArray();
        err = bg_audit_list(ss.s, list_one, &c);
        if (!err)
            err = c.err;
        if (as_json && !err)
            cli_print_json(c.arr);
        else
            cJSON_Delete(c.arr);
    }
    if (err)
        rc = cli_report(ss.s, err, export ? "audit export" : "audit list");
    if (err == BG_ENOTFOUND)
        rc = EXIT_SYSTEM; /* FILE's directory: the store is there */
    return cli_end(&ss, rc);
}
