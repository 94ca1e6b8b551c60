/*
 * Internals of the store shared by the modules built on it: the handle,
 * allocation and vfs wrappers that record context in the
 * store's detail message.
 */
#ifndef BOXGUARD_STORE_INT_H
#define BOXGUARD_STORE_INT_H

#include <stdarg.h>

#include "boxguard/box.h"
#include "boxguard/store.h"
#include "try_int.h"

#define BG_PATH_MAX 1024

typedef struct bg__key bg__key;

/* A frame as a scan hands it to an external index (bg__box_open_ext). */
typedef struct bg__frame_info {
    const char *key;
    uint16_t klen;
    int del;
    uint32_t type;
    uint64_t seq, off;
    uint32_t flen;
} bg__frame_info;

/* fi == NULL: forget everything (the scan starts over). */
typedef bg_err (*bg__box_ext_fn)(void *arg, const bg__frame_info *fi);

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
    int dir_dirty; /* entries of dir may not be durable yet */
    bg_box **boxes;
    size_t nboxes, capboxes;
    char detail[512];
    char resolved[256]; /* what opening did with a migration journal */
};

void *bg__store_malloc(bg_store *s, size_t n);
void *bg__store_realloc(bg_store *s, void *p, size_t n);
void bg__store_free(bg_store *s, void *p);

/* bg__alloc_grow (alloc_int.h) with the store's allocator. */
BG_MUST_CHECK bg_err bg__store_grow(bg_store *s, void *arrp, size_t n,
                                    size_t *cap, size_t elem, size_t min);
int64_t bg__store_now_ms(bg_store *s);

