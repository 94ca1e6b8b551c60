/*
 * The destruction of a secure erase (wipe.c): which entries below a store
 * directory the store made, the durable intent, and the work that follows
 * it. For the erase itself (erase.c) and for the store's open, which
 * finishes an erase a crash interrupted.
 */
#ifndef BOXGUARD_WIPE_INT_H
#define BOXGUARD_WIPE_INT_H

#include <stdint.h>

#include "handle_int.h"

/* What a wipe did. */
typedef struct bg__wipe_counts {
    uint64_t keys;  /* key files overwritten and removed */
    uint64_t files; /* other files overwritten and removed */
    uint64_t bytes; /* bytes overwritten, key files included */
    uint64_t dirs;  /* directories removed, the store's own included */
} bg__wipe_counts;

/* Called for every entry below the store directory, parents before their
 * entries: rel is the path relative to the store directory, ours whether
 * the store made it (by its name and place). A non-zero return stops. */
typedef int (*bg__wipe_fn)(void *arg, const char *rel, int is_dir, int ours);

/* Walk the store directory (every directory, the store's or not, to a
 * depth of 4). Returns 0, BG_ENOTFOUND when the directory is missing, or
 * the vfs error with the detail set. */
BG_MUST_CHECK bg_err bg__wipe_walk(bg_store *s, bg__wipe_fn fn, void *arg);

/* Write erase.intent durably (beside, synced, renamed, the directory
 * synced). From then on the store is being erased: every open finishes
 * the erase, no read returns data. */
BG_MUST_CHECK bg_err bg__wipe_intent(bg_store *s);

/* The erase after its intent: the key files first (overwritten, synced,
 * unlinked, keys/ synced and removed), then every other file the store
 * made (boxes, staged and temporary files, quarantine/, backups/, the
 * journal, the lease log), then the lock, the intent and the store
 * directory itself. Entries the store did not make are left where they
 * are (the directory then stays). Idempotent: what is gone already is
 * skipped, so it resumes anywhere. Returns 0 or the vfs error. */
BG_MUST_CHECK bg_err bg__wipe_run(bg_store *s, bg__wipe_counts *c);

/* The directories a restore of the store in dir works with, beside it:
 * dir.restore (the restored store while it is built) and dir.restore-old
 * (the store it replaces, until the swap is durable). */
#define BG__RESTORE_NEW ".restore"
#define BG__RESTORE_OLD ".restore-old"

/* Wipe the store directory dir on vfs (a bare handle: no lock) as
 * bg__wipe_run does. BG_ENOTFOUND-free: a missing dir is done. */
BG_MUST_CHECK bg_err bg__wipe_dir(bg_store *s, const char *dir);

/* At open, before the store's directory is looked at: finish the swap of
 * a restore that a crash cut short. dir.restore-old present: the restored
 * store was complete and synced before the first rename, so the swap goes
 * forward (dir.restore renamed to dir if it is still beside it, the parent
 * synced) and the old store is wiped. Only dir.restore present: the build
 * was cut, so it is wiped. A read-only open changes nothing and fails with
 * BG_ESTATE when dir is missing in the middle of a swap. Returns 0 or the
 * vfs error. */
BG_MUST_CHECK bg_err bg__wipe_settle_restore(bg_store *s);

#endif
