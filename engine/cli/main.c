/*
 * The boxguard command: put, get, del, dump, load, verify, recover, compact
 * and stats over a store directory. A thin layer over the public API.
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
#include "boxguard/typeids.h"

enum {
    EXIT_OK = 0,
    EXIT_NEGATIVE = 1,
    EXIT_USAGE = 2,
    EXIT_SYSTEM = 3,
    EXIT_DAMAGED = 4
};

static const char usage_text[] =
    "usage: boxguard <command> [options]\n"
    "\n"
    "Records are JSON values tagged with a typeId, kept in append-only,\n"
    "checksummed box files: box NAME lives in DIR/NAME.box.\n"
    "\n"
    "commands:\n"
    "  put     --store DIR --box NAME --key KEY --type N [--json TEXT]\n"
    "          store a value (from stdin when --json is absent; trailing\n"
    "          newlines of stdin are dropped); creates the store and box\n"
    "  get     --store DIR --box NAME --key KEY     print the JSON value\n"
    "  del     --store DIR --box NAME --key KEY     delete a record\n"
    "  dump    --store DIR --box NAME               one JSON object per line:\n"
    "          {\"key\":...,\"type\":N,\"value\":...}\n"
    "  load    --store DIR --box NAME               read dump lines from "
    "stdin\n"
    "          and store them all, or nothing when any line is bad\n"
    "  verify  --store DIR [--box NAME] [--json]   read-only check; exit 1\n"
    "          when a box has a torn tail or damage; changes no byte\n"
    "  recover --store DIR [--box NAME]            cut torn tails; copy a\n"
    "          damaged box to DIR/quarantine/ and keep every frame that\n"
    "          still verifies\n"
    "  compact --store DIR --box NAME               rewrite with live records\n"
    "  stats   --store DIR [--json]                 records and sizes per box\n"
    "  queue   enqueue|lease|ack|nack|retry|purge|failed|stats|compact|\n"
    "          rebuild-index|lock --store DIR ...   the pending-ops queue\n"
    "          (boxguard queue --help)\n"
    "  typeids check [--lock F] [--update-lock] [--policy F]\n"
    "          [--format text|json|github] PATH...  the static typeId and\n"
    "          adapter-registration check (boxguard typeids --help)\n"
    "  validate --store DIR [--schema-version N] [--json]  may the app open\n"
    "          the store? ready, needs_migration, needs_recovery or blocked,\n"
    "          each finding with its action; exit 0 only for ready; read-only\n"
    "  migrate --store DIR --plan FILE [--dry-run] | migrate status|rollback\n"
    "          --store DIR   crash-safe schema migrations, journaled, with\n"
    "          backups and a dry run (boxguard migrate --help)\n"
    "  export-sqlite --store DIR --db FILE [--chunk N] [--json]  copy every\n"
    "          box into table box_NAME of an SQLite database (key, type_id,\n"
    "          seq, json, a column per adapter field), N rows per\n"
    "          transaction (default 1000); a killed run resumes with no\n"
    "          row twice or missing; ends with a count check of every\n"
    "          table and PRAGMA integrity_check\n"
    "  rekey   --store DIR                          new data key; re-seal "
    "every\n"
    "          encrypted box under it; destroy the old key once all verify\n"
    "\n"
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
    "encryption: put/load --encrypt create the box sealed with\n"
    "XChaCha20-Poly1305 under the store's key (DIR/keys/, mode 0600); keys\n"
    "stay in clear. A key the store does not have fails with the auth\n"
    "error (exit 3) and changes nothing.\n"
    "\n"
    "options for writing commands:\n"
    "  --durability full|group|off   full (default): a write returns after\n"
    "                                fdatasync; group: one sync per 100\n"
    "                                writes and at exit; off: no sync\n"
    "\n"
    "exit codes: 0 success; 1 negative answer (not found, damage found);\n"
    "2 bad usage or invalid input (schema errors included); 3 I/O or system\n"
    "error (a locked store, a wrong data key); 4 the store is damaged and\n"
    "needs `boxguard recover`.\n";

typedef struct args {
    const char *cmd;
    const char *store, *box, *key, *json, *type, *durability, *adapters,
        *schema_version, *db, *chunk;
    int as_json, accept_schema, encrypt;
    int creates; /* a command that creates data may create the store */
} args;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("boxguard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Print doc as one line of JSON and free it. */
static void print_json(cJSON *doc)
{
    char *txt = doc ? cJSON_PrintUnformatted(doc) : NULL;
    if (txt)
        puts(txt);
    cJSON_free(txt);
    cJSON_Delete(doc);
}

static int exit_for(bg_err err)
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
static int report(bg_store *s, bg_err err, const char *fallback)
{
    const char *d = s ? bg_store_detail(s) : "";
    if (d[0])
        fail("%s", d);
    else
        fail("%s: %s", fallback, bg_strerror(err));
    return exit_for(err);
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

static char *read_stdin(size_t max, size_t *len)
{
    return read_stream(stdin, max, len);
}

/* A whole file; NULL with errno set. */
static char *slurp(const char *path, size_t *len)
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
static int load_adapters(const char *path, bg_registry **out)
{
    size_t len;
    char *buf = slurp(path, &len);
    if (!buf) {
        fail("cannot read adapter manifest '%s': %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    bg_registry *r = bg_registry_new();
    bg_err err = r ? bg_registry_add_json(r, buf, len) : BG_ENOMEM;
    free(buf);
    if (err) {
        fail("adapter manifest '%s': %s", path,
             r && bg_registry_detail(r)[0] ? bg_registry_detail(r)
                                           : bg_strerror(err));
        bg_registry_free(r);
        return exit_for(err);
    }
    *out = r;
    return EXIT_OK;
}

static bg_registry *adapters; /* from --adapters, for the whole run */

static int open_store(const args *a, int writing, bg_store **s)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    char detail[512] = "";
    o.detail = detail;
    o.detail_len = sizeof detail;
    o.registry = adapters;
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
            fail("--durability must be full, group or off, not '%s'",
                 a->durability);
            return EXIT_USAGE;
        }
    }
    bg_err err = bg_store_open(a->store, &o, s);
    switch (err) {
    case 0:
        return EXIT_OK;
    case BG_ENOTFOUND:
        fail("store '%s' does not exist", a->store);
        break;
    case BG_ELOCKED:
        fail("store '%s' is in use by another process", a->store);
        break;
    default:
        fail("%s", detail[0] ? detail : bg_strerror(err));
    }
    return exit_for(err);
}

/* Say what opening found: a cut torn tail, or damage. */
static int open_box(bg_store *s, const char *name, int flags, int writing,
                    bg_box **b)
{
    bg_err err = bg_box_open(s, name, flags, b);
    if (err)
        return report(s, err, "cannot open box");
    const bg_box_report *r = bg_box_report_of(*b);
    if (r->status == BG_BOX_TORN && writing)
        fail("box '%s': cut a torn tail of %" PRIu64 " bytes at offset %" PRIu64
             " (an interrupted write)",
             name, r->lost_bytes, r->cut);
    if (r->status == BG_BOX_CORRUPT) {
        fail("box '%s' is damaged at offset %" PRIu64
             "; showing only records that verify; run `boxguard recover "
             "--store <dir> --box %s`",
             name, r->first_damage, name);
    }
    return EXIT_OK;
}

/* The store (and box) a command works on. begin opens them; end closes
 * the store and, for a writing command, reports a failed final sync. */
typedef struct session {
    bg_store *s;
    bg_box *b;
    int writing;
} session;

static int begin(const args *a, int writing, const char *box, int box_flags,
                 session *ss)
{
    ss->s = NULL;
    ss->b = NULL;
    ss->writing = writing;
    int rc = open_store(a, writing, &ss->s);
    if (!rc && box)
        rc = open_box(ss->s, box, box_flags, writing, &ss->b);
    return rc;
}

static int end(session *ss, int rc)
{
    if (!ss->s)
        return rc;
    bg_err err = bg_store_close(ss->s);
    ss->s = NULL;
    if (err && !rc && ss->writing)
        rc = report(NULL, err, "closing the store");
    return rc;
}

/* s as a decimal number from min to max: digits only (no sign, no
 * space, which strtoull would take), or -1. */
static int parse_number(const char *s, unsigned long long min,
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

static int parse_type(const char *s, uint32_t *out)
{
    unsigned long long v;
    if (parse_number(s, 0, UINT32_MAX, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The JSON given on the command line, or else stdin without its trailing
 * newlines (*owned then holds it). Returns an exit code. */
static int value_arg(const char *given, const char *what, char **owned,
                     const char **json, size_t *len)
{
    *owned = NULL;
    if (given) {
        *json = given;
        *len = strlen(given);
        return EXIT_OK;
    }
    char *in = read_stdin(BG_RECORD_MAX_BYTES + 2, len);
    if (!in) {
        fail("cannot read the %s from stdin: %s", what, strerror(errno));
        return errno == EFBIG ? EXIT_USAGE : EXIT_SYSTEM;
    }
    while (*len && (in[*len - 1] == '\n' || in[*len - 1] == '\r'))
        in[--*len] = '\0';
    *owned = in;
    *json = in;
    return EXIT_OK;
}

static int cmd_put(const args *a)
{
    uint32_t type;
    if (parse_type(a->type, &type)) {
        fail("--type must be an integer from 0 to 4294967295, not '%s'",
             a->type);
        return EXIT_USAGE;
    }
    char *owned;
    const char *json;
    size_t len;
    int vrc = value_arg(a->json, "value", &owned, &json, &len);
    if (vrc)
        return vrc;
    session ss;
    int rc = begin(a, 1, a->box,
                   BG_BOX_CREATE | (a->encrypt ? BG_BOX_ENCRYPT : 0), &ss);
    if (!rc) {
        bg_err err = bg_box_put(ss.b, a->key, strlen(a->key), type, json, len);
        if (err)
            rc = report(ss.s, err, "put failed");
    }
    free(owned);
    return end(&ss, rc);
}

static void write_value(const char *v, size_t n)
{
    /* A raw line break can only be whitespace between JSON tokens; keep
     * one record per line. */
    for (size_t i = 0; i < n; i++)
        putchar(v[i] == '\n' || v[i] == '\r' ? ' ' : v[i]);
}

static int cmd_get(const args *a)
{
    session ss;
    int rc = begin(a, 0, a->box, 0, &ss);
    if (!rc) {
        uint32_t t;
        char *v;
        size_t n;
        bg_err err = bg_box_get(ss.b, a->key, strlen(a->key), &t, &v, &n);
        if (err) {
            rc = report(ss.s, err, "get failed");
        } else {
            fwrite(v, 1, n, stdout);
            putchar('\n');
            bg_store_free(ss.s, v);
            if (bg_box_report_of(ss.b)->status == BG_BOX_CORRUPT)
                rc = EXIT_DAMAGED;
        }
    }
    return end(&ss, rc);
}

static int cmd_del(const args *a)
{
    session ss;
    int rc = begin(a, 1, a->box, 0, &ss);
    if (!rc) {
        bg_err err = bg_box_del(ss.b, a->key, strlen(a->key));
        if (err)
            rc = report(ss.s, err, "del failed");
    }
    return end(&ss, rc);
}

static int dump_one(void *arg, const bg_record *r)
{
    (void)arg;
    char *k = malloc(r->key_len + 1);
    if (!k)
        return 1;
    memcpy(k, r->key, r->key_len);
    k[r->key_len] = '\0';
    cJSON *ks = cJSON_CreateString(k);
    char *kj = ks ? cJSON_PrintUnformatted(ks) : NULL;
    if (kj) {
        printf("{\"key\":%s,\"type\":%" PRIu32 ",\"value\":", kj, r->type);
        write_value(r->value, r->value_len);
        fputs("}\n", stdout);
    }
    cJSON_free(kj);
    cJSON_Delete(ks);
    free(k);
    return kj ? 0 : 1;
}

static int cmd_dump(const args *a)
{
    session ss;
    int rc = begin(a, 0, a->box, 0, &ss);
    if (!rc) {
        bg_err err = bg_box_iterate(ss.b, dump_one, NULL);
        if (err)
            rc = report(ss.s, err, "dump failed");
        else if (bg_box_report_of(ss.b)->status == BG_BOX_CORRUPT)
            rc = EXIT_DAMAGED;
    }
    return end(&ss, rc);
}

/* ---- load ------------------------------------------------------------- */

typedef struct line_rec {
    char *key;
    uint32_t type;
    const char *value; /* into the input buffer */
    size_t value_len;
} line_rec;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Parse one {"key":...,"type":N,"value":...} line, member order free. The
 * value keeps its exact bytes: cJSON finds where it ends. */
static int parse_line(const char *p, const char *end, line_rec *r, char *why,
                      size_t whylen)
{
    int have_key = 0, have_type = 0, have_value = 0;
    p = skip_ws(p, end);
    if (p == end || *p != '{') {
        snprintf(why, whylen, "expected '{' at column %d", 1);
        return -1;
    }
    const char *line = p;
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == '}' && !have_key && !have_type && !have_value)
            break;
        const char *kend = NULL;
        cJSON *name = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &kend, 0);
        if (!name || !cJSON_IsString(name)) {
            cJSON_Delete(name);
            snprintf(why, whylen, "expected a member name at column %d",
                     (int)(p - line) + 1);
            return -1;
        }
        char field[16] = "";
        snprintf(field, sizeof field, "%s", name->valuestring);
        cJSON_Delete(name);
        p = skip_ws(kend, end);
        if (p == end || *p != ':') {
            snprintf(why, whylen, "expected ':' at column %d",
                     (int)(p - line) + 1);
            return -1;
        }
        p = skip_ws(p + 1, end);
        const char *vend = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &vend, 0);
        if (!v) {
            snprintf(why, whylen, "bad JSON value for \"%s\" at column %d",
                     field, (int)(p - line) + 1);
            return -1;
        }
        int bad = 0;
        if (!strcmp(field, "key") && !have_key) {
            if (!cJSON_IsString(v) ||
                memmem(p, (size_t)(vend - p), "\\u0000", 6))
                bad = 1;
            else
                r->key = strdup(v->valuestring), have_key = 1;
        } else if (!strcmp(field, "type") && !have_type) {
            double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
            if (d < 0 || d > UINT32_MAX || d != (double)(uint32_t)d)
                bad = 1;
            else
                r->type = (uint32_t)d, have_type = 1;
        } else if (!strcmp(field, "value") && !have_value) {
            r->value = p;
            r->value_len = (size_t)(vend - p);
            have_value = 1;
        } else {
            snprintf(why, whylen, "unexpected or repeated member \"%s\"",
                     field);
            cJSON_Delete(v);
            return -1;
        }
        cJSON_Delete(v);
        if (bad) {
            snprintf(why, whylen, "\"%s\" must be %s", field,
                     field[0] == 'k' ? "a string without \\u0000"
                                     : "an integer from 0 to 4294967295");
            return -1;
        }
        p = skip_ws(vend, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}')
            break;
        snprintf(why, whylen, "expected ',' or '}' at column %d",
                 (int)(p - line) + 1);
        return -1;
    }
    p = skip_ws(p + 1, end);
    if (p != end) {
        snprintf(why, whylen, "trailing data at column %d",
                 (int)(p - line) + 1);
        return -1;
    }
    if (!have_key || !have_type || !have_value) {
        snprintf(why, whylen, "missing \"%s\"",
                 !have_key    ? "key"
                 : !have_type ? "type"
                              : "value");
        return -1;
    }
    return 0;
}

static int cmd_load(const args *a)
{
    size_t len;
    char *in = read_stdin(SIZE_MAX / 4, &len);
    if (!in) {
        fail("cannot read stdin: %s", strerror(errno));
        return EXIT_SYSTEM;
    }
    size_t n = 0, cap = 1024;
    line_rec *recs = calloc(cap, sizeof *recs);
    int rc = recs ? EXIT_OK : EXIT_SYSTEM;
    int tty = isatty(STDERR_FILENO);
    size_t lineno = 0;
    for (char *p = in; rc == EXIT_OK && p < in + len;) {
        char *nl = memchr(p, '\n', (size_t)(in + len - p));
        char *end = nl ? nl : in + len;
        lineno++;
        if (skip_ws(p, end) != end) {
            if (n == cap) {
                line_rec *q = realloc(recs, 2 * cap * sizeof *q);
                if (!q) {
                    rc = EXIT_SYSTEM;
                    break;
                }
                memset(q + cap, 0, cap * sizeof *q);
                recs = q;
                cap *= 2;
            }
            char why[160];
            if (parse_line(p, end, &recs[n], why, sizeof why)) {
                fail("stdin line %zu: %s; nothing was loaded", lineno, why);
                free(recs[n].key);
                rc = EXIT_USAGE;
                break;
            }
            n++;
        }
        if (tty && lineno % 10000 == 0)
            fprintf(stderr, "\rload: parsed %zu lines", lineno);
        p = end + 1;
    }
    if (tty && lineno >= 10000)
        fprintf(stderr, "\rload: parsed %zu lines\n", lineno);
    session ss = {0};
    if (rc == EXIT_OK)
        rc = begin(a, 1, a->box,
                   BG_BOX_CREATE | (a->encrypt ? BG_BOX_ENCRYPT : 0), &ss);
    if (rc == EXIT_OK && n) {
        bg_write *w = malloc(n * sizeof *w);
        if (!w) {
            rc = EXIT_SYSTEM;
        } else {
            for (size_t i = 0; i < n; i++)
                w[i] = (bg_write){0,
                                  recs[i].key,
                                  strlen(recs[i].key),
                                  recs[i].type,
                                  recs[i].value,
                                  recs[i].value_len};
            bg_err err = bg_box_write_batch(ss.b, w, n);
            if (err) {
                rc = report(ss.s, err, "load failed");
                fail("nothing was loaded");
            }
            free(w);
        }
    }
    rc = end(&ss, rc);
    if (rc == EXIT_OK)
        fprintf(stderr, "loaded %zu records into box '%s'\n", n, a->box);
    for (size_t i = 0; i < n; i++)
        free(recs[i].key);
    free(recs);
    free(in);
    return rc;
}

/* ---- verify, recover, compact, stats ----------------------------------- */

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static int add_name(void *arg, const char *name)
{
    names *ns = arg;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 8;
        char **p = realloc(ns->v, cap * sizeof *p);
        if (!p)
            return 1;
        ns->v = p;
        ns->cap = cap;
    }
    ns->v[ns->n] = strdup(name);
    if (ns->v[ns->n])
        ns->n++;
    return 0;
}

