/*
 * Box files: an append-only log of checksummed frames (format in
 * box_int.h), an in-memory index of the live keys, and the scan that tells a
 * clean file from a torn tail from corruption. Compaction and recovery write
 * a new file beside the old one and rename it into place.
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
#include "boxguard/types.h"
#include "record_int.h"
#include "types_int.h"
#include "keys_int.h"

const uint8_t bg__box_magic[8] = {'B', 'G', 'B', 'O', 'X', '\r', '\n', 0x1a};

#define CHUNK (1u << 20) /* write and read buffers */

/* ---- little-endian helpers -------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- format ----------------------------------------------------------- */

typedef struct frame_hdr {
    uint32_t flen;
    uint8_t kind, flags;
    uint16_t klen;
    uint32_t type;
    uint64_t seq, off, goff;
    uint32_t vlen;
} frame_hdr;

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

typedef struct box_hdr {
    uint8_t id[16];
    uint16_t flags;
    uint32_t key_id;
    uint64_t seq_floor;
} box_hdr;

static int header_parse(const uint8_t *p, box_hdr *h)
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
static uint32_t frame_start(uint8_t *p, int kind, int flags, const void *key,
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

static void frame_finish(uint8_t *p, uint32_t flen)
{
    put64(p + flen - 8, XXH3_64bits(p, flen - 8));
}

uint32_t bg__box_encode_frame(uint8_t *p, int kind, int flags, const void *key,
                              uint16_t klen, uint32_t type, uint64_t seq,
                              uint64_t off, uint64_t goff, const void *value,
                              uint32_t vlen)
{
    uint32_t flen =
        frame_start(p, kind, flags, key, klen, type, seq, off, goff, vlen);
    if (vlen)
        memcpy(p + BG__FRAME_HDR + klen, value, vlen);
    frame_finish(p, flen);
    return flen;
}

/* Parse the fixed part of a frame found at file offset pos. Returns 1 when
 * the fields are consistent (the checksum is not checked here). In a sealed
 * box every value, a delete's included, carries nonce and tag. */
static int frame_head(const uint8_t *p, uint64_t pos, int sealed, frame_hdr *h)
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
static void seal(bg_store *s, const bg__key *k, const uint8_t id[16],
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
static int unseal(const bg__key *k, const uint8_t id[16], const uint8_t *p,
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

static int frame_sum_ok(const uint8_t *p, uint32_t flen)
{
    return XXH3_64bits(p, flen - 8) == get64(p + flen - 8);
}

/* Rewrite the placement fields of a verified frame for a new file. */
static void frame_move(uint8_t *p, uint32_t flen, uint64_t off)
{
    p[9] = 0;
    put64(p + 24, off);
    put64(p + 32, off);
    put64(p + flen - 8, XXH3_64bits(p, flen - 8));
}

/* ---- the index: open addressing, linear probing, backward-shift delete - */

typedef struct ent {
    uint64_t hash;
    char *key; /* NULL: empty slot */
    uint64_t off;
    uint64_t seq;
    uint32_t flen;
    uint32_t type;
    uint16_t klen;
} ent;

struct bg_box {
    bg_store *s;
    char name[BG_BOX_NAME_MAX + 8]; /* staged boxes add a suffix */
    char path[BG_PATH_MAX];
    bg_file *f;
    uint8_t id[16];
    uint16_t hflags;
    uint32_t key_id;    /* sealed boxes: the key named in the header */
    const bg__key *key; /* ... and the store's copy of it */
    uint64_t end;       /* where the next frame goes */
    uint64_t next_seq;
    uint64_t frames;
    uint64_t live_bytes;
    int group_open; /* frames written since the last sync */
    uint64_t group_off;
    unsigned group_count;
    int read_only, damaged, poisoned;
    int reserved; /* the store's own box: no public writes */
    /* External index (the queue): frames go to ext_fn, not to slots. */
    bg__box_ext_fn ext_fn;
    void *ext_arg;
    ent *slots;
    size_t cap, count;
    bg_box_report rep;
};

static uint64_t key_hash(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}

static ent *idx_find(bg_box *b, const void *key, size_t klen, uint64_t h)
{
    if (!b->cap)
        return NULL;
    size_t mask = b->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        ent *e = &b->slots[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen))
            return e;
    }
}

static bg_err idx_grow(bg_box *b)
{
    size_t cap = b->cap ? b->cap * 2 : 64;
    ent *slots = bg__handle_malloc(b->s, cap * sizeof *slots);
    if (!slots)
        return BG_ENOMEM;
    memset(slots, 0, cap * sizeof *slots);
    for (size_t i = 0; i < b->cap; i++) {
        ent *e = &b->slots[i];
        if (!e->key)
            continue;
        size_t j = (size_t)e->hash & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    bg__handle_free(b->s, b->slots);
    b->slots = slots;
    b->cap = cap;
    return 0;
}

static bg_err idx_set(bg_box *b, const void *key, uint16_t klen,
                      const frame_hdr *h)
{
    uint64_t hash = key_hash(key, klen);
    ent *e = idx_find(b, key, klen, hash);
    if (!e) {
        if ((b->count + 1) * 4 > b->cap * 3)
            BG_TRY(idx_grow(b));
        char *copy = bg__handle_malloc(b->s, klen);
        if (!copy)
            return BG_ENOMEM;
        memcpy(copy, key, klen);
        size_t i = (size_t)hash & (b->cap - 1);
        while (b->slots[i].key)
            i = (i + 1) & (b->cap - 1);
        e = &b->slots[i];
        e->hash = hash;
        e->key = copy;
        e->klen = klen;
        b->count++;
    } else {
        b->live_bytes -= e->flen;
    }
    e->off = h->off;
    e->seq = h->seq;
    e->flen = h->flen;
    e->type = h->type;
    b->live_bytes += h->flen;
    return 0;
}

static void idx_del(bg_box *b, const void *key, size_t klen)
{
    ent *e = idx_find(b, key, klen, key_hash(key, klen));
    if (!e)
        return;
    b->live_bytes -= e->flen;
    bg__handle_free(b->s, e->key);
    b->count--;
    size_t mask = b->cap - 1;
    size_t i = (size_t)(e - b->slots);
    /* Shift later members of the probe run back so no tombstone is needed. */
    for (size_t j = (i + 1) & mask; b->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)b->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            b->slots[i] = b->slots[j];
            i = j;
        }
    }
    b->slots[i].key = NULL;
}

static void idx_clear(bg_box *b)
{
    for (size_t i = 0; i < b->cap; i++)
        bg__handle_free(b->s, b->slots[i].key);
    bg__handle_free(b->s, b->slots);
    b->slots = NULL;
    b->cap = b->count = 0;
    b->live_bytes = 0;
}

/* Live entries sorted by sequence: write order. */
static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = (*(ent *const *)a)->seq, y = (*(ent *const *)b)->seq;
    return x < y ? -1 : x > y;
}

static bg_err idx_sorted(bg_box *b, ent ***out)
{
    ent **v = bg__handle_malloc(b->s, (b->count ? b->count : 1) * sizeof *v);
    if (!v)
        return BG_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < b->cap; i++)
        if (b->slots[i].key)
            v[n++] = &b->slots[i];
    qsort(v, n, sizeof *v, cmp_seq);
    *out = v;
    return 0;
}

/* ---- reading a file through a window ---------------------------------- */

typedef struct reader {
    bg_store *s;
    bg_file *f;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t boff;
    size_t blen;
    bg_err err;
    /* Sealed boxes: every frame is authenticated as it is read. */
    int sealed;
    const bg__key *key;
    uint8_t id[16];
    uint8_t *plain; /* scratch for decryption */
    size_t plain_cap;
    int auth_failed;     /* the last rd_frame failed authentication only */
    uint64_t auth_count; /* frames that failed authentication */
    int json_only;       /* header lost: accept only plain JSON values */
} reader;

/* Pointer to len bytes at off, or NULL past the end (or on a read error,
 * left in r->err). Valid until the next call. */
