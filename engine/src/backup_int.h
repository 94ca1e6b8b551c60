/*
 * For the tests and fuzz targets of backup.c: a backup file whose
 * encrypted stream is any bytes, to reach the archive and manifest checks
 * beneath the encryption.
 */
#ifndef BOXGUARD_BACKUP_INT_H
#define BOXGUARD_BACKUP_INT_H

#include "boxguard/backup.h"
#include "handle_int.h"

/* Write path (through s's vfs, beside and renamed) with a header and
 * chunks as bg_backup_create makes them, around the plaintext plain
 * instead of an archive of s. Returns what bg_backup_create returns. */
BG_MUST_CHECK bg_err bg__backup_seal(bg_store *s, const char *path,
                                     const bg_backup_key *k,
                                     const uint8_t *plain, size_t len);

#endif
