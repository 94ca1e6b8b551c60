/*
 * The bg_vfs seam: every byte boxguard reads or writes goes through a table
 * of function pointers, as SQLite's sqlite3_vfs. Two implementations ship:
 * bg_vfs_posix() (the real disk) and the simulated disk of sim.h, which models
 * what survives a power loss and can fail any operation on request.
 *
 * Paths are plain '/'-separated strings. Every function returns 0 or a
 * negative bg_err; none of them prints, aborts or exits.
 */
#ifndef BOXGUARD_VFS_H
#define BOXGUARD_VFS_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_vfs bg_vfs;
typedef struct bg_file bg_file; /* opaque, owned by the vfs */

enum bg_open_flags {
    BG_OPEN_READ = 0,   /* read only */
    BG_OPEN_WRITE = 1,  /* read and write */
    BG_OPEN_CREATE = 2, /* create when missing (implies WRITE) */
    BG_OPEN_EXCL = 4,   /* with CREATE: fail with BG_EEXISTS if present */
    BG_OPEN_PRIVATE = 8 /* with CREATE: mode 0600 instead of 0644 */
};

/* Called once per directory entry by list(); a non-zero return stops. */
typedef int (*bg_vfs_list_fn)(void *arg, const char *name);

struct bg_vfs {
    void *ctx;
    /* Open path; BG_ENOTFOUND when missing and not creating. */
    bg_err (*open)(const bg_vfs *vfs, const char *path, int flags,
                   bg_file **out);
    /* Close and release any lock held through f. Never fails. */
    void (*close)(const bg_vfs *vfs, bg_file *f);
    /* Read up to len bytes at off; *got < len only at end of file. */
    bg_err (*read)(const bg_vfs *vfs, bg_file *f, uint64_t off, void *buf,
                   size_t len, size_t *got);
    /* Write len bytes at off (extending the file as needed). */
    bg_err (*write)(const bg_vfs *vfs, bg_file *f, uint64_t off,
                    const void *buf, size_t len);
    /* Make the file's content and size durable (fdatasync). */
    bg_err (*sync)(const bg_vfs *vfs, bg_file *f);
    bg_err (*truncate)(const bg_vfs *vfs, bg_file *f, uint64_t size);
    bg_err (*size)(const bg_vfs *vfs, bg_file *f, uint64_t *size);
    /* Non-blocking advisory lock; BG_ELOCKED when held elsewhere. */
    bg_err (*lock)(const bg_vfs *vfs, bg_file *f, int exclusive);
    /* Atomic rename within one directory; durable after sync_dir. */
    bg_err (*rename)(const bg_vfs *vfs, const char *from, const char *to);
    bg_err (*unlink)(const bg_vfs *vfs, const char *path);
    /* BG_EEXISTS when the directory is already there. */
    bg_err (*mkdir)(const bg_vfs *vfs, const char *path);
    /* Calls fn for every entry of dir except "." and "..". */
    bg_err (*list)(const bg_vfs *vfs, const char *dir, bg_vfs_list_fn fn,
                   void *arg);
    /* Make the directory's entries (creates, renames, unlinks) durable. */
    bg_err (*sync_dir)(const bg_vfs *vfs, const char *dir);
    /* BG_ENOTFOUND when path does not exist; *is_dir may be NULL. */
    bg_err (*stat)(const bg_vfs *vfs, const char *path, int *is_dir);
    /* Fill buf with random bytes (box ids, nonces). */
    void (*random)(const bg_vfs *vfs, void *buf, size_t len);
    /* Remove an empty directory; durable after sync_dir of its parent.
     * BG_ENOTFOUND when missing, BG_EEXISTS when it still has entries. */
    bg_err (*rmdir)(const bg_vfs *vfs, const char *path);
};

/* The real disk: pread/pwrite, fdatasync, fsync of directories, flock. The
 * returned table is static and stateless; safe to share. */
const bg_vfs *bg_vfs_posix(void);

#ifdef __cplusplus
}
#endif
#endif
