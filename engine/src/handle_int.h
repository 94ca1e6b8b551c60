/*
 * The store handle, the bottom layer of the core: allocation through the
 * store's allocator, the detail message, paths below the store directory,
 * directory sync, atomic small-file writes and copies, and the thin
 * wrappers through which every module reaches the vfs. Every module may
 * use it; it calls no module.
 */
#ifndef BOXGUARD_HANDLE_INT_H
#define BOXGUARD_HANDLE_INT_H

#include <stdarg.h>

#include "boxguard/store.h"
#include "boxguard/registry.h"
#include "boxguard/vfs.h"
#include "try_int.h"

#define BG_PATH_MAX 1024

/* Files of the store directory that modules of different layers name. */
#define BG__LOCK_FILE    "store.lock"
#define BG__ERASE_INTENT "erase.intent"

typedef struct bg__key bg__key;
typedef struct bg_box bg_box;
typedef struct bg__syncer bg__syncer;

struct bg_store {
    char dir[BG_PATH_MAX];
    const bg_vfs *vfs;
    bg_allocator alloc;
    bg_clock clock;
    bg_durability durability;
    unsigned group_size;
    int read_only;
    bg_progress_fn progress;
    void *progress_ctx;
    bg_file *lockf;
    bg_registry *types; /* effective adapters: the code's, or the lock's */
    bg__key *keys;      /* data keys by generation (keys.c) */
    size_t nkeys;
    int keys_loaded;
    int dir_dirty;  /* entries of dir may not be durable yet */
    bg_box **boxes; /* the table of open boxes: box.c keeps it */
    size_t nboxes, capboxes;
    uint64_t vfs_ops;   /* operations through the bg__vfs_* wrappers */
    bg__syncer *syncer; /* GROUP mode's sync thread (syncer.c), or NULL */
    int ck_portable;    /* the queue's checkpoint converted entry by entry */
    char detail[512];
    char resolved[256]; /* what opening did with a migration journal */
};

void *bg__handle_malloc(bg_store *s, size_t n);
void *bg__handle_realloc(bg_store *s, void *p, size_t n);
void bg__handle_free(bg_store *s, void *p);

/* bg__alloc_grow (alloc_int.h) with the store's allocator. */
BG_MUST_CHECK bg_err bg__handle_grow(bg_store *s, void *arrp, size_t n,
                                     size_t *cap, size_t elem, size_t min);
int64_t bg__handle_now_ms(bg_store *s);

/* Set the detail message and return code. For a failure whose cause the
 * message cannot know (BG_EIO, BG_ENOSPACE, BG_ENOMEM, BG_ELOCKED,
 * BG_EAUTH) the code's text is added (": I/O error"); a refusal's own
 * message is specific and stands alone. */
