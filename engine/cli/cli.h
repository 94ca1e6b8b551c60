/*
 * What the files of the boxguard command share: the exit codes, the
 * arguments of the store commands, the session (a store and maybe a box
 * opened for one command), option parsing, and the helpers that print
 * errors and JSON. cli.c holds them; each cmd_*.c holds commands.
 */
#ifndef BOXGUARD_CLI_H
#define BOXGUARD_CLI_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "boxguard/boxguard.h"

enum {
    EXIT_OK = 0,
    EXIT_NEGATIVE = 1,
    EXIT_USAGE = 2,
    EXIT_SYSTEM = 3,
    EXIT_DAMAGED = 4
};

typedef struct args {
    const char *cmd;
    const char *store, *box, *key, *json, *type, *durability, *adapters,
        *schema_version, *db, *chunk;
    int as_json, accept_schema, encrypt;
    int creates; /* a command that creates data may create the store */
} args;

/* The store (and box) a command works on. begin opens them; end closes
 * the store and, for a writing command, reports a failed final sync. */
typedef struct session {
    bg_store *s;
    bg_box *b;
    int writing;
} session;

typedef struct names {
    char **v;
    size_t n, cap;
} names;

/* An option: with value it takes the next argument, else it sets flag. */
typedef struct opt {
    const char *name;
    const char **value;
    int *flag;
} opt;

/* The adapters of --adapters, for the whole run (NULL: the store's). */
extern bg_registry *cli_adapters;

/* cli.c */
void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_begin(const args *a, int writing, const char *box, int box_flags,
              session *ss);
int cli_end(session *ss, int rc);
int cli_exit_for(bg_err err);
int cli_load_adapters(const char *path, bg_registry **out);
int cli_parse_args(int argc, char **argv, args *a);
int cli_parse_number(const char *s, unsigned long long min,
                     unsigned long long max, unsigned long long *out);
int cli_parse_opts(int argc, char **argv, int from, const opt *opts,
                   const char *who, const char **pos, int *npos);
int cli_parse_type(const char *s, uint32_t *out);
void cli_print_json(cJSON *doc);
char *cli_read_stdin(size_t max, size_t *len);
int cli_report(bg_store *s, bg_err err, const char *fallback);
char *cli_slurp(const char *path, size_t *len);
int cli_value_arg(const char *given, const char *what, char **owned,
                  const char **json, size_t *len);

/* cmd_record.c: put get del dump load */
int cli_cmd_del(const args *a);
int cli_cmd_dump(const args *a);
int cli_cmd_get(const args *a);
int cli_cmd_load(const args *a);
int cli_cmd_put(const args *a);

/* cmd_box.c: verify recover compact stats rekey */
int cli_cmd_compact(const args *a);
int cli_cmd_recover(const args *a);
int cli_cmd_rekey(const args *a);
int cli_cmd_stats(const args *a);
int cli_cmd_verify(const args *a);

/* cmd_check.c: validate export-sqlite */
int cli_cmd_export(const args *a);
int cli_cmd_validate(const args *a);

/* cmd_queue.c */
extern const char cli_queue_usage[];
int cli_cmd_queue(int argc, char **argv);

/* cmd_migrate.c */
extern const char cli_migrate_usage[];
int cli_cmd_migrate(int argc, char **argv);

/* cmd_erase.c */
extern const char cli_erase_usage[];
int cli_cmd_erase(int argc, char **argv);

/* cmd_backup.c */
extern const char cli_backup_usage[];
int cli_cmd_backup(int argc, char **argv);

/* cmd_audit.c */
extern const char cli_audit_usage[];
int cli_cmd_audit(int argc, char **argv);

/* cmd_guard.c */
extern const char cli_guard_usage[];
extern const char cli_metrics_usage[];
int cli_cmd_guard(int argc, char **argv);
int cli_cmd_metrics(int argc, char **argv);

/* cmd_typeids.c */
extern const char cli_typeids_usage[];
int cli_cmd_typeids(int argc, char **argv);

#endif
