/*
 * Encrypted backups (backup.h): the writer (dumps into a tar archive,
 * zstd over it, secretstream over that, into a file written beside and
 * renamed) and the reader, which authenticates every chunk, reads the
 * archive back and checks every dump against the manifest. libarchive does
 * tar and zstd, libsodium the key derivation, the stream, the hashes.
 *
 * Chunks are 64 KiB of plaintext: the stream's 17 bytes per chunk cost
 * 0.03%, a reader holds one chunk at a time, and a truncation is caught
 * at the chunk it cuts (the size age uses, for the same reasons).
 */
#define _POSIX_C_SOURCE 200809L
#include <archive.h>
#include <archive_entry.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cjson/cJSON.h>

#include "boxguard/backup.h"
#include "boxguard/boxguard.h"
#include "box_int.h"
#include "bytes_int.h"
#include "handle_int.h"
#include "json_int.h"
#include "keys_int.h"
#include "meta_int.h"
#include "wipe_int.h"
#include "backup_int.h"

#define MAGIC       "BGBACKUP"
#define FORMAT      1
#define HDR_FIELDS  72 /* magic .. stream header: the chunks' AD */
#define HDR_CHECK   32 /* keyed BLAKE2b of the fields */
#define HDR_BYTES   (HDR_FIELDS + HDR_CHECK + 8)
#define ABYTES      crypto_secretstream_xchacha20poly1305_ABYTES
#define META_MEMBER "backup_meta.json"

_Static_assert(crypto_pwhash_SALTBYTES == 16, "salt");
_Static_assert(crypto_secretstream_xchacha20poly1305_HEADERBYTES == 24,
               "stream header");

/* ---- header ----------------------------------------------------------- */

typedef struct header {
    uint8_t b[HDR_BYTES];
    int kdf;
    uint64_t ops, mem;
} header;

static bg_err derive(const bg_backup_key *k, const uint8_t salt[16],
                     uint64_t ops, uint64_t mem, uint8_t out[32])
{
    if (k->kdf == BG_BACKUP_RAW_KEY) {
        if (k->len != BG_BACKUP_KEY_BYTES)
            return BG_EINVALID;
        memcpy(out, k->secret, 32);
        return 0;
    }
    if (k->kdf != BG_BACKUP_PASSPHRASE || k->len == 0)
        return BG_EINVALID;
    if (crypto_pwhash(out, 32, (const char *)k->secret, k->len, salt, ops,
                      (size_t)mem, crypto_pwhash_ALG_ARGON2ID13))
        return BG_ENOMEM; /* libsodium: out of memory for the limits */
    return 0;
}

static void key_check(const uint8_t *fields, const uint8_t key[32],
                      uint8_t out[HDR_CHECK])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, HDR_CHECK);
    crypto_generichash_update(&st, (const uint8_t *)"boxguard backup key", 19);
    crypto_generichash_update(&st, fields, HDR_FIELDS);
    crypto_generichash_final(&st, out, HDR_CHECK);
}

/* ---- the writer ------------------------------------------------------- */

typedef struct writer {
    bg_store *s;
    bg_file *f;
    uint64_t off, chunks;
    crypto_secretstream_xchacha20poly1305_state st;
    const uint8_t *ad;
    uint8_t *buf; /* BG_BACKUP_CHUNK plaintext + room for the cipher */
    uint8_t *ct;
    size_t len;
    bg_err err;
} writer;

