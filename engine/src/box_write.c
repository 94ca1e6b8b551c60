/*
 * Writing a box file: frames encoded through a buffer, appends with their
 * durability (a sync per write, group commit, or none), the checks before
 * a write, rollback of a failed append, and compaction (the live frames to
 * a new file, synced, renamed over the old one).
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
#include "syncer_int.h"

/* ---- writing ---------------------------------------------------------- */

bg_err bg__box_check_writable(bg_box *b)
{
    BG_FAIL_IF(b->damaged, b->s, BG_ECORRUPT,
               "box '%s' is damaged at offset %llu; run recover", b->name,
               (unsigned long long)b->rep.first_damage);
    BG_FAIL_IF(b->read_only, b->s, BG_ESTATE, "box '%s' is read-only", b->name);
    bg_err lost = b->sync_lost;
    b->sync_lost = 0; /* reported once; the box stays stopped */
    BG_FAIL_IF(lost, b->s, lost,
               "box '%s': the sync of a group failed; its writes may "
               "not be durable; reopen the box",
               b->name);
    BG_FAIL_IF(b->poisoned, b->s, BG_ESTATE,
               "box '%s' stopped after an I/O error; reopen it", b->name);
    return 0;
}

/* Undo a failed append: cut the file back. If even that fails the box
 * refuses further writes until reopened (the scan then sorts it out). */
static void rollback(bg_box *b, uint64_t to)
{
    if (bg__vfs_truncate(b->s, b->f, to))
        b->poisoned = 1;
    b->alloc_end = to;
}

void bg__box_keep_zeroed(bg_box *b, uint32_t min_step, uint32_t max_step)
{
    b->zero_min = min_step;
    b->zero_max = max_step;
}

/* Before frames of need bytes are written at end: when they would pass
 * the zeroed region, write zeros from past them to a quarter of the file
 * further (within zero_min..zero_max). The sync that makes those frames
 * durable makes the zeros durable with them, so the file's size changes
 * on that one sync and not on the next ones, which only overwrite zeros
 * (a size change also writes the inode). A crash before that sync leaves
 * zeros, garbage or nothing past the last frame: the scan takes zeros as
 * the clean end and cuts anything else as a torn tail. */
static bg_err ensure_zeroed(bg_box *b, uint64_t at, size_t need)
{
    static const uint8_t zeros[4096];
    bg_store *s = b->s;
    if (!b->zero_max || s->durability == BG_DURABILITY_OFF ||
        at + need <= b->alloc_end)
        return 0;
    uint64_t step = at / 4;
    if (step < b->zero_min)
        step = b->zero_min;
    if (step > b->zero_max)
        step = b->zero_max;
    uint64_t from = at + need > b->alloc_end ? at + need : b->alloc_end;
    uint64_t to = at + need + step;
    bg_err err = 0;
    for (uint64_t z = from; z < to && !err;) {
        size_t n = to - z < sizeof zeros ? (size_t)(to - z) : sizeof zeros;
        err = bg__vfs_write(s, b->f, z, zeros, n);
        z += n;
    }
    if (err) {
        rollback(b, at);
        return bg__handle_fail(s, err,
                               "box '%s': cannot extend the file at "
                               "offset %llu",
                               b->name, (unsigned long long)from);
    }
    b->alloc_end = to;
    return 0;
}

static bg_err check_write(bg_box *b, const bg_write *w, size_t i)
{
    char why[160];
    BG_FAIL_IF(bg_record_check_key(w->key, w->key_len, why, sizeof why), b->s,
               BG_EINVALID, "box '%s': write %zu: %s", b->name, i, why);
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
    BG_FAIL_IF(err, b->s, err, "box '%s', key '%.*s': %s", b->name, klen,
               w->key, why);
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
    uint32_t flen =
        bg__box_frame_start(dst, kind, flags, w->key, klen, type, seq, off,
                            goff, (uint32_t)(plen + BG__SEAL_BYTES));
    bg__box_seal(b->s, b->key, b->id, seq, kind, type, w->key, klen, w->value,
                 plen, dst + BG__FRAME_HDR + klen);
    bg__box_frame_finish(dst, flen);
}

