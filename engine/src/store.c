/*
 * The store handle: directory, lock, hooks, detail message, and the table of
 * open boxes. Box files themselves are box.c's business.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "alloc_int.h"
#include "json_int.h"
#include "journal_int.h"
#include "keys_int.h"
#include "store_int.h"

#define LOCK_NAME "store.lock"

void bg_store_opts_init(bg_store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->durability = BG_DURABILITY_FULL;
    o->group_size = 100;
}

void *bg__store_malloc(bg_store *s, size_t n)
{
    return bg__alloc_malloc(&s->alloc, n);
}

void *bg__store_realloc(bg_store *s, void *p, size_t n)
{
    return bg__alloc_realloc(&s->alloc, p, n);
}

bg_err bg__store_grow(bg_store *s, void *arrp, size_t n, size_t *cap,
                      size_t elem, size_t min)
{
    return bg__alloc_grow(&s->alloc, arrp, n, cap, elem, min);
}

void bg__store_free(bg_store *s, void *p)
{
    bg__alloc_free(&s->alloc, p);
}

void bg_store_free(bg_store *s, void *p)
{
    bg__store_free(s, p);
}

int64_t bg__store_now_ms(bg_store *s)
{
    if (s->clock.now_ms)
        return s->clock.now_ms(s->clock.ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bg_err bg__store_fail(bg_store *s, bg_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->detail, sizeof s->detail, fmt, ap);
    va_end(ap);
    if (code < 0 && n >= 0 && (size_t)n < sizeof s->detail)
        snprintf(s->detail + n, sizeof s->detail - (size_t)n, ": %s",
                 bg_strerror(code));
    return code;
}

_Static_assert(BG_BOX_NAME_MAX + sizeof ".rb.box.tmp" <= BG__NAME_MAX,
               "box files fit below the store");
_Static_assert(sizeof "backups//.box" + BG_MIGRATION_ID_MAX + BG_BOX_NAME_MAX <=
                   BG__NAME_MAX,
               "backups fit below the store");

void bg__store_path(const bg_store *s, char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, name);
    if (n < 0 || (size_t)n >= cap) /* GCOVR_EXCL_BR_LINE: see BG__NAME_MAX */
        abort();
}

bg_err bg__store_has(bg_store *s, const char *name, int *yes)
{
    char path[BG_PATH_MAX];
    *yes = 0;
    if (strlen(name) > BG__NAME_MAX) /* names from records: any length */
        return bg__store_fail(s, BG_EINVALID, "path of '%.80s...' too long",
                              name);
    bg__store_path(s, path, sizeof path, name);
    bg_err err = s->vfs->stat(s->vfs, path, NULL);
    if (err == BG_ENOTFOUND)
        return 0;
    if (err)
        return bg__store_fail(s, err, "cannot look for '%s'", path);
    *yes = 1;
    return 0;
}

void bg__store_progress(bg_store *s, const char *what, uint64_t done,
                        uint64_t total)
{
    if (s->progress)
        s->progress(s->progress_ctx, what, done, total);
}

bg_err bg__store_settle_dir(bg_store *s)
{
    if (!s->dir_dirty)
        return 0;
    bg_err err = s->vfs->sync_dir(s->vfs, s->dir);
    if (err)
        return bg__store_fail(s, err, "cannot sync directory '%s'", s->dir);
    s->dir_dirty = 0;
    return 0;
}

const char *bg_store_detail(const bg_store *s)
{
    return s->detail;
}

bg_err bg__store_add_box(bg_store *s, bg_box *b)
{
    BG_TRY(bg__store_grow(s, &s->boxes, s->nboxes, &s->capboxes,
                          sizeof *s->boxes, 8));
    s->boxes[s->nboxes++] = b;
    return 0;
}

void bg__store_remove_box(bg_store *s, bg_box *b)
{
    for (size_t i = 0; i < s->nboxes; i++) {
        if (s->boxes[i] == b) {
            s->boxes[i] = s->boxes[--s->nboxes];
            return;
        }
    }
}

bg_box *bg__store_find_box(bg_store *s, const char *name)
{
    for (size_t i = 0; i < s->nboxes; i++)
        if (!strcmp(bg__box_name(s->boxes[i]), name))
            return s->boxes[i];
    return NULL;
}