static bg_err push(writer *w, int final)
{
    unsigned long long clen;
    crypto_secretstream_xchacha20poly1305_push(
        &w->st, w->ct, &clen, w->buf, w->len, w->ad, HDR_FIELDS,
        final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
    bg_err err = bg__vfs_write(w->s, w->f, w->off, w->ct, (size_t)clen);
    w->off += clen;
    w->chunks++;
    w->len = 0;
    return err;
}

static la_ssize_t write_cb(struct archive *a, void *arg, const void *data,
                           size_t n)
{
    (void)a;
    writer *w = arg;
    if (w->err || !w->f)
        return -1; /* a flush after a failure, or after the file closed */
    const uint8_t *p = data;
    size_t left = n;
    while (left && !w->err) {
        /* A full chunk goes out only when more follows: the last chunk,
         * full or not, must carry the final tag. */
        if (w->len == BG_BACKUP_CHUNK)
            w->err = push(w, 0);
        size_t take = BG_BACKUP_CHUNK - w->len;
        if (take > left)
            take = left;
        memcpy(w->buf + w->len, p, take);
        w->len += take, p += take, left -= take;
    }
    return w->err ? -1 : (la_ssize_t)n;
}

typedef struct dump {
    bg_store *s;
    char *buf;
    size_t len, cap;
    uint64_t n;
    bg_err err;
} dump;

static int dump_put(dump *d, const char *p, size_t n)
{
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 65536;
        while (cap < d->len + n)
            cap *= 2;
        char *q = bg__handle_realloc(d->s, d->buf, cap);
        if (!q)
            return -1;
        d->buf = q;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
    return 0;
}

/* One line of the dump form, as `boxguard dump` prints it. */
static int dump_one(void *arg, const bg_record *r)
{
    dump *d = arg;
    char *k = bg__handle_malloc(d->s, r->key_len + 1);
    if (!k) {
        d->err = BG_ENOMEM;
        return 1;
    }
    memcpy(k, r->key, r->key_len);
    k[r->key_len] = '\0';
    cJSON *ks = cJSON_CreateString(k);
    char *kj = ks ? cJSON_PrintUnformatted(ks) : NULL;
    bg__handle_free(d->s, k);
    cJSON_Delete(ks);
    char head[32];
    int hn = snprintf(head, sizeof head,
                      ",\"type\":%" PRIu32 ",\"value\":", r->type);
    int bad = !kj || dump_put(d, "{\"key\":", 7) ||
              dump_put(d, kj, strlen(kj)) || dump_put(d, head, (size_t)hn);
    cJSON_free(kj);
    size_t at = d->len;
    bad = bad || dump_put(d, r->value, r->value_len) || dump_put(d, "}\n", 2);
    if (bad) {
        d->err = BG_ENOMEM;
        return 1;
    }
    for (size_t i = at; i < at + r->value_len; i++)
        if (d->buf[i] == '\n' || d->buf[i] == '\r')
            d->buf[i] = ' '; /* whitespace between tokens: one per line */
    d->n++;
    return 0;
}

static void hex(const uint8_t *h, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static int add_member(struct archive *a, const char *name, const void *data,
                      size_t len, int64_t mtime)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return -1;
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_mtime(e, (time_t)(mtime / 1000), 0);
    int rc = archive_write_header(a, e) != ARCHIVE_OK ||
             (len && archive_write_data(a, data, len) != (la_ssize_t)len);
    archive_entry_free(e);
    return rc ? -1 : 0;
}

/* The dumps and the manifest into archive a; *info filled. */
static bg_err write_archive(bg_store *s, struct archive *a, int salvage,
                            bg_backup_info *info)
{
    int64_t now = bg__handle_now_ms(s);
    bg__box_list ns;
    BG_TRY(bg__box_list_names(s, &ns));
    cJSON *meta = cJSON_CreateObject();
    cJSON *boxes = cJSON_CreateArray();
    bg_err err = meta && boxes ? 0 : BG_ENOMEM;
    uint32_t version = 1;
    if (!err)
        err = bg__meta_schema_version(s, &version);
    for (size_t i = 0; i < ns.n && !err; i++) {
        bg_box *b;
        bg_box_report r;
        err = bg_box_verify(s, ns.v[i], &r);
        if (!err && r.status == BG_BOX_CORRUPT && !salvage)
            err = bg__handle_fail(s, BG_ECORRUPT,
                                  "box '%s' is damaged at offset %" PRIu64
                                  ": recover it before a backup",
                                  ns.v[i], r.first_damage);
        if (!err)
            err = bg_box_open(s, ns.v[i], 0, &b);
        if (err)
            break;
        dump d = {.s = s};
        err = bg__box_iterate_raw(b, dump_one, &d);
        if (!err)
            err = d.err;
        int sealed = bg__box_key_id(b) != 0;
        uint8_t h[32];
        char hx[65], member[BG_BOX_NAME_MAX + 16];
        crypto_hash_sha256(h, (const uint8_t *)(d.buf ? d.buf : ""), d.len);
        hex(h, 32, hx);
        snprintf(member, sizeof member, "boxes/%s.jsonl", ns.v[i]);
        if (!err && add_member(a, member, d.buf, d.len, now))
            err = bg__handle_fail(s, BG_EIO, "cannot archive box '%s': %s",
                                  ns.v[i], archive_error_string(a));
        bg__handle_free(s, d.buf);
        if (err)
            break;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ns.v[i]);
        cJSON_AddNumberToObject(o, "records", (double)d.n);
        cJSON_AddBoolToObject(o, "sealed", sealed);
        cJSON_AddStringToObject(o, "sha256", hx);
        if (r.status == BG_BOX_CORRUPT) {
            cJSON *lost = cJSON_AddArrayToObject(o, "lost");
            for (uint64_t j = 0; j < r.nranges && j < BG_BOX_REPORT_RANGES;
                 j++) {
                cJSON *pair = cJSON_CreateArray();
                (void)bg__json_push(
                    pair, cJSON_CreateNumber((double)r.ranges[j].off));
                (void)bg__json_push(
                    pair, cJSON_CreateNumber((double)r.ranges[j].len));
                (void)bg__json_push(lost, pair);
            }
            info->lost_bytes += r.lost_bytes;
        }
        (void)bg__json_push(boxes, o);
        if (info->nboxes < BG_BACKUP_BOXES_MAX) {
            bg_backup_box *bb = &info->boxes[info->nboxes];
            snprintf(bb->name, sizeof bb->name, "%s", ns.v[i]);
            bb->records = d.n;
            bb->sealed = sealed;
            memcpy(bb->sha256, hx, sizeof hx);
        }
        info->nboxes++;
        info->records += d.n;
    }
    if (!err) {
        cJSON_AddNumberToObject(meta, "format", FORMAT);
        cJSON_AddNumberToObject(meta, "schema_version", version);
        cJSON_AddNumberToObject(meta, "created_at", (double)now);
        cJSON_AddStringToObject(meta, "boxguard_version", BOXGUARD_VERSION);
        /* The schema lock (the adapters the data was written under), as
         * the meta box holds it; null when the store has none. */
        bg_box *mb;
        char *lock = NULL;
        size_t llen = 0;
        uint32_t lt;
        cJSON *lj = NULL;
        if (bg_box_open(s, BG__META_BOX, 0, &mb) == 0 &&
            bg__box_get_raw(mb, "schema_lock", 11, &lt, &lock, &llen) == 0) {
            lj = cJSON_ParseWithLength(lock, llen);
            bg__handle_free(s, lock);
        }
        (void)bg__json_put(meta, "schema_lock", lj ? lj : cJSON_CreateNull());
        (void)bg__json_put(meta, "boxes", boxes);
        boxes = NULL;
        char *txt = bg__json_print(meta);
        if (!txt)
            err = BG_ENOMEM;
        else if (add_member(a, META_MEMBER, txt, strlen(txt), now))
            err = bg__handle_fail(s, BG_EIO, "cannot archive the manifest: %s",
                                  archive_error_string(a));
        cJSON_free(txt);
        info->format = FORMAT;
        info->schema_version = version;
        info->created_at = now;
        snprintf(info->version, sizeof info->version, "%s", BOXGUARD_VERSION);
    }
    cJSON_Delete(boxes);
    cJSON_Delete(meta);
    bg__box_list_free(s, &ns);
    return err;
}