/* Append n frames as one unit, sync as the durability mode says, then
 * update the index. On error the file is cut back and nothing changes. */
static bg_err append(bg_box *b, const bg_write *w, size_t n);

/* Give the append buffer back to the box when it is small (a put's
 * frame), so the next write needs no allocation; a large one is freed. */
static void keep_wbuf(bg_box *b, fwriter *fw)
{
    if (!fw->buf)
        return; /* given back already (a sync that failed after) */
    if (fw->cap <= BG__BOX_WBUF_KEEP) {
        b->wbuf = fw->buf;
        b->wcap = fw->cap;
        fw->buf = NULL;
    } else {
        b->wcap = 0;
    }
    bg__box_fw_free(fw);
}

/* After frames of n writes landed at start (on disk or gathered): the
 * index, and the box's end. */
static bg_err index_frames(bg_box *b, const bg_write *w, size_t n,
                           uint64_t start, uint64_t *offs, uint32_t *flens)
{
    bg_err err = 0;
    uint64_t pos = start;
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
            bg__box_idx_del(b, w[i].key, w[i].key_len);
        } else if ((err = bg__box_idx_set(b, w[i].key, (uint16_t)w[i].key_len,
                                          &h))) {
            /* Out of memory with the frames written: the index no longer
             * tells the truth, so stop writing until reopened. */
            b->poisoned = 1;
            break;
        }
        b->last_off = pos;
        b->last_seq = h.seq;
        pos += h.flen;
    }
    b->next_seq += n;
    b->frames += n;
    b->end = pos;
    if (pos > b->alloc_end)
        b->alloc_end = pos; /* past the zeroed region, or none kept */
    BG_FAIL_IF(err, b->s, err, "box '%s': index update failed", b->name);
    return 0;
}

/* Wait for the sync in flight on the store's thread, if any. When it
 * failed, the box it was for stops (its acknowledged writes may not be
 * durable): the error is returned when that box is b, else kept for that
 * box's next write, sync or close to return (bg__box_check_writable). */
static bg_err settle(bg_box *b)
{
    void *owner;
    bg_err err = bg__sync_wait(b->s, &owner);
    if (!err)
        return 0;
    bg_box *o = owner;
    o->poisoned = 1;
    o->sync_lost = err;
    return o == b ? bg__box_check_writable(b) : 0;
}

/* Write the gathered frames with one write at the end of the file, then
 * (sync set) sync them: on the store's thread when it has one, else now.
 * On error the file is cut back to where they began and they stay
 * gathered; the caller decides what they become. */
static bg_err write_gathered(bg_box *b, int sync)
{
    bg_store *s = b->s;
    uint64_t at = b->end - b->gused;
    BG_TRY(settle(b));
    BG_TRY(ensure_zeroed(b, at, b->gused));
    bg_err err = bg__vfs_write(s, b->f, at, b->gbuf, b->gused);
    if (!err && sync)
        err = bg__sync_begin(s, b->f, b);
    if (err) {
        rollback(b, at);
        return bg__handle_fail(s, err, "box '%s': write at offset %llu failed",
                               b->name, (unsigned long long)at);
    }
    if (b->end > b->alloc_end)
        b->alloc_end = b->end;
    b->gused = 0;
    if (b->gcap > 2 * BG__BOX_GATHER) {
        bg__handle_free(s, b->gbuf);
        b->gbuf = NULL;
        b->gcap = 0;
    }
    if (sync) {
        b->group_open = 0;
        b->group_count = 0;
    }
    return 0;
}

/* GROUP mode: gather the frames of n writes (total bytes) in memory; the
 * write that fills the group writes and syncs it. On error nothing of
 * these writes remains; when writes acknowledged before them were lost
 * with them, the box stops. */
