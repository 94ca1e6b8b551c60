/*
 * boxguard erase: the secure erase of a whole store (erase.h), refused
 * without --yes, and its verification scan alone (--verify).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char cli_erase_usage[] =
    "usage:\n"
    "  boxguard erase --store DIR --yes [--json]\n"
    "  boxguard erase --verify --store DIR [--json]\n"
    "\n"
    "Erase the store for good, as when a user deletes their account: a\n"
    "durable DIR/erase.intent first (from then on no command reads the\n"
    "store, and any command run on it finishes the erase), then the data\n"
    "keys destroyed (overwritten, synced, unlinked: every sealed frame\n"
    "anywhere is unreadable at once), then every file the store made\n"
    "overwritten with zeros, synced and removed (boxes, quarantine/,\n"
    "backups/, the journal, the audit box), and last the lock, the intent\n"
    "and DIR itself. Then the verification scan: open boxes, remaining\n"
    "files, remaining keys, existing boxes, each a list that must be empty.\n"
    "Refused (nothing changed): without --yes (exit 2), and when DIR holds\n"
    "files the store did not make, which are named (exit 2).\n"
    "Not covered: on flash storage and copy-on-write file systems an\n"
    "overwrite does not reach earlier copies of a file's blocks; there the\n"
    "destroyed key is what protects sealed boxes, and plaintext boxes get\n"
    "an overwrite and an unlink only. File names and sizes are file system\n"
    "metadata.\n"
    "\n"
    "options:\n"
    "  --store DIR   the store directory\n"
    "  --yes         erase it: every record, key and file of the store\n"
    "  --verify      only scan DIR, read-only: exit 0 when nothing of the\n"
    "                store remains (a DIR that does not exist is complete),\n"
    "                1 with the lists otherwise\n"
    "  --json        the report (the scan) as one JSON object: what an app\n"
    "                keeps elsewhere, since the audit box goes too\n"
    "\n"
    "exit codes: 0 erased (or nothing remains) and the scan is complete; 1\n"
    "the store does not exist, or the scan is not complete; 2 bad usage or\n"
    "refused; 3 I/O or system error (a store in use; the next command\n"
    "finishes an erase whose intent was written).\n";

static cJSON *list_json(const bg_erase_list *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < l->n && i < BG_ERASE_LIST_MAX; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l->names[i]));
    return a;
}

static cJSON *scan_json(const bg_erase_scan *sc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "complete", sc->complete);
    const struct {
        const char *name;
        const bg_erase_list *l;
    } lists[] = {{"open_boxes", &sc->open_boxes},
                 {"remaining_files", &sc->remaining_files},
                 {"remaining_keys", &sc->remaining_keys},
                 {"existing_boxes", &sc->existing_boxes}};
    for (size_t i = 0; i < 4; i++) {
        cJSON_AddItemToObject(o, lists[i].name, list_json(lists[i].l));
        char count[40];
        snprintf(count, sizeof count, "%s_count", lists[i].name);
        cJSON_AddNumberToObject(o, count, (double)lists[i].l->n);
    }
    return o;
}

static void print_list(const char *what, const bg_erase_list *l)
{
    printf("  %s: %zu\n", what, l->n);
    for (size_t i = 0; i < l->n && i < BG_ERASE_LIST_MAX; i++)
        printf("    %s\n", l->names[i]);
    if (l->n > BG_ERASE_LIST_MAX)
        printf("    ... and %zu more\n", l->n - BG_ERASE_LIST_MAX);
}

static void print_scan(const char *dir, const bg_erase_scan *sc)
{
    printf("scan of '%s': %s\n", dir,
           sc->complete ? "complete, nothing of the store remains"
                        : "NOT complete");
    print_list("open boxes", &sc->open_boxes);
    print_list("remaining files", &sc->remaining_files);
    print_list("remaining keys", &sc->remaining_keys);
    print_list("existing boxes", &sc->existing_boxes);
}

static int verify_only(const char *dir, int as_json)
{
    bg_erase_scan sc;
    bg_err err = bg_erase_verify(dir, NULL, &sc);
    if (err) {
        cli_fail("cannot scan '%s': %s", dir, bg_strerror(err));
        return cli_exit_for(err) == EXIT_USAGE ? EXIT_USAGE : EXIT_SYSTEM;
    }
    if (as_json)
        cli_print_json(scan_json(&sc));
    else
        print_scan(dir, &sc);
    return sc.complete ? EXIT_OK : EXIT_NEGATIVE;
}

int cli_cmd_erase(int argc, char **argv)
{
    const char *store = NULL;
    int yes = 0, verify = 0, as_json = 0;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--yes", NULL, &yes},
                        {"--verify", NULL, &verify},
                        {"--json", NULL, &as_json},
                        {NULL, NULL, NULL}};
    if (cli_parse_opts(argc, argv, 2, opts, "erase", NULL, NULL))
        return EXIT_USAGE;
    if (!store) {
        cli_fail("erase needs --store DIR (see boxguard erase --help)");
        return EXIT_USAGE;
    }
    if (verify && yes) {
        cli_fail("erase: --verify only scans; it takes no --yes");
        return EXIT_USAGE;
    }
    if (verify)
        return verify_only(store, as_json);
    if (!yes) {
        cli_fail("erase destroys every record, key and file of store '%s' "
                 "for good; run it again with --yes to do it (nothing was "
                 "changed)",
                 store);
        return EXIT_USAGE;
    }
    bg_store_opts o;
    bg_store_opts_init(&o);
    char detail[512] = "";
    int erasing = 0;
    o.detail = detail;
    o.detail_len = sizeof detail;
    o.erase_found = &erasing;
    o.accept_schema = 1; /* the adapters do not matter to an erase */
    bg_store *s;
    bg_err err = bg_store_open(store, &o, &s);
    if (erasing && err == BG_ENOTFOUND) {
        /* An erase cut short, finished by the open: what was asked. */
        cli_fail("%s", detail);
        return verify_only(store, as_json);
    }
    if (err) {
        if (err == BG_ENOTFOUND)
            cli_fail("store '%s' does not exist", store);
        else
            cli_fail("%s", detail[0] ? detail : bg_strerror(err));
        return cli_exit_for(err);
    }
    bg_erase_report rep;
    err = bg_erase(s, &rep); /* closes the store */
    if (err == BG_EEXISTS) {
        cli_fail("%s", rep.detail);
        for (size_t i = 0; i < rep.foreign.n && i < BG_ERASE_LIST_MAX; i++)
            fprintf(stderr, "  not made by the store: %s\n",
                    rep.foreign.names[i]);
        return EXIT_USAGE;
    }
    if (err && err != BG_ECORRUPT) {
        cli_fail("%s", rep.detail[0] ? rep.detail : bg_strerror(err));
        return cli_exit_for(err);
    }
    if (as_json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "store", store);
        cJSON_AddBoolToObject(doc, "erased", !err);
        cJSON_AddNumberToObject(doc, "keys_destroyed",
                                (double)rep.keys_destroyed);
        cJSON_AddNumberToObject(doc, "files_removed",
                                (double)rep.files_removed);
        cJSON_AddNumberToObject(doc, "bytes_overwritten",
                                (double)rep.bytes_overwritten);
        cJSON_AddNumberToObject(doc, "dirs_removed", (double)rep.dirs_removed);
        cJSON_AddItemToObject(doc, "scan", scan_json(&rep.scan));
        cli_print_json(doc);
    } else {
        printf("erased store '%s': %" PRIu64 " key file(s) destroyed, %" PRIu64
               " file(s) and %" PRIu64 " director%s overwritten and removed "
               "(%" PRIu64 " bytes)\n",
               store, rep.keys_destroyed, rep.files_removed, rep.dirs_removed,
               rep.dirs_removed == 1 ? "y" : "ies", rep.bytes_overwritten);
        print_scan(store, &rep.scan);
    }
    if (err)
        cli_fail("%s", rep.detail);
    return err ? EXIT_NEGATIVE : EXIT_OK;
}