/* A backup of store s, or (plain set) a file whose stream is plain. */
static bg_err create(bg_store *s, const char *path, const bg_backup_key *k,
                     int salvage, bg_backup_info *info, const uint8_t *plain,
                     size_t plain_len)
{
    memset(info, 0, sizeof *info);
    char tmp[BG_PATH_MAX], dir[BG_PATH_MAX];
    BG_FAIL_IF(!path[0] || strlen(path) + 5 > sizeof tmp, s, BG_EINVALID,
               "backup path '%.200s' is empty or too long", path);
    BG_FAIL_IF(sodium_init() < 0, s, BG_ENOMEM, "libsodium cannot start");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    bg__handle_parent(path, dir, sizeof dir);

    header h = {.kdf = (int)k->kdf};
    uint8_t key[32];
    uint64_t ops =
        k->opslimit ? k->opslimit : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    uint64_t mem =
        k->memlimit ? k->memlimit : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (k->kdf == BG_BACKUP_RAW_KEY)
        ops = mem = 0;
    memcpy(h.b, MAGIC, 8);
    h.b[8] = FORMAT;
    h.b[9] = (uint8_t)k->kdf;
    put32(h.b + 12, BG_BACKUP_CHUNK);
    put64(h.b + 16, ops);
    put64(h.b + 24, mem);
    randombytes_buf(h.b + 32, 16);
    bg_err err = derive(k, h.b + 32, ops, mem, key);
    BG_FAIL_IF(err, s, err, "backup key: %s",
               err == BG_EINVALID ? "a raw key is 32 bytes; a passphrase is "
                                    "not empty"
                                  : "Argon2id ran out of memory");
    writer w = {.s = s, .ad = h.b};
    crypto_secretstream_xchacha20poly1305_init_push(&w.st, h.b + 48, key);
    key_check(h.b, key, h.b + HDR_FIELDS);
    sodium_memzero(key, sizeof key);
    put64(h.b + HDR_FIELDS + HDR_CHECK,
          XXH3_64bits(h.b, HDR_FIELDS + HDR_CHECK));

    w.buf = bg__handle_malloc(s, BG_BACKUP_CHUNK);
    w.ct = bg__handle_malloc(s, BG_BACKUP_CHUNK + ABYTES);
    struct archive *a = plain ? NULL : archive_write_new();
    err = w.buf && w.ct && (a || plain) ? 0 : BG_ENOMEM;
    if (!err) {
        err = bg__vfs_unlink(s, tmp);
        if (err == BG_ENOTFOUND)
            err = 0;
    }
    if (!err)
        err = bg__vfs_open(
            s, tmp, BG_OPEN_CREATE | BG_OPEN_EXCL | BG_OPEN_PRIVATE, &w.f);
    if (!err)
        err = bg__vfs_write(s, w.f, 0, h.b, HDR_BYTES);
    w.off = HDR_BYTES;
    if (plain) {
        if (!err && write_cb(NULL, &w, plain, plain_len) < 0)
            err = w.err;
    } else if (!err &&
               (archive_write_set_format_ustar(a) != ARCHIVE_OK ||
                archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
                archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
                archive_write_open(a, &w, NULL, write_cb, NULL) != ARCHIVE_OK))
        err = bg__handle_fail(s, BG_ENOMEM, "cannot start the archive: %s",
                              archive_error_string(a));
    if (!err && a)
        err = write_archive(s, a, salvage, info);
    if (!err && a && archive_write_close(a) != ARCHIVE_OK)
        err = w.err ? w.err : BG_EIO;
    if (!err)
        err = w.err;
    if (!err)
        err = push(&w, 1);
    if (!err)
        err = bg__vfs_sync(s, w.f);
    if (w.f)
        bg__vfs_close(s, w.f);
    w.f = NULL;
    if (!err)
        err = bg__vfs_rename(s, tmp, path);
    if (!err)
        err = bg__vfs_sync_dir(s, dir);
    if (a)
        archive_write_free(a);
    sodium_memzero(&w.st, sizeof w.st);
    bg__handle_free(s, w.buf);
    bg__handle_free(s, w.ct);
    if (err) {
        (void)bg__vfs_unlink(s, tmp);
        if (!s->detail[0] || err == BG_EIO || err == BG_ENOSPACE)
            bg__handle_fail(s, err, "cannot write backup '%s'", path);
        return err;
    }
    info->chunks = w.chunks;
    info->file_bytes = w.off;
    return 0;
}

/* A backup made or restored, in the audit log of store s. */
static bg_err audit_backup(bg_store *s, const char *event, const char *path,
                           const bg_backup_info *info)
{
    int64_t now = bg__handle_now_ms(s);
    cJSON *rec = cJSON_CreateObject();
    if (!rec)
        return BG_ENOMEM;
    cJSON_AddStringToObject(rec, "event", event);
    cJSON_AddNumberToObject(rec, "at", (double)now);
    cJSON_AddStringToObject(rec, "file", path);
    cJSON_AddNumberToObject(rec, "boxes", (double)info->nboxes);
    cJSON_AddNumberToObject(rec, "records", (double)info->records);
    cJSON_AddNumberToObject(rec, "schema_version", info->schema_version);
    cJSON_AddNumberToObject(rec, "backup_created_at", (double)info->created_at);
    uint8_t r[4];
    bg__vfs_random(s, r, sizeof r);
    char key[64];
    snprintf(key, sizeof key, "%016" PRIx64 "-%02x%02x%02x%02x-%s",
             (uint64_t)now, r[0], r[1], r[2], r[3], event);
    bg_err err = bg__meta_audit(s, key, rec);
    cJSON_Delete(rec);
    BG_FAIL_IF(err, s, err, "%s, but its audit record could not be written",
               event);
    return 0;
}