static bg_err gather(bg_box *b, const bg_write *w, size_t n, uint64_t *offs,
                     uint32_t *flens, size_t total)
{
    bg_store *s = b->s;
    uint64_t start = b->end;
    size_t had = b->gused;
    if (b->gcap - had < total) {
        size_t cap = b->gcap ? b->gcap : 4096;
        while (cap - had < total)
            cap *= 2;
        uint8_t *p = bg__handle_realloc(s, b->gbuf, cap);
        BG_FAIL_IF(!p, s, BG_ENOMEM, "box '%s': no memory to gather a write",
                   b->name);
        b->gbuf = p;
        b->gcap = cap;
    }
    uint64_t goff = b->group_open ? b->group_off : start;
    uint8_t *dst = b->gbuf + had;
    uint64_t pos = start;
    for (size_t i = 0; i < n; i++) {
        size_t flen = write_flen(b, &w[i]);
        encode_write(b, &w[i], i + 1 < n ? BG__FLAG_BATCH : 0, b->next_seq + i,
                     pos, goff, dst);
        dst += flen;
        pos += flen;
    }
    b->gused = had + total;
    b->end = pos;
    unsigned count = b->group_count + (unsigned)n;
    int full = count >= s->group_size;
    bg_err err = 0;
    if (full || b->gused >= BG__BOX_GATHER)
        err = write_gathered(b, full);
    b->end = start;
    if (err) {
        b->gused = had;
        if (start > goff)
            b->poisoned = 1; /* earlier writes of the group are lost */
        return err;
    }
    if (!full) {
        if (!b->group_open) {
            b->group_open = 1;
            b->group_off = start;
        }
        b->group_count = count;
    }
    return index_frames(b, w, n, start, offs, flens);
}

static bg_err append_at(bg_box *b, const bg_write *w, size_t n, uint64_t *offs,
                        uint32_t *flens, int trusted)
{
    bg_store *s = b->s;
    BG_TRY(bg__box_check_writable(b));
    for (size_t i = 0; i < n && !trusted; i++)
        BG_TRY(check_write(b, &w[i], i));
    if (n == 0)
        return 0;
    if (s->durability != BG_DURABILITY_OFF)
        BG_TRY(bg__handle_settle_dir(s));

    /* One buffer for the whole write when it is small (the common case:
     * a single put), else BG__BOX_CHUNK-sized pieces. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += write_flen(b, &w[i]);
    if (s->durability == BG_DURABILITY_GROUP)
        return gather(b, w, n, offs, flens, total);
    BG_TRY(ensure_zeroed(b, b->end, total));
    uint64_t start = b->end;
    uint64_t goff = b->group_open ? b->group_off : start;
    fwriter fw;
    bg__box_fw_init(&fw, s, b->f, start);
    fw.buf = b->wbuf; /* the box's buffer, lent to this write */
    fw.cap = b->wcap;
    b->wbuf = NULL;
    bg_err err = 0;
    for (size_t i = 0; i < n; i++) {
        size_t flen = write_flen(b, &w[i]);
        uint8_t *dst;
        err = bg__box_fw_reserve(&fw, flen, total, &dst);
        if (err)
            goto fail;
        encode_write(b, &w[i], i + 1 < n ? BG__FLAG_BATCH : 0, b->next_seq + i,
                     fw.pos, goff, dst);
        bg__box_fw_commit(&fw, flen);
    }
    err = bg__box_fw_flush(&fw);
    if (err)
        goto fail;
    keep_wbuf(b, &fw);

    if (s->durability == BG_DURABILITY_FULL) {
        err = bg__vfs_sync(s, b->f);
        if (err)
            goto fail;
    } else if (!b->group_open) {
        b->group_open = 1; /* OFF: synced at close */
        b->group_off = start;
    }

    /* Durable as promised: now the index. The frame images are gone from
     * buf, so the index is fed from the write list. */
    return index_frames(b, w, n, start, offs, flens);
fail:
    keep_wbuf(b, &fw);
    rollback(b, start);
    return bg__handle_fail(s, err, "box '%s': write at offset %llu failed",
                           b->name, (unsigned long long)start);
}

