/*
 * Encrypted backups of a whole store.
 *
 * A backup file is a clear header followed by a libsodium secretstream
 * (XChaCha20-Poly1305) of 64 KiB chunks, the last one tagged final. The
 * stream holds a zstd-compressed tar archive (libarchive): one JSON-lines
 * dump per box, boxes/NAME.jsonl, in the form of `boxguard dump`, and last
 * backup_meta.json, the manifest: format, schema version, schema lock,
 * each box's name, record count, whether it was sealed and the SHA-256 of
 * its dump, the time it was made (the store's clock) and the boxguard
 * version. The key comes from a passphrase (Argon2id, its salt and limits
 * in the header; readers refuse limits above a cap) or is a raw 32-byte
 * key. The header carries a key check (a keyed BLAKE2b of the header under
 * the derived key) so a wrong key is told from damage, and an XXH3 of
 * itself so damage to it is told from a wrong key. Every chunk has the
 * header as additional data. The README gives the layout byte by byte.
 *
 * Refused, each with its own error and the chunk or member named: a wrong
 * passphrase or key (BG_EAUTH), a damaged header, a chunk that does not
 * authenticate (flipped, dropped, duplicated, reordered, spliced from
 * another backup), a stream that ends before its final chunk or goes on
 * after it, an archive or manifest that does not match its dumps
 * (BG_ECORRUPT).
 */
#ifndef BOXGUARD_BACKUP_H
#define BOXGUARD_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/box.h"
#include "boxguard/err.h"
#include "boxguard/store.h"
#include "boxguard/vfs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BG_BACKUP_KEY_BYTES 32
#define BG_BACKUP_CHUNK     65536 /* plaintext bytes per chunk */
#define BG_BACKUP_BOXES_MAX 256   /* boxes a backup may hold to be restored */

typedef enum bg_backup_kdf {
    BG_BACKUP_RAW_KEY = 0,   /* secret: 32 bytes */
    BG_BACKUP_PASSPHRASE = 1 /* secret: a passphrase, through Argon2id */
} bg_backup_kdf;

typedef struct bg_backup_key {
    bg_backup_kdf kdf;
    const uint8_t *secret;
    size_t len;
    /* Argon2id limits for a new backup (0: libsodium's "interactive").
     * Readers accept at most crypto_pwhash's "sensitive" ones. */
    uint64_t opslimit, memlimit;
} bg_backup_key;

typedef struct bg_backup_box {
    char name[BG_BOX_NAME_MAX + 1];
    uint64_t records;
    int sealed;
    char sha256[65]; /* of its dump, hex */
} bg_backup_box;

/* What a backup holds (its manifest). */
typedef struct bg_backup_info {
    uint32_t format;
    uint32_t schema_version;
    int64_t created_at; /* ms */
    char version[32];   /* boxguard's */
    size_t nboxes;      /* all of them; the first BG_BACKUP_BOXES_MAX kept */
    bg_backup_box boxes[BG_BACKUP_BOXES_MAX];
    uint64_t records;    /* over every box */
    uint64_t lost_bytes; /* salvaged boxes: bytes that did not verify */
    uint64_t chunks;     /* of the stream */
    uint64_t file_bytes; /* of the backup file */
} bg_backup_info;

/* Back up every box of store s (the store's own boxes too) to path,
 * the store held (its lock) throughout, so the backup is one consistent
 * snapshot. A damaged box is refused unless salvage is set: then every
 * record that verifies is backed up and the manifest lists the box's lost
 * byte ranges (its "lost" member).
 * through the store's vfs: written to path.tmp, synced, renamed, the
 * directory synced, so a crash never leaves a half file under path.
 * Returns 0 with *info, or BG_EINVALID (a bad key), BG_ECORRUPT (a box is
 * damaged: recover it first), BG_EAUTH (a sealed box the store has no key
 * for), BG_EIO, BG_ENOSPACE, BG_ENOMEM (no .tmp is left; path is as it was, or,
 * when only the last directory sync failed, holds the whole new backup). */
BG_MUST_CHECK bg_err bg_backup_create(bg_store *s, const char *path,
                                      const bg_backup_key *key, int salvage,
                                      bg_backup_info *info);

/* Called for every record of a backup while it is read (before the
 * manifest at the end has vouched for it): its box and the record. A
 * non-zero return stops the read with BG_ESTATE. */
typedef int (*bg_backup_record_fn)(void *arg, const char *box,
                                   const bg_record *r);

/* Read and check all of the backup at path on vfs (NULL: posix) without
 * writing anything: every chunk authenticated, the archive read, every
 * dump's count and SHA-256 against the manifest; fn (may be NULL) sees
 * every record, but a backup is sound only when this returns 0. detail
 * (may be NULL) says what failed: the chunk, the member. Returns 0 with
 * *info, or BG_EAUTH (wrong passphrase or key), BG_ECORRUPT (damaged,
 * truncated, reordered, spliced; a manifest that does not match),
 * BG_EINVALID (a bad key, Argon2id limits above the cap, not a backup),
 * BG_ENOTFOUND, BG_EIO, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_backup_read(const char *path, const bg_vfs *vfs,
                                    const bg_backup_key *key,
                                    bg_backup_record_fn fn, void *arg,
                                    bg_backup_info *info, char *detail,
                                    size_t detail_len);

typedef struct bg_restore_opts {
    const bg_vfs *vfs;      /* NULL: posix */
    bg_clock clock;         /* zeroed: the real clock */
    uint32_t expect_schema; /* the backup must be at it; 0: any */
    uint32_t code_version;  /* refused when newer than it; 0: any */
} bg_restore_opts;

/* Restore the backup at path into the store directory dir, which may not
 * exist yet. The backup is read and checked whole first
 * (bg_backup_read); then the restored store is built beside dir, in
 * dir.restore (every record written, every box that was sealed sealed
 * again: under the current key of the store in dir when it has one, so
 * what holds that key still opens it, else under a new key of the
 * restored store's own), its counts checked against
 * the manifest, synced; then swapped in: dir renamed to dir.restore-old,
 * dir.restore renamed to dir, their directory synced, and only then the
 * old store wiped (wipe_int.h). A crash at any point leaves, after the
 * next open of dir, entirely the old store or entirely the restored one.
 * The store in dir is held (its lock) while the restore runs.
 * Returns 0 with *info, or the errors of bg_backup_read (dir untouched),
 * BG_ESCHEMA (the backup's schema version is not expect_schema, or is
 * newer than code_version: dir untouched), BG_EINVALID (more boxes than
 * BG_BACKUP_BOXES_MAX), BG_ELOCKED (dir is open elsewhere), BG_EIO,
 * BG_ENOSPACE, BG_ENOMEM (dir as it was, or restored when the swap got
 * through). detail says what failed. */
BG_MUST_CHECK bg_err bg_backup_restore(const char *dir, const char *path,
                                       const bg_backup_key *key,
                                       const bg_restore_opts *opts,
                                       bg_backup_info *info, char *detail,
                                       size_t detail_len);

#ifdef __cplusplus
}
#endif
#endif
