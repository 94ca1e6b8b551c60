/*
 * The boxguard command: the table of its commands (name, synopsis, own
 * help page, handler), the global help page made from it, and dispatch.
 * The commands are in cmd_*.c, their shared helpers in cli.c; all of it is
 * a thin layer over the public API.
 *
 * Exit codes, everywhere: 0 success; 1 the answer is negative (not found,
 * damage found); 2 bad usage or invalid input; 3 I/O or system error; 4 the
 * store is damaged and needs `boxguard recover`. Errors go to stderr in one
 * line that names the box, key or offset.
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

/* What every page of help ends with. */
static const char common_text[] =
    "typed records: typeId 0 takes any JSON value; every other typeId needs\n"
    "an adapter (name, version, fields), given as a JSON manifest:\n"
    "  --adapters FILE     {\"adapters\":[{\"typeId\":N,\"name\":\"User\",\n"
    "                      \"version\":1,\"fields\":[{\"name\":\"id\",\n"
    "                      \"type\":\"integer\",\"required\":true}]}]}\n"
    "                      Without it, the adapters the store was last opened\n"
    "                      with (its schema lock in meta.box) apply.\n"
    "  --accept-schema     replace the store's schema lock even when an\n"
    "                      adapter it knows is gone or a typeId was renamed\n"
    "\n"
    "exit codes: 0 success; 1 negative answer (not found, damage found);\n"
    "2 bad usage or invalid input (schema errors included); 3 I/O or system\n"
    "error (a locked store, a wrong data key); 4 the store is damaged and\n"
    "needs `boxguard recover`.\n";

static const char durability_text[] =
    "  --durability full|group|off   full (default): a write returns after\n"
    "                                fdatasync; group: writes gathered,\n"
    "                                100 per write and sync, the rest at\n"
    "                                exit; off: no sync\n";

/* The options a store command cannot do without, and whether it may
 * create a store (only commands that create data do). */
enum { NEED_BOX = 1, NEED_KEY = 2, NEED_TYPE = 4, NEED_DB = 8, CREATES = 16 };

typedef struct command {
    const char *name;
    const char *synopsis; /* as in the README's command list */
    const char *help;     /* the command's own page (boxguard NAME --help) */
    int (*store_fn)(const args *); /* a store command: parsed here */
    int needs;
    int (*run)(int argc, char **argv); /* one that parses its own */
    int writes;                        /* its page lists --durability */
} command;

