/*
 * Opening and closing a store, the top of the core: the directory, the
 * store lock, temporary files a crash left, an interrupted migration
 * finished or rolled back (journal.c), the schema lock settled (meta.c);
 * and closing every open box. The only module that knows the journal runs
 * at open.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "box_int.h"
#include "handle_int.h"
#include "journal_int.h"
#include "json_int.h"
#include "keys_int.h"
#include "meta_int.h"
#include "syncer_int.h"
#include "wipe_int.h"

void bg_store_opts_init(bg_store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->durability = BG_DURABILITY_FULL;
    o->group_size = 100;
    o->sync_thread = -1;
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
    if (bg__handle_grow(c->s, &c->names, c->n, &c->cap, sizeof *c->names, 4)) {
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
    bg_err err = bg__vfs_list(s, s->dir, collect_tmp, &c);
    if (!err && c.nomem)
        err = BG_ENOMEM;
    for (size_t i = 0; i < c.n && !err; i++) {
        char path[BG_PATH_MAX];
        if (strlen(c.names[i]) > BG__NAME_MAX)
            continue; /* not a name this store made */
        bg__handle_path(s, path, sizeof path, c.names[i]);
        err = bg__vfs_unlink(s, path);
        if (err == BG_ENOTFOUND)
            err = 0;
    }
    if (!err && c.n)
        err = bg__vfs_sync_dir(s, s->dir);
    bg__handle_free(s, c.names);
    BG_FAIL_IF(err, s, err, "cannot remove temporary files in '%s'", s->dir);
    return 0;
}

/* An open that found erase.intent: a writer finishes the erase, and then
 * there is no store; a reader may not look. */
static bg_err finish_erase(bg_store *s)
{
    if (s->read_only)
        return bg__handle_fail(s, BG_ESTATE,
                               "store '%s' is being erased (an interrupted "
                               "erase left erase.intent): nothing is read; "
                               "a writable open finishes the erase",
                               s->dir);
    bg__wipe_counts c = {0};
    BG_TRY(bg__wipe_run(s, &c));
    return bg__handle_fail(s, BG_ENOTFOUND,
                           "store '%s': finished an interrupted erase (%llu "
                           "key file(s) destroyed, %llu file(s) overwritten "
                           "and removed); the store does not exist",
                           s->dir, (unsigned long long)c.keys,
                           (unsigned long long)c.files);
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
    if (s->durability == BG_DURABILITY_GROUP && !s->read_only &&
        (opts->sync_thread > 0 ||
         (opts->sync_thread < 0 && s->vfs == bg_vfs_posix())))
        err = bg__syncer_start(s);
    if (err)
        goto out;

    /* A restore's swap a crash cut short is finished first: the store is
     * then entirely the old one or entirely the restored one. */
    err = bg__wipe_settle_restore(s);
    if (err)
        goto out;
    int is_dir = 0;
    err = bg__vfs_stat(s, s->dir, &is_dir);
    if (err == BG_ENOTFOUND && opts->create && !opts->read_only)
        err = bg__handle_mkdir(s, s->dir), is_dir = 1;
    if (err) {
        if (err == BG_ENOTFOUND)
            bg__handle_fail(s, err, "store '%s' does not exist", s->dir);
        goto out;
    }
    if (!is_dir) {
        err = bg__handle_fail(s, BG_EINVALID, "store '%s' is not a directory",
                              s->dir);
        goto out;
    }

    char lpath[BG_PATH_MAX];
    bg__handle_path(s, lpath, sizeof lpath, BG__LOCK_FILE);
    err = bg__vfs_open(s, lpath, s->read_only ? BG_OPEN_READ : BG_OPEN_CREATE,
                       &s->lockf);
    if (err == BG_ENOTFOUND && s->read_only) {
        /* Never written by a writer: nothing to exclude, nothing to create
         * (a read-only open changes no byte). */
        err = 0;
        s->lockf = NULL;
    } else if (err) {
        bg__handle_fail(s, err, "cannot open lock file '%s'", lpath);
        goto out;
    } else {
        err = bg__vfs_lock(s, s->lockf, !s->read_only);
        if (err) {
            bg__handle_fail(s, err, "store '%s' is in use by another opener",
                            s->dir);
            goto out;
        }
    }
    /* An erase whose intent is durable comes before everything: no byte
     * of the store is read, the erase is finished. */
    int erasing;
    BG_TRY_OUT(bg__handle_has(s, BG__ERASE_INTENT, &erasing));
    if (erasing) {
        if (opts->erase_found)
            *opts->erase_found = 1;
        err = finish_erase(s);
        goto out;
    }
    if (!s->read_only) {
        BG_TRY_OUT(sweep_tmp(s));
        /* A previous opener may have renamed or created files here and
         * stopped before syncing the directory. */
        s->dir_dirty = 1;
        /* A migration interrupted by a crash is finished or rolled back
         * before anything reads a box. */
        BG_TRY_OUT(bg__journal_resolve(s));
        /* The directory is synced here, once, so that the first durable
         * write does not pay for it. */
        if (s->durability != BG_DURABILITY_OFF)
            BG_TRY_OUT(bg__handle_settle_dir(s));
    }
    BG_TRY_OUT(bg__meta_open_schema(s, opts));
out:
    if (err) {
        /* The caller has no handle to read the detail from: hand it over
         * through opts, then free everything. */
        if (opts->detail && opts->detail_len)
            snprintf(opts->detail, opts->detail_len, "%s",
                     s->detail[0] ? s->detail : bg_strerror(err));
        while (s->nboxes)
            (void)bg__box_close(s->boxes[s->nboxes - 1]);
        bg__syncer_stop(s);
        bg__handle_free(s, s->boxes);
        bg_registry_free(s->types);
        bg__keys_free(s);
        if (s->lockf)
            bg__vfs_close(s, s->lockf);
        bg__handle_free(s, s);
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
    bg__syncer_stop(s);
    bg__handle_free(s, s->boxes);
    bg_registry_free(s->types);
    bg__keys_free(s);
    if (s->lockf)
        bg__vfs_close(s, s->lockf);
    bg__handle_free(s, s);
    return first;
}

bg_err bg_store_list_boxes(bg_store *s, bg_store_box_fn fn, void *arg)
{
    BG__JSON_SCOPE(&s->alloc);
    bg__box_list ns;
    BG_TRY(bg__box_list_names(s, &ns));
    for (size_t i = 0; i < ns.n && !fn(arg, ns.v[i]); i++) {
    }
    bg__box_list_free(s, &ns);
    return 0;
}
