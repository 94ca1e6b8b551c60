/*
 * The simulated disk: a bg_vfs held in memory that models what survives a
 * power loss, after SQLite's crash-test VFS.
 *
 * Every file has durable content plus a list of unsynced operations (writes
 * and truncates); reads see both. sync() makes a file's content durable.
 * Directory entries (create, rename, unlink, mkdir) are durable only after
 * sync_dir() of their directory. bg_sim_crash() replaces the disk with what
 * a power loss could leave, by the chosen mode:
 *
 *   BG_CRASH_DROP    none of the unsynced writes survive;
 *   BG_CRASH_PREFIX  a random prefix of them survives, in order;
 *   BG_CRASH_SUBSET  a random subset survives, applied in any order;
 *   BG_CRASH_TORN    each unsynced write survives sector by sector (512 B):
 *                    each sector written, left untouched, or garbage.
 *
 * Unsynced directory operations survive as a random prefix in every mode but
 * DROP (file systems journal metadata in order). Everything is deterministic
 * from the seeds given. The sim counts operations and can fail the Nth with
 * an error, or "crash" after the Nth state-changing operation: from then on
 * every operation fails with BG_EIO until bg_sim_crash() is called.
 */
#ifndef BOXGUARD_SIM_H
#define BOXGUARD_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/vfs.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_sim bg_sim;

typedef enum bg_crash_mode {
    BG_CRASH_DROP = 0,
    BG_CRASH_PREFIX = 1,
    BG_CRASH_SUBSET = 2,
    BG_CRASH_TORN = 3
} bg_crash_mode;
#define BG_CRASH_MODES 4

typedef struct bg_sim_stats {
    uint64_t ops;     /* every operation, reads included */
    uint64_t changes; /* state-changing operations: write, truncate, sync,
                         open with create, rename, unlink, mkdir, sync_dir */
    uint64_t allocs;  /* allocations of the disk's own memory */
} bg_sim_stats;

/* Returns a new empty disk (its root directory "" exists), or NULL when out
 * of memory. seed drives bg_vfs.random. */
bg_sim *bg_sim_new(uint64_t seed);
void bg_sim_free(bg_sim *sim);

/* The vfs of this disk; valid until bg_sim_free(). */
const bg_vfs *bg_sim_vfs(bg_sim *sim);

bg_sim_stats bg_sim_get_stats(const bg_sim *sim);

/* Fail the operation whose 1-based count (stats.ops) is n with err (BG_EIO
 * or BG_ENOSPACE); the operation has no effect. 0 disarms. */
void bg_sim_fail_at(bg_sim *sim, uint64_t n, bg_err err);

/* Make the disk's own allocation number n (counted from its creation, as
 * bg_sim_stats.allocs counts them) fail: the operation that needed it
 * returns BG_ENOMEM and leaves the disk as it was. 0 turns it off. */
void bg_sim_fail_alloc_at(bg_sim *sim, uint64_t n);

/* Freeze the disk right after state-changing operation n (stats.changes):
 * every later operation fails with BG_EIO. 0 disarms. */
void bg_sim_crash_after(bg_sim *sim, uint64_t n);

/* Returns 1 once the disk is frozen by bg_sim_crash_after(). */
int bg_sim_frozen(const bg_sim *sim);

/* Power loss: keep the durable state plus what mode lets survive, drop all
 * open handles and locks, unfreeze. Returns 0 or BG_ENOMEM. */
bg_err bg_sim_crash(bg_sim *sim, bg_crash_mode mode, uint64_t seed);

/* Test helpers, outside the operation counts. Read a file's visible content
 * into a buffer from malloc (caller frees). */
bg_err bg_sim_read_file(bg_sim *sim, const char *path, uint8_t **buf,
                        size_t *len);
/* Create or replace a file with durable content; its directory must exist
 * and the entry becomes durable at once. */
bg_err bg_sim_write_file(bg_sim *sim, const char *path, const uint8_t *buf,
                         size_t len);
/* The disk keeps the last bytes of every file, unlinked ones too, as a
 * real disk keeps freed blocks until they are reused. Returns how many
 * files (of the durable, the visible or an unsynced version) hold needle;
 * with unlinked_only, only files no longer named by any entry. */
size_t bg_sim_find_bytes(const bg_sim *sim, const void *needle, size_t n,
                         int unlinked_only);
/* Create a directory, durably. */
bg_err bg_sim_mkdir(bg_sim *sim, const char *path);

#ifdef __cplusplus
}
#endif
#endif