bg_err bg__handle_fail(bg_store *s, bg_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Return code with the store's detail message set from the format and its
 * arguments when cond holds (in the style of zstd's RETURN_ERROR_IF). */
#define BG_FAIL_IF(cond, s, code, ...)                                         \
    do {                                                                       \
        if (cond)                                                              \
            return bg__handle_fail((s), (code), __VA_ARGS__);                  \
    } while (0)

/* The longest name below the store's directory that the engine makes or
 * opens: a box's staged or temporary file, a key file, the journal,
 * backups/<id>/<box>.box, a directory entry (at most NAME_MAX). The store's
 * directory is shorter than BG_PATH_MAX - BG__NAME_MAX - 1 (refused at
 * open), so each of these paths fits in BG_PATH_MAX bytes: building one
 * cannot fail. */
#define BG__NAME_MAX 255

/* out = dir + "/" + name, for a name of at most BG__NAME_MAX bytes into
 * cap >= BG_PATH_MAX bytes. Anything else is a bug in the caller, which
 * stops the process rather than open the wrong file. */
void bg__handle_path(const bg_store *s, char *out, size_t cap,
                     const char *name);
/* Whether the store holds file name (a path relative to its directory):
 * *yes 1 or 0. Any error but "not there" is returned, with the detail: a
 * check that could not look must not pass as one that found nothing. */
BG_MUST_CHECK bg_err bg__handle_has(bg_store *s, const char *name, int *yes);

/* Sync the store directory if an earlier rename or create in it may not be
 * durable (a failed directory sync, or a process that stopped before one).
 * Called before any write that is acknowledged as durable. */
BG_MUST_CHECK bg_err bg__handle_settle_dir(bg_store *s);

void bg__handle_progress(bg_store *s, const char *what, uint64_t done,
                         uint64_t total);

/* The directory part of path into out ("a/b" -> "a", "/a" -> "/",
 * "a" -> ""). */
void bg__handle_parent(const char *path, char *out, size_t cap);

/* A handle on dir that opens nothing and holds no lock, for looking at a
 * directory that may not be a store (any more): its dir and vfs (NULL:
 * posix) set, read-only, the C allocator. Free it with free(). Returns
 * BG_EINVALID (a dir empty or too long) or BG_ENOMEM. */
BG_MUST_CHECK bg_err bg__handle_bare(const char *dir, const bg_vfs *vfs,
                                     bg_store **out);

/* Overwrite the file at path with zeros over its whole length, sync it,
 * and unlink it (the caller syncs the directory). *bytes grows by the
 * length overwritten. Returns BG_ENOTFOUND when it is not there, or the
 * vfs error (the file may remain, overwritten or not). */
BG_MUST_CHECK bg_err bg__handle_shred(bg_store *s, const char *path,
                                      uint64_t *bytes);

/* Make dir exist durably: mkdir, then sync its parent directory. An
 * existing directory is fine. */
BG_MUST_CHECK bg_err bg__handle_mkdir(bg_store *s, const char *dir);

/* Write buf to a new file at tmp (extra open flags: BG_OPEN_PRIVATE),
 * sync it, rename it to path and sync dir: path holds all of buf or what
 * it held before. Returns the vfs error (tmp removed). */
BG_MUST_CHECK bg_err bg__handle_write_file(bg_store *s, const char *tmp,
                                           const char *path, const char *dir,
                                           const void *buf, size_t len,
                                           int flags);

/* Copy file from to file to (replacing it), synced. */
BG_MUST_CHECK bg_err bg__handle_copy_file(bg_store *s, const char *from,
                                          const char *to);

/* The vfs, reached only through these: each counts the operation in
 * s->vfs_ops (close and random are not counted) and, when it fails with
 * anything but BG_ENOTFOUND or BG_EEXISTS (answers a caller asks for), sets the
 * detail message to what failed and where. A caller with more context sets its
 * own after. */
BG_MUST_CHECK bg_err bg__vfs_open(bg_store *s, const char *path, int flags,
                                  bg_file **f);
void bg__vfs_close(bg_store *s, bg_file *f);
BG_MUST_CHECK bg_err bg__vfs_read(bg_store *s, bg_file *f, uint64_t off,
                                  void *buf, size_t len, size_t *got);
BG_MUST_CHECK bg_err bg__vfs_write(bg_store *s, bg_file *f, uint64_t off,
                                   const void *buf, size_t len);
BG_MUST_CHECK bg_err bg__vfs_sync(bg_store *s, bg_file *f);
BG_MUST_CHECK bg_err bg__vfs_truncate(bg_store *s, bg_file *f, uint64_t size);
BG_MUST_CHECK bg_err bg__vfs_size(bg_store *s, bg_file *f, uint64_t *size);
BG_MUST_CHECK bg_err bg__vfs_lock(bg_store *s, bg_file *f, int exclusive);
BG_MUST_CHECK bg_err bg__vfs_rename(bg_store *s, const char *from,
                                    const char *to);
/* Not marked must-check: removing a leftover is often best effort. */
bg_err bg__vfs_unlink(bg_store *s, const char *path);
BG_MUST_CHECK bg_err bg__vfs_mkdir(bg_store *s, const char *path);
BG_MUST_CHECK bg_err bg__vfs_rmdir(bg_store *s, const char *path);
BG_MUST_CHECK bg_err bg__vfs_list(bg_store *s, const char *dir,
                                  bg_vfs_list_fn fn, void *arg);
BG_MUST_CHECK bg_err bg__vfs_sync_dir(bg_store *s, const char *dir);
BG_MUST_CHECK bg_err bg__vfs_stat(bg_store *s, const char *path, int *is_dir);
void bg__vfs_random(bg_store *s, void *buf, size_t len);
/* The vfs's sync of f alone, for a thread other than the store's owner's:
 * it counts nothing and sets no detail (the owner's thread does both when
 * it learns the result). */
BG_MUST_CHECK bg_err bg__vfs_sync_unowned(const bg_vfs *vfs, bg_file *f);

#endif