static const command commands[] = {
    {"put",
     "boxguard put     --store DIR --box NAME --key KEY --type N [--json TEXT]",
     "Store one JSON value under KEY with typeId N, from --json or from stdin\n"
     "(trailing newlines of stdin dropped; the value is kept byte for byte).\n"
     "Creates the store and the box when missing; --encrypt creates the box\n"
     "sealed under the store's key. Cuts a torn tail of the box first (and\n"
     "says so). Writes DIR/NAME.box; durable on exit 0 under --durability\n"
     "full. Refused: the store's own boxes (meta, audit, pending_ops,\n"
     "failed_ops), a value that does not fit its adapter (exit 2), a\n"
     "damaged box (exit 4).\n",
     cli_cmd_put, NEED_BOX | NEED_KEY | NEED_TYPE | CREATES, NULL, 1},
    {"get", "boxguard get     --store DIR --box NAME --key KEY",
     "Print the value stored under KEY, its exact bytes and a newline.\n"
     "Read-only. Exit 1 when the key is not there; a damaged box still\n"
     "answers from the frames that verify, warns and exits 4.\n",
     cli_cmd_get, NEED_BOX | NEED_KEY, NULL, 0},
    {"del", "boxguard del     --store DIR --box NAME --key KEY",
     "Delete KEY (a delete frame appended to DIR/NAME.box). Exit 1 when the\n"
     "key is not there (nothing written). The store must exist.\n",
     cli_cmd_del, NEED_BOX | NEED_KEY, NULL, 1},
    {"dump", "boxguard dump    --store DIR --box NAME",
     "Print every record, in write order, one JSON object per line:\n"
     "{\"key\":...,\"type\":N,\"value\":...}. Raw line breaks inside a value\n"
     "(whitespace between JSON tokens) print as spaces. Read-only.\n",
     cli_cmd_dump, NEED_BOX, NULL, 0},
    {"load", "boxguard load    --store DIR --box NAME            < lines",
     "Read dump lines from stdin (member order free, blank lines skipped)\n"
     "and store them in one batch: all of them, or none when any line is\n"
     "bad (the line is named) or the write fails. Creates the store and the\n"
     "box when missing; --encrypt as for put. Shows progress on a terminal.\n",
     cli_cmd_load, NEED_BOX | CREATES, NULL, 1},
    {"verify", "boxguard verify  --store DIR [--box NAME] [--json]",
     "Check every box (or NAME) and report torn tails and damage with their\n"
     "offsets; changes no byte. Exit 1 when a box has a torn tail or damage.\n",
     cli_cmd_verify, 0, NULL, 0},
    {"recover", "boxguard recover --store DIR [--box NAME]",
     "Cut torn tails; copy a damaged box to\n"
     "DIR/quarantine/NAME_corrupted_YYYYMMDD.bak (then -2, -3 ... the same\n"
     "day) and rewrite it with every frame that still verifies, listing the\n"
     "byte ranges lost. Running it again changes nothing. The store must\n"
     "exist.\n",
     cli_cmd_recover, 0, NULL, 1},
    {"compact", "boxguard compact --store DIR --box NAME",
     "Rewrite DIR/NAME.box with only its live records: written beside,\n"
     "synced, renamed over it, directory synced. The store's own boxes are\n"
     "refused (their owners compact them). The store must exist.\n",
     cli_cmd_compact, NEED_BOX, NULL, 1},
    {"stats", "boxguard stats   --store DIR [--json]",
     "Records, frames, bytes and live bytes per box, and its status.\n"
     "Read-only. Exit 4 when a box is damaged.\n",
     cli_cmd_stats, 0, NULL, 0},
    {"rekey", "boxguard rekey   --store DIR",
     "A new data key (DIR/keys/, mode 0600); every encrypted box resealed\n"
     "under it and verified; the old keys destroyed only then. Killed at\n"
     "any moment, every box stays readable; running it again finishes.\n",
     cli_cmd_rekey, 0, NULL, 1},
    {"validate",
     "boxguard validate --store DIR [--adapters FILE] [--schema-version N] "
     "[--json]",
     "May the app open the store? Opens it read-only and answers ready,\n"
     "needs_migration, needs_recovery or blocked, each finding with its\n"
     "action. --schema-version N: the code's schema version (newer stored\n"
     "data blocks, older needs a migration). Exit 0 only for ready, 1\n"
     "otherwise. A store that cannot be opened is blocked with the reason.\n",
     cli_cmd_validate, 0, NULL, 0},
    {"migrate",
     "boxguard migrate --store DIR --plan FILE [--adapters FILE] [--dry-run] "
     "[--json]\n"
     "boxguard migrate status|rollback --store DIR [--force] [--json]",
     NULL, NULL, 0, cli_cmd_migrate, 0},
    {"export-sqlite",
     "boxguard export-sqlite --store DIR --db FILE [--chunk N] [--json]",
     "Copy every box into table box_NAME of an SQLite database (key,\n"
     "type_id, seq, json, a column per adapter field), N rows per\n"
     "transaction (default 1000). A killed run resumes with no row twice or\n"
     "missing; it ends with a count check of every table and PRAGMA\n"
     "integrity_check. Reads the store; writes FILE.\n",
     cli_cmd_export, NEED_DB, NULL, 0},
    {"queue",
     "boxguard queue   "
     "enqueue|lease|ack|nack|retry|purge|failed|stats|rebuild-index|lock\n"
     "                 --store DIR ...            (boxguard queue --help)",
     NULL, NULL, 0, cli_cmd_queue, 0},
    {"erase",
     "boxguard erase   --store DIR --yes [--json]\n"
     "boxguard erase   --verify --store DIR [--json]",
     NULL, NULL, 0, cli_cmd_erase, 0},
    {"backup",
     "boxguard backup  create --store DIR --out FILE KEY [--salvage] [--json]\n"
     "boxguard backup  verify|list --in FILE KEY [--json]\n"
     "boxguard backup  restore --store DIR --in FILE KEY [--expect-schema N]\n"
     "                 [--schema-version N]\n"
     "                 KEY: --passphrase-file F | --key-file F",
     NULL, NULL, 0, cli_cmd_backup, 0},
    {"audit",
     "boxguard audit   list --store DIR [--no-redact] [--json]\n"
     "boxguard audit   export --store DIR --out FILE [--no-redact]",
     NULL, NULL, 0, cli_cmd_audit, 0},
    {"guard",
     "boxguard guard   --store DIR [--policy FILE] [--adapters FILE]\n"
     "                 [--schema-version N] [--fail-on critical|warning] "
     "[--json]",
     NULL, NULL, 0, cli_cmd_guard, 0},
    {"metrics", "boxguard metrics --store DIR [--policy FILE]", NULL, NULL, 0,
     cli_cmd_metrics, 0},
    {"typeids",
     "boxguard typeids check [--lock FILE] [--update-lock] [--policy FILE]\n"
     "                       [--format text|json|github|sarif] PATH...",
     NULL, NULL, 0, cli_cmd_typeids, 0},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

/* Print text with every line indented by two spaces. */
static void indented(FILE *f, const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(f, "  %.*s\n", (int)n, p);
        p += n + (nl != NULL);
    }
}