static void free_names(names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

/* A session on the store and the boxes the command works on: --box, or
 * every box of the store. */
static int begin_boxes(const args *a, int writable, session *ss, names *ns)
{
    int rc = begin(a, writable, NULL, 0, ss);
    if (rc)
        return rc;
    if (a->box)
        return add_name(ns, a->box) ? EXIT_SYSTEM : EXIT_OK;
    bg_err err = bg_store_list_boxes(ss->s, add_name, ns);
    return err ? report(ss->s, err, "cannot list boxes") : EXIT_OK;
}

/* End what begin_boxes began: print the JSON array of the answers (or
 * drop it after an error), close the store, and when all went well return
 * found (the exit code of what was found, 0 for nothing). */
static int end_boxes(session *ss, names *ns, cJSON *arr, int rc, int found)
{
    if (arr && rc == EXIT_OK)
        print_json(arr);
    else
        cJSON_Delete(arr);
    free_names(ns);
    rc = end(ss, rc);
    return rc == EXIT_OK ? found : rc;
}

static const char *status_name(bg_box_status st)
{
    return st == BG_BOX_CLEAN  ? "clean"
           : st == BG_BOX_TORN ? "torn"
                               : "corrupt";
}

static cJSON *report_json(const char *name, const bg_box_report *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "box", name);
    cJSON_AddStringToObject(o, "status", status_name(r->status));
    cJSON_AddNumberToObject(o, "file_size", (double)r->file_size);
    cJSON_AddNumberToObject(o, "frames", (double)r->frames);
    cJSON_AddBoolToObject(o, "header_ok", r->header_ok);
    if (r->status != BG_BOX_CLEAN) {
        cJSON_AddNumberToObject(o, "first_damage", (double)r->first_damage);
        cJSON_AddNumberToObject(o, "lost_bytes", (double)r->lost_bytes);
        if (r->status == BG_BOX_TORN)
            cJSON_AddNumberToObject(o, "cut", (double)r->cut);
        cJSON *rs = cJSON_AddArrayToObject(o, "ranges");
        for (uint64_t i = 0; i < r->nranges && i < BG_BOX_REPORT_RANGES; i++) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair,
                                 cJSON_CreateNumber((double)r->ranges[i].off));
            cJSON_AddItemToArray(pair,
                                 cJSON_CreateNumber((double)r->ranges[i].len));
            cJSON_AddItemToArray(rs, pair);
        }
        cJSON_AddNumberToObject(o, "damaged_ranges", (double)r->nranges);
    }
    if (r->quarantine[0])
        cJSON_AddStringToObject(o, "quarantine", r->quarantine);
    return o;
}