static const uint8_t *rd_get(reader *r, uint64_t off, size_t len)
{
    if (off > r->size || len > r->size - off)
        return NULL;
    if (off >= r->boff && off + len <= r->boff + r->blen)
        return r->buf + (off - r->boff);
    size_t want = len > CHUNK ? len : CHUNK;
    if (want > r->size - off)
        want = (size_t)(r->size - off);
    if (want > r->cap) {
        uint8_t *p = bg__handle_realloc(r->s, r->buf, want);
        if (!p) {
            r->err = BG_ENOMEM;
            return NULL;
        }
        r->buf = p;
        r->cap = want;
    }
    size_t got = 0;
    bg_err err = bg__vfs_read(r->s, r->f, off, r->buf, want, &got);
    if (err || got < len) {
        r->err = err ? err : BG_EIO;
        r->blen = 0;
        return NULL;
    }
    r->boff = off;
    r->blen = got;
    return r->buf;
}

/* A whole verifying frame at pos whose sequence exceeds last_seq: its
 * checksum matches and, in a sealed box, it authenticates. */
static const uint8_t *rd_frame(reader *r, uint64_t pos, uint64_t last_seq,
                               frame_hdr *h)
{
    r->auth_failed = 0;
    const uint8_t *p = rd_get(r, pos, BG__FRAME_HDR);
    if (!p || !frame_head(p, pos, r->sealed, h) || h->seq <= last_seq)
        return NULL;
    p = rd_get(r, pos, h->flen);
    if (!p || !frame_sum_ok(p, h->flen))
        return NULL;
    if (r->sealed) {
        size_t need = h->vlen - BG__SEAL_BYTES + 1;
        if (need > r->plain_cap) {
            uint8_t *q = bg__handle_realloc(r->s, r->plain, need);
            if (!q) {
                r->err = BG_ENOMEM;
                return NULL;
            }
            r->plain = q;
            r->plain_cap = need;
        }
        if (unseal(r->key, r->id, p, h, r->plain)) {
            r->auth_failed = 1;
            r->auth_count++;
            return NULL;
        }
    } else if (r->json_only && h->kind == BG__KIND_PUT) {
        bg_err err = bg__record_check((const char *)p + BG__FRAME_HDR + h->klen,
                                      h->vlen, &r->s->alloc, NULL, 0);
        if (err == BG_ENOMEM)
            r->err = err;
        if (err)
            return NULL;
    }
    return p;
}

static void rd_free(reader *r)
{
    bg__handle_free(r->s, r->buf);
    bg__handle_free(r->s, r->plain);
}

/* ---- writing frames through a buffer ------------------------------------ */

/* Frames are encoded into a buffer and written in CHUNK-sized pieces; pos
 * is where the next frame lands in the file. */
typedef struct fwriter {
    bg_store *s;
    bg_file *f;
    uint8_t *buf;
    size_t cap, used;
    uint64_t pos;
} fwriter;

static void fw_init(fwriter *w, bg_store *s, bg_file *f, uint64_t pos)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->f = f;
    w->pos = pos;
}

static bg_err fw_flush(fwriter *w)
{
    if (!w->used)
        return 0;
    bg_err err = bg__vfs_write(w->s, w->f, w->pos - w->used, w->buf, w->used);
    w->used = 0;
    return err;
}

/* Room for len bytes at offset w->pos; the caller fills them, then calls
 * fw_commit. hint sizes a first buffer (the whole write when small). */