static bg_err check_public(bg_box *b)
{
    BG_FAIL_IF(b->reserved, b->s, BG_EINVALID,
               "box '%s' is reserved for the store itself", b->name);
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
    BG_TRY(bg__box_check_writable(b));
    BG_TRY(check_write(b, &w, 0));
    BG_FAIL_IF(
        !bg__box_idx_find(b, key, key_len, bg__box_key_hash(key, key_len)),
        b->s, BG_ENOTFOUND, "box '%s': no key '%.*s'", b->name,
        (int)(key_len > 80 ? 80 : key_len), (const char *)key);
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

/* Write what the open group has gathered and sync the file: every write
 * acknowledged so far is then durable. */
static bg_err write_open_group(bg_box *b)
{
    bg_err err = b->gused ? write_gathered(b, 0) : 0;
    return err ? err : bg__vfs_sync(b->s, b->f);
}

bg_err bg_box_sync(bg_box *b)
{
    BG__JSON_SCOPE(&b->s->alloc);
    if (b->read_only)
        return 0;
    BG_TRY(settle(b));
    if (b->sync_lost || b->poisoned)
        return bg__box_check_writable(b);
    if (!b->group_open)
        return 0;
    bg_err err = write_open_group(b);
    if (err) {
        b->poisoned = 1;
        return bg__handle_fail(b->s, err, "box '%s': sync failed", b->name);
    }
    b->group_open = 0;
    b->group_count = 0;
    return 0;
}

bg_err bg__box_flush_close(bg_box *b)
{
    bg_err err = settle(b);
    if (!err && b->sync_lost)
        err = bg__box_check_writable(b);
    if (err || b->read_only || b->poisoned || !b->group_open)
        return err;
    return write_open_group(b);
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
    bg_err err = bg__box_pread(b, off, head, sizeof head, &got);
    frame_hdr h;
    if (!err &&
        (got < BG__FRAME_HDR ||
         !bg__box_frame_head(head, off, b->key != NULL, &h) || h.klen > cap ||
         h.klen > 64 || got < (size_t)BG__FRAME_HDR + h.klen))
        err = BG_ECORRUPT;
    BG_FAIL_IF(err, b->s, err, "box '%s': frame at offset %llu", b->name,
               (unsigned long long)off);
    memcpy(key, head + BG__FRAME_HDR, h.klen);
    *klen = h.klen;
    return 0;
}

/* ---- compaction ------------------------------------------------------- */

typedef struct compact_ctx {
    bg_box *b;
    ent **v;
    uint64_t *offs;
    const bg__key *key; /* sealed boxes: re-bg__box_seal under this key ... */
    uint8_t id[16];     /* ... and this new box id */
} compact_ctx;

/* The frame of live entry e, moved to offset pos (and re-sealed). */
static bg_err compact_frame(compact_ctx *c, const ent *e, uint64_t pos,
                            uint8_t **out)
{
    bg_box *b = c->b;
    if (!c->key) {
        BG_TRY(bg__box_read_frame(b, e, out));
        bg__box_frame_move(*out, e->flen, pos);
        return 0;
    }
    char *val;
    size_t vlen;
    BG_TRY(bg__box_read_value(b, e, &val, &vlen));
    uint8_t *p = bg__handle_malloc(b->s, e->flen);
    if (!p) {
        bg__handle_free(b->s, val);
        return BG_ENOMEM;
    }
    uint32_t flen = bg__box_frame_start(p, BG__KIND_PUT, 0, e->key, e->klen,
                                        e->type, e->seq, pos, pos,
                                        (uint32_t)(vlen + BG__SEAL_BYTES));
    bg__box_seal(b->s, c->key, c->id, e->seq, BG__KIND_PUT, e->type, e->key,
                 e->klen, val, vlen, p + BG__FRAME_HDR + e->klen);
    bg__box_frame_finish(p, flen);
    bg__handle_free(b->s, val);
    *out = p;
    return 0;
}

static bg_err compact_fill(void *arg, bg_file *f, uint64_t *end)
{
    compact_ctx *c = arg;
    bg_box *b = c->b;
    fwriter fw;
    bg__box_fw_init(&fw, b->s, f, *end);
    bg_err err = 0;
    for (size_t i = 0; i < b->count && !err; i++) {
        uint8_t *p, *dst;
        uint32_t flen = c->v[i]->flen;
        BG_TRY_OUT(compact_frame(c, c->v[i], fw.pos, &p));
        err = bg__box_fw_reserve(&fw, flen, (size_t)b->live_bytes, &dst);
        if (!err) {
            memcpy(dst, p, flen);
            c->offs[i] = fw.pos;
            bg__box_fw_commit(&fw, flen);
        }
        bg__handle_free(b->s, p);
        if ((i & 1023) == 0)
            bg__handle_progress(b->s, "compact", i, b->count);
    }
    if (!err)
        err = bg__box_fw_flush(&fw);
    bg__handle_progress(b->s, "compact", b->count, b->count);
    if (!err)
        *end = fw.pos;
out:
    bg__box_fw_free(&fw);
    return err;
}

/* Compaction, and for a sealed box re-sealing under key with a new box id
 * (so that no frame of the old file authenticates in the new one). */
static bg_err rewrite(bg_box *b, const bg__key *key)
{
    bg_store *s = b->s;
    BG_FAIL_IF(b->ext_fn, s, BG_ESTATE,
               "box '%s' is indexed by its owner; compact it "
               "through a plain open",
               b->name);
    BG_TRY(bg__box_check_writable(b));
    BG_TRY(bg_box_sync(b));
    char tmp[BG_PATH_MAX];
    bg__box_path(s, b->name, ".box.tmp", tmp, sizeof tmp);
    compact_ctx c = {.b = b, .key = key};
    memcpy(c.id, b->id, 16);
    if (key)
        bg__vfs_random(s, c.id, sizeof c.id);
    bg_err err = 0;
    BG_TRY_OUT(bg__box_idx_sorted(b, &c.v));
    c.offs = bg__handle_malloc(s, (b->count ? b->count : 1) * sizeof *c.offs);
    if (!c.offs) {
        err = BG_ENOMEM;
        goto out;
    }
    uint8_t hdr[BG__BOX_HDR_SIZE];
    bg__box_encode_header(hdr, c.id, b->hflags, key ? key->id : 0, b->next_seq);
    bg_file *nf = NULL;
    uint64_t end = 0;
    err =
        bg__box_write_beside(s, tmp, b->path, hdr, compact_fill, &c, &nf, &end);
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
        if (b->count) {
            b->last_off = c.offs[b->count - 1];
            b->last_seq = c.v[b->count - 1]->seq;
        }
        b->seq_floor = b->next_seq;
        b->end = end;
        b->alloc_end = end;
        b->frames = b->count;
        b->group_open = 0;
        b->group_count = 0;
    }
out:
    bg__handle_free(s, c.v);
    bg__handle_free(s, c.offs);
    BG_FAIL_IF(err && err != BG_EAUTH, s, err, "box '%s': compaction failed",
               b->name);
    return err;
}

bg_err bg_box_compact(bg_box *b)
{
    BG__JSON_SCOPE(&b->s->alloc);
    /* The store's boxes are compacted by their owners. One its owner
     * indexes (pending_ops, whose offsets the queue holds) is refused by
     * rewrite as such, first. */
    if (!b->ext_fn)
        BG_TRY(check_public(b));
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
