/*
 * The helpers every command of boxguard uses: errors on stderr in one
 * line, JSON on stdout, exit codes from engine errors, reading stdin and
 * files, the adapters of --adapters, opening the store and a box for a
 * command (a session), numbers and typeIds from arguments, and option
 * parsing.
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

void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("boxguard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Print doc as one line of JSON and free it. */
void cli_print_json(cJSON *doc)
{
    char *txt = doc ? cJSON_PrintUnformatted(doc) : NULL;
    if (txt)
        puts(txt);
    cJSON_free(txt);
    cJSON_Delete(doc);
}

int cli_exit_for(bg_err err)
{
    switch (err) {
    case 0:
        return EXIT_OK;
    case BG_ENOTFOUND:
        return EXIT_NEGATIVE;
    case BG_EINVALID:
    case BG_ESCHEMA:
    case BG_ECOLLISION:
    case BG_EEXISTS:
        return EXIT_USAGE;
    case BG_ECORRUPT:
        return EXIT_DAMAGED;
    default:
        return EXIT_SYSTEM;
    }
}

/* Report err with the store's detail (or a fallback) and return its exit
 * code. */
int cli_report(bg_store *s, bg_err err, const char *fallback)
{
    const char *d = s ? bg_store_detail(s) : "";
    if (d[0])
        cli_fail("%s", d);
    else
        cli_fail("%s: %s", fallback, bg_strerror(err));
    return cli_exit_for(err);
}

static void progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
    (void)ctx;
    if (!total)
        return;
    fprintf(stderr, "\r%s: %3d%%", what, (int)(done * 100 / total));
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Read all of f, at most max bytes, NUL-terminated; NULL with errno set
 * (EFBIG when larger) on failure. */
static char *read_stream(FILE *f, size_t max, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                errno = EIO;
                return NULL;
            }
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *cli_read_stdin(size_t max, size_t *len)
{
    return read_stream(stdin, max, len);
}

/* A whole file; NULL with errno set. */
char *cli_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = read_stream(f, SIZE_MAX / 4, len);
    int e = errno;
    fclose(f);
    errno = e;
    return buf;
}

/* Read an adapter manifest file into a new registry. */
int cli_load_adapters(const char *path, bg_registry **out)
{
    size_t len;
    char *buf = cli_slurp(path, &len);
    if (!buf) {
        cli_fail("cannot read adapter manifest '%s': %s", path,
                 strerror(errno));
        return EXIT_USAGE;
    }
    bg_registry *r = bg_registry_new();
    bg_err err = r ? bg_registry_add_json(r, buf, len) : BG_ENOMEM;
    free(buf);
    if (err) {
        cli_fail("adapter manifest '%s': %s", path,
                 r && bg_registry_detail(r)[0] ? bg_registry_detail(r)
                                               : bg_strerror(err));
        bg_registry_free(r);
        return cli_exit_for(err);
    }
    *out = r;
    return EXIT_OK;
}

bg_registry *cli_adapters; /* from --adapters, for the whole run */

static int open_store(const args *a, int writing, bg_store **s)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    char detail[512] = "";
    o.detail = detail;
    o.detail_len = sizeof detail;
    o.registry = cli_adapters;
    o.accept_schema = a->accept_schema;
    o.read_only = !writing;
    o.create = writing && a->creates; /* a mistyped path is never made */
    if (isatty(STDERR_FILENO))
        o.progress = progress;
    if (a->durability) {
        if (!strcmp(a->durability, "full"))
            o.durability = BG_DURABILITY_FULL;
        else if (!strcmp(a->durability, "group"))
            o.durability = BG_DURABILITY_GROUP;
        else if (!strcmp(a->durability, "off"))
            o.durability = BG_DURABILITY_OFF;
        else {
            cli_fail("--durability must be full, group or off, not '%s'",
                     a->durability);
            return EXIT_USAGE;
        }
    }
    int erasing = 0;
    o.erase_found = &erasing;
    bg_err err = bg_store_open(a->store, &o, s);
    if (erasing && err == BG_ESTATE) {
        /* An erase was cut short: a reader may not look, and every command
         * finishes the erase first. */
        o.read_only = 0;
        o.create = 0;
        detail[0] = '\0';
        err = bg_store_open(a->store, &o, s);
    }
    if (erasing && err == BG_ENOTFOUND) {
        cli_fail("%s", detail); /* finished the erase; no store */
        return EXIT_NEGATIVE;
    }
    switch (err) {
    case 0:
        return EXIT_OK;
    case BG_ENOTFOUND:
        cli_fail("store '%s' does not exist", a->store);
        break;
    case BG_ELOCKED:
        cli_fail("store '%s' is in use by another process", a->store);
        break;
    default:
        cli_fail("%s", detail[0] ? detail : bg_strerror(err));
    }
    return cli_exit_for(err);
}

/* Say what opening found: a cut torn tail, or damage. */
/* Open box name for a command on the store at dir, saying on stderr what
 * the open found: a torn tail it cut (writing) or that reads stop before,
 * damage that reads skip, with what was skipped and the command to run. */
