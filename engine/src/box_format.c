/*
 * The byte layout of box headers and frames (documented in box_int.h), their
 * checksums, and the sealing of values with XChaCha20-Poly1305 under the
 * store's data key, bound to box id, sequence, kind, typeId and key.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include <xxhash.h>

#include "json_int.h"
#include "box_int.h"
#include "boxguard/record.h"
#include "boxguard/registry.h"
#include "record_int.h"
#include "registry_int.h"
#include "keys_int.h"
#include "box_file_int.h"

const uint8_t bg__box_magic[8] = {'B', 'G', 'B', 'O', 'X', '\r', '\n', 0x1a};

/* ---- format ----------------------------------------------------------- */

void bg__box_encode_header(uint8_t *p, const uint8_t id[16], uint16_t flags,
                           uint32_t key_id, uint64_t seq_floor)
{
    memcpy(p, bg__box_magic, 8);
    put16(p + 8, BG__BOX_VERSION);
    put16(p + 10, flags);
    put32(p + 12, key_id);
    memcpy(p + 16, id, 16);
    put64(p + 32, seq_floor);
    put64(p + 40, XXH3_64bits(p, 40));
}

int bg__box_header_parse(const uint8_t *p, box_hdr *h)
{
    if (memcmp(p, bg__box_magic, 8) || get16(p + 8) != BG__BOX_VERSION ||
        (get16(p + 10) & ~BG__BOX_SEALED) ||
        XXH3_64bits(p, 40) != get64(p + 40))
        return 0;
    h->flags = get16(p + 10);
    h->key_id = get32(p + 12);
    if ((h->flags & BG__BOX_SEALED) ? h->key_id == 0 : h->key_id != 0)
        return 0;
    memcpy(h->id, p + 16, 16);
    h->seq_floor = get64(p + 32);
    return 1;
}

/* Write the fixed part and the key; the value region is the caller's. */
uint32_t bg__box_frame_start(uint8_t *p, int kind, int flags, const void *key,
                             uint16_t klen, uint32_t type, uint64_t seq,
                             uint64_t off, uint64_t goff, uint32_t vlen)
{
    uint32_t flen = BG__FRAME_OVERHEAD + klen + vlen;
    put32(p, BG__FRAME_MAGIC);
    put32(p + 4, flen);
    p[8] = (uint8_t)kind;
    p[9] = (uint8_t)flags;
    put16(p + 10, klen);
    put32(p + 12, type);
    put64(p + 16, seq);
    put64(p + 24, off);
    put64(p + 32, goff);
    put32(p + 40, vlen);
    put32(p + 44, 0);
    memcpy(p + BG__FRAME_HDR, key, klen);
    return flen;
}

void bg__box_frame_finish(uint8_t *p, uint32_t flen)
{
    put64(p + flen - 8, XXH3_64bits(p, flen - 8));
}

uint32_t bg__box_encode_frame(uint8_t *p, int kind, int flags, const void *key,
                              uint16_t klen, uint32_t type, uint64_t seq,
                              uint64_t off, uint64_t goff, const void *value,
                              uint32_t vlen)
{
    uint32_t flen = bg__box_frame_start(p, kind, flags, key, klen, type, seq,
                                        off, goff, vlen);
    if (vlen)
        memcpy(p + BG__FRAME_HDR + klen, value, vlen);
    bg__box_frame_finish(p, flen);
    return flen;
}

/* Parse the fixed part of a frame found at file offset pos. Returns 1 when
 * the fields are consistent (the checksum is not checked here). In a sealed
 * box every value, a delete's included, carries nonce and tag. */
int bg__box_frame_head(const uint8_t *p, uint64_t pos, int sealed, frame_hdr *h)
{
    if (get32(p) != BG__FRAME_MAGIC)
        return 0;
    h->flen = get32(p + 4);
    h->kind = p[8];
    h->flags = p[9];
    h->klen = get16(p + 10);
    h->type = get32(p + 12);
    h->seq = get64(p + 16);
    h->off = get64(p + 24);
    h->goff = get64(p + 32);
    h->vlen = get32(p + 40);
    uint32_t extra = sealed ? BG__SEAL_BYTES : 0;
    if (get32(p + 44) != 0 || h->klen == 0 || h->klen > BG_KEY_MAX ||
        h->vlen > BG__VALUE_MAX || h->vlen < extra ||
        h->flen != (uint64_t)BG__FRAME_OVERHEAD + h->klen + h->vlen)
        return 0;
    if (h->kind != BG__KIND_PUT && h->kind != BG__KIND_DEL)
        return 0;
    if ((h->kind == BG__KIND_DEL && (h->vlen != extra || h->type)) ||
        (h->flags & ~BG__FLAG_BATCH))
        return 0;
    if (h->off != pos || h->goff > pos || h->goff < BG__BOX_HDR_SIZE ||
        h->seq == 0)
        return 0;
    return 1;
}

/* ---- sealing ----------------------------------------------------------- */

/* The additional data: box id, sequence, kind, typeId, key. */
static size_t seal_ad(uint8_t *ad, const uint8_t id[16], uint64_t seq, int kind,
                      uint32_t type, const void *key, uint16_t klen)
{
    memcpy(ad, id, 16);
    put64(ad + 16, seq);
    ad[24] = (uint8_t)kind;
    put32(ad + 25, type);
    put16(ad + 29, klen);
    memcpy(ad + 31, key, klen);
    return 31 + (size_t)klen;
}

