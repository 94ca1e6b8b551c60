/*
 * The store: a directory holding box files, opened by one process at a time.
 *
 * Everything hangs off a bg_store handle: the vfs, the clock, the allocator,
 * the durability mode and the boxes opened through it. There is no global
 * mutable state, so any number of stores may live in one process.
 */
#ifndef BOXGUARD_STORE_H
#define BOXGUARD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"
#include "boxguard/registry.h"
#include "boxguard/vfs.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_store bg_store;

typedef enum bg_durability {
    BG_DURABILITY_FULL = 0,  /* a write returns after fdatasync (default) */
    BG_DURABILITY_GROUP = 1, /* writes gathered in memory, group_size of
                                them written and synced together (below) */
    BG_DURABILITY_OFF = 2    /* never sync; for tests and benchmarks */
} bg_durability;

/* Allocation hook. All three set, or all NULL for the C library. */
typedef struct bg_allocator {
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} bg_allocator;

/* Clock hook: milliseconds since the Unix epoch. NULL for the real clock. */
typedef struct bg_clock {
    int64_t (*now_ms)(void *ctx);
    void *ctx;
} bg_clock;

/* Progress of long work (load, compact, recover): done of total units. */
typedef void (*bg_progress_fn)(void *ctx, const char *what, uint64_t done,
                               uint64_t total);

typedef struct bg_store_opts {
    const bg_vfs *vfs;        /* NULL: bg_vfs_posix() */
    bg_allocator alloc;       /* zeroed: the C library */
    bg_clock clock;           /* zeroed: the real clock */
    bg_durability durability; /* default BG_DURABILITY_FULL */
    unsigned group_size;      /* writes per sync in GROUP mode; default 100 */
    int read_only;            /* open for reading: no byte is changed */
    int create;               /* create the directory when missing */
    bg_progress_fn progress;  /* optional */
    void *progress_ctx;
    /* The adapters the code registers (copied at open). NULL: use the
     * store's schema lock as it is. */
    const bg_registry *registry;
    /* Replace the schema lock with registry even when an adapter the store
     * knows is missing from it or a typeId changed its name. */
    int accept_schema;
    /* Where bg_store_open writes its detail message when it fails (there
     * is no store to ask). Optional. */
    char *detail;
    size_t detail_len;
    /* Optional: set to 1 when the open met an interrupted erase (see
     * below), else left as it is. */
    int *erase_found;
    /* GROUP mode: 1 syncs each group on a thread of the store's while the
     * next group gathers (the vfs's sync is then called from that thread
     * while this one reads and writes other files), 0 syncs it in the
     * write that closes the group, -1 (the default) is 1 for
     * bg_vfs_posix() and 0 for any other vfs. */
    int sync_thread;
} bg_store_opts;

/* GROUP mode. The frames of a box's writes gather in memory (reads see
 * them) until group_size writes have gathered; the write that closes the
 * group writes them with one write and syncs them. With the sync thread
 * that sync runs while the next group gathers, and the write that closes
 * a group returns once the group before it is durable; without it, once
 * its own group is. bg_store_sync and close write and sync what has
 * gathered. A process that stops loses at most the writes not yet
 * durable, as a power cut would: the last group or two. A sync that fails
 * stops the box: its error comes back once, from the call that found it
 * (the write that closes the next group, bg_store_sync or close) or, when
 * another box's write found it, from this box's next write, sync or
 * close; after that the box answers BG_ESTATE until reopened. */

/* Fill opts with the defaults above. */
void bg_store_opts_init(bg_store_opts *opts);

/* Open the store in directory dir (created, with its parent directory
 * synced, when opts->create is set). Takes the store lock: exclusive for
 * writers, shared for read-only opens. Leftover temporary files of an
 * interrupted compaction or recovery are removed (writers only).
 * The store's schema lock (the adapters it was last opened with, kept in
 * meta.box) is checked against opts->registry: an adapter the store knows
 * that is no longer registered, or a typeId registered under another name,
 * fails the open with BG_ESCHEMA unless opts->accept_schema is set. New or
 * changed adapters are written to the lock (writers only). Records of
 * typeIds other than 0 are then checked against the adapters on every
 * write and read.
 * A store with a durable erase.intent (an erase that a crash cut short,
 * erase.h) is never read: a writer's open finishes the erase and then
 * fails with BG_ENOTFOUND (it creates nothing, even with create), a
 * read-only open fails with BG_ESTATE and changes nothing; both set
 * *opts->erase_found.
 * A writer's open also finishes what a crash interrupted before anything
 * reads a box: a migration whose journal reached its commit point is
 * finished, any other is rolled back (every affected box entirely at the
 * old version or entirely at the new one, the schema version to match),
 * and the outcome is recorded in the audit box.
 * Returns 0 and *out, or:
 *   BG_EINVALID   bad arguments (empty dir, a dir too long for the paths
 *                 below it, group_size 0 in GROUP mode, an allocator with
 *                 some of its functions missing), or dir is not a
 *                 directory;
 *   BG_ESCHEMA    the registry contradicts the schema lock (see above);
 *   BG_ECORRUPT   the schema lock or version in meta.box, or an
 *                 interrupted migration's journal or backups, are
 *                 unreadable (nothing is guessed: the store stays as it is);
 *   BG_EAUTH      finishing a migration needs a key the store lacks;
 *   BG_ENOTFOUND  dir is missing and create is not set, or an interrupted
 *                 erase was just finished;
 *   BG_ESTATE     read-only, and an erase was interrupted;
 *   BG_ELOCKED    another opener holds the lock;
 *   BG_EIO, BG_ENOSPACE, BG_ENOMEM  from the disk or allocator.
 * On error no store is returned and nothing remains allocated; the detail
 * is in opts->detail. */
BG_MUST_CHECK bg_err bg_store_open(const char *dir, const bg_store_opts *opts,
                                   bg_store **out);

/* Sync every open box (GROUP mode leaves writes unsynced until here), close
 * them, release the lock and free the store. The store is freed even when an
 * error is returned (BG_EIO, BG_ENOSPACE: some writes may not be durable). */
bg_err bg_store_close(bg_store *store);

/* Make every write so far durable. Returns 0, BG_EIO or BG_ENOSPACE (the
 * box that failed takes no more writes), or BG_ESTATE for a box an
 * earlier failure stopped. */
BG_MUST_CHECK bg_err bg_store_sync(bg_store *store);

/* The detail message of the last error, with its context (box, key,
 * offset); "" when none. Valid until the next call on the store. */
const char *bg_store_detail(const bg_store *store);

/* The I/O operations this handle has asked of its vfs, every call but
 * close and random: what a test disk counts, so a test can tell that all
 * of the engine's I/O goes through the handle. */
uint64_t bg_store_io_count(const bg_store *store);

/* Calls fn(arg, name) for every box file in the store, by name order
 * (the store's own boxes included); a non-zero return from fn stops early.
 * Returns 0, BG_EIO, or BG_ENOMEM. */
typedef int (*bg_store_box_fn)(void *arg, const char *name);
BG_MUST_CHECK bg_err bg_store_list_boxes(bg_store *store, bg_store_box_fn fn,
                                         void *arg);

/* Free memory that the store handed out (bg_box_get values). */
void bg_store_free(bg_store *store, void *ptr);

#ifdef __cplusplus
}
#endif
#endif