bg_err bg_backup_create(bg_store *s, const char *path, const bg_backup_key *k,
                        int salvage, bg_backup_info *info)
{
    BG__JSON_SCOPE(&s->alloc);
    BG_TRY(create(s, path, k, salvage, info, NULL, 0));
    return audit_backup(s, "backup_created", path, info);
}

bg_err bg__backup_seal(bg_store *s, const char *path, const bg_backup_key *k,
                       const uint8_t *plain, size_t len)
{
    BG__JSON_SCOPE(&s->alloc);
    bg_backup_info info;
    return create(s, path, k, 0, &info, plain ? plain : (const uint8_t *)"",
                  len);
}

/* ---- the reader ------------------------------------------------------- */

typedef struct reader {
    bg_store *s; /* a bare handle on the backup's directory */
    bg_file *f;
    uint64_t off, size, chunk; /* chunk: the next one's number */
    crypto_secretstream_xchacha20poly1305_state st;
    uint8_t ad[HDR_FIELDS];
    uint8_t *ct, *pt;
    int final;
    uint32_t meta_version; /* the schema version the meta box's dump holds */
    bg_err err;
    char *detail;
    size_t detail_len;
} reader;

static void say(reader *r, bg_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(reader *r, bg_err err, const char *fmt, ...)
{
    if (r->err)
        return;
    r->err = err;
    if (r->detail && r->detail_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->detail, r->detail_len, fmt, ap);
        va_end(ap);
    }
}

/* The next chunk's plaintext, or -1 with r->err set. */
static la_ssize_t next_chunk(reader *r)
{
    if (r->final)
        return 0;
    uint64_t left = r->size - r->off;
    size_t want = left < BG_BACKUP_CHUNK + ABYTES ? (size_t)left
                                                  : BG_BACKUP_CHUNK + ABYTES;
    if (want < ABYTES) {
        say(r, BG_ECORRUPT,
            "the backup is truncated: it ends after chunk %" PRIu64
            " without its final chunk",
            r->chunk);
        return -1;
    }
    size_t got;
    bg_err err = bg__vfs_read(r->s, r->f, r->off, r->ct, want, &got);
    if (err || got != want) {
        say(r, err ? err : BG_EIO, "cannot read chunk %" PRIu64, r->chunk);
        return -1;
    }
    unsigned long long plen;
    unsigned char tag;
    if (crypto_secretstream_xchacha20poly1305_pull(
            &r->st, r->pt, &plen, &tag, r->ct, want, r->ad, HDR_FIELDS)) {
        say(r, BG_ECORRUPT,
            "chunk %" PRIu64 " (at byte %" PRIu64
            ") does not authenticate: damaged, truncated, or not in its place",
            r->chunk, r->off);
        return -1;
    }
    r->off += want;
    r->chunk++;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
        r->final = 1;
        if (r->off != r->size) {
            say(r, BG_ECORRUPT,
                "%" PRIu64 " bytes follow the final chunk %" PRIu64,
                r->size - r->off, r->chunk - 1);
            return -1;
        }
    } else if (tag != 0 || plen != BG_BACKUP_CHUNK) {
        say(r, BG_ECORRUPT, "chunk %" PRIu64 " is not a whole chunk",
            r->chunk - 1);
        return -1;
    }
    return (la_ssize_t)plen;
}

static la_ssize_t read_cb(struct archive *a, void *arg, const void **buf)
{
    (void)a;
    reader *r = arg;
    la_ssize_t n;
    do
        n = next_chunk(r);
    while (n == 0 && !r->final); /* an empty chunk: only the final one */
    *buf = r->pt;
    return n;
}

static bg_err read_header(reader *r, const bg_backup_key *k, uint8_t key[32])
{
    uint8_t b[HDR_BYTES];
    size_t got;
    BG_TRY(bg__vfs_size(r->s, r->f, &r->size));
    bg_err err = bg__vfs_read(r->s, r->f, 0, b, sizeof b, &got);
    if (err)
        return say(r, err, "cannot read the header"), err;
    if (got < sizeof b || memcmp(b, MAGIC, 8)) {
        say(r, BG_EINVALID, "not a boxguard backup (no %s header)", MAGIC);
        return BG_EINVALID;
    }
    if (get64(b + HDR_FIELDS + HDR_CHECK) !=
        XXH3_64bits(b, HDR_FIELDS + HDR_CHECK)) {
        say(r, BG_ECORRUPT, "the backup's header is damaged");
        return BG_ECORRUPT;
    }
    uint64_t ops = get64(b + 16), mem = get64(b + 24);
    if (b[8] != FORMAT || b[9] > 1 || get32(b + 12) != BG_BACKUP_CHUNK) {
        say(r, BG_EINVALID,
            "backup format %u (kdf %u) is not one this "
            "boxguard reads",
            (unsigned)b[8], (unsigned)b[9]);
        return BG_EINVALID;
    }
    if (b[9] != (uint8_t)k->kdf) {
        say(r, BG_EAUTH, "the backup was made with %s, and a %s was given",
            b[9] ? "a passphrase" : "a raw key",
            k->kdf ? "passphrase" : "raw key");
        return BG_EAUTH;
    }
    if (b[9] && (ops > crypto_pwhash_OPSLIMIT_SENSITIVE ||
                 mem > crypto_pwhash_MEMLIMIT_SENSITIVE ||
                 ops < crypto_pwhash_OPSLIMIT_MIN ||
                 mem < crypto_pwhash_MEMLIMIT_MIN)) {
        say(r, BG_EINVALID,
            "Argon2id limits (ops %" PRIu64 ", mem %" PRIu64
            ") outside what a reader accepts",
            ops, mem);
        return BG_EINVALID;
    }
    err = derive(k, b + 32, ops, mem, key);
    if (err) {
        say(r, err, "backup key: %s",
            err == BG_EINVALID ? "a raw key is 32 bytes"
                               : "Argon2id ran out of memory");
        return err;
    }
    uint8_t check[HDR_CHECK];
    key_check(b, key, check);
    if (sodium_memcmp(check, b + HDR_FIELDS, HDR_CHECK)) {
        say(r, BG_EAUTH, "wrong passphrase or key for this backup");
        return BG_EAUTH;
    }
    memcpy(r->ad, b, HDR_FIELDS);
    crypto_secretstream_xchacha20poly1305_init_pull(&r->st, b + 48, key);
    r->off = HDR_BYTES;
    return 0;
}

