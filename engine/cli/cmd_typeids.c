/*
 * boxguard typeids check: the static typeId and adapter-registration
 * check over Dart, C and JSON sources, for CI.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
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
    "text|json|github|sarif]\n"
    "                              PATH...\n"
    "\n"
    "Scans C (bg_adapter declarations, bg_registry_add), Dart (@HiveType,\n"
    "TypeAdapter classes, *.g.dart, registerAdapter, hive_ce's generated\n"
    "registrar), hive_adapters.g.yaml, pubspec.yaml and pubspec.lock, and\n"
    "JSON adapter manifests under PATH, and reports two names on one\n"
    "typeId in one app, typeIds out of range (hive 0..223, hive_ce from\n"
    "2.10 0..65439, hive_ce_flutter's 200 and 201; policy ranges), adapters\n"
    "never registered, registrations of undeclared adapters, a stale\n"
    "generated adapter or registrar, a typeId constant that resolves to\n"
    "nothing scanned, and against the lock file typeIds reused for another\n"
    "name or names moved to another typeId. typeIds may be literals or\n"
    "constants (static const int in a class, top-level const), in any file\n"
    "scanned. Packages (pubspec.yaml) that depend on one another are one\n"
    "app; two apps beside each other are checked apart.\n"
    "--update-lock writes the lock (default typeids.lock) from what was\n"
    "found; removed entries stay reserved.\n"
    "--format github: the first 10 findings as annotations (GitHub shows no\n"
    "more per step) and every finding in $GITHUB_STEP_SUMMARY when set;\n"
    "sarif: SARIF 2.1.0 for code scanning, one rule per finding code, paths\n"
    "relative to the working directory, fingerprints that ignore lines.\n"
    "Exit 0 clean, 1 findings, 2 usage, 3 a file that cannot be read.\n";

/* Every finding code, in a fixed order: the SARIF rules and their index. */
static const struct {
    const char *code, *name, *text;
} rules[] = {
    {"collision", "TypeIdCollision",
     "Two types share a typeId, or one type has two"},
    {"range", "TypeIdOutOfRange",
     "A typeId outside what the package allows, or one it reserves"},
    {"unregistered", "AdapterNotRegistered",
     "An adapter is declared but never registered"},
    {"undeclared", "AdapterNotDeclared",
     "A registration names no declared adapter"},
    {"stale-generated", "StaleGeneratedAdapter",
     "A generated adapter's typeId differs from its declaration"},
    {"stale-registrar", "StaleGeneratedRegistrar",
     "hive_ce's generated registrar does not match the declared adapters"},
    {"unresolved", "TypeIdConstantUnresolved",
     "A typeId constant resolves to no value, or to two"},
    {"reused", "TypeIdReused", "A typeId the lock file gives another name"},
    {"moved", "TypeIdMoved", "A type whose typeId differs from the lock file"},
    {"parse", "TypeIdUnreadable", "A declaration whose typeId cannot be read"},
};
enum { NRULES = sizeof rules / sizeof rules[0], GH_ANNOTATIONS = 10 };

static int rule_index(const char *code)
{
    for (int i = 0; i < NRULES; i++)
        if (!strcmp(rules[i].code, code))
            return i;
    return NRULES - 1;
}

/* A path as SARIF wants it: relative to the working directory when under
 * it, without "./". */
static const char *rel_path(const char *file, const char *cwd)
{
    size_t n = strlen(cwd);
    if (n && !strncmp(file, cwd, n) && file[n] == '/')
        file += n + 1;
    while (file[0] == '.' && file[1] == '/')
        file += 2;
    return file;
}

/* The fingerprint of a finding: its code, file and message with every
 * line number (":N") left out, so it survives lines added above it. */
static void fingerprint(const bg_typeids_finding *f, const char *path,
                        char hex[33])
{
    crypto_generichash_state st;
    unsigned char h[16];
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)f->code,
                              strlen(f->code) + 1);
    crypto_generichash_update(&st, (const unsigned char *)path,
                              strlen(path) + 1);
    for (const char *m = f->message; *m; m++) {
        if (*m == ':' && m[1] >= '0' && m[1] <= '9') {
            while (m[1] >= '0' && m[1] <= '9')
                m++;
            continue;
        }
        crypto_generichash_update(&st, (const unsigned char *)m, 1);
    }
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(hex, 33, h, sizeof h);
}