static void global_help(FILE *f)
{
    fputs("usage: boxguard <command> [options]\n"
          "\n"
          "Records are JSON values tagged with a typeId, kept in append-only,\n"
          "checksummed box files: box NAME lives in DIR/NAME.box.\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        indented(f, commands[i].synopsis);
    fputs("\n"
          "boxguard COMMAND --help: that command's options, what it reads and\n"
          "writes, and its exit codes. boxguard --version: the version.\n"
          "\n"
          "encryption: put/load --encrypt create the box sealed with\n"
          "XChaCha20-Poly1305 under the store's key (DIR/keys/, mode 0600); "
          "keys\n"
          "stay in clear. A key the store does not have fails with the auth\n"
          "error (exit 3) and changes nothing.\n"
          "\n"
          "options for writing commands:\n",
          f);
    fputs(durability_text, f);
    fputc('\n', f);
    fputs(common_text, f);
}

static void command_help(const command *c)
{
    if (c->help == NULL) {
        fputs(!strcmp(c->name, "queue")     ? cli_queue_usage
              : !strcmp(c->name, "migrate") ? cli_migrate_usage
              : !strcmp(c->name, "erase")   ? cli_erase_usage
              : !strcmp(c->name, "audit")   ? cli_audit_usage
              : !strcmp(c->name, "backup")  ? cli_backup_usage
              : !strcmp(c->name, "guard")   ? cli_guard_usage
              : !strcmp(c->name, "metrics") ? cli_metrics_usage
                                            : cli_typeids_usage,
              stdout);
        return;
    }
    printf("usage:\n");
    indented(stdout, c->synopsis);
    printf("\n%s\noptions:\n", c->help);
    printf("  --store DIR         the store directory\n");
    if (c->writes)
        fputs(durability_text, stdout);
    printf("\n%s", common_text);
}

static int run_store_command(const command *c, int argc, char **argv)
{
    args a;
    if (cli_parse_args(argc, argv, &a))
        return EXIT_USAGE;
    const struct {
        int bit;
        const char *opt, *val;
    } req[] = {{NEED_BOX, "--box", a.box},
               {NEED_KEY, "--key", a.key},
               {NEED_TYPE, "--type", a.type},
               {NEED_DB, "--db", a.db}};
    for (size_t j = 0; j < sizeof req / sizeof req[0]; j++) {
        if ((c->needs & req[j].bit) && !req[j].val) {
            cli_fail("%s needs %s (see boxguard %s --help)", a.cmd, req[j].opt,
                     a.cmd);
            return EXIT_USAGE;
        }
    }
    a.creates = (c->needs & CREATES) != 0;
    if (a.adapters) {
        int rc = cli_load_adapters(a.adapters, &cli_adapters);
        if (rc)
            return rc;
    }
    int rc = c->store_fn(&a);
    bg_registry_free(cli_adapters);
    return rc;
}

static int dispatch(int argc, char **argv);

/* Every answer reaches stdout or the command fails: an answer lost to a
 * full disk or a closed pipe never passes for one given (a CI job reading
 * a typeids report would see nothing and exit 0). */
int main(int argc, char **argv)
{
    int rc = dispatch(argc, argv);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc != EXIT_USAGE) {
        cli_fail("cannot write to stdout: %s", strerror(errno));
        rc = EXIT_SYSTEM;
    }
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        global_help(stderr);
        return EXIT_USAGE;
    }
    const command *c = find_command(argv[1]);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version")) {
            puts("boxguard " BOXGUARD_VERSION);
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
            (i == 1 && !strcmp(argv[i], "help"))) {
            if (c)
                command_help(c);
            else
                global_help(stdout);
            return EXIT_OK;
        }
    }
    if (!c) {
        cli_fail("unknown command '%s' (see boxguard --help)", argv[1]);
        return EXIT_USAGE;
    }
    return c->run ? c->run(argc, argv) : run_store_command(c, argc, argv);
}