/* One dump line in the fixed form the writer uses. */
static int parse_line(const char *p, size_t n, char **key, uint32_t *type,
                      const char **value, size_t *vlen)
{
    const char *end = p + n;
    if (n < 8 || memcmp(p, "{\"key\":", 7) || end[-1] != '}')
        return -1;
    const char *kend = NULL;
    cJSON *k =
        cJSON_ParseWithLengthOpts(p + 7, (size_t)(end - p - 7), &kend, 0);
    if (!cJSON_IsString(k)) {
        cJSON_Delete(k);
        return -1;
    }
    *key = strdup(k->valuestring);
    cJSON_Delete(k);
    if (!*key)
        return -1;
    const char *q = kend;
    if (end - q < 9 || memcmp(q, ",\"type\":", 8))
        goto bad;
    q += 8;
    uint64_t t = 0;
    const char *d = q;
    while (q < end && *q >= '0' && *q <= '9' && q - d < 11)
        t = t * 10 + (uint64_t)(*q++ - '0');
    if (q == d || t > UINT32_MAX || (q - d > 1 && *d == '0'))
        goto bad;
    if (end - q < 11 || memcmp(q, ",\"value\":", 9))
        goto bad;
    *type = (uint32_t)t;
    *value = q + 9;
    *vlen = (size_t)(end - 1 - *value);
    return 0;
bad:
    free(*key);
    *key = NULL;
    return -1;
}

typedef struct member {
    char name[BG_BOX_NAME_MAX + 1];
    uint64_t records;
    char sha256[65];
} member;

static bg_err read_members(reader *r, struct archive *a, bg_backup_record_fn fn,
                           void *arg, member **mv, size_t *nm, char **meta)
{
    struct archive_entry *e;
    size_t cap = 0;
    int rc;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (*meta) {
            say(r, BG_ECORRUPT, "member '%.100s' follows the manifest", name);
            return r->err;
        }
        la_int64_t size = archive_entry_size(e);
        if (size < 0 || size > (la_int64_t)1 << 40) {
            say(r, BG_ECORRUPT, "member '%.100s' has no size", name);
            return r->err;
        }
        char *data = malloc((size_t)size + 1);
        if (!data)
            return BG_ENOMEM;
        la_ssize_t got = size ? archive_read_data(a, data, (size_t)size) : 0;
        if (got != size) {
            free(data);
            say(r, BG_ECORRUPT, "member '%.100s' is cut short: %s", name,
                archive_error_string(a) ? archive_error_string(a) : "");
            return r->err;
        }
        data[size] = '\0';
        if (!strcmp(name, META_MEMBER)) {
            *meta = data;
            continue;
        }
        size_t nlen = strlen(name);
        if (nlen < 13 || strncmp(name, "boxes/", 6) ||
            strcmp(name + nlen - 6, ".jsonl") || nlen - 12 > BG_BOX_NAME_MAX) {
            free(data);
            say(r, BG_ECORRUPT, "member '%.100s' is not a box dump", name);
            return r->err;
        }
        if (*nm == cap) {
            cap = cap ? cap * 2 : 16;
            member *q = realloc(*mv, cap * sizeof *q);
            if (!q) {
                free(data);
                return BG_ENOMEM;
            }
            *mv = q;
        }
        member *m = &(*mv)[*nm];
        snprintf(m->name, sizeof m->name, "%.*s", (int)(nlen - 12), name + 6);
        /* A box's name, each once, in the writer's order. */
        if (bg__box_check_name(m->name) ||
            (*nm && strcmp((*mv)[*nm - 1].name, m->name) >= 0)) {
            free(data);
            say(r, BG_ECORRUPT,
                "member '%.100s' is not a box dump in its place", name);
            return r->err;
        }
        (*nm)++;
        uint8_t h[32];
        crypto_hash_sha256(h, (const uint8_t *)data, (size_t)size);
        hex(h, 32, m->sha256);
        m->records = 0;
        for (char *p = data; p < data + size;) {
            char *nl = memchr(p, '\n', (size_t)(data + size - p));
            if (!nl) {
                free(data);
                say(r, BG_ECORRUPT, "box '%s': its dump ends inside a line",
                    m->name);
                return r->err;
            }
            bg_record rec = {0};
            char *key;
            if (parse_line(p, (size_t)(nl - p), &key, &rec.type, &rec.value,
                           &rec.value_len)) {
                free(data);
                say(r, BG_ECORRUPT,
                    "box '%s': line %" PRIu64 " is not a dump "
                    "line",
                    m->name, m->records + 1);
                return r->err;
            }
            rec.key = key;
            rec.key_len = strlen(key);
            rec.seq = m->records;
            if (!strcmp(m->name, BG__META_BOX) &&
                !strcmp(key, "schema_version")) {
                cJSON *v = cJSON_ParseWithLength(rec.value, rec.value_len);
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "version");
                r->meta_version = cJSON_IsNumber(n) && n->valuedouble >= 1 &&
                                          n->valuedouble <= UINT32_MAX
                                      ? (uint32_t)n->valuedouble
                                      : 0;
                cJSON_Delete(v);
            }
            int stop = fn ? fn(arg, m->name, &rec) : 0;
            free(key);
            if (stop) {
                free(data);
                say(r, BG_ESTATE, "stopped at box '%s' line %" PRIu64, m->name,
                    m->records + 1);
                return r->err;
            }
            m->records++;
            p = nl + 1;
        }
        free(data);
    }
    if (rc != ARCHIVE_EOF) {
        if (!r->err)
            say(r, BG_ECORRUPT, "the archive inside the backup is damaged: %s",
                archive_error_string(a) ? archive_error_string(a) : "?");
        return r->err;
    }
    if (!*meta) {
        say(r, BG_ECORRUPT, "the backup has no manifest (%s)", META_MEMBER);
        return r->err;
    }
    return 0;
}

