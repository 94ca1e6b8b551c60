/*
 * validate (may the app open the store?) and export-sqlite.
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

int cli_cmd_validate(const args *a)
{
    bg_validate_opts o = {NULL, cli_adapters, 0};
    if (a->schema_version) {
        unsigned long long v;
        if (cli_parse_number(a->schema_version, 1, UINT32_MAX, &v)) {
            cli_fail("--schema-version must be a positive integer, not '%s'",
                     a->schema_version);
            return EXIT_USAGE;
        }
        o.code_version = (uint32_t)v;
    }
    bg_validation r;
    bg_err verr = bg_validate(a->store, &o, &r);
    if (verr) {
        cli_fail("validate: could not check the store: %s", bg_strerror(verr));
        return EXIT_SYSTEM;
    }
    if (a->as_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "status", bg_readiness_name(r.status));
        if (r.stored_version) /* 0: the store did not open, none known */
            cJSON_AddNumberToObject(doc, "stored_version", r.stored_version);
        else
            cJSON_AddNullToObject(doc, "stored_version");
        cJSON *arr = cJSON_AddArrayToObject(doc, "findings");
        for (size_t i = 0; i < r.nfindings && i < BG_VALIDATE_MAX_FINDINGS;
             i++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "severity",
                                    bg_readiness_name(r.findings[i].severity));
            cJSON_AddStringToObject(f, "code", r.findings[i].code);
            cJSON_AddStringToObject(f, "message", r.findings[i].message);
            cJSON_AddStringToObject(f, "action", r.findings[i].action);
            cJSON_AddItemToArray(arr, f);
        }
        cli_print_json(doc);
    } else {
        if (r.stored_version)
            printf("%s (schema version %u)\n", bg_readiness_name(r.status),
                   (unsigned)r.stored_version);
        else
            printf("%s\n", bg_readiness_name(r.status));
        for (size_t i = 0; i < r.nfindings && i < BG_VALIDATE_MAX_FINDINGS; i++)
            printf("  %s: %s\n    action: %s\n",
                   bg_readiness_name(r.findings[i].severity),
                   r.findings[i].message, r.findings[i].action);
    }
    return r.status == BG_READY ? EXIT_OK : EXIT_NEGATIVE;
}

int cli_cmd_export(const args *a)
{
    bg_export_opts eo = {0};
    if (a->chunk) {
        unsigned long long v;
        if (cli_parse_number(a->chunk, 1, 10000000, &v)) {
            cli_fail("--chunk must be 1..10000000 rows, not '%s'", a->chunk);
            return EXIT_USAGE;
        }
        eo.chunk = v;
    }
    session ss;
    int rc = cli_begin(a, 0, NULL, 0, &ss);
    if (rc)
        return rc;
    bg_export_report r;
    bg_err err = bg_export_sqlite(ss.s, a->db, &eo, &r);
    if (err) {
        rc = cli_report(ss.s, err, "export-sqlite");
    } else if (a->as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "tables", r.tables);
        cJSON_AddNumberToObject(o, "rows", (double)r.rows);
        cJSON_AddNumberToObject(o, "copied", (double)r.copied);
        cJSON_AddNumberToObject(o, "resumed", (double)r.resumed);
        cJSON_AddNumberToObject(o, "restarted", r.restarted);
        cJSON_AddNumberToObject(o, "skipped", r.skipped);
        cJSON_AddNumberToObject(o, "chunks", (double)r.chunks);
        cJSON_AddStringToObject(o, "integrity_check", "ok");
        cli_print_json(o);
    } else {
        printf("exported %u tables, %" PRIu64 " rows (%" PRIu64
               " copied now, %" PRIu64 " resumed from an earlier run, %u "
               "tables begun again, %u already current) in %" PRIu64
               " transactions; counts match every box; integrity_check ok\n",
               r.tables, r.rows, r.copied, r.resumed, r.restarted, r.skipped,
               r.chunks);
    }
    return cli_end(&ss, rc);
}