/* Set the detail message and return code (when code < 0). */
bg_err bg__store_fail(bg_store *s, bg_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
void bg__store_path(const bg_store *s, char *out, size_t cap, const char *name);
/* Whether the store holds file name (a path relative to its directory):
 * *yes 1 or 0. Any error but "not there" is returned, with the detail: a
 * check that could not look must not pass as one that found nothing. */
BG_MUST_CHECK bg_err bg__store_has(bg_store *s, const char *name, int *yes);

/* Sync the store directory if an earlier rename or create in it may not be
 * durable (a failed directory sync, or a process that stopped before one).
 * Called before any write that is acknowledged as durable. */
BG_MUST_CHECK bg_err bg__store_settle_dir(bg_store *s);

void bg__store_progress(bg_store *s, const char *what, uint64_t done,
                        uint64_t total);

/* Box registry of the store (box.c owns the boxes). */
BG_MUST_CHECK bg_err bg__store_add_box(bg_store *s, bg_box *b);
void bg__store_remove_box(bg_store *s, bg_box *b);
bg_box *bg__store_find_box(bg_store *s, const char *name);

/* The reserved box that holds the schema lock and store settings. */
#define BG__META_BOX "meta"

/* Boxes with an external index (the queue keeps its own, smaller one):
 * frames go to fn on open and rescan; writes do not touch the box's index
 * and are not validated again (the owner built them from validated
 * parts); values are read by offset. */
BG_MUST_CHECK bg_err bg__box_open_ext(bg_store *s, const char *name, int flags,
                                      bg__box_ext_fn fn, void *arg,
                                      bg_box **out);
BG_MUST_CHECK bg_err bg__box_append_ext(bg_box *b, const bg_write *w, size_t n,
                                        uint64_t *offs, uint32_t *flens);
BG_MUST_CHECK bg_err bg__box_read_at(bg_box *b, uint64_t off, uint32_t flen,
                                     char **value, size_t *vlen);
BG_MUST_CHECK bg_err bg__box_rescan(bg_box *b);
/* Compact a box with an external index: write the frames at offs, in the
 * order given (their sequence numbers are renumbered to keep rising), then
 * trailer (a put written as is, may be NULL), to a new file, verified, and
 * swap it in like bg_box_compact.
 * *swapped tells whether the new file is the box now, and then new_offs
 * holds their new offsets: also when the final directory sync failed,
 * which is returned (the next durable write syncs the directory first). */
BG_MUST_CHECK bg_err bg__box_rewrite_ext(bg_box *b, const uint64_t *offs,
                                         const uint32_t *flens, size_t n,
                                         uint64_t *new_offs,
                                         const bg_write *trailer, int *swapped);
/* The end of the box file: where the next frame goes. */
uint64_t bg__box_end(const bg_box *b);

/* The key of the frame at off (at most 64 bytes), unverified: for owners
 * that keep their index in keys. */
BG_MUST_CHECK bg_err bg__box_read_key_at(bg_box *b, uint64_t off, char *key,
                                         size_t cap, size_t *klen);

/* The store's box names, sorted. */
typedef struct bg__names {
    char (*v)[BG_BOX_NAME_MAX + 1];
    size_t n;
} bg__names;
BG_MUST_CHECK bg_err bg__store_box_names(bg_store *s, bg__names *out);
void bg__names_free(bg_store *s, bg__names *ns);

/* Compare the adapters of a schema lock with the code's: the number of
 * findings (a locked adapter missing or renamed, a name moved), the first
 * one described in first. */
size_t bg__schema_compare(const bg_registry *lock, const bg_registry *code,
                          char *first, size_t cap);

/* A box whose file is <name><suffix>.box, beside box name: migrations
 * write the new version of a box there and rename it into place. The
 * suffix holds a '.', so the store never lists it as a box. */
BG_MUST_CHECK bg_err bg__box_open_staged(bg_store *s, const char *name,
                                         const char *suffix, int flags,
                                         bg_box **out);
/* bg_box_iterate without the typeId check: a migration reads records its
 * target adapters may no longer know. */
BG_MUST_CHECK bg_err bg__box_iterate_raw(bg_box *b, bg_box_iter_fn fn,
                                         void *arg);
BG_MUST_CHECK bg_err bg__box_get_raw(bg_box *b, const void *key, size_t key_len,
                                     uint32_t *type, char **value,
                                     size_t *value_len);
/* fn(arg, typeId) for every live record of b (from the index). */
void bg__box_each_type(const bg_box *b, void (*fn)(void *, uint32_t),
                       void *arg);
/* bg_box_write_batch without validation: the caller checked every write
 * against the adapters it answers to. */
BG_MUST_CHECK bg_err bg__box_write_trusted(bg_box *b, const bg_write *w,
                                           size_t n);

/* Make dir exist durably: mkdir, then sync its parent directory. An
 * existing directory is fine. */
BG_MUST_CHECK bg_err bg__store_mkdir(bg_store *s, const char *dir);

/* Write buf to a new file at tmp (extra open flags: BG_OPEN_PRIVATE),
 * sync it, rename it to path and sync dir: path holds all of buf or what
 * it held before. Returns the vfs error (tmp removed). */
BG_MUST_CHECK bg_err bg__store_write_file(bg_store *s, const char *tmp,
                                          const char *path, const char *dir,
                                          const void *buf, size_t len,
                                          int flags);

/* Copy file from to file to (replacing it), synced. */
BG_MUST_CHECK bg_err bg__store_copy_file(bg_store *s, const char *from,
                                         const char *to);

/* Write record rec under key in the audit box (created when missing),
 * durably. */
struct cJSON;
BG_MUST_CHECK bg_err bg__store_audit(bg_store *s, const char *key,
                                     struct cJSON *rec);

/* The schema version kept in meta.box (1 when none was ever written).
 * BG_ECORRUPT when it is there but unreadable. */
BG_MUST_CHECK bg_err bg__store_schema_version(bg_store *s, uint32_t *version);
/* Write the schema version, and the schema lock (a registry manifest; NULL
 * leaves it) with it in one batch, durably. */
BG_MUST_CHECK bg_err bg__store_set_schema(bg_store *s, uint32_t version,
                                          const char *lock);

/* Implemented by box.c for the store. */
BG_MUST_CHECK bg_err bg__box_put_internal(bg_box *b, const char *key,
                                          const char *value, size_t len);
bg_err bg__box_close(bg_box *b);
const char *bg__box_name(const bg_box *b);
BG_MUST_CHECK bg_err bg__box_check_name(const char *name);

#endif