/* The manifest against the members read. */
static bg_err check_meta(reader *r, const char *txt, const member *mv,
                         size_t nm, bg_backup_info *info)
{
    cJSON *doc = cJSON_Parse(txt);
    const cJSON *boxes = cJSON_GetObjectItemCaseSensitive(doc, "boxes");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(doc, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(doc, "schema_version");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(doc, "created_at");
    bg_err err = 0;
    if (!cJSON_IsArray(boxes) || !cJSON_IsNumber(fmt) ||
        fmt->valuedouble != FORMAT || !cJSON_IsNumber(ver) ||
        ver->valuedouble < 1 || ver->valuedouble > UINT32_MAX ||
        !cJSON_IsNumber(at)) {
        say(r, BG_ECORRUPT, "the manifest is not one this boxguard reads");
        err = BG_ECORRUPT;
    } else if ((uint32_t)ver->valuedouble !=
               (r->meta_version ? r->meta_version : 1)) {
        say(r, BG_ECORRUPT,
            "the manifest's schema version %.0f is not the %u its meta box "
            "holds",
            ver->valuedouble,
            (unsigned)(r->meta_version ? r->meta_version : 1));
        err = BG_ECORRUPT;
    } else if ((size_t)cJSON_GetArraySize(boxes) != nm) {
        say(r, BG_ECORRUPT,
            "the manifest lists %d boxes, the archive holds "
            "%zu",
            cJSON_GetArraySize(boxes), nm);
        err = BG_ECORRUPT;
    }
    info->format = FORMAT;
    info->schema_version = err ? 0 : (uint32_t)ver->valuedouble;
    info->created_at = err ? 0 : (int64_t)at->valuedouble;
    const char *bv = bg__json_str(doc, "boxguard_version");
    snprintf(info->version, sizeof info->version, "%s", bv ? bv : "");
    size_t i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, boxes)
    {
        if (err)
            break;
        const char *name = bg__json_str(b, "name");
        const char *sha = bg__json_str(b, "sha256");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(b, "records");
        const cJSON *sealed = cJSON_GetObjectItemCaseSensitive(b, "sealed");
        if (!name || !sha || !cJSON_IsNumber(n) || !cJSON_IsBool(sealed) ||
            strcmp(name, mv[i].name)) {
            say(r, BG_ECORRUPT,
                "the manifest's box %zu is not the archive's "
                "'%s'",
                i, mv[i].name);
            err = BG_ECORRUPT;
        } else if (strcmp(sha, mv[i].sha256)) {
            say(r, BG_ECORRUPT,
                "box '%s': its dump's SHA-256 is not the "
                "manifest's",
                name);
            err = BG_ECORRUPT;
        } else if (n->valuedouble != (double)mv[i].records) {
            say(r, BG_ECORRUPT,
                "box '%s': the manifest counts %.0f records, "
                "the dump holds %" PRIu64,
                name, n->valuedouble, mv[i].records);
            err = BG_ECORRUPT;
        }
        if (!err && info->nboxes < BG_BACKUP_BOXES_MAX) {
            bg_backup_box *bb = &info->boxes[info->nboxes];
            snprintf(bb->name, sizeof bb->name, "%s", name);
            bb->records = mv[i].records;
            bb->sealed = cJSON_IsTrue(sealed);
            memcpy(bb->sha256, mv[i].sha256, 65);
        }
        info->nboxes++;
        info->records += mv[i].records;
        i++;
    }
    cJSON_Delete(doc);
    return err;
}

