/*
 * The destruction of a secure erase. Which entries below a store directory
 * the store made is told by name and place alone (the boxes, the lock, the
 * journal, the lease log, keys/, quarantine/, backups/<id>/), so that an
 * erase never touches a file it did not make. The intent is written first
 * and durably; after it the key files go (with the key gone, every sealed
 * frame anywhere is unreadable: a cryptographic erase), then every other
 * file is overwritten with zeros, synced and unlinked, each directory
 * synced before it is removed, and last the lock, the intent and the store
 * directory itself. Every step skips what is already gone, so a wipe cut
 * short by a crash resumes from the start and finishes.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_int.h"
#include "keys_int.h"
#include "lease_log_int.h"
#include "wipe_int.h"

#define QUARANTINE_DIR "quarantine"
#define WALK_DEPTH     4

static int ends_with(const char *s, const char *sfx)
{
    size_t n = strlen(s), m = strlen(sfx);
    return n > m && !strcmp(s + n - m, sfx);
}

/* Whether the store made rel: by its place and name. */
static int ours(const char *rel, int is_dir)
{
    const char *slash = strchr(rel, '/');
    if (!slash) {
        if (is_dir)
            return !strcmp(rel, BG__KEYS_DIR) || !strcmp(rel, QUARANTINE_DIR) ||
                   !strcmp(rel, BG__BACKUPS_DIR);
        return !strcmp(rel, BG__LOCK_FILE) || !strcmp(rel, BG__ERASE_INTENT) ||
               !strcmp(rel, BG__JOURNAL) || !strcmp(rel, BG__LEASE_FILE) ||
               !strcmp(rel, BG__QUEUE_INDEX) || ends_with(rel, ".box") ||
               ends_with(rel, ".tmp");
    }
    size_t top = (size_t)(slash - rel);
    const char *rest = slash + 1, *next = strchr(rest, '/');
    if (top == strlen(BG__KEYS_DIR) && !strncmp(rel, BG__KEYS_DIR, top))
        return !next && !is_dir &&
               (ends_with(rest, ".key") || ends_with(rest, ".tmp"));
    if (top == strlen(QUARANTINE_DIR) && !strncmp(rel, QUARANTINE_DIR, top))
        return !next && !is_dir &&
               (ends_with(rest, ".bak") || ends_with(rest, ".tmp"));
    if (top == strlen(BG__BACKUPS_DIR) && !strncmp(rel, BG__BACKUPS_DIR, top)) {
        if (!next)
            return is_dir; /* backups/<migration id>/ */
        return !strchr(next + 1, '/') && !is_dir &&
               (ends_with(next + 1, ".box") || ends_with(next + 1, ".tmp"));
    }
    return 0;
}

/* ---- the entries of one directory ------------------------------------- */

typedef struct entries {
    bg_store *s;
    char (*v)[BG__NAME_MAX + 1];
    size_t n, cap;
    int nomem;
} entries;

static int collect(void *arg, const char *name)
{
    entries *e = arg;
    if (strlen(name) > BG__NAME_MAX)
        return 0; /* no vfs hands out such a name */
    if (bg__handle_grow(e->s, &e->v, e->n, &e->cap, sizeof *e->v, 8)) {
        e->nomem = 1;
        return 1;
    }
    snprintf(e->v[e->n++], sizeof *e->v, "%s", name);
    return 0;
}

/* The names in the directory rel ("" the store's), collected before any
 * is touched. */
static bg_err list_rel(bg_store *s, const char *rel, entries *e)
{
    char dir[BG_PATH_MAX];
    if (rel[0])
        bg__handle_path(s, dir, sizeof dir, rel);
    else
        snprintf(dir, sizeof dir, "%s", s->dir);
    *e = (entries){.s = s};
    bg_err err = bg__vfs_list(s, dir, collect, e);
    if (!err && e->nomem)
        err = BG_ENOMEM;
    if (err)
        bg__handle_free(s, e->v);
    return err;
}

/* child = rel/name; 0, or 1 when it does not fit (never the store's). */
static int join(char *out, size_t cap, const char *rel, const char *name)
{
    int n = rel[0] ? snprintf(out, cap, "%s/%s", rel, name)
                   : snprintf(out, cap, "%s", name);
    return n < 0 || (size_t)n >= cap;
}

