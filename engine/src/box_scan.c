/*
 * Reading a box file: a window over the file, the scan that applies frames
 * (batches only when they commit) and tells a clean file from a torn tail
 * from corruption, verification, and recovery (quarantine the file, keep
 * every frame that verifies, write the result beside and rename it in).
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

/* ---- reading a file through a window ---------------------------------- */

/* Pointer to len bytes at off, or NULL past the end (or on a read error,
 * left in r->err). Valid until the next call. */
const uint8_t *bg__box_rd_get(reader *r, uint64_t off, size_t len)
{
    if (off > r->size || len > r->size - off)
        return NULL;
    if (off >= r->boff && off + len <= r->boff + r->blen)
        return r->buf + (off - r->boff);
    size_t want = len > BG__BOX_CHUNK ? len : BG__BOX_CHUNK;
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
    const uint8_t *p = bg__box_rd_get(r, pos, BG__FRAME_HDR);
    if (!p || !bg__box_frame_head(p, pos, r->sealed, h) || h->seq <= last_seq)
        return NULL;
    p = bg__box_rd_get(r, pos, h->flen);
    if (!p || !bg__box_frame_sum_ok(p, h->flen))
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
        if (bg__box_unseal(r->key, r->id, p, h, r->plain)) {
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

int bg__box_frame_at(reader *r, uint64_t off, uint64_t seq, uint64_t end)
{
    frame_hdr h;
    return seq && rd_frame(r, off, seq - 1, &h) && h.seq == seq &&
           off + h.flen == end;
}

void bg__box_rd_free(reader *r)
{
    bg__handle_free(r->s, r->buf);
    bg__handle_free(r->s, r->plain);
}

/* ---- scanning --------------------------------------------------------- */

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
        const uint8_t *p = bg__box_rd_get(r, q, 4);
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

/* Whether every byte of [from, size) is zero: the region a writer keeps
 * zeroed ahead of its last frame. Sets r->err on a read error. */
static int zero_to_end(reader *r, uint64_t from)
{
    while (from < r->size) {
        uint64_t left = r->size - from;
        size_t n = left < BG__BOX_CHUNK ? (size_t)left : BG__BOX_CHUNK;
        const uint8_t *p = bg__box_rd_get(r, from, n);
        if (!p)
            return 0;
        /* one OR over the piece: this runs over up to megabytes at open */
        uint8_t any = 0;
        for (size_t i = 0; i < n; i++)
            any |= p[i];
        if (any)
            return 0;
        from += n;
    }
    return 1;
}

/* Scan the file once. Without salvage, frames are applied up to the first
 * damage only (batches when they commit); the rest of the file is read to
 * classify the damage. With salvage every verifying frame is applied. */
bg_err bg__box_scan_file(scan *sc, bg_box_report *rep, box_hdr *hdr)
{
    reader *r = sc->r;
    memset(rep, 0, sizeof *rep);
    memset(hdr, 0, sizeof *hdr);
    rep->file_size = r->size;
    const uint8_t *hp = bg__box_rd_get(r, 0, BG__BOX_HDR_SIZE);
    if (r->err)
        return r->err;
    rep->header_ok = hp && bg__box_header_parse(hp, hdr);
    r->sealed = rep->header_ok && (hdr->flags & BG__BOX_SEALED);
    /* Without a header nothing says whether values were sealed: only frames
     * whose value is JSON can be trusted as plain records. */
    r->json_only = !rep->header_ok;
    r->auth_count = 0;
    if (r->sealed) {
        BG_TRY(bg__keys_load(r->s));
        r->key = bg__keys_find(r->s, hdr->key_id);
        memcpy(r->id, hdr->id, 16);
        BG_FAIL_IF(!r->key, r->s, BG_EAUTH,
                   "box '%s' is sealed with key %08x, which "
                   "the store does not have (%zu key%s in "
                   "keys/); nothing was changed",
                   sc->name, (unsigned)hdr->key_id, r->s->nkeys,
                   r->s->nkeys == 1 ? "" : "s");
    }
    uint64_t pos = sc->start ? sc->start : BG__BOX_HDR_SIZE;
    uint64_t damage = UINT64_MAX, batch_at_damage = UINT64_MAX;
    uint64_t last_seq = sc->start_seq, next_progress = 0;
    int durable_after = 0;
    if (!rep->header_ok) {
        damage = 0;
        uint64_t q = r->size > pos ? resync(r, pos, 0) : r->size;
        if (r->err)
            return r->err;
        add_range(rep, 0, q);
        pos = q;
    }
    rep->valid_end = rep->header_ok ? pos : 0;
    while (pos < r->size) {
        if (pos >= next_progress) {
            bg__handle_progress(r->s, sc->what, pos, r->size);
            next_progress = pos + (16u << 20);
        }
        frame_hdr h;
        const uint8_t *p = rd_frame(r, pos, last_seq, &h);
        if (!p && damage == UINT64_MAX && zero_to_end(r, pos)) {
            /* Zeros from a frame boundary to the end: the region kept
             * zeroed ahead of the log (or never written), not damage. */
            rep->zeroed = r->size - pos;
            break;
        }
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
                     * window that has moved since (a batch over BG__BOX_CHUNK).
                     */
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
    if (r->err)
        return r->err;
    bg__handle_progress(r->s, sc->what, r->size, r->size);
    rep->auth_failures = r->auth_count;
    BG_FAIL_IF(r->sealed && r->auth_count && rep->frames == 0, r->s, BG_EAUTH,
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
            rep->zeroed = 0;
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