static void print_ranges(const bg_box_report *r)
{
    for (uint64_t i = 0; i < r->nranges && i < BG_BOX_REPORT_RANGES; i++)
        printf("  damaged bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64 " bytes)\n",
               r->ranges[i].off, r->ranges[i].off + r->ranges[i].len,
               r->ranges[i].len);
    if (r->nranges > BG_BOX_REPORT_RANGES)
        printf("  ... and %" PRIu64 " more damaged ranges\n",
               r->nranges - BG_BOX_REPORT_RANGES);
}

static void print_report(const char *name, const bg_box_report *r, int fixed)
{
    switch (r->status) {
    case BG_BOX_CLEAN:
        printf("box '%s': clean (%" PRIu64 " frames, %" PRIu64 " bytes)%s\n",
               name, r->frames, r->file_size, fixed ? ", nothing to do" : "");
        break;
    case BG_BOX_TORN:
        printf("box '%s': torn tail: %" PRIu64 " bytes at offset %" PRIu64
               " %s (an interrupted write; %" PRIu64
               " earlier frames intact)\n",
               name, r->lost_bytes, r->cut, fixed ? "cut" : "to cut",
               r->frames - r->tail_frames);
        break;
    case BG_BOX_CORRUPT:
        printf("box '%s': CORRUPT: first damaged byte at offset %" PRIu64
               "%s; %" PRIu64 " frames verify\n",
               name, r->first_damage, r->header_ok ? "" : " (header)",
               r->frames);
        print_ranges(r);
        if (fixed)
            printf("  recovered: kept the %" PRIu64
                   " frames that verify; damaged file copied to %s\n",
                   r->frames, r->quarantine);
        else
            printf("  run `boxguard recover --store <dir> --box %s`\n", name);
        break;
    }
}

