/*
 * Box files: box handles (open, close, the table of a store's open boxes),
 * the in-memory index of a box's live keys, and reads. The format, the
 * scan and the writer are in box_format.c, box_scan.c and box_write.c
 * (box_file_int.h names the pieces).
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

/* ---- box handles ------------------------------------------------------ */

const char *bg__box_name(const bg_box *b)
{
    return b->name;
}

const bg_box_report *bg_box_report_of(const bg_box *b)
{
    return &b->rep;
}

static bg_err apply_index(void *arg, const uint8_t *p, const frame_hdr *h)
{
    bg_box *b = arg;
    b->frames++;
    b->last_off = h->off;
    b->last_seq = h->seq;
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
        return bg__box_idx_set(b, p + BG__FRAME_HDR, h->klen, h);
    bg__box_idx_del(b, p + BG__FRAME_HDR, h->klen);
    return 0;
}

static void box_free(bg_box *b)
{
    if (b->f)
        bg__vfs_close(b->s, b->f);
    bg__box_idx_clear(b);
    bg__handle_free(b->s, b->wbuf);
    bg__handle_free(b->s, b->gbuf);
    bg__handle_free(b->s, b);
}

/* Whether the file behind r still is the one `from` describes, so that
 * its scan may resume at from->end. */
static int resume_ok(reader *r, const bg__box_resume *from)
{
    box_hdr hdr;
    const uint8_t *hp = bg__box_rd_get(r, 0, BG__BOX_HDR_SIZE);
    if (!hp || !bg__box_header_parse(hp, &hdr) ||
        (hdr.flags & BG__BOX_SEALED) || memcmp(hdr.id, from->id, 16) ||
        hdr.seq_floor != from->seq_floor || from->end > r->size)
        return 0;
    if (!from->last_seq)
        return from->frames == 0 && from->end == BG__BOX_HDR_SIZE;
    return from->frames && from->last_off >= BG__BOX_HDR_SIZE &&
           from->last_off < from->end &&
           bg__box_frame_at(r, from->last_off, from->last_seq, from->end);
}

/* Scan b's open file into its index and report; with from, only what
 * follows from->end when the file still matches it (*resumed). */
static bg_err box_load_from(bg_box *b, const bg__box_resume *from, int *resumed)
{
    bg_store *s = b->s;
    reader r = {.s = s, .f = b->f};
    bg_err err = bg__vfs_size(s, b->f, &r.size);
    BG_FAIL_IF(err, s, err, "box '%s': cannot read size", b->name);
    scan sc = {.r = &r,
               .apply = apply_index,
               .arg = b,
               .what = "open",
               .name = b->name};
    if (resumed)
        *resumed = 0;
    if (from) {
        if (resume_ok(&r, from)) {
            sc.start = from->end;
            sc.start_seq = from->last_seq;
            sc.max_seq = from->last_seq;
            b->frames = from->frames;
            b->last_off = from->last_off;
            b->last_seq = from->last_seq;
            *resumed = 1;
        } else if (r.err) {
            err = r.err;
            goto out;
        } else {
            BG_TRY_OUT(b->ext_fn(b->ext_arg, NULL));
        }
    }
    box_hdr hdr;
    BG_TRY_OUT(bg__box_scan_file(&sc, &b->rep, &hdr));
    memcpy(b->id, hdr.id, 16);
    b->hflags = hdr.flags;
    b->key_id = hdr.key_id;
    b->key = r.key;
    b->seq_floor = hdr.seq_floor;
    if (b->rep.status == BG_BOX_CORRUPT) {
        /* Read-only view of everything that still verifies. */
        bg__box_idx_clear(b);
        b->frames = 0;
        b->last_seq = 0;
        sc.start = sc.start_seq = 0;
        if (resumed)
            *resumed = 0;
        if (b->ext_fn)
            BG_TRY_OUT(b->ext_fn(b->ext_arg, NULL));
        sc.salvage = 1;
        sc.npb = 0;
        bg_box_report tmp;
        box_hdr again;
        BG_TRY_OUT(bg__box_scan_file(&sc, &tmp, &again));
        b->damaged = 1;
    }
    b->next_seq =
        sc.max_seq + 1 > hdr.seq_floor ? sc.max_seq + 1 : hdr.seq_floor;
    if (b->next_seq == 0)
        b->next_seq = 1;
    if (b->rep.status == BG_BOX_TORN)
        b->end = b->rep.cut;
    else if (b->rep.status == BG_BOX_CLEAN)
        b->end = b->rep.valid_end;
    else
        b->end = r.size;
    b->alloc_end = b->rep.status == BG_BOX_TORN ? b->rep.cut : r.size;
out:
    bg__box_rd_free(&r);
    bg__handle_free(s, sc.pb);
    if (err && err != BG_EAUTH)
        bg__handle_fail(s, err, "box '%s': cannot scan", b->name);
    return err;
}

