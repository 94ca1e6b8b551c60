/*
 * The index of a box: its live keys in an open-addressing table (linear
 * probing, backward-shift delete), each with the offset, length, sequence
 * and typeId of its frame; and the reads of the frame or value an entry
 * points at, verified (and unsealed) on the way.
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

/* ---- the index: open addressing, linear probing, backward-shift delete - */

uint64_t bg__box_key_hash(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}

ent *bg__box_idx_find(bg_box *b, const void *key, size_t klen, uint64_t h)
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

bg_err bg__box_idx_set(bg_box *b, const void *key, uint16_t klen,
                       const frame_hdr *h)
{
    uint64_t hash = bg__box_key_hash(key, klen);
    ent *e = bg__box_idx_find(b, key, klen, hash);
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

void bg__box_idx_del(bg_box *b, const void *key, size_t klen)
{
    ent *e = bg__box_idx_find(b, key, klen, bg__box_key_hash(key, klen));
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

void bg__box_idx_clear(bg_box *b)
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

bg_err bg__box_idx_sorted(bg_box *b, ent ***out)
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

/* ---- reading what the index points at ---------------------------------- */

bg_err bg__box_pread_gathered(bg_box *b, uint64_t off, void *buf, size_t len,
                              size_t *got)
{
    uint64_t disk = b->end - b->gused; /* gathered frames start here */
    size_t n = 0;
    if (off < disk) {
        size_t want = (size_t)(disk - off);
        BG_TRY(bg__vfs_read(b->s, b->f, off, buf, want, &n));
        if (n < want) {
            *got = n;
            return 0;
        }
    }
    uint64_t at = off + n - disk;
    size_t m = 0;
    if (at < b->gused) {
        m = len - n;
        if (m > b->gused - at)
            m = (size_t)(b->gused - at);
        memcpy((uint8_t *)buf + n, b->gbuf + at, m);
    }
    *got = n + m;
    return 0;
}

/* Read and verify the frame of e into a buffer from the store's allocator
 * (one spare byte at the end). */
bg_err bg__box_read_frame(bg_box *b, const ent *e, uint8_t **out)
{
    bg_store *s = b->s;
    uint8_t *p = bg__handle_malloc(s, (size_t)e->flen + 1);
    if (!p)
        return BG_ENOMEM;
    size_t got = 0;
    bg_err err = bg__box_pread(b, e->off, p, e->flen, &got);
    frame_hdr h;
    /* An entry without a key (an owner's index) checks the frame alone. */
    if (!err &&
        (got != e->flen || !bg__box_frame_head(p, e->off, b->key != NULL, &h) ||
         h.flen != e->flen || !bg__box_frame_sum_ok(p, e->flen) ||
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
bg_err bg__box_frame_value(bg_box *b, uint8_t *p, uint64_t off, char **out,
                           size_t *len)
{
    frame_hdr h;
    (void)bg__box_frame_head(p, off, b->key != NULL, &h);
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
    if (!err && bg__box_unseal(b->key, b->id, p, &h, plain)) {
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

bg_err bg__box_read_value(bg_box *b, const ent *e, char **out, size_t *len)
{
    uint8_t *p;
    BG_TRY(bg__box_read_frame(b, e, &p));
    return bg__box_frame_value(b, p, e->off, out, len);
}