bg_err bg__store_mkdir(bg_store *s, const char *dir)
{
    bg_err err = s->vfs->mkdir(s->vfs, dir);
    if (err == BG_EEXISTS)
        return 0;
    if (err)
        return bg__store_fail(s, err, "cannot create directory '%s'", dir);
    char parent[BG_PATH_MAX];
    const char *slash = strrchr(dir, '/');
    size_t n = slash ? (size_t)(slash - dir) : 0;
    memcpy(parent, dir, n);
    parent[n] = '\0';
    if (n == 0 && slash)
        strcpy(parent, "/"); /* "" is the current directory to the vfs */
    err = s->vfs->sync_dir(s->vfs, parent);
    if (err)
        return bg__store_fail(s, err, "cannot sync directory '%s'", parent);
    return 0;
}

typedef struct sweep_ctx {
    bg_store *s;
    char (*names)[BG_PATH_MAX];
    size_t n, cap;
    int nomem;
} sweep_ctx;

static int collect_tmp(void *arg, const char *name)
{
    sweep_ctx *c = arg;
    size_t len = strlen(name);
    if (len < 4 || strcmp(name + len - 4, ".tmp") || len >= BG_PATH_MAX)
        return 0;
    if (bg__store_grow(c->s, &c->names, c->n, &c->cap, sizeof *c->names, 4)) {
        c->nomem = 1;
        return 1;
    }
    memcpy(c->names[c->n++], name, len + 1);
    return 0;
}

/* Remove *.tmp files: the halves of a compaction or recovery that a crash
 * interrupted before its rename. The renamed file is the truth. */
static bg_err sweep_tmp(bg_store *s)
{
    sweep_ctx c = {.s = s};
    bg_err err = s->vfs->list(s->vfs, s->dir, collect_tmp, &c);
    if (!err && c.nomem)
        err = BG_ENOMEM;
    for (size_t i = 0; i < c.n && !err; i++) {
        char path[BG_PATH_MAX];
        if (strlen(c.names[i]) > BG__NAME_MAX)
            continue; /* not a name this store made */
        bg__store_path(s, path, sizeof path, c.names[i]);
        err = s->vfs->unlink(s->vfs, path);
        if (err == BG_ENOTFOUND)
            err = 0;
    }
    if (!err && c.n)
        err = s->vfs->sync_dir(s->vfs, s->dir);
    bg__store_free(s, c.names);
    if (err)
        return bg__store_fail(s, err, "cannot remove temporary files in '%s'",
                              s->dir);
    return 0;
}

static bg_err registry_clone(const bg_registry *src, bg_registry **out)
{
    bg_registry *r = bg_registry_new();
    if (!r)
        return BG_ENOMEM;
    for (size_t i = 0; i < bg_registry_count(src); i++) {
        bg_err err = bg_registry_add(r, bg_registry_at(src, i));
        if (err) {
            bg_registry_free(r);
            return err;
        }
    }
    *out = r;
    return 0;
}

#define SCHEMA_KEY "schema_lock"

size_t bg__schema_compare(const bg_registry *lock, const bg_registry *code,
                          char *first, size_t cap)
{
    size_t findings = 0;
    for (size_t i = 0; i < bg_registry_count(lock); i++) {
        const bg_adapter *l = bg_registry_at(lock, i);
        const bg_adapter *c = bg_registry_find(code, l->type_id);
        const bg_adapter *moved =
            c ? NULL : bg_registry_find_name(code, l->name);
        if (c && !strcmp(c->name, l->name))
            continue;
        if (findings++)
            continue;
        if (c)
            snprintf(first, cap,
                     "typeId %u is registered as '%s' but the store knows it "
                     "as '%s'",
                     (unsigned)l->type_id, c->name, l->name);
        else if (moved)
            snprintf(first, cap,
                     "adapter '%s' moved from typeId %u to typeId %u", l->name,
                     (unsigned)l->type_id, (unsigned)moved->type_id);
        else
            snprintf(first, cap,
                     "adapter '%s' (typeId %u) is in the store's schema lock "
                     "but is not registered",
                     l->name, (unsigned)l->type_id);
    }
    /* A name on another typeId whose old typeId the code still has (under
     * another name): that move was not counted above. */
    for (size_t i = 0; i < bg_registry_count(code); i++) {
        const bg_adapter *c = bg_registry_at(code, i);
        const bg_adapter *l = bg_registry_find_name(lock, c->name);
        if (l && l->type_id != c->type_id &&
            bg_registry_find(code, l->type_id) && !findings++)
            snprintf(first, cap,
                     "adapter '%s' moved from typeId %u to typeId %u", c->name,
                     (unsigned)l->type_id, (unsigned)c->type_id);
    }
    return findings;
}

/* Load the schema lock from meta.box, compare it with the code's adapters,
 * settle the effective registry, and write the lock when it changed. */