static int open_box(bg_store *s, const char *dir, const char *name, int flags,
                    int writing, bg_box **b)
{
    bg_err err = bg_box_open(s, name, flags, b);
    if (err)
        return cli_report(s, err, "cannot open box");
    const bg_box_report *r = bg_box_report_of(*b);
    if (r->status == BG_BOX_TORN && r->tail_frames && writing)
        cli_fail("box '%s': cut a damaged tail of %" PRIu64
                 " bytes at offset %" PRIu64 ": %" PRIu64
                 " frame(s) of it verify (a synced batch damaged since, or a "
                 "batch a crash cut short); copied to %s",
                 name, r->lost_bytes, r->cut, r->tail_frames, r->quarantine);
    else if (r->status == BG_BOX_TORN && writing)
        cli_fail("box '%s': cut a torn tail of %" PRIu64
                 " bytes at offset %" PRIu64 " (an interrupted write)",
                 name, r->lost_bytes, r->cut);
    else if (r->status == BG_BOX_TORN && r->tail_frames)
        cli_fail("warning: box '%s' has a damaged tail of %" PRIu64
                 " bytes at offset %" PRIu64 ", not read: %" PRIu64
                 " frame(s) of it verify; `boxguard recover --store %s --box "
                 "%s` keeps a copy in quarantine/ and cuts it",
                 name, r->lost_bytes, r->cut, r->tail_frames, dir, name);
    else if (r->status == BG_BOX_TORN)
        cli_fail("warning: box '%s' has a torn tail of %" PRIu64
                 " bytes at offset %" PRIu64
                 " (an interrupted write), not read; `boxguard recover "
                 "--store %s --box %s` cuts it",
                 name, r->lost_bytes, r->cut, dir, name);
    if (r->status == BG_BOX_CORRUPT) {
        cli_fail("box '%s' is damaged at offset %" PRIu64
                 ": showing only the records that verify, skipping %" PRIu64
                 " damaged byte(s) in %" PRIu64
                 " range(s); run `boxguard recover --store %s --box %s`",
                 name, r->first_damage, r->lost_bytes, r->nranges, dir, name);
    }
    return EXIT_OK;
}

int cli_begin(const args *a, int writing, const char *box, int box_flags,
              session *ss)
{
    ss->s = NULL;
    ss->b = NULL;
    ss->writing = writing;
    int rc = open_store(a, writing, &ss->s);
    if (!rc && box)
        rc = open_box(ss->s, a->store, box, box_flags, writing, &ss->b);
    return rc;
}

int cli_end(session *ss, int rc)
{
    if (!ss->s)
        return rc;
    bg_err err = bg_store_close(ss->s);
    ss->s = NULL;
    if (err && !rc && ss->writing)
        rc = cli_report(NULL, err, "closing the store");
    return rc;
}

/* s as a decimal number from min to max: digits only (no sign, no
 * space, which strtoull would take), or -1. */
int cli_parse_number(const char *s, unsigned long long min,
                     unsigned long long max, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_type(const char *s, uint32_t *out)
{
    unsigned long long v;
    if (cli_parse_number(s, 0, UINT32_MAX, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The JSON given on the command line, or else stdin without its trailing
 * newlines (*owned then holds it). Returns an exit code. */
int cli_value_arg(const char *given, const char *what, char **owned,
                  const char **json, size_t *len)
{
    *owned = NULL;
    if (given) {
        *json = given;
        *len = strlen(given);
        return EXIT_OK;
    }
    char *in = cli_read_stdin(BG_RECORD_MAX_BYTES + 2, len);
    if (!in) {
        cli_fail("cannot read the %s from stdin: %s", what, strerror(errno));
        return errno == EFBIG ? EXIT_USAGE : EXIT_SYSTEM;
    }
    while (*len && (in[*len - 1] == '\n' || in[*len - 1] == '\r'))
        in[--*len] = '\0';
    *owned = in;
    *json = in;
    return EXIT_OK;
}

/* ---- arguments -------------------------------------------------------- */

/* Parse argv[from..] against opts (ended by a NULL name) for command who
 * ("" for the store commands). Arguments that are not options go to pos
 * (at most *npos of them; none when pos is NULL). Returns 0, or -1 after
 * saying what is wrong. */
int cli_parse_opts(int argc, char **argv, int from, const opt *opts,
                   const char *who, const char **pos, int *npos)
{
    int n = 0;
    for (int i = from; i < argc; i++) {
        const opt *o = opts;
        while (o->name && strcmp(o->name, argv[i]))
            o++;
        if (!o->name) {
            if (pos && (argv[i][0] != '-' || !argv[i][1]) && n < *npos) {
                pos[n++] = argv[i];
                continue;
            }
            cli_fail("%s%sunknown option '%s' (see boxguard %s%s--help)", who,
                     who[0] ? ": " : "", argv[i], who, who[0] ? " " : "");
            return -1;
        }
        if (o->flag) {
            *o->flag = 1;
        } else if (i + 1 >= argc) {
            cli_fail("%s%s%s needs a value", who, who[0] ? ": " : "", argv[i]);
            return -1;
        } else {
            *o->value = argv[++i];
        }
    }
    if (npos)
        *npos = n;
    return 0;
}

int cli_parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argv[1];
    /* --json is the value to store for put, an output flag elsewhere. */
    int json_flag = !strcmp(a->cmd, "verify") || !strcmp(a->cmd, "stats") ||
                    !strcmp(a->cmd, "validate") ||
                    !strcmp(a->cmd, "export-sqlite");
    const opt opts[] = {
        {"--store", &a->store, NULL},
        {"--box", &a->box, NULL},
        {"--key", &a->key, NULL},
        {"--type", &a->type, NULL},
        {"--durability", &a->durability, NULL},
        {"--adapters", &a->adapters, NULL},
        {"--schema-version", &a->schema_version, NULL},
        {"--db", &a->db, NULL},
        {"--chunk", &a->chunk, NULL},
        {"--accept-schema", NULL, &a->accept_schema},
        {"--encrypt", NULL, &a->encrypt},
        {"--json", json_flag ? NULL : &a->json, json_flag ? &a->as_json : NULL},
        {NULL, NULL, NULL}};
    if (cli_parse_opts(argc, argv, 2, opts, "", NULL, NULL))
        return -1;
    if (!a->store) {
        cli_fail("%s needs --store DIR (see boxguard --help)", a->cmd);
        return -1;
    }
    return 0;
}
