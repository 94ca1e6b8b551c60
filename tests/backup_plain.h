/*
 * The plaintext beneath a backup's encryption, made by hand for
 * test_backup and fuzz_backup_open: a zstd-compressed ustar archive of
 * given members (libarchive), and the SHA-256 of a dump in hex, so a test
 * can seal a manifest that lies (bg__backup_seal) and watch it refused.
 */
#ifndef BOXGUARD_BACKUP_PLAIN_H
#define BOXGUARD_BACKUP_PLAIN_H

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bp_member {
    const char *name;
    const char *data;
    size_t len;
} bp_member;

/* The archive into *out (malloc'd), or -1. */
static inline int bp_tar_zst(const bp_member *m, size_t n, uint8_t **out,
                             size_t *len)
{
    size_t cap = 1 << 20, used = 0;
    uint8_t *buf = malloc(cap);
    struct archive *a = archive_write_new();
    int rc = !buf || !a || archive_write_set_format_ustar(a) ||
             archive_write_add_filter_zstd(a) ||
             archive_write_open_memory(a, buf, cap, &used);
    for (size_t i = 0; i < n && !rc; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_size(e, (la_int64_t)m[i].len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0600);
        rc = archive_write_header(a, e) != ARCHIVE_OK ||
             (m[i].len && archive_write_data(a, m[i].data, m[i].len) !=
                              (la_ssize_t)m[i].len);
        archive_entry_free(e);
    }
    if (a) {
        rc |= archive_write_close(a) != ARCHIVE_OK;
        archive_write_free(a);
    }
    if (rc) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = used;
    return 0;
}

static inline void bp_sha256(const char *data, size_t len, char out[65])
{
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)data, len);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

#endif