bg_err bg_backup_read(const char *path, const bg_vfs *vfs,
                      const bg_backup_key *k, bg_backup_record_fn fn, void *arg,
                      bg_backup_info *info, char *detail, size_t detail_len)
{
    memset(info, 0, sizeof *info);
    if (detail && detail_len)
        detail[0] = '\0';
    if (sodium_init() < 0)
        return BG_ENOMEM;
    char dir[BG_PATH_MAX];
    bg__handle_parent(path, dir, sizeof dir);
    reader r = {.detail = detail, .detail_len = detail_len};
    bg_err err = bg__handle_bare(dir[0] ? dir : ".", vfs, &r.s);
    if (err)
        return err;
    err = bg__vfs_open(r.s, path, BG_OPEN_READ, &r.f);
    if (err) {
        say(&r, err, "cannot open backup '%s'%s", path,
            err == BG_ENOTFOUND ? ": no such file" : "");
        free(r.s);
        return err;
    }
    uint8_t key[32];
    r.ct = malloc(BG_BACKUP_CHUNK + ABYTES);
    r.pt = malloc(BG_BACKUP_CHUNK);
    struct archive *a = archive_read_new();
    err = r.ct && r.pt && a ? 0 : BG_ENOMEM;
    if (!err)
        err = read_header(&r, k, key);
    sodium_memzero(key, sizeof key);
    member *mv = NULL;
    size_t nm = 0;
    char *meta = NULL;
    if (!err) {
        if (archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
            archive_read_support_format_tar(a) != ARCHIVE_OK ||
            archive_read_open(a, &r, NULL, read_cb, NULL) != ARCHIVE_OK) {
            say(&r, BG_ECORRUPT, "the archive inside the backup is damaged: %s",
                archive_error_string(a) ? archive_error_string(a) : "?");
            err = r.err;
        }
    }
    if (!err)
        err = read_members(&r, a, fn, arg, &mv, &nm, &meta);
    /* Whatever the archive left unread must still authenticate, up to the
     * final chunk: nothing may be cut or added after the archive's end. */
    while (!err && !r.final && next_chunk(&r) >= 0) {
    }
    if (!err && r.err)
        err = r.err;
    if (!err)
        err = check_meta(&r, meta, mv, nm, info);
    if (err && detail && detail_len && !detail[0])
        snprintf(detail, detail_len, "cannot read backup '%.300s': %s", path,
                 r.s->detail[0] ? r.s->detail : bg_strerror(err));
    info->chunks = r.chunk;
    info->file_bytes = r.size;
    if (a)
        archive_read_free(a);
    free(meta);
    free(mv);
    free(r.ct);
    free(r.pt);
    sodium_memzero(&r.st, sizeof r.st);
    bg__vfs_close(r.s, r.f);
    free(r.s);
    return err;
}

/* ---- restore ---------------------------------------------------------- */

typedef struct restore {
    bg_store *s; /* the store being built */
    const bg_backup_info *info;
    char box[BG_BOX_NAME_MAX + 1];
    bg_box *b;
    bg_write *w;
    char **owned;
    size_t n, cap;
    uint64_t written;
    bg_err err;
} restore;

enum { RESTORE_BATCH = 4096 };

static void batch_free(restore *r)
{
    for (size_t i = 0; i < r->n; i++)
        bg__handle_free(r->s, r->owned[i]);
    r->n = 0;
}

static bg_err flush(restore *r)
{
    bg_err err = r->n ? bg__box_write_trusted(r->b, r->w, r->n) : 0;
    r->written += err ? 0 : r->n;
    batch_free(r);
    return err;
}

static int sealed_in(const bg_backup_info *info, const char *box)
{
    for (size_t i = 0; i < info->nboxes && i < BG_BACKUP_BOXES_MAX; i++)
        if (!strcmp(info->boxes[i].name, box))
            return info->boxes[i].sealed;
    return 0;
}

static int restore_one(void *arg, const char *box, const bg_record *rec)
{
    restore *r = arg;
    if (!r->b || strcmp(box, r->box)) {
        if (r->b && (r->err = flush(r)))
            return 1;
        int flags =
            BG_BOX_CREATE | (sealed_in(r->info, box) ? BG_BOX_ENCRYPT : 0);
        if ((r->err = bg_box_open(r->s, box, flags, &r->b)))
            return 1;
        snprintf(r->box, sizeof r->box, "%s", box);
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        bg_write *w = bg__handle_realloc(r->s, r->w, cap * sizeof *w);
        char **o =
            w ? bg__handle_realloc(r->s, r->owned, cap * sizeof *o) : NULL;
        if (w)
            r->w = w;
        if (!o) {
            r->err = BG_ENOMEM;
            return 1;
        }
        r->owned = o;
        r->cap = cap;
    }
    char *copy = bg__handle_malloc(r->s, rec->key_len + rec->value_len + 1);
    if (!copy) {
        r->err = BG_ENOMEM;
        return 1;
    }
    memcpy(copy, rec->key, rec->key_len);
    memcpy(copy + rec->key_len, rec->value, rec->value_len);
    r->owned[r->n] = copy;
    r->w[r->n] = (bg_write){
        0, copy, rec->key_len, rec->type, copy + rec->key_len, rec->value_len};
    r->n++;
    if (r->n == RESTORE_BATCH && (r->err = flush(r)))
        return 1;
    return 0;
}