static int cmd_verify_or_recover(const args *a, int fix)
{
    session ss;
    names ns = {0};
    int rc = begin_boxes(a, fix, &ss, &ns);
    bg_store *s = ss.s;
    cJSON *arr = a->as_json ? cJSON_CreateArray() : NULL;
    int damaged = 0;
    for (size_t i = 0; i < ns.n && rc == EXIT_OK; i++) {
        bg_box_report r;
        bg_err err = fix ? bg_box_recover(s, ns.v[i], &r)
                         : bg_box_verify(s, ns.v[i], &r);
        if (err) {
            rc = report(s, err, fix ? "recover failed" : "verify failed");
            break;
        }
        if (r.status != BG_BOX_CLEAN)
            damaged = 1;
        if (arr)
            cJSON_AddItemToArray(arr, report_json(ns.v[i], &r));
        else
            print_report(ns.v[i], &r, fix);
    }
    return end_boxes(&ss, &ns, arr, rc, damaged && !fix ? EXIT_NEGATIVE : 0);
}

static int cmd_compact(const args *a)
{
    session ss;
    int rc = begin(a, 1, a->box, 0, &ss);
    if (!rc) {
        bg_box_stats before, after;
        bg_box_stats_of(ss.b, &before);
        bg_err err = bg_box_compact(ss.b);
        if (err) {
            rc = report(ss.s, err, "compact failed");
        } else {
            bg_box_stats_of(ss.b, &after);
            printf("box '%s': compacted %" PRIu64 " -> %" PRIu64
                   " bytes (%" PRIu64 " records)\n",
                   a->box, before.file_bytes, after.file_bytes, after.records);
        }
    }
    return end(&ss, rc);
}

