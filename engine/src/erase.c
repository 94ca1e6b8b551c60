/*
 * Secure erase (erase.h): the refusal to touch a directory holding files
 * the store did not make, the intent, the wipe (wipe.c) and the
 * verification scan that follows it. The open of a store finishes an
 * erase that a crash cut short (store.c, through wipe.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/erase.h"
#include "box_int.h"
#include "handle_int.h"
#include "keys_int.h"
#include "wipe_int.h"

static void list_add(bg_erase_list *l, const char *name, int is_dir)
{
    if (l->n < BG_ERASE_LIST_MAX)
        snprintf(l->names[l->n], sizeof l->names[l->n], "%s%s", name,
                 is_dir ? "/" : "");
    l->n++;
}

static int add_foreign(void *arg, const char *rel, int is_dir, int ours)
{
    if (!ours)
        list_add(arg, rel, is_dir);
    return 0;
}

static int ends_with(const char *s, const char *sfx)
{
    size_t n = strlen(s), m = strlen(sfx);
    return n >= m && !strcmp(s + n - m, sfx);
}

static int add_remaining(void *arg, const char *rel, int is_dir, int ours)
{
    (void)ours;
    bg_erase_scan *sc = arg;
    list_add(&sc->remaining_files, rel, is_dir);
    if (!strncmp(rel, "keys/", 5))
        list_add(&sc->remaining_keys, rel, is_dir);
    if (!is_dir && ends_with(rel, ".box"))
        list_add(&sc->existing_boxes, rel, 0);
    return 0;
}

/* Another opener of the store holds its lock: its boxes are open. */
static bg_err lock_held(bg_store *s, int *held)
{
    char path[BG_PATH_MAX];
    bg_file *f;
    *held = 0;
    bg__handle_path(s, path, sizeof path, BG__LOCK_FILE);
    bg_err err = bg__vfs_open(s, path, BG_OPEN_READ, &f);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    err = bg__vfs_lock(s, f, 0);
    bg__vfs_close(s, f);
    if (err == BG_ELOCKED) {
        *held = 1;
        err = 0;
    }
    return err;
}

bg_err bg_erase_verify(const char *dir, const bg_vfs *vfs, bg_erase_scan *scan)
{
    memset(scan, 0, sizeof *scan);
    bg_store *s;
    BG_TRY(bg__handle_bare(dir, vfs, &s));
    int held = 0;
    bg_err err = lock_held(s, &held);
    if (!err && held)
        list_add(&scan->open_boxes,
                 BG__LOCK_FILE " (the store is open in another process)", 0);
    if (!err)
        err = bg__wipe_walk(s, add_remaining, scan);
    if (err == BG_ENOTFOUND)
        err = 0; /* no directory: nothing remains */
    free(s);
    if (err)
        return err == BG_ENOMEM ? err : BG_EIO;
    scan->complete = !scan->open_boxes.n && !scan->remaining_files.n &&
                     !scan->remaining_keys.n && !scan->existing_boxes.n;
    return 0;
}

static bg_err finish(bg_store *s, bg_erase_report *rep, bg_err err)
{
    char dir[BG_PATH_MAX];
    const bg_vfs *vfs = s->vfs;
    snprintf(dir, sizeof dir, "%s", s->dir);
    if (err)
        snprintf(rep->detail, sizeof rep->detail, "%s", s->detail);
    (void)bg_store_close(s);
    bg_err verr = bg_erase_verify(dir, vfs, &rep->scan);
    if (!err && verr) {
        snprintf(rep->detail, sizeof rep->detail,
                 "store '%.400s': the erase ran but its scan could not: %s",
                 dir, bg_strerror(verr));
        err = verr;
    } else if (!err && !rep->scan.complete) {
        snprintf(rep->detail, sizeof rep->detail,
                 "store '%.400s': the erase ran but the scan is not complete "
                 "(%zu file(s) remain)",
                 dir, rep->scan.remaining_files.n);
        err = BG_ECORRUPT;
    }
    return err;
}

bg_err bg_erase(bg_store *s, bg_erase_report *rep)
{
    memset(rep, 0, sizeof *rep);
    if (s->read_only)
        return finish(s, rep,
                      bg__handle_fail(s, BG_ESTATE,
                                      "store '%s' is open read-only: nothing "
                                      "was erased",
                                      s->dir));
    bg_err err = bg__wipe_walk(s, add_foreign, &rep->foreign);
    if (err)
        return finish(s, rep, err);
    if (rep->foreign.n)
        return finish(
            s, rep,
            bg__handle_fail(s, BG_EEXISTS,
                            "store '%s' holds %zu entr%s it did not make "
                            "(first: '%s'): nothing was erased",
                            s->dir, rep->foreign.n,
                            rep->foreign.n == 1 ? "y" : "ies",
                            rep->foreign.names[0]));
    /* The handles go first: nothing may read or write past the intent. */
    while (s->nboxes)
        (void)bg__box_close(s->boxes[s->nboxes - 1]);
    bg__keys_free(s);
    err = bg__wipe_intent(s);
    if (err)
        return finish(s, rep, err);
    bg__wipe_counts c = {0};
    err = bg__wipe_run(s, &c);
    rep->keys_destroyed = c.keys;
    rep->files_removed = c.files;
    rep->bytes_overwritten = c.bytes;
    rep->dirs_removed = c.dirs;
    return finish(s, rep, err);
}