/* out: nonce, ciphertext, tag (plen + BG__SEAL_BYTES bytes). */
void bg__box_seal(bg_store *s, const bg__key *k, const uint8_t id[16],
                  uint64_t seq, int kind, uint32_t type, const void *key,
                  uint16_t klen, const void *plain, size_t plen, uint8_t *out)
{
    uint8_t ad[31 + BG_KEY_MAX];
    size_t adlen = seal_ad(ad, id, seq, kind, type, key, klen);
    bg__vfs_random(s, out, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
        out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + plen, NULL, plain,
        plen, ad, adlen, NULL, out, k->k);
}

/* Authenticate and decrypt the value of frame p (header h) into out
 * (h->vlen - BG__SEAL_BYTES bytes). Returns 0, or -1 when it does not
 * authenticate. */
int bg__box_unseal(const bg__key *k, const uint8_t id[16], const uint8_t *p,
                   const frame_hdr *h, uint8_t *out)
{
    uint8_t ad[31 + BG_KEY_MAX];
    size_t adlen =
        seal_ad(ad, id, h->seq, h->kind, h->type, p + BG__FRAME_HDR, h->klen);
    const uint8_t *v = p + BG__FRAME_HDR + h->klen;
    size_t clen = h->vlen - BG__SEAL_BYTES;
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
               out, NULL, v + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               clen, v + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + clen,
               ad, adlen, v, k->k) == 0
               ? 0
               : -1;
}

int bg__box_frame_sum_ok(const uint8_t *p, uint32_t flen)
{
    return XXH3_64bits(p, flen - 8) == get64(p + flen - 8);
}

/* Rewrite the placement fields of a verified frame for a new file. */
void bg__box_frame_move(uint8_t *p, uint32_t flen, uint64_t off)
{
    p[9] = 0;
    put64(p + 24, off);
    put64(p + 32, off);
    put64(p + flen - 8, XXH3_64bits(p, flen - 8));
}

/* ---- writing frames through a buffer ------------------------------------ */

void bg__box_fw_init(fwriter *w, bg_store *s, bg_file *f, uint64_t pos)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->f = f;
    w->pos = pos;
}

bg_err bg__box_fw_flush(fwriter *w)
{
    if (!w->used)
        return 0;
    bg_err err = bg__vfs_write(w->s, w->f, w->pos - w->used, w->buf, w->used);
    w->used = 0;
    return err;
}

/* Room for len bytes at offset w->pos; the caller fills them, then calls
 * bg__box_fw_commit. hint sizes a first buffer (the whole write when small). */
bg_err bg__box_fw_reserve(fwriter *w, size_t len, size_t hint, uint8_t **out)
{
    if (w->used + len > w->cap && w->used)
        BG_TRY(bg__box_fw_flush(w));
    if (len > w->cap) {
        size_t cap =
            hint > len ? (hint < BG__BOX_CHUNK ? hint : BG__BOX_CHUNK) : len;
        if (cap < len)
            cap = len;
        uint8_t *p = bg__handle_realloc(w->s, w->buf, cap);
        if (!p)
            return BG_ENOMEM;
        w->buf = p;
        w->cap = cap;
    }
    *out = w->buf + w->used;
    return 0;
}

void bg__box_fw_commit(fwriter *w, size_t len)
{
    w->used += len;
    w->pos += len;
}

void bg__box_fw_free(fwriter *w)
{
    bg__handle_free(w->s, w->buf);
    w->buf = NULL;
}

/* ---- box files on disk ------------------------------------------------ */

bg_err bg__box_check_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > BG_BOX_NAME_MAX)
        return BG_EINVALID;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return BG_EINVALID;
    }
    return 0;
}

bg_err bg__box_name_ok(bg_store *s, const char *name)
{
    BG_FAIL_IF(bg__box_check_name(name), s, BG_EINVALID,
               "bad box name '%.80s' (1-%d of A-Z a-z 0-9 _ -)",
               name ? name : "", BG_BOX_NAME_MAX);
    return 0;
}

void bg__box_path(bg_store *s, const char *name, const char *suffix, char *out,
                  size_t cap)
{
    char file[BG_BOX_NAME_MAX + 16];
    snprintf(file, sizeof file, "%s%s", name, suffix);
    bg__handle_path(s, out, cap, file);
}

bg_err bg__box_write_beside(bg_store *s, const char *tmp, const char *path,
                            const uint8_t hdr[BG__BOX_HDR_SIZE], fill_fn fill,
                            void *arg, bg_file **fout, uint64_t *end)
{
    bg_file *f = NULL;
    bg_err err = bg__vfs_unlink(s, tmp);
    if (err && err != BG_ENOTFOUND)
        return err;
    BG_TRY(bg__vfs_open(s, tmp, BG_OPEN_CREATE | BG_OPEN_EXCL, &f));
    *end = BG__BOX_HDR_SIZE;
    BG_TRY_OUT(bg__vfs_write(s, f, 0, hdr, BG__BOX_HDR_SIZE));
    if (fill)
        BG_TRY_OUT(fill(arg, f, end));
    BG_TRY_OUT(bg__vfs_sync(s, f));
    BG_TRY_OUT(bg__vfs_rename(s, tmp, path));
    /* From here the new file is the box; a failed directory sync only means
     * the rename may not survive a crash yet: the next durable write syncs
     * the directory first. */
    *fout = f;
    err = bg__vfs_sync_dir(s, s->dir);
    if (err)
        s->dir_dirty = 1;
    else
        s->dir_dirty = 0;
    return err;
out:
    bg__vfs_close(s, f);
    bg__vfs_unlink(s, tmp);
    return err;
}
