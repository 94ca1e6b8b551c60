/*
 * boxguard typeids check: the static typeId and adapter-registration
 * check over Dart, C and JSON sources, for CI.
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

static void gh_escape(const char *s, int property)
{
    for (; *s; s++) {
        if (*s == '%')
            fputs("%25", stdout);
        else if (*s == '\r')
            fputs("%0D", stdout);
        else if (*s == '\n')
            fputs("%0A", stdout);
        else if (property && *s == ':')
            fputs("%3A", stdout);
        else if (property && *s == ',')
            fputs("%2C", stdout);
        else
            putchar(*s);
    }
}

const char cli_typeids_usage[] =
    "usage: boxguard typeids check [--lock FILE] [--update-lock]\n"
    "                              [--policy FILE] [--format "
    "text|json|github]\n"
    "                              PATH...\n"
    "\n"
    "Scans C (bg_adapter declarations, bg_registry_add), Dart (@HiveType,\n"
    "TypeAdapter classes, *.g.dart, registerAdapter), hive_adapters.g.yaml\n"
    "and JSON adapter manifests under PATH, and reports two names on one\n"
    "typeId, typeIds out of range (Hive 0..223; policy ranges), adapters\n"
    "never registered, registrations of undeclared adapters, stale\n"
    "generated adapters, and against the lock file typeIds reused for\n"
    "another name or names moved to another typeId. --update-lock writes\n"
    "the lock (default typeids.lock) from what was found; removed entries\n"
    "stay reserved. Exit 0 clean, 1 findings, 2 usage.\n";

int cli_cmd_typeids(int argc, char **argv)
{
    const char *lock = NULL, *policy = NULL, *format = "text";
    int update = 0, npaths = 0;
    if (argc < 3 || strcmp(argv[2], "check")) {
        fputs(cli_typeids_usage, stderr);
        return EXIT_USAGE;
    }
    const char **paths = calloc((size_t)argc, sizeof *paths);
    if (!paths)
        return EXIT_SYSTEM;
    const opt opts[] = {{"--lock", &lock, NULL},
                        {"--policy", &policy, NULL},
                        {"--format", &format, NULL},
                        {"--update-lock", NULL, &update},
                        {NULL, NULL, NULL}};
    npaths = argc;
    if (cli_parse_opts(argc, argv, 3, opts, "typeids", paths, &npaths)) {
        free(paths);
        return EXIT_USAGE;
    }
    if (strcmp(format, "text") && strcmp(format, "json") &&
        strcmp(format, "github")) {
        cli_fail("typeids: --format must be text, json or github, not '%s'",
                 format);
        free(paths);
        return EXIT_USAGE;
    }
    if (!npaths) {
        cli_fail("typeids: name at least one PATH to scan");
        free(paths);
        return EXIT_USAGE;
    }
    if (update && !lock)
        lock = "typeids.lock";
    bg_typeids *t = bg_typeids_new();
    int rc = t ? EXIT_OK : EXIT_SYSTEM;
    char why[256] = "";
    const char *files[2] = {lock, policy};
    for (int k = 0; k < 2 && rc == EXIT_OK; k++) {
        if (!files[k])
            continue;
        size_t len;
        char *txt = cli_slurp(files[k], &len);
        if (!txt) {
            if (k == 0 && update && errno == ENOENT)
                continue; /* the first --update-lock creates it */
            cli_fail("typeids: cannot read '%s': %s", files[k],
                     strerror(errno));
            rc = EXIT_USAGE;
            break;
        }
        bg_err err = k == 0
                         ? bg_typeids_load_lock(t, txt, len, why, sizeof why)
                         : bg_typeids_load_policy(t, txt, len, why, sizeof why);
        free(txt);
        if (err) {
            cli_fail("typeids: %s: %s", files[k],
                     why[0] ? why : bg_strerror(err));
            rc = cli_exit_for(err);
        }
    }
    for (int i = 0; i < npaths && rc == EXIT_OK; i++) {
        bg_err err = bg_typeids_scan_path(t, paths[i]);
        if (err == BG_ENOTFOUND) {
            cli_fail("typeids: '%s' does not exist", paths[i]);
            rc = EXIT_USAGE;
        } else if (err) {
            const char *what = bg_typeids_detail(t);
            cli_fail("typeids: cannot scan '%s': %s", paths[i],
                     what[0] ? what : bg_strerror(err));
            rc = EXIT_SYSTEM;
        }
    }
    const bg_typeids_finding *f = NULL;
    size_t n = 0;
    if (rc == EXIT_OK && bg_typeids_check(t, &f, &n)) {
        cli_fail("typeids: out of memory");
        rc = EXIT_SYSTEM;
    }
    if (rc == EXIT_OK && update) {
        char *json = bg_typeids_lock_json(t);
        FILE *out = json ? fopen(lock, "w") : NULL;
        if (!out || fputs(json, out) < 0 || fclose(out) != 0) {
            cli_fail("typeids: cannot write '%s': %s", lock, strerror(errno));
            rc = EXIT_SYSTEM;
        }
        free(json);
    }
    size_t decls = 0, regs = 0;
    if (t)
        bg_typeids_counts(t, &decls, &regs);
    if (rc == EXIT_OK && !strcmp(format, "json")) {
        /* Every piece is checked: a report short of a finding would pass. */
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "findings") : NULL;
        int ok = arr &&
                 cJSON_AddNumberToObject(doc, "declarations", (double)decls) &&
                 cJSON_AddNumberToObject(doc, "registrations", (double)regs);
        for (size_t i = 0; i < n && ok; i++) {
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddItemToArray(arr, o)) {
                cJSON_Delete(o); /* not in the array: still ours */
                ok = 0;
                break;
            }
            ok = cJSON_AddStringToObject(o, "code", f[i].code) &&
                 cJSON_AddStringToObject(o, "file", f[i].file) &&
                 cJSON_AddNumberToObject(o, "line", f[i].line) &&
                 cJSON_AddStringToObject(o, "message", f[i].message);
        }
        char *txt = ok ? cJSON_PrintUnformatted(doc) : NULL;
        if (txt) {
            puts(txt);
        } else {
            cli_fail("typeids: out of memory writing the report");
            rc = EXIT_SYSTEM;
        }
        cJSON_free(txt);
        cJSON_Delete(doc);
    } else if (rc == EXIT_OK) {
        int gh = !strcmp(format, "github");
        for (size_t i = 0; i < n; i++) {
            if (gh) {
                fputs("::error file=", stdout);
                gh_escape(f[i].file, 1);
                printf(",line=%u,title=typeids ", f[i].line);
                gh_escape(f[i].code, 1);
                fputs("::", stdout);
                gh_escape(f[i].message, 0);
                putchar('\n');
            } else {
                printf("%s:%u: error: %s [%s]\n", f[i].file, f[i].line,
                       f[i].message, f[i].code);
            }
        }
        printf("typeids: %zu declarations, %zu registrations, %zu finding%s\n",
               decls, regs, n, n == 1 ? "" : "s");
    }
    bg_typeids_free(t);
    free((void *)paths);
    if (rc == EXIT_OK && n)
        rc = EXIT_NEGATIVE;
    return rc;
}

/* ---- queue --------------------------------------------------------------- */