static bg_err fw_reserve(fwriter *w, size_t len, size_t hint, uint8_t **out)
{
    if (w->used + len > w->cap && w->used)
        BG_TRY(fw_flush(w));
    if (len > w->cap) {
        size_t cap = hint > len ? (hint < CHUNK ? hint : CHUNK) : len;
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

static void fw_commit(fwriter *w, size_t len)
{
    w->used += len;
    w->pos += len;
}

static void fw_free(fwriter *w)
{
    bg__handle_free(w->s, w->buf);
    w->buf = NULL;
}

/* ---- scanning --------------------------------------------------------- */

/* Called for each frame that a scan applies; p holds the whole frame. */
typedef bg_err (*apply_fn)(void *arg, const uint8_t *p, const frame_hdr *h);

typedef struct pend {
    uint64_t pos;
    uint64_t seq;
} pend;

typedef struct scan {
    reader *r;
    int salvage; /* apply every verifying frame, batches or not */
    apply_fn apply;
    void *arg;
    uint64_t max_seq;
    pend *pb; /* frames of a batch not yet committed */
    size_t npb, cappb;
    const char *what; /* progress label */
    const char *name; /* box name, for messages */
} scan;

static bg_err pb_push(scan *sc, uint64_t pos, uint64_t seq)
{
    BG_TRY(bg__handle_grow(sc->r->s, &sc->pb, sc->npb, &sc->cappb,
                           sizeof *sc->pb, 16));
    sc->pb[sc->npb].pos = pos;
    sc->pb[sc->npb].seq = seq;
    sc->npb++;
    return 0;
}

static bg_err apply_at(scan *sc, uint64_t pos, uint64_t seq_before)
{
    frame_hdr h;
    const uint8_t *p = rd_frame(sc->r, pos, seq_before, &h);
    if (!p)
        return sc->r->err ? sc->r->err : BG_EIO;
    return sc->apply ? sc->apply(sc->arg, p, &h) : 0;
}

static bg_err pb_commit(scan *sc)
{
    for (size_t i = 0; i < sc->npb; i++)
        BG_TRY(apply_at(sc, sc->pb[i].pos, sc->pb[i].seq - 1));
    sc->npb = 0;
    return 0;
}

static void add_range(bg_box_report *rep, uint64_t off, uint64_t len)
{
    if (rep->nranges < BG_BOX_REPORT_RANGES) {
        rep->ranges[rep->nranges].off = off;
        rep->ranges[rep->nranges].len = len;
    }
    rep->nranges++;
    rep->lost_bytes += len;
}

/* The next offset >= from holding a verifying frame, or the file size. */
static uint64_t resync(reader *r, uint64_t from, uint64_t last_seq)
{
    static const uint8_t m[4] = {'B', 'G', 'X', 'F'};
    frame_hdr h;
    for (uint64_t q = from; q + BG__FRAME_OVERHEAD <= r->size; q++) {
        const uint8_t *p = rd_get(r, q, 4);
        if (!p)
            break;
        if (memcmp(p, m, 4))
            continue;
        if (rd_frame(r, q, last_seq, &h))
            return q;
        if (r->err)
            break;
    }
    return r->size;
}

/* Scan the file once. Without salvage, frames are applied up to the first
 * damage only (batches when they commit); the rest of the file is read to
 * classify the damage. With salvage every verifying frame is applied. */
static bg_err scan_file(scan *sc, bg_box_report *rep, box_hdr *hdr)
{
    reader *r = sc->r;
    memset(rep, 0, sizeof *rep);
    memset(hdr, 0, sizeof *hdr);
    rep->file_size = r->size;
    const uint8_t *hp = rd_get(r, 0, BG__BOX_HDR_SIZE);
    if (r->err)
        return r->err;
    rep->header_ok = hp && header_parse(hp, hdr);
    r->sealed = rep->header_ok && (hdr->flags & BG__BOX_SEALED);
    /* Without a header nothing says whether values were sealed: only frames
     * whose value is JSON can be trusted as plain records. */
    r->json_only = !rep->header_ok;
    r->auth_count = 0;
    if (r->sealed) {
        BG_TRY(bg__keys_load(r->s));
        r->key = bg__keys_find(r->s, hdr->key_id);
        memcpy(r->id, hdr->id, 16);
        if (!r->key)
            return bg__handle_fail(r->s, BG_EAUTH,
                                   "box '%s' is sealed with key %08x, which "
                                   "the store does not have (%zu key%s in "
                                   "keys/); nothing was changed",
                                   sc->name, (unsigned)hdr->key_id, r->s->nkeys,
                                   r->s->nkeys == 1 ? "" : "s");
    }
    uint64_t pos = BG__BOX_HDR_SIZE;
    uint64_t damage = UINT64_MAX, batch_at_damage = UINT64_MAX;
    uint64_t last_seq = 0, next_progress = 0;
    int durable_after = 0;
    if (!rep->header_ok) {
        damage = 0;
        uint64_t q = r->size > pos ? resync(r, pos, 0) : r->size;
        if (r->err)
            return r->err;
        add_range(rep, 0, q);
        pos = q;
    }
    rep->valid_end = rep->header_ok ? BG__BOX_HDR_SIZE : 0;
    while (pos < r->size) {
        if (pos >= next_progress) {
            bg__handle_progress(r->s, sc->what, pos, r->size);
            next_progress = pos + (16u << 20);
        }
        frame_hdr h;
        const uint8_t *p = rd_frame(r, pos, last_seq, &h);
        if (!p) {
            if (r->err)
                return r->err;
            uint64_t q = resync(r, pos + 1, last_seq);
            if (r->err)
                return r->err;
            add_range(rep, pos, q - pos);
            if (damage == UINT64_MAX) {
                damage = pos;
                batch_at_damage = sc->npb ? sc->pb[0].pos : UINT64_MAX;
                if (sc->salvage)
                    BG_TRY(pb_commit(sc));
            }
            pos = q;
            continue;
        }
        last_seq = h.seq;
        rep->frames++;
        if (h.seq > sc->max_seq)
            sc->max_seq = h.seq;
        if (damage != UINT64_MAX) {
            rep->tail_frames++;
            if (h.goff > damage)
                durable_after = 1;
        }
        if (damage == UINT64_MAX || sc->salvage) {
            if ((h.flags & BG__FLAG_BATCH) && !sc->salvage) {
                BG_TRY(pb_push(sc, pos, h.seq));
            } else {
                if (sc->npb) {
                    BG_TRY(pb_commit(sc));
                    /* Committing read the batch again: p may point into a
                     * window that has moved since (a batch over CHUNK). */
                    p = rd_frame(r, pos, h.seq - 1, &h);
                    if (!p)
                        return r->err ? r->err : BG_EIO;
                }
                if (sc->apply)
                    BG_TRY(sc->apply(sc->arg, p, &h));
            }
        }
        pos += h.flen;
        if (damage == UINT64_MAX)
            rep->valid_end = pos;
    }
    bg__handle_progress(r->s, sc->what, r->size, r->size);
    rep->auth_failures = r->auth_count;
    if (r->sealed && r->auth_count && rep->frames == 0)
        return bg__handle_fail(r->s, BG_EAUTH,
                               "box '%s': no frame authenticates under key "
                               "%08x (a wrong key?); nothing was changed",
                               sc->name, (unsigned)hdr->key_id);

    if (damage == UINT64_MAX) {
        if (sc->npb) { /* a batch the crash cut short: not committed */
            rep->status = BG_BOX_TORN;
            rep->cut = sc->pb[0].pos;
            rep->tail_frames = sc->npb;
            rep->lost_bytes = r->size - rep->cut;
            rep->valid_end = rep->cut;
        }
        return 0;
    }
    rep->first_damage = damage;
    /* A frame whose checksum holds but which does not authenticate was
     * edited, swapped or replayed: never the work of a crash. */
    if (!rep->header_ok || durable_after || r->auth_count) {
        rep->status = BG_BOX_CORRUPT;
        return 0;
    }
    rep->status = BG_BOX_TORN;
    rep->cut = batch_at_damage < damage ? batch_at_damage : damage;
    rep->valid_end = rep->cut;
    rep->lost_bytes = r->size - rep->cut;
    return 0;
}

/* ---- box handles ------------------------------------------------------ */

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

const char *bg__box_name(const bg_box *b)
{
    return b->name;
}

const bg_box_report *bg_box_report_of(const bg_box *b)
{
    return &b->rep;
}

static bg_err check_name(bg_store *s, const char *name)
{
    if (bg__box_check_name(name))
        return bg__handle_fail(s, BG_EINVALID,
                               "bad box name '%.80s' (1-%d of A-Z a-z 0-9 _ -)",
                               name ? name : "", BG_BOX_NAME_MAX);
    return 0;
}

static void box_path(bg_store *s, const char *name, const char *suffix,
                     char *out, size_t cap)
{
    char file[BG_BOX_NAME_MAX + 16];
    snprintf(file, sizeof file, "%s%s", name, suffix);
    bg__handle_path(s, out, cap, file);
}

/* Write a new file at tmp holding header + body produced by fill, sync it,
 * rename it to path and sync the directory. The file is either entirely
 * there under path or not at all. On success *fout is the open handle. */
typedef bg_err (*fill_fn)(void *arg, bg_file *f, uint64_t *end);

static bg_err write_beside(bg_store *s, const char *tmp, const char *path,
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

static bg_err apply_index(void *arg, const uint8_t *p, const frame_hdr *h)
{
    bg_box *b = arg;
    b->frames++;
    if (b->ext_fn) {
        bg__frame_info fi = {(const char *)p + BG__FRAME_HDR,
                             h->klen,
                             h->kind == BG__KIND_DEL,
                             h->type,
                             h->seq,
                             h->off,
                             h->flen};
        return b->ext_fn(b->ext_arg, &fi);
    }
    if (h->kind == BG__KIND_PUT)
        return idx_set(b, p + BG__FRAME_HDR, h->klen, h);
    idx_del(b, p + BG__FRAME_HDR, h->klen);
    return 0;
}

static void box_free(bg_box *b)
{
    if (b->f)
        bg__vfs_close(b->s, b->f);
    idx_clear(b);
    bg__handle_free(b->s, b);
}

/* Scan b's open file into its index and report. */
static bg_err box_load(bg_box *b)
{
    bg_store *s = b->s;
    reader r = {.s = s, .f = b->f};
    bg_err err = bg__vfs_size(s, b->f, &r.size);
    if (err)
        return bg__handle_fail(s, err, "box '%s': cannot read size", b->name);
    scan sc = {.r = &r,
               .apply = apply_index,
               .arg = b,
               .what = "open",
               .name = b->name};
    box_hdr hdr;
    BG_TRY_OUT(scan_file(&sc, &b->rep, &hdr));
    memcpy(b->id, hdr.id, 16);
    b->hflags = hdr.flags;
    b->key_id = hdr.key_id;
    b->key = r.key;
    if (b->rep.status == BG_BOX_CORRUPT) {
        /* Read-only view of everything that still verifies. */
        idx_clear(b);
        b->frames = 0;
        if (b->ext_fn)
            BG_TRY_OUT(b->ext_fn(b->ext_arg, NULL));
        sc.salvage = 1;
        sc.npb = 0;
        bg_box_report tmp;
        box_hdr again;
        BG_TRY_OUT(scan_file(&sc, &tmp, &again));
        b->damaged = 1;
    }
    b->next_seq =
        sc.max_seq + 1 > hdr.seq_floor ? sc.max_seq + 1 : hdr.seq_floor;
    if (b->next_seq == 0)
        b->next_seq = 1;
    b->end = b->rep.status == BG_BOX_TORN ? b->rep.cut : r.size;
out:
    rd_free(&r);
    bg__handle_free(s, sc.pb);
    if (err && err != BG_EAUTH)
        bg__handle_fail(s, err, "box '%s': cannot scan", b->name);
    return err;
}

/* Open (or create) a box; an owner that keeps its own index passes
 * ext_fn, which then receives the frames instead of the box's index. */
static bg_err box_open_file(bg_store *s, const char *name, int flags,
                            bg__box_ext_fn ext_fn, void *ext_arg, bg_box **out)
{
    bg_box *b = bg__box_table_find(s, name);
    if (b && ext_fn)
        return bg__handle_fail(s, BG_ESTATE, "box '%s' is already open", name);
    if (b) {
        *out = b;
        return 0;
    }
    char path[BG_PATH_MAX], tmp[BG_PATH_MAX];
    box_path(s, name, ".box", path, sizeof path);
    box_path(s, name, ".box.tmp", tmp, sizeof tmp);
    bg_err err = bg__vfs_stat(s, path, NULL);
    if (err == BG_ENOTFOUND) {
        if (!(flags & BG_BOX_CREATE))
            return bg__handle_fail(s, BG_ENOTFOUND, "box '%s' does not exist",
                                   name);
        if (s->read_only)
            return bg__handle_fail(s, BG_ESTATE,
                                   "box '%s' does not exist (read-only store)",
                                   name);
    } else if (err) {
        return bg__handle_fail(s, err, "box '%s': cannot stat '%s'", name,
                               path);
    }

    b = bg__handle_malloc(s, sizeof *b);
    if (!b)
        return BG_ENOMEM;
    memset(b, 0, sizeof *b);
    b->s = s;
    strcpy(b->name, name);
    strcpy(b->path, path);
    b->read_only = s->read_only;
    b->reserved = bg__box_is_reserved(name);
    b->ext_fn = ext_fn;
    b->ext_arg = ext_arg;

    if (err == BG_ENOTFOUND) {
        uint8_t hdr[BG__BOX_HDR_SIZE];
        uint16_t hflags = 0;
        uint32_t key_id = 0;
        if (flags & BG_BOX_ENCRYPT) {
            const bg__key *k;
            BG_TRY_OUT(bg__keys_load(s));
            k = bg__keys_current(s);
            if (!k)
                BG_TRY_OUT(bg__keys_create(s, &k));
            hflags = BG__BOX_SEALED;
            key_id = k->id;
        }
        bg__vfs_random(s, b->id, sizeof b->id);
        bg__box_encode_header(hdr, b->id, hflags, key_id, 0);
        uint64_t end;
        err = write_beside(s, tmp, path, hdr, NULL, NULL, &b->f, &end);
        if (err) {
            bg__handle_fail(s, err, "box '%s': cannot create '%s'", name, path);
            goto out;
        }
    } else {
        err = bg__vfs_open(s, path, s->read_only ? BG_OPEN_READ : BG_OPEN_WRITE,
                           &b->f);
        if (err) {
            bg__handle_fail(s, err, "box '%s': cannot open '%s'", name, path);
            goto out;
        }
    }
    BG_TRY_OUT(box_load(b));
    if ((flags & BG_BOX_ENCRYPT) && !b->key) {
        err = bg__handle_fail(s, BG_EINVALID,
                              "box '%s' exists and is not encrypted", name);
        goto out;
    }
    if (b->rep.status == BG_BOX_TORN && !b->read_only) {
        err = bg__vfs_truncate(s, b->f, b->rep.cut);
        if (!err)
            err = bg__vfs_sync(s, b->f);
        if (err) {
            bg__handle_fail(s, err,
                            "box '%s': cannot cut torn tail at offset "
                            "%llu",
                            name, (unsigned long long)b->rep.cut);
            goto out;
        }
    }
    if (b->damaged)
        b->read_only = 1;
    BG_TRY_OUT(bg__box_table_add(s, b));
    *out = b;
    return 0;
out:
    box_free(b);
    return err;
}

static bg_err box_open(bg_store *s, const char *name, int flags,
                       bg__box_ext_fn ext_fn, void *ext_arg, bg_box **out)
{
    BG_TRY(check_name(s, name));
    return box_open_file(s, name, flags, ext_fn, ext_arg, out);
}

bg_err bg_box_open(bg_store *s, const char *name, int flags, bg_box **out)
{
    BG__JSON_SCOPE(&s->alloc);
    return box_open(s, name, flags, NULL, NULL, out);
}

bg_err bg__box_open_staged(bg_store *s, const char *name, const char *suffix,
                           int flags, bg_box **out)
{
    BG_TRY(check_name(s, name));
    char full[BG_BOX_NAME_MAX + 8];
    int n = snprintf(full, sizeof full, "%s%s", name, suffix);
    if (n < 0 || (size_t)n >= sizeof full)
        return bg__handle_fail(s, BG_EINVALID, "staged suffix '%s' too long",
                               suffix);
    return box_open_file(s, full, flags, NULL, NULL, out);
}

bg_err bg__box_close(bg_box *b)
{
    bg_err err = 0;
    if (b->group_open && !b->read_only && !b->poisoned)
        err = bg__vfs_sync(b->s, b->f);
    if (err)
        bg__handle_fail(b->s, err, "box '%s': final sync failed", b->name);
    bg__box_table_remove(b->s, b);
    box_free(b);
    return err;
}

/* ---- writing ---------------------------------------------------------- */

static bg_err check_writable(bg_box *b)
{
    if (b->damaged)
        return bg__handle_fail(
            b->s, BG_ECORRUPT,
            "box '%s' is damaged at offset %llu; run recover", b->name,
            (unsigned long long)b->rep.first_damage);
    if (b->read_only)
        return bg__handle_fail(b->s, BG_ESTATE, "box '%s' is read-only",
                               b->name);
    if (b->poisoned)
        return bg__handle_fail(b->s, BG_ESTATE,
                               "box '%s' stopped after an I/O error; reopen it",
                               b->name);
    return 0;
}

/* Undo a failed append: cut the file back. If even that fails the box
 * refuses further writes until reopened (the scan then sorts it out). */
static void rollback(bg_box *b, uint64_t to)
{
    if (bg__vfs_truncate(b->s, b->f, to))
        b->poisoned = 1;
}

static bg_err check_write(bg_box *b, const bg_write *w, size_t i)
{
    char why[160];
    if (bg_record_check_key(w->key, w->key_len, why, sizeof why))
        return bg__handle_fail(b->s, BG_EINVALID, "box '%s': write %zu: %s",
                               b->name, i, why);
    if (w->del)
        return 0;
    int klen = (int)(w->key_len > 80 ? 80 : w->key_len);
    /* One parse serves validation and the adapter's fields. */
    cJSON *doc = NULL;
    bg_err err = bg__record_parse(w->value, w->value_len, &b->s->alloc, why,
                                  sizeof why, w->type ? &doc : NULL);
    if (!err)
        err =
            bg__registry_check_doc(b->s->types, w->type, doc, why, sizeof why);
    cJSON_Delete(doc);
    if (err)
        return bg__handle_fail(b->s, err, "box '%s', key '%.*s': %s", b->name,
                               klen, w->key, why);
    return 0;
}

/* The frame length of a write in box b. */
static size_t write_flen(const bg_box *b, const bg_write *w)
{
    size_t v = w->del ? 0 : w->value_len;
    return BG__FRAME_OVERHEAD + w->key_len + v + (b->key ? BG__SEAL_BYTES : 0);
}

/* Encode write w as a frame at dst, sealing its value in a sealed box. */
static void encode_write(bg_box *b, const bg_write *w, int flags, uint64_t seq,
                         uint64_t off, uint64_t goff, uint8_t *dst)
{
    int kind = w->del ? BG__KIND_DEL : BG__KIND_PUT;
    uint32_t type = w->del ? 0 : w->type;
    size_t plen = w->del ? 0 : w->value_len;
    uint16_t klen = (uint16_t)w->key_len;
    if (!b->key) {
        bg__box_encode_frame(dst, kind, flags, w->key, klen, type, seq, off,
                             goff, w->value, (uint32_t)plen);
        return;
    }
    uint32_t flen = frame_start(dst, kind, flags, w->key, klen, type, seq, off,
                                goff, (uint32_t)(plen + BG__SEAL_BYTES));
    seal(b->s, b->key, b->id, seq, kind, type, w->key, klen, w->value, plen,
         dst + BG__FRAME_HDR + klen);
    frame_finish(dst, flen);
}

/* Append n frames as one unit, sync as the durability mode says, then
 * update the index. On error the file is cut back and nothing changes. */
static bg_err append(bg_box *b, const bg_write *w, size_t n);

static bg_err append_at(bg_box *b, const bg_write *w, size_t n, uint64_t *offs,
                        uint32_t *flens, int trusted)
{
    bg_store *s = b->s;
    BG_TRY(check_writable(b));
    for (size_t i = 0; i < n && !trusted; i++)
        BG_TRY(check_write(b, &w[i], i));
    if (n == 0)
        return 0;
    if (s->durability != BG_DURABILITY_OFF)
        BG_TRY(bg__handle_settle_dir(s));

    uint64_t start = b->end, pos;
    uint64_t goff = b->group_open ? b->group_off : start;
    /* One buffer for the whole write when it is small (the common case:
     * a single put), else CHUNK-sized pieces. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += write_flen(b, &w[i]);
    fwriter fw;
    fw_init(&fw, s, b->f, start);
    bg_err err = 0;
    for (size_t i = 0; i < n; i++) {
        size_t flen = write_flen(b, &w[i]);
        uint8_t *dst;
        err = fw_reserve(&fw, flen, total, &dst);
        if (err)
            goto fail;
        encode_write(b, &w[i], i + 1 < n ? BG__FLAG_BATCH : 0, b->next_seq + i,
                     fw.pos, goff, dst);
        fw_commit(&fw, flen);
    }
    err = fw_flush(&fw);
    if (err)
        goto fail;
    fw_free(&fw);

    int sync_now = s->durability == BG_DURABILITY_FULL;
    if (s->durability == BG_DURABILITY_GROUP) {
        b->group_count += (unsigned)n;
        sync_now = b->group_count >= s->group_size;
    }
    if (sync_now) {
        err = bg__vfs_sync(s, b->f);
        if (err) {
            if (b->group_open)
                b->poisoned = 1; /* earlier writes of the group are unsure */
            goto fail;
        }
        b->group_open = 0;
        b->group_count = 0;
    } else if (!b->group_open) {
        b->group_open = 1;
        b->group_off = start;
    }

    /* Durable as promised: now the index. The frame images are gone from
     * buf, so the index is fed from the write list. */
    pos = start;
    for (size_t i = 0; i < n; i++) {
        frame_hdr h = {
            .flen = (uint32_t)write_flen(b, &w[i]),
            .type = w[i].del ? 0 : w[i].type,
            .seq = b->next_seq + i,
            .off = pos,
        };
        if (offs) {
            offs[i] = pos;
            flens[i] = h.flen;
        }
        if (b->ext_fn) {
            /* the caller keeps its own index */
        } else if (w[i].del) {
            idx_del(b, w[i].key, w[i].key_len);
        } else if ((err = idx_set(b, w[i].key, (uint16_t)w[i].key_len, &h))) {
            /* Out of memory with the frames on disk: the index no longer
             * tells the truth, so stop writing until reopened. */
            b->poisoned = 1;
            break;
        }
        pos += h.flen;
    }
    b->next_seq += n;
    b->frames += n;
    b->end = pos;
    if (err)
        return bg__handle_fail(s, err, "box '%s': index update failed",
                               b->name);
    return 0;
fail:
    fw_free(&fw);
    rollback(b, start);
    return bg__handle_fail(s, err, "box '%s': write at offset %llu failed",
                           b->name, (unsigned long long)start);
}

static bg_err check_public(bg_box *b)
{
    if (b->reserved)
        return bg__handle_fail(b->s, BG_EINVALID,
                               "box '%s' is reserved for the store itself",
                               b->name);
    return 0;
}

bg_err bg__box_put_internal(bg_box *b, const char *key, const char *value,
                            size_t len)
{
    bg_write w = {0, key, strlen(key), 0, value, len};
    return append(b, &w, 1);
}

bg_err bg_box_put(bg_box *b, const void *key, size_t key_len, uint32_t type,
                  const char *value, size_t value_len)
{
    BG__JSON_SCOPE(&b->s->alloc);
    BG_TRY(check_public(b));
    bg_write w = {0, key, key_len, type, value, value_len};
    return append(b, &w, 1);
}

static bg_err del(bg_box *b, const void *key, size_t key_len)
{
    bg_write w = {1, key, key_len, 0, NULL, 0};
    BG_TRY(check_writable(b));
    BG_TRY(check_write(b, &w, 0));
    if (!idx_find(b, key, key_len, key_hash(key, key_len)))
        return bg__handle_fail(b->s, BG_ENOTFOUND, "box '%s': no key '%.*s'",
                               b->name, (int)(key_len > 80 ? 80 : key_len),
                               (const char *)key);
    return append(b, &w, 1);
}

bg_err bg_box_del(bg_box *b, const void *key, size_t key_len)
{
    BG__JSON_SCOPE(&b->s->alloc);
    BG_TRY(check_public(b));
    return del(b, key, key_len);
}

bg_err bg__box_del_own(bg_box *b, const void *key, size_t key_len)
{
    return del(b, key, key_len);
}

bg_err bg_box_write_batch(bg_box *b, const bg_write *w, size_t n)
{
    BG__JSON_SCOPE(&b->s->alloc);
    BG_TRY(check_public(b));
    return append(b, w, n);
}

bg_err bg__box_write_own(bg_box *b, const bg_write *w, size_t n)
{
    return append(b, w, n);
}

bg_err bg_box_sync(bg_box *b)
{
    BG__JSON_SCOPE(&b->s->alloc);
    if (!b->group_open || b->read_only)
        return 0;
    if (b->poisoned)
        return check_writable(b);
    bg_err err = bg__vfs_sync(b->s, b->f);
    if (err) {
        b->poisoned = 1;
        return bg__handle_fail(b->s, err, "box '%s': sync failed", b->name);
    }
    b->group_open = 0;
    b->group_count = 0;
    return 0;
}

static bg_err append(bg_box *b, const bg_write *w, size_t n)
{
    return append_at(b, w, n, NULL, NULL, 0);
}

bg_err bg__box_write_trusted(bg_box *b, const bg_write *w, size_t n)
{
    return append_at(b, w, n, NULL, NULL, 1);
}

bg_err bg__box_append_ext(bg_box *b, const bg_write *w, size_t n,
                          uint64_t *offs, uint32_t *flens)
{
    return append_at(b, w, n, offs, flens, 1);
}

bg_err bg__box_read_key_at(bg_box *b, uint64_t off, char *key, size_t cap,
                           size_t *klen)
{
    uint8_t head[BG__FRAME_HDR + 64];
    size_t got = 0;
    bg_err err = bg__vfs_read(b->s, b->f, off, head, sizeof head, &got);
    frame_hdr h;
    if (!err &&
        (got < BG__FRAME_HDR || !frame_head(head, off, b->key != NULL, &h) ||
         h.klen > cap || h.klen > 64 || got < (size_t)BG__FRAME_HDR + h.klen))
        err = BG_ECORRUPT;
    if (err)
        return bg__handle_fail(b->s, err, "box '%s': frame at offset %llu",
                               b->name, (unsigned long long)off);
    memcpy(key, head + BG__FRAME_HDR, h.klen);
    *klen = h.klen;
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

/* Read and verify the frame of e into a buffer from the store's allocator
 * (one spare byte at the end). */
static bg_err read_frame(bg_box *b, const ent *e, uint8_t **out)
{
    bg_store *s = b->s;
    uint8_t *p = bg__handle_malloc(s, (size_t)e->flen + 1);
    if (!p)
        return BG_ENOMEM;
    size_t got = 0;
    bg_err err = bg__vfs_read(s, b->f, e->off, p, e->flen, &got);
    frame_hdr h;
    /* An entry without a key (an owner's index) checks the frame alone. */
    if (!err && (got != e->flen || !frame_head(p, e->off, b->key != NULL, &h) ||
                 h.flen != e->flen || !frame_sum_ok(p, e->flen) ||
                 (e->key && (h.seq != e->seq || h.klen != e->klen ||
                             memcmp(p + BG__FRAME_HDR, e->key, e->klen)))))
        err = BG_ECORRUPT;
    if (err) {
        bg__handle_free(s, p);
        return bg__handle_fail(s, err,
                               "box '%s', key '%.*s': frame at offset "
                               "%llu",
                               b->name, (int)(e->klen > 80 ? 80 : e->klen),
                               e->key ? e->key : "",
                               (unsigned long long)e->off);
    }
    *out = p;
    return 0;
}

/* The value of the verified frame p (read from off), authenticated and
 * decrypted in a sealed box, NUL-terminated, in a buffer from the store's
 * allocator. Takes p. */
static bg_err frame_value(bg_box *b, uint8_t *p, uint64_t off, char **out,
                          size_t *len)
{
    frame_hdr h;
    (void)frame_head(p, off, b->key != NULL, &h);
    size_t vlen = h.vlen;
    if (!b->key) {
        memmove(p, p + BG__FRAME_HDR + h.klen, vlen);
        p[vlen] = '\0';
        *out = (char *)p;
        *len = vlen;
        return 0;
    }
    size_t plen = vlen - BG__SEAL_BYTES;
    uint8_t *plain = bg__handle_malloc(b->s, plen + 1);
    bg_err err = plain ? 0 : BG_ENOMEM;
    if (!err && unseal(b->key, b->id, p, &h, plain)) {
        err = bg__handle_fail(b->s, BG_EAUTH,
                              "box '%s', key '%.*s': frame at offset %llu does "
                              "not authenticate",
                              b->name, (int)(h.klen > 80 ? 80 : h.klen),
                              (const char *)p + BG__FRAME_HDR,
                              (unsigned long long)off);
        bg__handle_free(b->s, plain);
    }
    bg__handle_free(b->s, p);
    if (err)
        return err;
    plain[plen] = '\0';
    *out = (char *)plain;
    *len = plen;
    return 0;
}

static bg_err read_value(bg_box *b, const ent *e, char **out, size_t *len)
{
    uint8_t *p;
    BG_TRY(read_frame(b, e, &p));
    return frame_value(b, p, e->off, out, len);
}

bg_err bg__box_read_at(bg_box *b, uint64_t off, uint32_t flen, char **value,
                       size_t *vlen)
{
    ent e = {.off = off, .flen = flen};
    uint8_t *p;
    BG_TRY(read_frame(b, &e, &p));
    return frame_value(b, p, off, value, vlen);
}

bg_err bg__box_open_ext(bg_store *s, const char *name, int flags,
                        bg__box_ext_fn fn, void *arg, bg_box **out)
{
    return box_open(s, name, flags, fn, arg, out);
}

bg_err bg__box_rescan(bg_box *b)
{
    BG_TRY(b->ext_fn(b->ext_arg, NULL));
    b->frames = 0;
    return box_load(b);
}

typedef struct ext_fill_ctx {
    bg_box *b;
    const bg_write *trailer; /* written after the frames (optional) */
    uint64_t seq0; /* frames are renumbered from here, in the given order */
    const uint64_t *offs;
    const uint32_t *flens;
    size_t n;
    uint64_t *new_offs;
} ext_fill_ctx;

/* Copy the given frames, verified, renumbered, then the trailer. */
static bg_err ext_fill(void *arg, bg_file *f, uint64_t *end)
{
    ext_fill_ctx *c = arg;
    bg_box *b = c->b;
    fwriter fw;
    fw_init(&fw, b->s, f, *end);
    bg_err err = 0;
    for (size_t i = 0; i < c->n && !err; i++) {
        uint32_t flen = c->flens[i];
        uint8_t *dst;
        size_t got = 0;
        frame_hdr h;
        err = fw_reserve(&fw, flen, CHUNK, &dst);
        if (!err)
            err = bg__vfs_read(b->s, b->f, c->offs[i], dst, flen, &got);
        if (!err && (got != flen || !frame_head(dst, c->offs[i], 0, &h) ||
                     h.flen != flen || !frame_sum_ok(dst, flen)))
            err = bg__handle_fail(b->s, BG_ECORRUPT,
                                  "box '%s': frame at offset %llu does not "
                                  "verify",
                                  b->name, (unsigned long long)c->offs[i]);
        if (!err) {
            put64(dst + 16, c->seq0 + i);
            frame_move(dst, flen, fw.pos);
            c->new_offs[i] = fw.pos;
            fw_commit(&fw, flen);
        }
    }
    if (!err && c->trailer) {
        const bg_write *t = c->trailer;
        size_t flen = BG__FRAME_OVERHEAD + t->key_len + t->value_len;
        uint8_t *dst;
        err = fw_reserve(&fw, flen, CHUNK, &dst);
        if (!err) {
            bg__box_encode_frame(dst, BG__KIND_PUT, 0, t->key,
                                 (uint16_t)t->key_len, t->type, c->seq0 + c->n,
                                 fw.pos, fw.pos, t->value,
                                 (uint32_t)t->value_len);
            fw_commit(&fw, flen);
        }
    }
    if (!err)
        err = fw_flush(&fw);
    if (!err)
        *end = fw.pos;
    fw_free(&fw);
    return err;
}

bg_err bg__box_rewrite_ext(bg_box *b, const uint64_t *offs,
                           const uint32_t *flens, size_t n, uint64_t *new_offs,
                           const bg_write *trailer, int *swapped)
{
    bg_store *s = b->s;
    *swapped = 0;
    if (b->key)
        return bg__handle_fail(s, BG_ESTATE, "box '%s': sealed", b->name);
    BG_TRY(check_writable(b));
    BG_TRY(bg_box_sync(b));
    char tmp[BG_PATH_MAX];
    box_path(s, b->name, ".box.tmp", tmp, sizeof tmp);
    uint8_t hdr[BG__BOX_HDR_SIZE];
    bg__box_encode_header(hdr, b->id, b->hflags, 0, b->next_seq + n + 1);
    ext_fill_ctx c = {b, trailer, b->next_seq, offs, flens, n, new_offs};
    bg_file *nf = NULL;
    uint64_t end = 0;
    bg_err err = write_beside(s, tmp, b->path, hdr, ext_fill, &c, &nf, &end);
    if (nf) {
        /* Swapped in. A failed directory sync is made good before the next
         * durable write (dir_dirty), and either file holds the same ops;
         * it is still reported. */
        bg__vfs_close(s, b->f);
        b->f = nf;
        b->end = end;
        b->frames = n + (trailer ? 1 : 0);
        b->next_seq += n + 1;
        b->group_open = 0;
        b->group_count = 0;
        *swapped = 1;
    }
    if (err)
        return bg__handle_fail(s, err,
                               nf ? "box '%s': compacted, but the directory "
                                    "could not be synced"
                                  : "box '%s': compaction failed",
                               b->name);
    return 0;
}

/* A record of a typeId with no adapter is never handed out as data. */
static bg_err check_read_type(bg_box *b, const ent *e)
{
    if (e->type == 0 || bg_registry_find(b->s->types, e->type))
        return 0;
    return bg__handle_fail(
        b->s, BG_ESCHEMA, "box '%s', key '%.*s': typeId %u has no adapter",
        b->name, (int)(e->klen > 80 ? 80 : e->klen), e->key, (unsigned)e->type);
}

static bg_err get(bg_box *b, const void *key, size_t key_len, uint32_t *type,
                  char **value, size_t *value_len, int typed)
{
    ent *e = key_len ? idx_find(b, key, key_len, key_hash(key, key_len)) : NULL;
    if (!e)
        return bg__handle_fail(b->s, BG_ENOTFOUND, "box '%s': no key '%.*s'",
                               b->name, (int)(key_len > 80 ? 80 : key_len),
                               key_len ? (const char *)key : "");
    if (typed)
        BG_TRY(check_read_type(b, e));
    BG_TRY(read_value(b, e, value, value_len));
    *type = e->type;
    return 0;
}

bg_err bg_box_get(bg_box *b, const void *key, size_t key_len, uint32_t *type,
                  char **value, size_t *value_len)
{
    BG__JSON_SCOPE(&b->s->alloc);
    return get(b, key, key_len, type, value, value_len, 1);
}

bg_err bg__box_get_raw(bg_box *b, const void *key, size_t key_len,
                       uint32_t *type, char **value, size_t *value_len)
{
    return get(b, key, key_len, type, value, value_len, 0);
}

static bg_err iterate(bg_box *b, bg_box_iter_fn fn, void *arg, int typed)
{
    ent **v;
    BG_TRY(idx_sorted(b, &v));
    size_t n = b->count;
    bg_err err = 0;
    for (size_t i = 0; i < n; i++) {
        char *val;
        size_t vlen;
        if (typed)
            BG_TRY_OUT(check_read_type(b, v[i]));
        BG_TRY_OUT(read_value(b, v[i], &val, &vlen));
        bg_record rec = {
            .key = v[i]->key,
            .key_len = v[i]->klen,
            .type = v[i]->type,
            .value = val,
            .value_len = vlen,
            .seq = v[i]->seq,
        };
        int stop = fn(arg, &rec);
        bg__handle_free(b->s, val);
        if (stop)
            break;
    }
out:
    bg__handle_free(b->s, v);
    return err;
}

void bg__box_each_type(const bg_box *b, void (*fn)(void *, uint32_t), void *arg)
{
    for (size_t i = 0; i < b->cap; i++)
        if (b->slots[i].key)
            fn(arg, b->slots[i].type);
}

bg_err bg_box_iterate(bg_box *b, bg_box_iter_fn fn, void *arg)
{
    BG__JSON_SCOPE(&b->s->alloc);
    return iterate(b, fn, arg, 1);
}

bg_err bg__box_iterate_raw(bg_box *b, bg_box_iter_fn fn, void *arg)
{
    return iterate(b, fn, arg, 0);
}

void bg_box_stats_of(const bg_box *b, bg_box_stats *st)
{
    st->records = b->count;
    st->frames = b->frames;
    st->file_bytes = b->end;
    st->live_bytes = b->live_bytes;
    st->next_seq = b->next_seq;
}

/* ---- compaction ------------------------------------------------------- */

typedef struct compact_ctx {
    bg_box *b;
    ent **v;
    uint64_t *offs;
    const bg__key *key; /* sealed boxes: re-seal under this key ... */
    uint8_t id[16];     /* ... and this new box id */
} compact_ctx;

/* The frame of live entry e, moved to offset pos (and re-sealed). */
static bg_err compact_frame(compact_ctx *c, const ent *e, uint64_t pos,
                            uint8_t **out)
{
    bg_box *b = c->b;
    if (!c->key) {
        BG_TRY(read_frame(b, e, out));
        frame_move(*out, e->flen, pos);
        return 0;
    }
    char *val;
    size_t vlen;
    BG_TRY(read_value(b, e, &val, &vlen));
    uint8_t *p = bg__handle_malloc(b->s, e->flen);
    if (!p) {
        bg__handle_free(b->s, val);
        return BG_ENOMEM;
    }
    uint32_t flen =
        frame_start(p, BG__KIND_PUT, 0, e->key, e->klen, e->type, e->seq, pos,
                    pos, (uint32_t)(vlen + BG__SEAL_BYTES));
    seal(b->s, c->key, c->id, e->seq, BG__KIND_PUT, e->type, e->key, e->klen,
         val, vlen, p + BG__FRAME_HDR + e->klen);
    frame_finish(p, flen);
    bg__handle_free(b->s, val);
    *out = p;
    return 0;
}

static bg_err compact_fill(void *arg, bg_file *f, uint64_t *end)
{
    compact_ctx *c = arg;
    bg_box *b = c->b;
    fwriter fw;
    fw_init(&fw, b->s, f, *end);
    bg_err err = 0;
    for (size_t i = 0; i < b->count && !err; i++) {
        uint8_t *p, *dst;
        uint32_t flen = c->v[i]->flen;
        BG_TRY_OUT(compact_frame(c, c->v[i], fw.pos, &p));
        err = fw_reserve(&fw, flen, (size_t)b->live_bytes, &dst);
        if (!err) {
            memcpy(dst, p, flen);
            c->offs[i] = fw.pos;
            fw_commit(&fw, flen);
        }
        bg__handle_free(b->s, p);
        if ((i & 1023) == 0)
            bg__handle_progress(b->s, "compact", i, b->count);
    }
    if (!err)
        err = fw_flush(&fw);
    bg__handle_progress(b->s, "compact", b->count, b->count);
    if (!err)
        *end = fw.pos;
out:
    fw_free(&fw);
    return err;
}

/* Compaction, and for a sealed box re-sealing under key with a new box id
 * (so that no frame of the old file authenticates in the new one). */
static bg_err rewrite(bg_box *b, const bg__key *key)
{
    bg_store *s = b->s;
    if (b->ext_fn)
        return bg__handle_fail(s, BG_ESTATE,
                               "box '%s' is indexed by its owner; compact it "
                               "through a plain open",
                               b->name);
    BG_TRY(check_writable(b));
    BG_TRY(bg_box_sync(b));
    char tmp[BG_PATH_MAX];
    box_path(s, b->name, ".box.tmp", tmp, sizeof tmp);
    compact_ctx c = {.b = b, .key = key};
    memcpy(c.id, b->id, 16);
    if (key)
        bg__vfs_random(s, c.id, sizeof c.id);
    bg_err err = 0;
    BG_TRY_OUT(idx_sorted(b, &c.v));
    c.offs = bg__handle_malloc(s, (b->count ? b->count : 1) * sizeof *c.offs);
    if (!c.offs) {
        err = BG_ENOMEM;
        goto out;
    }
    uint8_t hdr[BG__BOX_HDR_SIZE];
    bg__box_encode_header(hdr, c.id, b->hflags, key ? key->id : 0, b->next_seq);
    bg_file *nf = NULL;
    uint64_t end = 0;
    err = write_beside(s, tmp, b->path, hdr, compact_fill, &c, &nf, &end);
    if (nf) {
        /* The rename happened: the new file is the box now. */
        bg__vfs_close(s, b->f);
        b->f = nf;
        memcpy(b->id, c.id, 16);
        if (key) {
            b->key = key;
            b->key_id = key->id;
        }
        for (size_t i = 0; i < b->count; i++)
            c.v[i]->off = c.offs[i];
        b->end = end;
        b->frames = b->count;
        b->group_open = 0;
        b->group_count = 0;
    }
out:
    bg__handle_free(s, c.v);
    bg__handle_free(s, c.offs);
    if (err && err != BG_EAUTH)
        return bg__handle_fail(s, err, "box '%s': compaction failed", b->name);
    return err;
}

bg_err bg_box_compact(bg_box *b)
{
    BG__JSON_SCOPE(&b->s->alloc);
    return rewrite(b, b->key);
}

bg_err bg__box_reseal(bg_box *b, const bg__key *k)
{
    if (!b->key)
        return 0;
    return rewrite(b, k);
}

uint64_t bg__box_end(const bg_box *b)
{
    return b->end;
}

uint32_t bg__box_key_id(const bg_box *b)
{
    return b->key_id;
}

/* ---- verify and recover ----------------------------------------------- */

bg_err bg_box_verify(bg_store *s, const char *name, bg_box_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    BG_TRY(check_name(s, name));
    char path[BG_PATH_MAX];
    box_path(s, name, ".box", path, sizeof path);
    reader r = {.s = s};
    bg_err err = bg__vfs_open(s, path, BG_OPEN_READ, &r.f);
    if (err)
        return bg__handle_fail(s, err, "box '%s': cannot open '%s'", name,
                               path);
    scan sc = {.r = &r, .what = "verify", .name = name};
    box_hdr hdr;
    err = bg__vfs_size(s, r.f, &r.size);
    if (!err)
        err = scan_file(&sc, rep, &hdr);
    bg__vfs_close(s, r.f);
    rd_free(&r);
    bg__handle_free(s, sc.pb);
    if (err && err != BG_EAUTH)
        return bg__handle_fail(s, err, "box '%s': cannot scan '%s'", name,
                               path);
    return err;
}

/* Copy the damaged file to quarantine/<name>_corrupted_YYYYMMDD[-N].bak. */
static bg_err quarantine(bg_store *s, const char *name, reader *r, char *qpath,
                         size_t qcap)
{
    char qdir[BG_PATH_MAX];
    bg__handle_path(s, qdir, sizeof qdir, "quarantine");
    bg_err err = bg__vfs_mkdir(s, qdir);
    if (err && err != BG_EEXISTS)
        return err;
    if (!err)
        BG_TRY(bg__vfs_sync_dir(s, s->dir));
    time_t t = (time_t)(bg__handle_now_ms(s) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[16];
    strftime(day, sizeof day, "%Y%m%d", &tm);
    for (int i = 1;; i++) {
        char suffix[16] = "";
        if (i > 1)
            snprintf(suffix, sizeof suffix, "-%d", i);
        int n = snprintf(qpath, qcap, "%s/%s_corrupted_%s%s.bak", qdir, name,
                         day, suffix);
        if (n < 0 || (size_t)n >= qcap)
            return BG_EINVALID;
        err = bg__vfs_stat(s, qpath, NULL);
        if (err == BG_ENOTFOUND)
            break;
        if (err)
            return err;
        if (i > 9999)
            return BG_EEXISTS;
    }
    err = 0;
    bg_file *q = NULL;
    BG_TRY(bg__vfs_open(s, qpath, BG_OPEN_CREATE | BG_OPEN_EXCL, &q));
    for (uint64_t off = 0; off < r->size && !err; off += CHUNK) {
        size_t n = r->size - off < CHUNK ? (size_t)(r->size - off) : CHUNK;
        const uint8_t *p = rd_get(r, off, n);
        err = p ? bg__vfs_write(s, q, off, p, n) : (r->err ? r->err : BG_EIO);
    }
    if (!err)
        err = bg__vfs_sync(s, q);
    bg__vfs_close(s, q);
    if (!err)
        err = bg__vfs_sync_dir(s, qdir);
    return err;
}

/* Each frame that still verifies, moved to the new file. */
static bg_err salvage_apply(void *arg, const uint8_t *p, const frame_hdr *h)
{
    fwriter *fw = arg;
    uint8_t *dst;
    BG_TRY(fw_reserve(fw, h->flen, CHUNK, &dst));
    memcpy(dst, p, h->flen);
    frame_move(dst, h->flen, fw->pos);
    fw_commit(fw, h->flen);
    return 0;
}

typedef struct recover_fill_ctx {
    scan *sc;
    fwriter *fw;
} recover_fill_ctx;

static bg_err recover_fill(void *arg, bg_file *f, uint64_t *end)
{
    recover_fill_ctx *c = arg;
    fw_init(c->fw, c->sc->r->s, f, *end);
    bg_box_report tmp;
    box_hdr hdr;
    BG_TRY(scan_file(c->sc, &tmp, &hdr));
    BG_TRY(fw_flush(c->fw));
    *end = c->fw->pos;
    return 0;
}

bg_err bg_box_recover(bg_store *s, const char *name, bg_box_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    BG_TRY(check_name(s, name));
    if (s->read_only)
        return bg__handle_fail(s, BG_ESTATE, "box '%s': store opened read-only",
                               name);
    bg_box *open = bg__box_table_find(s, name);
    if (open)
        BG_TRY(bg__box_close(open));
    char path[BG_PATH_MAX], tmp[BG_PATH_MAX];
    box_path(s, name, ".box", path, sizeof path);
    box_path(s, name, ".box.tmp", tmp, sizeof tmp);
    reader r = {.s = s};
    bg_err err = bg__vfs_open(s, path, BG_OPEN_WRITE, &r.f);
    if (err)
        return bg__handle_fail(s, err, "box '%s': cannot open '%s'", name,
                               path);
    scan sc = {.r = &r, .what = "recover", .name = name};
    fwriter fw = {.s = s};
    box_hdr hdr;
    BG_TRY_OUT(bg__vfs_size(s, r.f, &r.size));
    BG_TRY_OUT(scan_file(&sc, rep, &hdr));
    if (rep->status == BG_BOX_TORN) {
        BG_TRY_OUT(bg__vfs_truncate(s, r.f, rep->cut));
        BG_TRY_OUT(bg__vfs_sync(s, r.f));
    } else if (rep->status == BG_BOX_CORRUPT) {
        BG_TRY_OUT(
            quarantine(s, name, &r, rep->quarantine, sizeof rep->quarantine));
        /* A sealed box keeps its id and key: the frames kept are the ones
         * that authenticate under them. A lost header makes a plain box
         * holding only the frames whose values are JSON. */
        if (!rep->header_ok) {
            memset(&hdr, 0, sizeof hdr);
            bg__vfs_random(s, hdr.id, sizeof hdr.id);
        }
        uint8_t head[BG__BOX_HDR_SIZE];
        bg__box_encode_header(head, hdr.id, hdr.flags, hdr.key_id,
                              hdr.seq_floor > sc.max_seq ? hdr.seq_floor
                                                         : sc.max_seq + 1);
        sc.salvage = 1;
        sc.apply = salvage_apply;
        sc.arg = &fw;
        sc.npb = 0;
        recover_fill_ctx rc = {&sc, &fw};
        bg_file *nf = NULL;
        uint64_t end;
        err = write_beside(s, tmp, path, head, recover_fill, &rc, &nf, &end);
        if (nf)
            bg__vfs_close(s, nf);
    }
out:
    bg__vfs_close(s, r.f);
    rd_free(&r);
    bg__handle_free(s, sc.pb);
    fw_free(&fw);
    if (err && err != BG_EAUTH)
        return bg__handle_fail(s, err, "box '%s': recovery failed", name);
    return err;
}

/* ---- the store's boxes ----------------------------------------------------
 */

static const char *const reserved[] = {BG__META_BOX, BG__AUDIT_BOX,
                                       BG__PENDING_BOX, BG__FAILED_BOX};

int bg__box_is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (!strcmp(name, reserved[i]))
            return 1;
    return 0;
}

bg_err bg__box_table_add(bg_store *s, bg_box *b)
{
    BG_TRY(bg__handle_grow(s, &s->boxes, s->nboxes, &s->capboxes,
                           sizeof *s->boxes, 8));
    s->boxes[s->nboxes++] = b;
    return 0;
}

void bg__box_table_remove(bg_store *s, bg_box *b)
{
    for (size_t i = 0; i < s->nboxes; i++) {
        if (s->boxes[i] == b) {
            s->boxes[i] = s->boxes[--s->nboxes];
            return;
        }
    }
}

bg_box *bg__box_table_find(bg_store *s, const char *name)
{
    for (size_t i = 0; i < s->nboxes; i++)
        if (!strcmp(bg__box_name(s->boxes[i]), name))
            return s->boxes[i];
    return NULL;
}

typedef struct list_ctx {
    bg_store *s;
    bg__box_list *out;
    size_t cap;
    int nomem;
} list_ctx;

static int collect_box(void *arg, const char *name)
{
    list_ctx *c = arg;
    size_t len = strlen(name);
    if (len < 5 || len - 4 > BG_BOX_NAME_MAX || strcmp(name + len - 4, ".box"))
        return 0;
    char base[BG_BOX_NAME_MAX + 1];
    memcpy(base, name, len - 4);
    base[len - 4] = '\0';
    if (bg__box_check_name(base))
        return 0;
    bg__box_list *ns = c->out;
    if (bg__handle_grow(c->s, &ns->v, ns->n, &c->cap, sizeof *ns->v, 8)) {
        c->nomem = 1;
        return 1;
    }
    memcpy(ns->v[ns->n++], base, len - 3);
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

bg_err bg__box_list_names(bg_store *s, bg__box_list *out)
{
    memset(out, 0, sizeof *out);
    list_ctx c = {.s = s, .out = out};
    bg_err err = bg__vfs_list(s, s->dir, collect_box, &c);
    if (!err && c.nomem)
        err = BG_ENOMEM;
    if (err) {
        bg__box_list_free(s, out);
        return bg__handle_fail(s, err, "cannot list store '%s'", s->dir);
    }
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, cmp_name);
    return 0;
}

void bg__box_list_free(bg_store *s, bg__box_list *ns)
{
    bg__handle_free(s, ns->v);
    ns->v = NULL;
    ns->n = 0;
}