static bg_err box_load(bg_box *b)
{
    return box_load_from(b, NULL, NULL);
}

/* Open (or create) a box; an owner that keeps its own index passes
 * ext_fn, which then receives the frames instead of the box's index. */
static bg_err quarantine(bg_store *s, const char *name, const char *kind,
                         reader *r, uint64_t from, char *qpath, size_t qcap);

static bg_err box_open_file(bg_store *s, const char *name, int flags,
                            bg__box_ext_fn ext_fn, void *ext_arg,
                            const bg__box_resume *from, int *resumed,
                            bg_box **out)
{
    bg_box *b = bg__box_table_find(s, name);
    BG_FAIL_IF(b && ext_fn, s, BG_ESTATE, "box '%s' is already open", name);
    if (b) {
        *out = b;
        return 0;
    }
    char path[BG_PATH_MAX], tmp[BG_PATH_MAX];
    bg__box_path(s, name, ".box", path, sizeof path);
    bg__box_path(s, name, ".box.tmp", tmp, sizeof tmp);
    bg_err err = bg__vfs_stat(s, path, NULL);
    if (err == BG_ENOTFOUND) {
        BG_FAIL_IF(!(flags & BG_BOX_CREATE), s, BG_ENOTFOUND,
                   "box '%s' does not exist", name);
        BG_FAIL_IF(s->read_only, s, BG_ESTATE,
                   "box '%s' does not exist (read-only store)", name);
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
        err = bg__box_write_beside(s, tmp, path, hdr, NULL, NULL, &b->f, &end);
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
    BG_TRY_OUT(box_load_from(b, from, resumed));
    if ((flags & BG_BOX_ENCRYPT) && !b->key) {
        err = bg__handle_fail(s, BG_EINVALID,
                              "box '%s' exists and is not encrypted", name);
        goto out;
    }
    if (b->rep.status == BG_BOX_TORN && !b->read_only) {
        /* A tail holding frames that verify (a batch cut short by a crash,
         * or a synced one damaged since: the file cannot tell) is copied
         * to quarantine before it goes. */
        if (b->rep.tail_frames) {
            reader r = {.s = s, .f = b->f, .size = b->rep.file_size};
            err = quarantine(s, name, "torn", &r, b->rep.cut, b->rep.quarantine,
                             sizeof b->rep.quarantine);
            bg__box_rd_free(&r);
            if (err) {
                bg__handle_fail(s, err,
                                "box '%s': cannot keep its torn tail in "
                                "quarantine/; nothing was cut",
                                name);
                goto out;
            }
        }
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
    BG_TRY(bg__box_name_ok(s, name));
    return box_open_file(s, name, flags, ext_fn, ext_arg, NULL, NULL, out);
}

bg_err bg_box_open(bg_store *s, const char *name, int flags, bg_box **out)
{
    BG__JSON_SCOPE(&s->alloc);
    return box_open(s, name, flags, NULL, NULL, out);
}

bg_err bg__box_open_staged(bg_store *s, const char *name, const char *suffix,
                           int flags, bg_box **out)
{
    BG_TRY(bg__box_name_ok(s, name));
    char full[BG_BOX_NAME_MAX + 8];
    int n = snprintf(full, sizeof full, "%s%s", name, suffix);
    BG_FAIL_IF(n < 0 || (size_t)n >= sizeof full, s, BG_EINVALID,
               "staged suffix '%s' too long", suffix);
    return box_open_file(s, full, flags, NULL, NULL, NULL, NULL, out);
}

bg_err bg__box_close(bg_box *b)
{
    bg_err err = bg__box_flush_close(b);
    if (err)
        bg__handle_fail(b->s, err, "box '%s': final sync failed", b->name);
    bg__box_table_remove(b->s, b);
    box_free(b);
    return err;
}

/* ---- reading ---------------------------------------------------------- */

bg_err bg__box_read_at(bg_box *b, uint64_t off, uint32_t flen, char **value,
                       size_t *vlen)
{
    ent e = {.off = off, .flen = flen};
    uint8_t *p;
    BG_TRY(bg__box_read_frame(b, &e, &p));
    return bg__box_frame_value(b, p, off, value, vlen);
}

bg_err bg__box_open_ext(bg_store *s, const char *name, int flags,
                        bg__box_ext_fn fn, void *arg, bg_box **out)
{
    return box_open(s, name, flags, fn, arg, out);
}

bg_err bg__box_open_ext_from(bg_store *s, const char *name, int flags,
                             bg__box_ext_fn fn, void *arg,
                             const bg__box_resume *from, int *resumed,
                             bg_box **out)
{
    *resumed = 0;
    BG_TRY(bg__box_name_ok(s, name));
    return box_open_file(s, name, flags, fn, arg, from, resumed, out);
}

bg_err bg__box_resume_point(const bg_box *b, bg__box_resume *r)
{
    if (b->damaged || b->poisoned || b->group_open || b->key ||
        bg__sync_owner(b->s) == b)
        return BG_ESTATE;
    memcpy(r->id, b->id, 16);
    r->seq_floor = b->seq_floor;
    r->end = b->end;
    r->frames = b->frames;
    r->last_off = b->frames ? b->last_off : 0;
    r->last_seq = b->frames ? b->last_seq : 0;
    return 0;
}

bg_err bg__box_rescan(bg_box *b)
{
    BG_TRY(b->ext_fn(b->ext_arg, NULL));
    b->frames = 0;
    return box_load(b);
}

bg_err bg__box_scan_with(bg_box *b, bg__box_ext_fn fn, void *arg)
{
    bg__box_ext_fn own = b->ext_fn;
    void *own_arg = b->ext_arg;
    b->ext_fn = fn;
    b->ext_arg = arg;
    bg_err err = fn(arg, NULL);
    if (!err) {
        b->frames = 0;
        err = box_load(b);
    }
    b->ext_fn = own;
    b->ext_arg = own_arg;
    return err;
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
    bg__box_fw_init(&fw, b->s, f, *end);
    bg_err err = 0;
    for (size_t i = 0; i < c->n && !err; i++) {
        uint32_t flen = c->flens[i];
        uint8_t *dst;
        size_t got = 0;
        frame_hdr h;
        err = bg__box_fw_reserve(&fw, flen, BG__BOX_CHUNK, &dst);
        if (!err)
            err = bg__box_pread(b, c->offs[i], dst, flen, &got);
        if (!err &&
            (got != flen || !bg__box_frame_head(dst, c->offs[i], 0, &h) ||
             h.flen != flen || !bg__box_frame_sum_ok(dst, flen)))
            err = bg__handle_fail(b->s, BG_ECORRUPT,
                                  "box '%s': frame at offset %llu does not "
                                  "verify",
                                  b->name, (unsigned long long)c->offs[i]);
        if (!err) {
            put64(dst + 16, c->seq0 + i);
            bg__box_frame_move(dst, flen, fw.pos);
            c->new_offs[i] = fw.pos;
            bg__box_fw_commit(&fw, flen);
        }
    }
    if (!err && c->trailer) {
        const bg_write *t = c->trailer;
        size_t flen = BG__FRAME_OVERHEAD + t->key_len + t->value_len;
        uint8_t *dst;
        err = bg__box_fw_reserve(&fw, flen, BG__BOX_CHUNK, &dst);
        if (!err) {
            bg__box_encode_frame(dst, BG__KIND_PUT, 0, t->key,
                                 (uint16_t)t->key_len, t->type, c->seq0 + c->n,
                                 fw.pos, fw.pos, t->value,
                                 (uint32_t)t->value_len);
            bg__box_fw_commit(&fw, flen);
        }
    }
    if (!err)
        err = bg__box_fw_flush(&fw);
    if (!err)
        *end = fw.pos;
    bg__box_fw_free(&fw);
    return err;
}

bg_err bg__box_rewrite_ext(bg_box *b, const uint64_t *offs,
                           const uint32_t *flens, size_t n, uint64_t *new_offs,
                           const bg_write *trailer, int *swapped)
{
    bg_store *s = b->s;
    *swapped = 0;
    BG_FAIL_IF(b->key, s, BG_ESTATE, "box '%s': sealed", b->name);
    BG_TRY(bg__box_check_writable(b));
    BG_TRY(bg_box_sync(b));
    char tmp[BG_PATH_MAX];
    bg__box_path(s, b->name, ".box.tmp", tmp, sizeof tmp);
    uint8_t hdr[BG__BOX_HDR_SIZE];
    bg__box_encode_header(hdr, b->id, b->hflags, 0, b->next_seq + n + 1);
    ext_fill_ctx c = {b, trailer, b->next_seq, offs, flens, n, new_offs};
    bg_file *nf = NULL;
    uint64_t end = 0;
    bg_err err =
        bg__box_write_beside(s, tmp, b->path, hdr, ext_fill, &c, &nf, &end);
    if (nf) {
        /* Swapped in. A failed directory sync is made good before the next
         * durable write (dir_dirty), and either file holds the same ops;
         * it is still reported. */
        bg__vfs_close(s, b->f);
        b->f = nf;
        b->end = end;
        b->alloc_end = end;
        b->frames = n + (trailer ? 1 : 0);
        b->seq_floor = b->next_seq + n + 1;
        if (trailer) {
            b->last_off = end - (BG__FRAME_OVERHEAD + trailer->key_len +
                                 trailer->value_len);
            b->last_seq = b->next_seq + n;
        } else if (n) {
            b->last_off = new_offs[n - 1];
            b->last_seq = b->next_seq + n - 1;
        }
        b->next_seq += n + 1;
        b->group_open = 0;
        b->group_count = 0;
        *swapped = 1;
    }
    BG_FAIL_IF(err, s, err,
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
    ent *e = key_len ? bg__box_idx_find(b, key, key_len,
                                        bg__box_key_hash(key, key_len))
                     : NULL;
    BG_FAIL_IF(!e, b->s, BG_ENOTFOUND, "box '%s': no key '%.*s'", b->name,
               (int)(key_len > 80 ? 80 : key_len),
               key_len ? (const char *)key : "");
    if (typed)
        BG_TRY(check_read_type(b, e));
    BG_TRY(bg__box_read_value(b, e, value, value_len));
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
    BG_TRY(bg__box_idx_sorted(b, &v));
    size_t n = b->count;
    bg_err err = 0;
    for (size_t i = 0; i < n; i++) {
        char *val;
        size_t vlen;
        if (typed)
            BG_TRY_OUT(check_read_type(b, v[i]));
        BG_TRY_OUT(bg__box_read_value(b, v[i], &val, &vlen));
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

/* ---- verify and recover ----------------------------------------------- */

bg_err bg_box_verify(bg_store *s, const char *name, bg_box_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    BG_TRY(bg__box_name_ok(s, name));
    char path[BG_PATH_MAX];
    bg__box_path(s, name, ".box", path, sizeof path);
    reader r = {.s = s};
    bg_err err = bg__vfs_open(s, path, BG_OPEN_READ, &r.f);
    BG_FAIL_IF(err, s, err, "box '%s': cannot open '%s'", name, path);
    scan sc = {.r = &r, .what = "verify", .name = name};
    box_hdr hdr;
    err = bg__vfs_size(s, r.f, &r.size);
    if (!err)
        err = bg__box_scan_file(&sc, rep, &hdr);
    bg__vfs_close(s, r.f);
    bg__box_rd_free(&r);
    bg__handle_free(s, sc.pb);
    BG_FAIL_IF(err && err != BG_EAUTH, s, err, "box '%s': cannot scan '%s'",
               name, path);
    return err;
}

/* Copy the damaged file to quarantine/<name>_corrupted_YYYYMMDD[-N].bak. */
/* Copy bytes [from, end of file) of the file r reads to
 * quarantine/<name>_<kind>_YYYYMMDD[-N].bak, synced, its name in qpath. */
static bg_err quarantine(bg_store *s, const char *name, const char *kind,
                         reader *r, uint64_t from, char *qpath, size_t qcap)
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
        int n = snprintf(qpath, qcap, "%s/%s_%s_%s%s.bak", qdir, name, kind,
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
    for (uint64_t off = from; off < r->size && !err; off += BG__BOX_CHUNK) {
        size_t n = r->size - off < BG__BOX_CHUNK ? (size_t)(r->size - off)
                                                 : BG__BOX_CHUNK;
        const uint8_t *p = bg__box_rd_get(r, off, n);
        err = p ? bg__vfs_write(s, q, off - from, p, n)
                : (r->err ? r->err : BG_EIO);
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
    BG_TRY(bg__box_fw_reserve(fw, h->flen, BG__BOX_CHUNK, &dst));
    memcpy(dst, p, h->flen);
    bg__box_frame_move(dst, h->flen, fw->pos);
    bg__box_fw_commit(fw, h->flen);
    return 0;
}

typedef struct recover_fill_ctx {
    scan *sc;
    fwriter *fw;
} recover_fill_ctx;

static bg_err recover_fill(void *arg, bg_file *f, uint64_t *end)
{
    recover_fill_ctx *c = arg;
    bg__box_fw_init(c->fw, c->sc->r->s, f, *end);
    bg_box_report tmp;
    box_hdr hdr;
    BG_TRY(bg__box_scan_file(c->sc, &tmp, &hdr));
    BG_TRY(bg__box_fw_flush(c->fw));
    *end = c->fw->pos;
    return 0;
}

bg_err bg_box_recover(bg_store *s, const char *name, bg_box_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    BG_TRY(bg__box_name_ok(s, name));
    BG_FAIL_IF(s->read_only, s, BG_ESTATE, "box '%s': store opened read-only",
               name);
    bg_box *open = bg__box_table_find(s, name);
    if (open)
        BG_TRY(bg__box_close(open));
    char path[BG_PATH_MAX], tmp[BG_PATH_MAX];
    bg__box_path(s, name, ".box", path, sizeof path);
    bg__box_path(s, name, ".box.tmp", tmp, sizeof tmp);
    reader r = {.s = s};
    bg_err err = bg__vfs_open(s, path, BG_OPEN_WRITE, &r.f);
    BG_FAIL_IF(err, s, err, "box '%s': cannot open '%s'", name, path);
    scan sc = {.r = &r, .what = "recover", .name = name};
    fwriter fw = {.s = s};
    box_hdr hdr;
    BG_TRY_OUT(bg__vfs_size(s, r.f, &r.size));
    BG_TRY_OUT(bg__box_scan_file(&sc, rep, &hdr));
    if (rep->status == BG_BOX_TORN) {
        if (rep->tail_frames) /* frames that verify are never dropped unseen */
            BG_TRY_OUT(quarantine(s, name, "torn", &r, rep->cut,
                                  rep->quarantine, sizeof rep->quarantine));
        BG_TRY_OUT(bg__vfs_truncate(s, r.f, rep->cut));
        BG_TRY_OUT(bg__vfs_sync(s, r.f));
    } else if (rep->status == BG_BOX_CORRUPT) {
        BG_TRY_OUT(quarantine(s, name, "corrupted", &r, 0, rep->quarantine,
                              sizeof rep->quarantine));
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
        err = bg__box_write_beside(s, tmp, path, head, recover_fill, &rc, &nf,
                                   &end);
        if (nf)
            bg__vfs_close(s, nf);
    }
out:
    bg__vfs_close(s, r.f);
    bg__box_rd_free(&r);
    bg__handle_free(s, sc.pb);
    bg__box_fw_free(&fw);
    BG_FAIL_IF(err && err != BG_EAUTH, s, err, "box '%s': recovery failed",
               name);
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