static bg_err schema_open(bg_store *s, const bg_store_opts *o)
{
    bg_registry_free(s->types); /* a finished migration may have set it */
    s->types = NULL;
    bg_registry *lock = bg_registry_new();
    if (!lock)
        return BG_ENOMEM;
    bg_box *meta = NULL;
    char *v = NULL, *code_json = NULL, *lock_json = NULL;
    bg_err err = bg_box_open(s, BG__META_BOX, 0, &meta);
    if (err == BG_ENOTFOUND) {
        err = 0;
        meta = NULL;
    }
    if (err)
        goto out;
    if (meta) {
        uint32_t t;
        size_t n;
        err = bg_box_get(meta, SCHEMA_KEY, strlen(SCHEMA_KEY), &t, &v, &n);
        if (err == BG_ENOTFOUND)
            err = 0;
        else if (!err && (err = bg_registry_add_json(lock, v, n)))
            err = bg__store_fail(
                s, err == BG_ENOMEM ? err : BG_ECORRUPT,
                "store '%s': the schema lock in meta.box is unreadable: %s",
                s->dir, bg_registry_detail(lock));
        if (err)
            goto out;
    }
    if (!o->registry) {
        s->types = lock;
        lock = NULL;
        goto out;
    }
    const bg_registry *code = o->registry;
    char first[256] = "";
    size_t findings = bg__schema_compare(lock, code, first, sizeof first);
    if (findings && !o->accept_schema) {
        err = bg__store_fail(s, BG_ESCHEMA,
                             "store '%s': %s (%zu finding%s against the schema "
                             "lock; never accepted silently)",
                             s->dir, first, findings, findings > 1 ? "s" : "");
        goto out;
    }
    BG_TRY_OUT(registry_clone(code, &s->types));
    if (s->read_only)
        goto out;
    code_json = bg_registry_to_json(code);
    lock_json = bg_registry_to_json(lock);
    if (!code_json || !lock_json) {
        err = BG_ENOMEM;
        goto out;
    }
    if (strcmp(code_json, lock_json) || !meta) {
        if (!meta)
            BG_TRY_OUT(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
        BG_TRY_OUT(bg__box_put_internal(meta, SCHEMA_KEY, code_json,
                                        strlen(code_json)));
    }
out:
    bg_registry_free(lock);
    bg__store_free(s, v);
    free(code_json);
    free(lock_json);
    return err;
}

bg_err bg_store_open(const char *dir, const bg_store_opts *opts, bg_store **out)
{
    BG__JSON_SCOPE(opts ? &opts->alloc : NULL);
    bg_store_opts defaults;
    if (!opts) {
        bg_store_opts_init(&defaults);
        opts = &defaults;
    }
    *out = NULL;
    size_t dlen = dir ? strlen(dir) : 0;
    if (dlen == 0 || dlen >= BG_PATH_MAX - BG__NAME_MAX - 1)
        return BG_EINVALID;
    if (opts->durability == BG_DURABILITY_GROUP && opts->group_size == 0)
        return BG_EINVALID;
    if ((opts->alloc.malloc != NULL) != (opts->alloc.free != NULL) ||
        (opts->alloc.malloc != NULL) != (opts->alloc.realloc != NULL))
        return BG_EINVALID;

    bg_store *s = opts->alloc.malloc
                      ? opts->alloc.malloc(opts->alloc.ctx, sizeof *s)
                      : malloc(sizeof *s);
    if (!s)
        return BG_ENOMEM;
    memset(s, 0, sizeof *s);
    memcpy(s->dir, dir, dlen + 1);
    while (dlen > 1 && s->dir[dlen - 1] == '/')
        s->dir[--dlen] = '\0';
    s->vfs = opts->vfs ? opts->vfs : bg_vfs_posix();
    s->alloc = opts->alloc;
    s->clock = opts->clock;
    s->durability = opts->durability;
    s->group_size = opts->group_size ? opts->group_size : 100;
    s->read_only = opts->read_only;
    s->progress = opts->progress;
    s->progress_ctx = opts->progress_ctx;

    bg_err err = 0;
    int is_dir = 0;
    err = s->vfs->stat(s->vfs, s->dir, &is_dir);
    if (err == BG_ENOTFOUND && opts->create && !opts->read_only)
        err = bg__store_mkdir(s, s->dir), is_dir = 1;
    if (err) {
        if (err == BG_ENOTFOUND)
            bg__store_fail(s, err, "store '%s' does not exist", s->dir);
        goto out;
    }
    if (!is_dir) {
        err = bg__store_fail(s, BG_EINVALID, "store '%s' is not a directory",
                             s->dir);
        goto out;
    }

    char lpath[BG_PATH_MAX];
    bg__store_path(s, lpath, sizeof lpath, LOCK_NAME);
    err = s->vfs->open(s->vfs, lpath,
                       s->read_only ? BG_OPEN_READ : BG_OPEN_CREATE, &s->lockf);
    if (err == BG_ENOTFOUND && s->read_only) {
        /* Never written by a writer: nothing to exclude, nothing to create
         * (a read-only open changes no byte). */
        err = 0;
        s->lockf = NULL;
    } else if (err) {
        bg__store_fail(s, err, "cannot open lock file '%s'", lpath);
        goto out;
    } else {
        err = s->vfs->lock(s->vfs, s->lockf, !s->read_only);
        if (err) {
            bg__store_fail(s, err, "store '%s' is in use by another opener",
                           s->dir);
            goto out;
        }
    }
    if (!s->read_only) {
        BG_TRY_OUT(sweep_tmp(s));
        /* A previous opener may have renamed or created files here and
         * stopped before syncing the directory. */
        s->dir_dirty = 1;
        /* A migration interrupted by a crash is finished or rolled back
         * before anything reads a box. */
        BG_TRY_OUT(bg__journal_resolve(s));
    }
    BG_TRY_OUT(schema_open(s, opts));
out:
    if (err) {
        /* The caller has no handle to read the detail from: hand it over
         * through opts, then free everything. */
        if (opts->detail && opts->detail_len)
            snprintf(opts->detail, opts->detail_len, "%s",
                     s->detail[0] ? s->detail : bg_strerror(err));
        while (s->nboxes)
            (void)bg__box_close(s->boxes[s->nboxes - 1]);
        bg__store_free(s, s->boxes);
        bg_registry_free(s->types);
        bg__keys_free(s);
        if (s->lockf)
            s->vfs->close(s->vfs, s->lockf);
        bg__store_free(s, s);
        return err;
    }
    *out = s;
    return 0;
}

bg_err bg_store_sync(bg_store *s)
{
    BG__JSON_SCOPE(&s->alloc);
    for (size_t i = 0; i < s->nboxes; i++)
        BG_TRY(bg_box_sync(s->boxes[i]));
    return 0;
}

bg_err bg_store_close(bg_store *s)
{
    BG__JSON_SCOPE(s ? &s->alloc : NULL);
    if (!s)
        return 0;
    bg_err first = 0;
    while (s->nboxes) {
        bg_err err = bg__box_close(s->boxes[s->nboxes - 1]);
        if (err && !first)
            first = err;
    }
    bg__store_free(s, s->boxes);
    bg_registry_free(s->types);
    bg__keys_free(s);
    if (s->lockf)
        s->vfs->close(s->vfs, s->lockf);
    bg__store_free(s, s);
    return first;
}

typedef struct list_ctx {
    bg_store *s;
    bg__names *out;
    size_t cap;
    int nomem;
} list_ctx;

static int collect_box(void *arg, const char *name)
{
    list_ctx *c = arg;
    size_t len = strlen(name);
    if (len < 5 || len - 4 > BG_BOX_NAME_MAX || strcmp(name + len - 4, ".box"))
        return 0;
    char base[BG_BOX_NAME_MAX + 1];
    memcpy(base, name, len - 4);
    base[len - 4] = '\0';
    if (bg__box_check_name(base))
        return 0;
    bg__names *ns = c->out;
    if (bg__store_grow(c->s, &ns->v, ns->n, &c->cap, sizeof *ns->v, 8)) {
        c->nomem = 1;
        return 1;
    }
    memcpy(ns->v[ns->n++], base, len - 3);
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

bg_err bg__store_box_names(bg_store *s, bg__names *out)
{
    memset(out, 0, sizeof *out);
    list_ctx c = {.s = s, .out = out};
    bg_err err = s->vfs->list(s->vfs, s->dir, collect_box, &c);
    if (!err && c.nomem)
        err = BG_ENOMEM;
    if (err) {
        bg__names_free(s, out);
        return bg__store_fail(s, err, "cannot list store '%s'", s->dir);
    }
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, cmp_name);
    return 0;
}

void bg__names_free(bg_store *s, bg__names *ns)
{
    bg__store_free(s, ns->v);
    ns->v = NULL;
    ns->n = 0;
}

bg_err bg_store_list_boxes(bg_store *s, bg_store_box_fn fn, void *arg)
{
    BG__JSON_SCOPE(&s->alloc);
    bg__names ns;
    BG_TRY(bg__store_box_names(s, &ns));
    for (size_t i = 0; i < ns.n && !fn(arg, ns.v[i]); i++) {
    }
    bg__names_free(s, &ns);
    return 0;
}

bg_err bg__store_write_file(bg_store *s, const char *tmp, const char *path,
                            const char *dir, const void *buf, size_t len,
                            int flags)
{
    const bg_vfs *v = s->vfs;
    bg_file *f = NULL;
    bg_err err = v->unlink(v, tmp);
    if (err == BG_ENOTFOUND)
        err = 0;
    if (!err)
        err = v->open(v, tmp, BG_OPEN_CREATE | BG_OPEN_EXCL | flags, &f);
    if (!err)
        err = v->write(v, f, 0, buf, len);
    if (!err)
        err = v->sync(v, f);
    if (f)
        v->close(v, f);
    if (!err)
        err = v->rename(v, tmp, path);
    if (!err)
        err = v->sync_dir(v, dir);
    if (err)
        (void)v->unlink(v, tmp);
    return err;
}

bg_err bg__store_copy_file(bg_store *s, const char *from, const char *to)
{
    const bg_vfs *v = s->vfs;
    bg_file *in = NULL, *out = NULL;
    uint8_t *buf = NULL;
    bg_err err = v->unlink(v, to);
    if (err && err != BG_ENOTFOUND)
        goto out;
    BG_TRY_OUT(v->open(v, from, BG_OPEN_READ, &in));
    BG_TRY_OUT(v->open(v, to, BG_OPEN_CREATE | BG_OPEN_EXCL, &out));
    enum { COPY_CHUNK = 1 << 20 };
    buf = bg__store_malloc(s, COPY_CHUNK);
    if (!buf) {
        err = BG_ENOMEM;
        goto out;
    }
    for (uint64_t off = 0;;) {
        size_t got;
        BG_TRY_OUT(v->read(v, in, off, buf, COPY_CHUNK, &got));
        if (!got)
            break;
        BG_TRY_OUT(v->write(v, out, off, buf, got));
        off += got;
    }
    err = v->sync(v, out);
out:
    bg__store_free(s, buf);
    if (in)
        v->close(v, in);
    if (out)
        v->close(v, out);
    if (err)
        return bg__store_fail(s, err, "cannot copy '%s' to '%s'", from, to);
    return 0;
}

#define AUDIT_BOX "audit"

bg_err bg__store_audit(bg_store *s, const char *key, cJSON *rec)
{
    char *txt = bg__json_print(rec);
    if (!txt)
        return BG_ENOMEM;
    bg_box *audit;
    bg_err err = bg_box_open(s, AUDIT_BOX, BG_BOX_CREATE, &audit);
    if (!err)
        err = bg_box_put(audit, key, strlen(key), 0, txt, strlen(txt));
    if (!err)
        err = bg_box_sync(audit);
    cJSON_free(txt);
    return err;
}

#define VERSION_KEY "schema_version"

bg_err bg__store_schema_version(bg_store *s, uint32_t *version)
{
    *version = 1;
    bg_box *meta;
    bg_err err = bg_box_open(s, BG__META_BOX, 0, &meta);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    uint32_t t;
    char *v;
    size_t n;
    err = bg_box_get(meta, VERSION_KEY, strlen(VERSION_KEY), &t, &v, &n);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    cJSON *doc;
    err = bg__json_parse(v, n, &doc);
    if (err == BG_ENOMEM) {
        bg__store_free(s, v);
        return err;
    }
    err = 0;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(doc, "version");
    if (cJSON_IsNumber(ver) && ver->valuedouble >= 1 &&
        ver->valuedouble <= 4294967295.0 &&
        ver->valuedouble == (double)(uint32_t)ver->valuedouble)
        *version = (uint32_t)ver->valuedouble;
    else
        err = bg__store_fail(s, BG_ECORRUPT,
                             "store '%s': the schema version in meta.box is "
                             "unreadable",
                             s->dir);
    cJSON_Delete(doc);
    bg__store_free(s, v);
    return err;
}

bg_err bg__store_set_schema(bg_store *s, uint32_t version, const char *lock)
{
    char ver[48];
    snprintf(ver, sizeof ver, "{\"version\":%u}", (unsigned)version);
    bg_write w[2] = {
        {0, VERSION_KEY, strlen(VERSION_KEY), 0, ver, strlen(ver)},
        {0, SCHEMA_KEY, strlen(SCHEMA_KEY), 0, lock, lock ? strlen(lock) : 0},
    };
    bg_box *meta;
    BG_TRY(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
    BG_TRY(bg__box_write_trusted(meta, w, lock ? 2 : 1));
    return bg_box_sync(meta);
}