static void said(char *detail, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void said(char *detail, size_t cap, const char *fmt, ...)
{
    if (!detail || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
}

/* Build the restored store in fresh from the backup; counts checked. Its
 * sealed boxes are sealed under old's current key when old has one (so
 * whatever holds that key goes on opening the store), else a new one. */
static bg_err build(const char *fresh, const char *path, const bg_backup_key *k,
                    const bg_restore_opts *o, const bg_backup_info *info,
                    bg_store *old, char *detail, size_t cap)
{
    bg_store_opts so;
    bg_store_opts_init(&so);
    so.vfs = o->vfs;
    so.clock = o->clock;
    so.create = 1;
    so.durability = BG_DURABILITY_GROUP;
    so.group_size = 1u << 30; /* one sync per box, at close */
    so.accept_schema = 1;
    so.detail = detail;
    so.detail_len = cap;
    bg_store *s;
    BG_TRY(bg_store_open(fresh, &so, &s));
    restore r = {.s = s, .info = info};
    bg_backup_info again;
    const bg__key *key = NULL, *adopted;
    bg_err err = old ? bg__keys_load(old) : 0;
    if (!err && old && (key = bg__keys_current(old)) != NULL)
        err = bg__keys_adopt(s, key, &adopted);
    if (!err)
        err = bg_backup_read(path, o->vfs, k, restore_one, &r, &again, detail,
                             cap);
    if (err == BG_ESTATE && r.err)
        err = r.err;
    if (!err && r.b)
        err = flush(&r);
    batch_free(&r);
    bg__handle_free(s, r.w);
    bg__handle_free(s, r.owned);
    if (!err && again.records != info->records) {
        err = BG_ECORRUPT; /* the file changed between the two reads */
        said(detail, cap, "the backup changed while it was restored");
    }
    /* Every box holds what the manifest counts. */
    for (size_t i = 0; !err && i < info->nboxes; i++) {
        bg_box *b;
        bg_box_stats st;
        err = bg_box_open(s, info->boxes[i].name, BG_BOX_CREATE, &b);
        if (err)
            break;
        bg_box_stats_of(b, &st);
        if (st.records != info->boxes[i].records) {
            err = BG_ECORRUPT;
            said(detail, cap,
                 "box '%s' holds %" PRIu64 " records restored, "
                 "the manifest %" PRIu64,
                 info->boxes[i].name, st.records, info->boxes[i].records);
        }
    }
    if (err && detail && !detail[0])
        said(detail, cap, "%s", bg_store_detail(s));
    if (!err)
        err = audit_backup(s, "backup_restored", path, info);
    bg_err cerr = bg_store_close(s); /* syncs every box */
    if (!err && cerr) {
        err = cerr;
        said(detail, cap, "cannot sync the restored store in '%s'", fresh);
    }
    return err;
}

bg_err bg_backup_restore(const char *dir, const char *path,
                         const bg_backup_key *k, const bg_restore_opts *opts,
                         bg_backup_info *info, char *detail, size_t cap)
{
    bg_restore_opts none = {0};
    const bg_restore_opts *o = opts ? opts : &none;
    if (detail && cap)
        detail[0] = '\0';
    BG_TRY(bg_backup_read(path, o->vfs, k, NULL, NULL, info, detail, cap));
    if (info->nboxes > BG_BACKUP_BOXES_MAX) {
        said(detail, cap,
             "the backup holds %zu boxes; a restore takes at "
             "most %d",
             info->nboxes, BG_BACKUP_BOXES_MAX);
        return BG_EINVALID;
    }
    if (o->expect_schema && info->schema_version != o->expect_schema) {
        said(detail, cap,
             "the backup is at schema version %u, not the "
             "expected %u: migrate the restored store or pick another backup",
             (unsigned)info->schema_version, (unsigned)o->expect_schema);
        return BG_ESCHEMA;
    }
    if (o->code_version && info->schema_version > o->code_version) {
        said(detail, cap,
             "the backup is at schema version %u, newer than "
             "the code's %u: update the app first",
             (unsigned)info->schema_version, (unsigned)o->code_version);
        return BG_ESCHEMA;
    }
    /* Hold the store that is there (its open also settles what a crash
     * left: an erase, a migration, an earlier restore). */
    bg_store_opts so;
    bg_store_opts_init(&so);
    so.vfs = o->vfs;
    so.clock = o->clock;
    so.accept_schema = 1;
    so.detail = detail;
    so.detail_len = cap;
    bg_store *old = NULL;
    bg_err err = bg_store_open(dir, &so, &old);
    if (err && err != BG_ENOTFOUND)
        return err;
    if (detail && cap)
        detail[0] = '\0';
    bg_store *bare;
    err = bg__handle_bare(dir, o->vfs, &bare);
    if (err) {
        (void)bg_store_close(old);
        return err;
    }
    char fresh[BG_PATH_MAX], prev[BG_PATH_MAX], parent[BG_PATH_MAX];
    snprintf(fresh, sizeof fresh, "%.1000s" BG__RESTORE_NEW, bare->dir);
    snprintf(prev, sizeof prev, "%.1000s" BG__RESTORE_OLD, bare->dir);
    bg__handle_parent(bare->dir, parent, sizeof parent);
    err = bg__wipe_dir(bare, fresh); /* a build an earlier crash cut */
    if (!err)
        err = build(fresh, path, k, o, info, old, detail, cap);
    if (err) {
        if (detail && cap && !detail[0])
            said(detail, cap, "the restore of '%s' failed: %s", bare->dir,
                 bare->detail[0] ? bare->detail : bg_strerror(err));
        if (bg__wipe_dir(bare, fresh)) {
            /* left beside: the next open of the store removes it */
        }
        (void)bg_store_close(old);
        free(bare);
        return err;
    }
    /* Every entry of the restored store durable before it moves (a box
     * less store has written nothing that synced its directory). */
    err = bg__vfs_sync_dir(bare, fresh);
    /* The swap: from the first rename on, the next open goes forward. */
    if (!err && old)
        err = bg__vfs_rename(bare, bare->dir, prev);
    if (!err)
        err = bg__vfs_rename(bare, fresh, bare->dir);
    if (!err)
        err = bg__vfs_sync_dir(bare, parent);
    (void)bg_store_close(old);
    if (!err && old)
        err = bg__wipe_dir(bare, prev);
    if (err)
        said(detail, cap,
             "the restore of '%s' stopped in its swap (%s); the "
             "next open of the store finishes it",
             bare->dir, bare->detail[0] ? bare->detail : bg_strerror(err));
    free(bare);
    return err;
}