/* A new object at the end of arr, or NULL (nothing left behind). */
static cJSON *push_obj(cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static cJSON *sarif_doc(const bg_typeids_finding *f, size_t n)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    cJSON *doc = cJSON_CreateObject(), *runs, *run, *tool, *driver, *rl, *res;
    if (!doc ||
        !cJSON_AddStringToObject(doc, "$schema",
                                 "https://json.schemastore.org/"
                                 "sarif-2.1.0.json") ||
        !cJSON_AddStringToObject(doc, "version", "2.1.0") ||
        !(runs = cJSON_AddArrayToObject(doc, "runs")) ||
        !(run = push_obj(runs)) ||
        !(tool = cJSON_AddObjectToObject(run, "tool")) ||
        !(driver = cJSON_AddObjectToObject(tool, "driver")) ||
        !cJSON_AddStringToObject(driver, "name", "boxguard-typeids") ||
        !cJSON_AddStringToObject(driver, "version", BOXGUARD_VERSION) ||
        !(rl = cJSON_AddArrayToObject(driver, "rules")) ||
        !(res = cJSON_AddArrayToObject(run, "results"))) {
        cJSON_Delete(doc);
        return NULL;
    }
    for (int i = 0; i < NRULES; i++) {
        cJSON *r = push_obj(rl), *sd, *cfg;
        char id[64];
        snprintf(id, sizeof id, "typeids/%s", rules[i].code);
        if (!r || !cJSON_AddStringToObject(r, "id", id) ||
            !cJSON_AddStringToObject(r, "name", rules[i].name) ||
            !(sd = cJSON_AddObjectToObject(r, "shortDescription")) ||
            !cJSON_AddStringToObject(sd, "text", rules[i].text) ||
            !(cfg = cJSON_AddObjectToObject(r, "defaultConfiguration")) ||
            !cJSON_AddStringToObject(cfg, "level", "error")) {
            cJSON_Delete(doc);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *path = rel_path(f[i].file, cwd);
        char id[64], fp[33];
        int k = rule_index(f[i].code);
        snprintf(id, sizeof id, "typeids/%s", rules[k].code);
        fingerprint(&f[i], path, fp);
        cJSON *r = push_obj(res), *msg, *locs, *loc, *phys = NULL, *art, *fps;
        int ok = r && cJSON_AddStringToObject(r, "ruleId", id) &&
                 cJSON_AddNumberToObject(r, "ruleIndex", k) &&
                 cJSON_AddStringToObject(r, "level", "error") &&
                 (msg = cJSON_AddObjectToObject(r, "message")) &&
                 cJSON_AddStringToObject(msg, "text", f[i].message) &&
                 (locs = cJSON_AddArrayToObject(r, "locations")) &&
                 (loc = push_obj(locs)) &&
                 (phys = cJSON_AddObjectToObject(loc, "physicalLocation")) &&
                 (art = cJSON_AddObjectToObject(phys, "artifactLocation")) &&
                 cJSON_AddStringToObject(art, "uri", path) &&
                 (fps = cJSON_AddObjectToObject(r, "partialFingerprints")) &&
                 cJSON_AddStringToObject(fps, "boxguardFinding/v1", fp);
        if (ok && f[i].line) {
            cJSON *reg = cJSON_AddObjectToObject(phys, "region");
            ok = reg && cJSON_AddNumberToObject(reg, "startLine", f[i].line);
        }
        if (!ok) {
            cJSON_Delete(doc);
            return NULL;
        }
    }
    return doc;
}

/* Every finding as a Markdown table in the job summary (GitHub caps the
 * annotations of a step; the summary has them all). */
static int step_summary(const bg_typeids_finding *f, size_t n, size_t decls,
                        size_t regs)
{
    const char *path = getenv("GITHUB_STEP_SUMMARY");
    if (!path || !path[0])
        return 0;
    FILE *out = fopen(path, "a");
    if (!out)
        return -1;
    fprintf(out,
            "### typeId check\n\n%zu declarations, %zu registrations, "
            "%zu finding%s\n\n",
            decls, regs, n, n == 1 ? "" : "s");
    if (n)
        fputs("| file | line | code | finding |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "| %s | %u | %s | ", f[i].file, f[i].line, f[i].code);
        for (const char *m = f[i].message; *m; m++) {
            if (*m == '|')
                fputc('\\', out);
            fputc(*m, out);
        }
        fputs(" |\n", out);
    }
    return fclose(out) ? -1 : 0;
}

/* Print a report document (NULL: it could not be built), indented or on
 * one line; EXIT_OK, or EXIT_SYSTEM when memory ran out. */
static int print_report(const cJSON *doc, int indented)
{
    char *txt = !doc       ? NULL
                : indented ? cJSON_Print(doc)
                           : cJSON_PrintUnformatted(doc);
    if (!txt) {
        cli_fail("typeids: out of memory writing the report");
        return EXIT_SYSTEM;
    }
    puts(txt);
    cJSON_free(txt);
    return EXIT_OK;
}

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
        strcmp(format, "github") && strcmp(format, "sarif")) {
        cli_fail("typeids: --format must be text, json, github or sarif, not "
                 "'%s'",
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
        rc = print_report(ok ? doc : NULL, 0);
        cJSON_Delete(doc);
    } else if (rc == EXIT_OK && !strcmp(format, "sarif")) {
        cJSON *doc = sarif_doc(f, n);
        rc = print_report(doc, 1);
        cJSON_Delete(doc);
    } else if (rc == EXIT_OK) {
        int gh = !strcmp(format, "github");
        if (gh && step_summary(f, n, decls, regs)) {
            cli_fail("typeids: cannot write the step summary '%s': %s",
                     getenv("GITHUB_STEP_SUMMARY"), strerror(errno));
            rc = EXIT_SYSTEM;
        }
        for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
            if (gh && i == GH_ANNOTATIONS) {
                printf("::notice title=typeids::%zu more finding%s, not "
                       "annotated (GitHub shows %d a step): every one is in "
                       "the job summary and below\n",
                       n - i, n - i == 1 ? "" : "s", GH_ANNOTATIONS);
                gh = 0;
            }
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