static bg_err stat_rel(bg_store *s, const char *rel, int *is_dir)
{
    char path[BG_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", s->dir, rel) >= (int)sizeof path)
        return BG_ENOTFOUND;
    return bg__vfs_stat(s, path, is_dir);
}

/* ---- walking ---------------------------------------------------------- */

static bg_err walk(bg_store *s, const char *rel, int depth, bg__wipe_fn fn,
                   void *arg, int *stop)
{
    entries e;
    BG_TRY(list_rel(s, rel, &e));
    bg_err err = 0;
    for (size_t i = 0; i < e.n && !err && !*stop; i++) {
        char child[BG_PATH_MAX];
        int is_dir = 0;
        if (join(child, sizeof child, rel, e.v[i]))
            continue;
        err = stat_rel(s, child, &is_dir);
        if (err == BG_ENOTFOUND) {
            err = 0; /* gone since the listing */
            continue;
        }
        if (err)
            break;
        if (fn(arg, child, is_dir, ours(child, is_dir))) {
            *stop = 1;
            break;
        }
        if (is_dir && depth < WALK_DEPTH)
            err = walk(s, child, depth + 1, fn, arg, stop);
    }
    bg__handle_free(s, e.v);
    return err;
}

bg_err bg__wipe_walk(bg_store *s, bg__wipe_fn fn, void *arg)
{
    int stop = 0;
    bg_err err = walk(s, "", 1, fn, arg, &stop);
    if (err == BG_ENOTFOUND)
        return err;
    BG_FAIL_IF(err, s, err, "cannot list the files of store '%s'", s->dir);
    return 0;
}

/* ---- the intent ------------------------------------------------------- */

bg_err bg__wipe_intent(bg_store *s)
{
    char path[BG_PATH_MAX], tmp[BG_PATH_MAX], body[96];
    bg__handle_path(s, path, sizeof path, BG__ERASE_INTENT);
    bg__handle_path(s, tmp, sizeof tmp, BG__ERASE_INTENT ".tmp");
    int n = snprintf(body, sizeof body,
                     "{\"event\":\"erase\",\"started_at\":%lld}\n",
                     (long long)bg__handle_now_ms(s));
    bg_err err =
        bg__handle_write_file(s, tmp, path, s->dir, body, (size_t)n, 0);
    BG_FAIL_IF(err, s, err, "cannot write '%s'", path);
    return 0;
}

/* ---- the wipe --------------------------------------------------------- */

/* Shred and remove everything the store made in the directory rel, then
 * sync it and, unless it is the store's own, remove it. The lock and the
 * intent are left for last (see bg__wipe_run). */
static bg_err wipe_dir(bg_store *s, const char *rel, bg__wipe_counts *c)
{
    char dir[BG_PATH_MAX];
    if (rel[0])
        bg__handle_path(s, dir, sizeof dir, rel);
    else
        snprintf(dir, sizeof dir, "%s", s->dir);
    entries e;
    bg_err err = list_rel(s, rel, &e);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    int is_keys = !strcmp(rel, BG__KEYS_DIR);
    for (size_t i = 0; i < e.n && !err; i++) {
        char child[BG_PATH_MAX], path[BG_PATH_MAX];
        int is_dir = 0;
        if (join(child, sizeof child, rel, e.v[i]))
            continue;
        if (!rel[0] &&
            (!strcmp(child, BG__LOCK_FILE) || !strcmp(child, BG__ERASE_INTENT)))
            continue;
        err = stat_rel(s, child, &is_dir);
        if (err == BG_ENOTFOUND) {
            err = 0;
            continue;
        }
        if (err || !ours(child, is_dir))
            continue;
        if (is_dir) {
            err = wipe_dir(s, child, c);
            continue;
        }
        bg__handle_path(s, path, sizeof path, child);
        err = bg__handle_shred(s, path, &c->bytes);
        if (err == BG_ENOTFOUND)
            err = 0;
        else if (!err && is_keys)
            c->keys++;
        else if (!err)
            c->files++;
    }
    bg__handle_free(s, e.v);
    if (!err)
        err = bg__vfs_sync_dir(s, dir);
    if (!err && rel[0]) {
        err = bg__vfs_rmdir(s, dir);
        if (!err)
            c->dirs++;
        else if (err == BG_ENOTFOUND || err == BG_EEXISTS)
            err = 0; /* gone, or holding files the store did not make */
    }
    return err;
}

static bg_err shred_top(bg_store *s, const char *name, bg__wipe_counts *c)
{
    char path[BG_PATH_MAX];
    bg__handle_path(s, path, sizeof path, name);
    bg_err err = bg__handle_shred(s, path, &c->bytes);
    if (!err)
        c->files++;
    if (err == BG_ENOTFOUND)
        err = 0;
    if (!err)
        err = bg__vfs_sync_dir(s, s->dir);
    return err;
}

bg_err bg__wipe_run(bg_store *s, bg__wipe_counts *c)
{
    /* The keys first, durably: from here no sealed frame can be read. */
    bg_err err = wipe_dir(s, BG__KEYS_DIR, c);
    if (!err)
        err = bg__vfs_sync_dir(s, s->dir);
    if (!err)
        err = wipe_dir(s, "", c);
    /* The lock before the intent, each removal durable before the next: a
     * crash between them leaves the intent, and the next open resumes. */
    if (!err)
        err = shred_top(s, BG__LOCK_FILE, c);
    if (!err)
        err = shred_top(s, BG__ERASE_INTENT, c);
    if (!err) {
        err = bg__vfs_rmdir(s, s->dir);
        if (!err) {
            char parent[BG_PATH_MAX];
            c->dirs++;
            bg__handle_parent(s->dir, parent, sizeof parent);
            err = bg__vfs_sync_dir(s, parent);
        } else if (err == BG_EEXISTS) {
            err = 0; /* files the store did not make keep it */
        }
    }
    BG_FAIL_IF(err, s, err,
               "erase of store '%s' stopped; the next open "
               "finishes it",
               s->dir);
    return 0;
}

/* ---- a restore's directories ------------------------------------------ */

bg_err bg__wipe_dir(bg_store *s, const char *dir)
{
    bg_store *b;
    BG_TRY(bg__handle_bare(dir, s->vfs, &b));
    int is_dir = 0;
    bg__wipe_counts c = {0};
    bg_err err = bg__vfs_stat(b, b->dir, &is_dir);
    if (!err && is_dir)
        err = bg__wipe_run(b, &c);
    else if (err == BG_ENOTFOUND)
        err = 0;
    if (err)
        bg__handle_fail(s, err, "%s", b->detail);
    free(b);
    return err;
}

static bg_err exists(bg_store *s, const char *path, int *yes)
{
    bg_err err = bg__vfs_stat(s, path, NULL);
    *yes = err == 0;
    return err == BG_ENOTFOUND ? 0 : err;
}

bg_err bg__wipe_settle_restore(bg_store *s)
{
    char fresh[BG_PATH_MAX], old[BG_PATH_MAX], parent[BG_PATH_MAX];
    if (snprintf(fresh, sizeof fresh, "%s" BG__RESTORE_NEW, s->dir) >=
            (int)sizeof fresh ||
        snprintf(old, sizeof old, "%s" BG__RESTORE_OLD, s->dir) >=
            (int)sizeof old)
        return 0; /* no restore can have made these */
    int has_dir, has_new, has_old;
    BG_TRY(exists(s, s->dir, &has_dir));
    BG_TRY(exists(s, fresh, &has_new));
    BG_TRY(exists(s, old, &has_old));
    if (!has_new && !has_old)
        return 0;
    if (s->read_only) {
        BG_FAIL_IF(!has_dir, s, BG_ESTATE,
                   "store '%s' is in the middle of a restore's swap: a "
                   "writable open finishes it",
                   s->dir);
        return 0; /* the store there is whole; what is beside it waits */
    }
    bg__handle_parent(s->dir, parent, sizeof parent);
    bg_err err = 0;
    if (has_old && !has_dir && has_new) {
        err = bg__vfs_rename(s, fresh, s->dir);
        if (!err)
            err = bg__vfs_sync_dir(s, parent);
        has_new = 0;
    } else if (has_old && !has_dir) {
        /* Only the old one: put it back. */
        err = bg__vfs_rename(s, old, s->dir);
        if (!err)
            err = bg__vfs_sync_dir(s, parent);
        has_old = 0;
    }
    if (!err && has_old)
        err = bg__wipe_dir(s, old);
    if (!err && has_new)
        err = bg__wipe_dir(s, fresh);
    BG_FAIL_IF(err, s, err, "cannot finish the restore of store '%s'", s->dir);
    return 0;
}
