/*
 * Secure erase of a whole store, for the user who deletes their account:
 * a cryptographic erase (NIST SP 800-88 Purge by destroying the keys) with
 * an overwrite of every file the store made, that survives being killed
 * at any moment, and the scan that proves it complete.
 *
 * bg_erase writes a durable erase.intent first. From then on no read of
 * the store returns data, in this process or a later one: every open of
 * the store finishes the erase before anything else (bg_store_open). Then
 * the data keys are destroyed (overwritten, synced, unlinked, keys/
 * synced), which makes every sealed frame anywhere unreadable at once:
 * boxes, quarantine copies, migration backups. Then every other file the
 * store made is overwritten with zeros, synced and unlinked (boxes, staged
 * and temporary files, quarantine/, backups/, the journal, the lease log,
 * the meta and audit boxes), each directory synced and removed, and last
 * the lock, the intent and the store directory itself.
 *
 * Not covered: on flash storage and copy-on-write file systems an
 * overwrite does not reach the blocks that held earlier versions of a
 * file; there the destruction of the key is what protects sealed data,
 * and plaintext boxes get an overwrite and an unlink only. File names and
 * sizes are metadata of the file system.
 */
#ifndef BOXGUARD_ERASE_H
#define BOXGUARD_ERASE_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"
#include "boxguard/store.h"
#include "boxguard/vfs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BG_ERASE_LIST_MAX 16  /* names kept per list */
#define BG_ERASE_NAME_MAX 256 /* bytes per name, NUL included */

/* Names relative to the store directory (a directory ends in '/'); n
 * counts them all, the first BG_ERASE_LIST_MAX are kept. */
typedef struct bg_erase_list {
    size_t n;
    char names[BG_ERASE_LIST_MAX][BG_ERASE_NAME_MAX];
} bg_erase_list;

/* The verification scan: complete only when all four lists are empty. */
typedef struct bg_erase_scan {
    bg_erase_list open_boxes;      /* boxes still open (another process
                                      holding the store counts) */
    bg_erase_list remaining_files; /* every entry below the directory */
    bg_erase_list remaining_keys;  /* entries of keys/ */
    bg_erase_list existing_boxes;  /* box files, anywhere below */
    int complete;
} bg_erase_scan;

typedef struct bg_erase_report {
    uint64_t keys_destroyed;    /* key files overwritten and removed */
    uint64_t files_removed;     /* other files overwritten and removed */
    uint64_t bytes_overwritten; /* key files included */
    uint64_t dirs_removed;      /* the store directory included */
    bg_erase_list foreign;      /* entries the store did not make (refused) */
    bg_erase_scan scan;         /* after the erase */
    char detail[512];           /* what failed, when the erase returns one */
} bg_erase_report;

/* Erase the store s, which must be open for writing, and close it: s is
 * freed whatever the result, every box handle of it with it. rep (which
 * may not be NULL) tells what was done and holds the scan made after.
 * Returns 0 when the erase finished and its scan is complete, or:
 *   BG_ESTATE     s is read-only (nothing is changed);
 *   BG_EEXISTS    the store directory holds entries the store did not
 *                 make, listed in rep->foreign: nothing is changed;
 *   BG_EIO, BG_ENOSPACE  the disk failed. Before the intent is durable
 *                 the store is as it was; after it, the next open of the
 *                 store finishes the erase (rep->detail says which);
 *   BG_ENOMEM;
 *   BG_ECORRUPT   the erase finished but its scan is not complete.
 * The detail of a failure is in rep->detail. */
BG_MUST_CHECK bg_err bg_erase(bg_store *s, bg_erase_report *rep);

/* The verification scan of the store directory dir on vfs (NULL: posix),
 * read-only: a directory that does not exist is complete, and so is one
 * left empty. Returns 0 with *scan filled, BG_EINVALID for a bad dir,
 * BG_ENOMEM, or BG_EIO when it could not look (a scan that could not run
 * never passes as complete). */
BG_MUST_CHECK bg_err bg_erase_verify(const char *dir, const bg_vfs *vfs,
                                     bg_erase_scan *scan);

#ifdef __cplusplus
}
#endif
#endif