static int cmd_stats(const args *a)
{
    session ss;
    names ns = {0};
    int rc = begin_boxes(a, 0, &ss, &ns);
    bg_store *s = ss.s;
    cJSON *arr = a->as_json ? cJSON_CreateArray() : NULL;
    if (!arr && rc == EXIT_OK)
        printf("%-24s %10s %10s %12s %12s %s\n", "box", "records", "frames",
               "bytes", "live bytes", "status");
    int damaged = 0;
    for (size_t i = 0; i < ns.n && rc == EXIT_OK; i++) {
        bg_box *b;
        bg_err err = bg_box_open(s, ns.v[i], 0, &b);
        if (err) {
            rc = report(s, err, "cannot open box");
            break;
        }
        bg_box_stats st;
        bg_box_stats_of(b, &st);
        const bg_box_report *r = bg_box_report_of(b);
        damaged |= r->status == BG_BOX_CORRUPT;
        if (arr) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "box", ns.v[i]);
            cJSON_AddNumberToObject(o, "records", (double)st.records);
            cJSON_AddNumberToObject(o, "frames", (double)st.frames);
            cJSON_AddNumberToObject(o, "bytes", (double)st.file_bytes);
            cJSON_AddNumberToObject(o, "live_bytes", (double)st.live_bytes);
            cJSON_AddStringToObject(o, "status", status_name(r->status));
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%-24s %10" PRIu64 " %10" PRIu64 " %12" PRIu64 " %12" PRIu64
                   " %s\n",
                   ns.v[i], st.records, st.frames, st.file_bytes, st.live_bytes,
                   status_name(r->status));
        }
    }
    return end_boxes(&ss, &ns, arr, rc, damaged ? EXIT_DAMAGED : 0);
}

/* ---- arguments -------------------------------------------------------- */

/* An option: with value it takes the next argument, else it sets flag. */
typedef struct opt {
    const char *name;
    const char **value;
    int *flag;
} opt;

/* Parse argv[from..] against opts (ended by a NULL name) for command who
 * ("" for the store commands). Arguments that are not options go to pos
 * (at most *npos of them; none when pos is NULL). Returns 0, or -1 after
 * saying what is wrong. */
static int parse_opts(int argc, char **argv, int from, const opt *opts,
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
            fail("%s%sunknown option '%s' (see boxguard %s%s--help)", who,
                 who[0] ? ": " : "", argv[i], who, who[0] ? " " : "");
            return -1;
        }
        if (o->flag) {
            *o->flag = 1;
        } else if (i + 1 >= argc) {
            fail("%s%s%s needs a value", who, who[0] ? ": " : "", argv[i]);
            return -1;
        } else {
            *o->value = argv[++i];
        }
    }
    if (npos)
        *npos = n;
    return 0;
}

static int parse_args(int argc, char **argv, args *a)
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
    if (parse_opts(argc, argv, 2, opts, "", NULL, NULL))
        return -1;
    if (!a->store) {
        fail("%s needs --store DIR (see boxguard --help)", a->cmd);
        return -1;
    }
    return 0;
}

static int cmd_rekey(const args *a)
{
    session ss;
    int rc = begin(a, 1, NULL, 0, &ss);
    if (rc)
        return end(&ss, rc);
    bg_rekey_report r;
    bg_err err = bg_rekey_run(ss.s, &r);
    if (err)
        rc = report(ss.s, err, "rekey failed");
    else
        printf("rekeyed: %u encrypted box%s under key %08x (%u re-sealed "
               "now), %u old key%s destroyed\n",
               r.boxes, r.boxes == 1 ? "" : "es", (unsigned)r.key_id,
               r.resealed, r.keys_removed, r.keys_removed == 1 ? "" : "s");
    return end(&ss, rc);
}

/* ---- typeids check ------------------------------------------------------ */

/* GitHub workflow commands: escape data and property values. */
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

static const char typeids_usage[] =
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

static int cmd_typeids(int argc, char **argv)
{
    const char *lock = NULL, *policy = NULL, *format = "text";
    int update = 0, npaths = 0;
    if (argc < 3 || strcmp(argv[2], "check")) {
        fputs(typeids_usage, stderr);
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
    if (parse_opts(argc, argv, 3, opts, "typeids", paths, &npaths)) {
        free(paths);
        return EXIT_USAGE;
    }
    if (strcmp(format, "text") && strcmp(format, "json") &&
        strcmp(format, "github")) {
        fail("typeids: --format must be text, json or github, not '%s'",
             format);
        free(paths);
        return EXIT_USAGE;
    }
    if (!npaths) {
        fail("typeids: name at least one PATH to scan");
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
        char *txt = slurp(files[k], &len);
        if (!txt) {
            if (k == 0 && update && errno == ENOENT)
                continue; /* the first --update-lock creates it */
            fail("typeids: cannot read '%s': %s", files[k], strerror(errno));
            rc = EXIT_USAGE;
            break;
        }
        bg_err err = k == 0
                         ? bg_typeids_load_lock(t, txt, len, why, sizeof why)
                         : bg_typeids_load_policy(t, txt, len, why, sizeof why);
        free(txt);
        if (err) {
            fail("typeids: %s: %s", files[k], why[0] ? why : bg_strerror(err));
            rc = exit_for(err);
        }
    }
    for (int i = 0; i < npaths && rc == EXIT_OK; i++) {
        bg_err err = bg_typeids_scan_path(t, paths[i]);
        if (err == BG_ENOTFOUND) {
            fail("typeids: '%s' does not exist", paths[i]);
            rc = EXIT_USAGE;
        } else if (err) {
            const char *what = bg_typeids_detail(t);
            fail("typeids: cannot scan '%s': %s", paths[i],
                 what[0] ? what : bg_strerror(err));
            rc = EXIT_SYSTEM;
        }
    }
    const bg_typeids_finding *f = NULL;
    size_t n = 0;
    if (rc == EXIT_OK && bg_typeids_check(t, &f, &n)) {
        fail("typeids: out of memory");
        rc = EXIT_SYSTEM;
    }
    if (rc == EXIT_OK && update) {
        char *json = bg_typeids_lock_json(t);
        FILE *out = json ? fopen(lock, "w") : NULL;
        if (!out || fputs(json, out) < 0 || fclose(out) != 0) {
            fail("typeids: cannot write '%s': %s", lock, strerror(errno));
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
            fail("typeids: out of memory writing the report");
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

static const char queue_usage[] =
    "usage: boxguard queue COMMAND --store DIR [options] [--json]\n"
    "  (--json: one JSON object per answer, for every command)\n"
    "  enqueue --idem KEY [--lane normal|emergency] [--op JSON]   (op from\n"
    "          stdin when --op is absent); a key already pending is not\n"
    "          enqueued twice (exit 1, says so)\n"
    "  lease                       print the oldest op, emergency lane first\n"
    "  ack     --id ID             remove a pending op\n"
    "  nack    --id ID --error TEXT  count a failed attempt; past the limit\n"
    "          (--max-attempts, default 5) the op moves to failed_ops\n"
    "  retry   --idem KEY          put a failed op back\n"
    "  purge                       drop failed ops older than 30 days\n"
    "  failed                      list failed ops\n"
    "  stats                       pending, leased, failed counts\n"
    "  rebuild-index               rebuild the index from the pending_ops box\n"
    "  compact                     drop acked ops from the pending_ops box\n"
    "  lock    --owner NAME [--release]  take (or release) the processing\n"
    "          lock; a lock older than 2 minutes is stale and taken over\n";

static void print_op(const bg_queue_op *op, int as_json)
{
    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)op->id);
        cJSON_AddStringToObject(o, "idem", op->idem);
        cJSON_AddStringToObject(o, "lane", op->lane ? "emergency" : "normal");
        cJSON_AddNumberToObject(o, "attempts", op->attempts);
        cJSON_AddNumberToObject(o, "enqueued_ms", (double)op->enqueued_ms);
        if (op->last_error)
            cJSON_AddStringToObject(o, "last_error", op->last_error);
        cJSON *p = cJSON_ParseWithLength(op->payload, op->payload_len);
        if (p)
            cJSON_AddItemToObject(o, "op", p);
        print_json(o);
    } else {
        printf("%" PRIu64 " %s %s attempts=%u%s%s %.*s\n", op->id,
               op->lane ? "emergency" : "normal", op->idem,
               (unsigned)op->attempts, op->last_error ? " error=" : "",
               op->last_error ? op->last_error : "", (int)op->payload_len,
               op->payload);
    }
}

static int print_failed(void *arg, const bg_queue_op *op)
{
    print_op(op, *(int *)arg);
    return 0;
}

static int cmd_queue(int argc, char **argv)
{
    if (argc < 3) {
        fputs(queue_usage, stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[2], *store = NULL, *idem = NULL, *lane = "normal",
               *opjson = NULL, *id_s = NULL, *error = NULL, *owner = NULL,
               *max_s = NULL;
    int as_json = 0, release = 0;
    const opt opts[] = {
        {"--store", &store, NULL},  {"--idem", &idem, NULL},
        {"--lane", &lane, NULL},    {"--op", &opjson, NULL},
        {"--id", &id_s, NULL},      {"--error", &error, NULL},
        {"--owner", &owner, NULL},  {"--max-attempts", &max_s, NULL},
        {"--json", NULL, &as_json}, {"--release", NULL, &release},
        {NULL, NULL, NULL}};
    if (parse_opts(argc, argv, 3, opts, "queue", NULL, NULL))
        return EXIT_USAGE;
    static const char *const subs[] = {
        "enqueue", "lease", "ack",           "nack",    "retry", "purge",
        "failed",  "stats", "rebuild-index", "compact", "lock"};
    int known = 0;
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        known |= !strcmp(sub, subs[i]);
    if (!known) {
        fail("queue: unknown command '%s' (see boxguard queue --help)", sub);
        return EXIT_USAGE;
    }
    if (!store) {
        fail("queue %s needs --store DIR", sub);
        return EXIT_USAGE;
    }
    uint64_t id = 0;
    if ((!strcmp(sub, "ack") || !strcmp(sub, "nack"))) {
        unsigned long long v = 0;
        if (parse_number(id_s, 1, UINT64_MAX, &v)) {
            fail("queue %s needs --id ID (a positive integer)", sub);
            return EXIT_USAGE;
        }
        id = v;
    }
    if ((!strcmp(sub, "enqueue") || !strcmp(sub, "retry")) && !idem) {
        fail("queue %s needs --idem KEY", sub);
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "lock") && !owner) {
        fail("queue lock needs --owner NAME");
        return EXIT_USAGE;
    }
    if (strcmp(lane, "normal") && strcmp(lane, "emergency")) {
        fail("queue: --lane must be normal or emergency, not '%s'", lane);
        return EXIT_USAGE;
    }
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    if (max_s) {
        unsigned long long v;
        if (parse_number(max_s, 1, 1000000, &v)) {
            fail("queue: --max-attempts must be 1..1000000");
            return EXIT_USAGE;
        }
        qo.max_attempts = (uint32_t)v;
    }
    char *owned = NULL;
    size_t oplen = 0;
    if (!strcmp(sub, "enqueue")) {
        int vrc = value_arg(opjson, "op", &owned, &opjson, &oplen);
        if (vrc)
            return vrc;
    }
    args a = {.cmd = sub, .store = store, .creates = !strcmp(sub, "enqueue")};
    int writing = strcmp(sub, "stats") && strcmp(sub, "failed");
    session ss;
    bg_queue *q = NULL;
    int rc = begin(&a, writing, NULL, 0, &ss);
    if (rc) {
        free(owned);
        return end(&ss, rc);
    }
    bg_store *s = ss.s;
    bg_err err = bg_queue_open(s, &qo, &q);
    if (err) {
        rc = report(s, err, "cannot open the queue");
        goto out;
    }
    bg_queue_op op;
    int flag = 0;
    uint64_t n = 0;
    if (!strcmp(sub, "enqueue")) {
        err = bg_queue_enqueue(
            q, strcmp(lane, "emergency") ? BG_LANE_NORMAL : BG_LANE_EMERGENCY,
            idem, opjson, oplen, &id);
        if (err == BG_EEXISTS) {
            if (as_json)
                printf("{\"id\":%" PRIu64 ",\"duplicate\":true}\n", id);
            else
                printf("duplicate: '%s' is already pending as %" PRIu64
                       "; not enqueued\n",
                       idem, id);
            rc = EXIT_NEGATIVE;
            err = 0;
        } else if (!err) {
            if (as_json)
                printf("{\"id\":%" PRIu64 ",\"duplicate\":false}\n", id);
            else
                printf("%" PRIu64 "\n", id);
        }
    } else if (!strcmp(sub, "lease")) {
        err = bg_queue_lease(q, &op);
        if (!err) {
            print_op(&op, as_json);
            bg_queue_op_clear(&op);
        }
    } else if (!strcmp(sub, "ack")) {
        err = bg_queue_ack(q, id);
        if (!err && as_json)
            printf("{\"acked\":%" PRIu64 "}\n", id);
    } else if (!strcmp(sub, "nack")) {
        err = bg_queue_nack(q, id, error ? error : "", &flag);
        if (!err && as_json)
            printf("{\"id\":%" PRIu64 ",\"failed\":%s}\n", id,
                   flag ? "true" : "false");
        else if (!err && flag)
            printf("%" PRIu64 " moved to failed_ops after %u attempts\n", id,
                   (unsigned)qo.max_attempts);
    } else if (!strcmp(sub, "retry")) {
        err = bg_queue_retry(q, idem, &id);
        if (!err && as_json)
            printf("{\"id\":%" PRIu64 "}\n", id);
        else if (!err)
            printf("%" PRIu64 "\n", id);
    } else if (!strcmp(sub, "purge")) {
        err = bg_queue_purge(q, &n);
        if (!err && as_json)
            printf("{\"purged\":%" PRIu64 "}\n", n);
        else if (!err)
            printf("purged %" PRIu64 " failed ops\n", n);
    } else if (!strcmp(sub, "failed")) {
        err = bg_queue_list_failed(q, print_failed, &as_json);
    } else if (!strcmp(sub, "rebuild-index")) {
        err = bg_queue_rebuild(q);
    } else if (!strcmp(sub, "compact")) {
        err = bg_queue_compact(q);
    } else if (!strcmp(sub, "lock")) {
        if (release) {
            err = bg_queue_unlock(q, owner);
        } else {
            err = bg_queue_lock(q, owner, &flag);
            if (!err && as_json)
                printf("{\"locked\":true,\"took_over_stale\":%s}\n",
                       flag ? "true" : "false");
            else if (!err && flag)
                printf("took over a stale lock (audited)\n");
        }
    }
    if (!err && (!strcmp(sub, "stats") || !strcmp(sub, "rebuild-index"))) {
        bg_queue_stats st;
        bg_queue_stats_of(q, &st);
        if (as_json)
            printf("{\"pending\":%" PRIu64 ",\"emergency\":%" PRIu64
                   ",\"normal\":%" PRIu64 ",\"leased\":%" PRIu64
                   ",\"failed\":%" PRIu64 ",\"next_id\":%" PRIu64
                   ",\"oldest_ms\":%" PRId64 "}\n",
                   st.pending[0] + st.pending[1], st.pending[1], st.pending[0],
                   st.leased, st.failed, st.next_id, st.oldest_ms);
        else
            printf("pending %" PRIu64 " (emergency %" PRIu64 ", normal %" PRIu64
                   "), failed %" PRIu64 ", next id %" PRIu64 "\n",
                   st.pending[0] + st.pending[1], st.pending[1], st.pending[0],
                   st.failed, st.next_id);
    }
    if (err)
        rc = report(s, err, "queue");
out:
    bg_queue_close(q);
    free(owned);
    return end(&ss, rc);
}

static const char migrate_usage[] =
    "usage: boxguard migrate --store DIR --plan FILE [--adapters FILE]\n"
    "                        [--dry-run] [--json]\n"
    "       boxguard migrate status --store DIR [--json]\n"
    "       boxguard migrate rollback --store DIR [--force] [--json]\n"
    "\n"
    "  (run)     apply the plan's migrations in order, each journaled in\n"
    "            DIR/migration.journal: backup to DIR/backups/<id>/, dry\n"
    "            run, migrate beside, verify, commit (or roll back). Every\n"
    "            record that fails the dry run is listed and nothing is\n"
    "            changed (exit 1). --adapters: the adapters the migrated\n"
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
        print_json(o);
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
        print_json(o);
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

static int cmd_migrate(int argc, char **argv)
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
    if (parse_opts(argc, argv, from, opts, "migrate", NULL, NULL))
        return EXIT_USAGE;
    if (!store) {
        fail("migrate%s%s needs --store DIR (see boxguard migrate --help)",
             from == 3 ? " " : "", from == 3 ? sub : "");
        return EXIT_USAGE;
    }
    int run = !strcmp(sub, "run");
    if (run && !plan) {
        fail("migrate needs --plan FILE (see boxguard migrate --help)");
        return EXIT_USAGE;
    }
    if (!run && (plan || target || dry)) {
        fail("migrate %s takes no --plan, --adapters or --dry-run", sub);
        return EXIT_USAGE;
    }
    if (force && strcmp(sub, "rollback")) {
        fail("--force belongs to migrate rollback");
        return EXIT_USAGE;
    }
    bg_plan *p = NULL;
    bg_registry *reg = NULL;
    if (run) {
        size_t len;
        char *buf = slurp(plan, &len);
        if (!buf) {
            fail("cannot read plan '%s': %s", plan, strerror(errno));
            return EXIT_USAGE;
        }
        char detail[512];
        bg_err err = bg_plan_parse(buf, len, &p, detail, sizeof detail);
        free(buf);
        if (err) {
            fail("plan '%s': %s", plan, detail[0] ? detail : bg_strerror(err));
            return exit_for(err);
        }
        if (target) {
            int rc = load_adapters(target, &reg);
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
    int rc = begin(&a, run ? !dry : 1, NULL, 0, &ss);
    bg_migrate_report rep;
    bg_migrate_opts mo = {reg, dry, print_failure, &as_json, force};
    bg_err err = 0;
    if (!rc && run) {
        err =
            bg_migrate_run(ss.s, bg_plan_at(p, 0), bg_plan_count(p), &mo, &rep);
        if (!err || rep.failed)
            print_migration(dry ? "dry run" : "migrated", &rep, as_json);
        if (err == BG_ESCHEMA && rep.failed) {
            fail("%s", bg_store_detail(ss.s));
            rc = EXIT_NEGATIVE;
        } else if (err) {
            rc = report(ss.s, err, "migrate");
        }
    } else if (!rc && !strcmp(sub, "rollback")) {
        err = bg_migrate_rollback(ss.s, &mo, &rep);
        if (err)
            rc = report(ss.s, err, "rollback");
        else
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
            rc = report(ss.s, err, "migrate status");
            cJSON_Delete(h.arr);
        } else if (as_json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "version", st.version);
            cJSON_AddStringToObject(o, "resolved", st.resolved);
            cJSON_AddItemToObject(o, "history", h.arr);
            print_json(o);
        } else {
            cJSON_Delete(h.arr);
        }
    }
    bg_plan_free(p);
    bg_registry_free(reg);
    return end(&ss, rc);
}

static int cmd_validate(const args *a)
{
    bg_validate_opts o = {NULL, adapters, 0};
    if (a->schema_version) {
        unsigned long long v;
        if (parse_number(a->schema_version, 1, UINT32_MAX, &v)) {
            fail("--schema-version must be a positive integer, not '%s'",
                 a->schema_version);
            return EXIT_USAGE;
        }
        o.code_version = (uint32_t)v;
    }
    bg_validation r;
    bg_err verr = bg_validate(a->store, &o, &r);
    if (verr) {
        fail("validate: could not check the store: %s", bg_strerror(verr));
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
        print_json(doc);
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

static int cmd_verify(const args *a)
{
    return cmd_verify_or_recover(a, 0);
}

static int cmd_recover(const args *a)
{
    return cmd_verify_or_recover(a, 1);
}

static int cmd_export(const args *a)
{
    bg_export_opts eo = {0};
    if (a->chunk) {
        unsigned long long v;
        if (parse_number(a->chunk, 1, 10000000, &v)) {
            fail("--chunk must be 1..10000000 rows, not '%s'", a->chunk);
            return EXIT_USAGE;
        }
        eo.chunk = v;
    }
    session ss;
    int rc = begin(a, 0, NULL, 0, &ss);
    if (rc)
        return rc;
    bg_export_report r;
    bg_err err = bg_export_sqlite(ss.s, a->db, &eo, &r);
    if (err) {
        rc = report(ss.s, err, "export-sqlite");
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
        print_json(o);
    } else {
        printf("exported %u tables, %" PRIu64 " rows (%" PRIu64
               " copied now, %" PRIu64 " resumed from an earlier run, %u "
               "tables begun again, %u already current) in %" PRIu64
               " transactions; counts match every box; integrity_check ok\n",
               r.tables, r.rows, r.copied, r.resumed, r.restarted, r.skipped,
               r.chunks);
    }
    return end(&ss, rc);
}

/* The options a store command cannot do without. */
enum { NEED_BOX = 1, NEED_KEY = 2, NEED_TYPE = 4, NEED_DB = 8 };
/* Commands that create data, the only ones that may create a store. */
enum { CREATES = 16 };

static const struct {
    const char *name;
    int (*fn)(const args *);
    int needs;
} cmds[] = {{"put", cmd_put, NEED_BOX | NEED_KEY | NEED_TYPE | CREATES},
            {"get", cmd_get, NEED_BOX | NEED_KEY},
            {"del", cmd_del, NEED_BOX | NEED_KEY},
            {"dump", cmd_dump, NEED_BOX},
            {"load", cmd_load, NEED_BOX | CREATES},
            {"verify", cmd_verify, 0},
            {"recover", cmd_recover, 0},
            {"compact", cmd_compact, NEED_BOX},
            {"stats", cmd_stats, 0},
            {"rekey", cmd_rekey, 0},
            {"validate", cmd_validate, 0},
            {"export-sqlite", cmd_export, NEED_DB}};

static int run(const args *a)
{
    const struct {
        int bit;
        const char *opt, *val;
    } req[] = {{NEED_BOX, "--box", a->box},
               {NEED_KEY, "--key", a->key},
               {NEED_TYPE, "--type", a->type},
               {NEED_DB, "--db", a->db}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(a->cmd, cmds[i].name))
            continue;
        for (size_t j = 0; j < sizeof req / sizeof req[0]; j++) {
            if ((cmds[i].needs & req[j].bit) && !req[j].val) {
                fail("%s needs %s (see boxguard --help)", a->cmd, req[j].opt);
                return EXIT_USAGE;
            }
        }
        args c = *a;
        c.creates = (cmds[i].needs & CREATES) != 0;
        return cmds[i].fn(&c);
    }
    return EXIT_USAGE;
}

static int dispatch(int argc, char **argv);

/* Every answer reaches stdout or the command fails: an answer lost to a
 * full disk or a closed pipe never passes for one given (a CI job reading
 * a typeids report would see nothing and exit 0). */
int main(int argc, char **argv)
{
    int rc = dispatch(argc, argv);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc != EXIT_USAGE) {
        fail("cannot write to stdout: %s", strerror(errno));
        rc = EXIT_SYSTEM;
    }
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
            (i == 1 && !strcmp(argv[i], "help"))) {
            fputs(!strcmp(argv[1], "typeids")   ? typeids_usage
                  : !strcmp(argv[1], "queue")   ? queue_usage
                  : !strcmp(argv[1], "migrate") ? migrate_usage
                                                : usage_text,
                  stdout);
            return EXIT_OK;
        }
    }
    if (!strcmp(argv[1], "--version")) {
        puts("boxguard " BOXGUARD_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "typeids"))
        return cmd_typeids(argc, argv);
    if (!strcmp(argv[1], "queue"))
        return cmd_queue(argc, argv);
    if (!strcmp(argv[1], "migrate"))
        return cmd_migrate(argc, argv);
    int known = 0;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(argv[1], cmds[i].name);
    if (!known) {
        fail("unknown command '%s' (see boxguard --help)", argv[1]);
        return EXIT_USAGE;
    }
    args a;
    if (parse_args(argc, argv, &a))
        return EXIT_USAGE;
    if (a.adapters) {
        int rc = load_adapters(a.adapters, &adapters);
        if (rc)
            return rc;
    }
    int rc = run(&a);
    bg_registry_free(adapters);
    return rc;
}
