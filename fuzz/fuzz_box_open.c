/*
 * Target Functions: bg_box_verify, bg_box_open, bg_box_iterate, bg_box_get,
 * bg_box_recover (box.c scan, salvage and quarantine paths).
 *
 * The input is a box file's bytes, opened with a fixed data key in
 * keys/1.key. Or, when it starts with 'E', a list of bit flips and a cut
 * applied to an encrypted box the target writes itself: then, besides the
 * properties below, every record read back must be one that was written
 * (a flipped bit anywhere never yields plaintext that was not written).
 * Or, when it starts with 'F', a box the target writes from the input
 * (plain or sealed; puts, deletes and batches), then damages past the
 * checksums: a field of a frame edited and the frame's checksum
 * recomputed (so the edit reaches the authentication and the frame
 * rules, not only the checksum), the header's key id changed to one the
 * store does not have (header checksum recomputed), or the file cut inside
 * its last frame or batch. The same holds for a sealed one: nothing that
 * was not written is ever read back.
 * Properties:
 *   - verify changes no byte;
 *   - a box that opens yields only records whose frames verify, and reading
 *     each key again gives the same bytes;
 *   - after recover the box verifies clean and holds exactly the records
 *     the open showed (clean or torn input: recover keeps them all; corrupt
 *     input: the read-only view and the salvage agree);
 *   - recover is idempotent: a second run changes no byte.
 */
#include <xxhash.h>

#include "boxfile.h"
#include "fuzz_helpers.h"

typedef struct rec {
    char *key;
    size_t klen;
    uint32_t type;
    char *val;
    size_t vlen;
} rec;

typedef struct recs {
    rec *v;
    size_t n, cap;
} recs;

static int collect(void *arg, const bg_record *r)
{
    recs *rs = arg;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->v = realloc(rs->v, rs->cap * sizeof *rs->v);
        FUZZ_ASSERT(rs->v);
    }
    rec *x = &rs->v[rs->n++];
    x->key = malloc(r->key_len + 1);
    x->val = malloc(r->value_len + 1);
    FUZZ_ASSERT(x->key && x->val);
    memcpy(x->key, r->key, r->key_len);
    memcpy(x->val, r->value, r->value_len);
    x->klen = r->key_len;
    x->vlen = r->value_len;
    x->type = r->type;
    return 0;
}

static void free_recs(recs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].key);
        free(rs->v[i].val);
    }
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

static int same_recs(const recs *a, const recs *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const rec *x = &a->v[i], *y = &b->v[i];
        if (x->klen != y->klen || memcmp(x->key, y->key, x->klen) ||
            x->vlen != y->vlen || memcmp(x->val, y->val, x->vlen) ||
            x->type != y->type)
            return 0;
    }
    return 1;
}

static void read_all(bg_sim *sim, uint8_t **buf, size_t *len)
{
    FUZZ_ASSERT(bg_sim_read_file(sim, "s/b.box", buf, len) == 0);
}

/* Adapters without fields for typeIds 1..8: records of those types read
 * as data; any other non-zero typeId must be refused with BG_ESCHEMA. */
static bg_registry *registry(void)
{
    static const char *names[] = {"T1", "T2", "T3", "T4",
                                  "T5", "T6", "T7", "T8"};
    bg_registry *r = bg_registry_new();
    FUZZ_ASSERT(r);
    for (uint32_t i = 0; i < 8; i++) {
        bg_adapter a = {i + 1, names[i], 1, NULL, 0};
        FUZZ_ASSERT(bg_registry_add(r, &a) == 0);
    }
    return r;
}

/* Open the box and collect its records; returns the open status or -1. */
static int open_collect(bg_sim *sim, recs *out)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_registry *reg = registry();
    o.registry = reg;
    bg_store *s;
    bg_box *b;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    bg_err err = bg_box_open(s, "b", 0, &b);
    int status = -1;
    if (!err) {
        status = (int)bg_box_report_of(b)->status;
        bg_err ierr = bg_box_iterate(b, collect, out);
        FUZZ_ASSERT_MSG(ierr == 0 || ierr == BG_ESCHEMA, "iterate: %s",
                        bg_err_name(ierr));
        for (size_t i = 0; i < out->n; i++) {
            uint32_t t;
            char *v;
            size_t n;
            FUZZ_ASSERT(
                bg_box_get(b, out->v[i].key, out->v[i].klen, &t, &v, &n) == 0);
            FUZZ_ASSERT(n == out->v[i].vlen && !memcmp(v, out->v[i].val, n));
            FUZZ_ASSERT(t == out->v[i].type);
            bg_store_free(s, v);
        }
    } else {
        FUZZ_ASSERT_MSG(err == BG_ENOMEM || err == BG_EAUTH, "open: %s",
                        bg_err_name(err));
    }
    FUZZ_ASSERT(bg_store_close(s) == 0);
    bg_registry_free(reg);
    return status;
}

static const uint8_t fixed_key[32] = {
    0x42, 0x6f, 0x78, 0x67, 0x75, 0x61, 0x72, 0x64, 0x20, 0x66, 0x75,
    0x7a, 0x7a, 0x20, 0x6b, 0x65, 0x79, 0x00, 0x01, 0x02, 0x03, 0x04,
    0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e};

/* What the encrypted mode writes: every version of every key. */
static const char *const written[][2] = {
    {"alpha", "{\"n\":1,\"s\":\"first\"}"},
    {"beta", "[1,2,3,{\"deep\":true}]"},
    {"gamma", "\"a string value that spans more than one cipher block\""},
    {"alpha", "{\"n\":2,\"s\":\"second version\"}"},
    {"delta", "null"},
    {"epsilon", "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"},
};
#define NWRITTEN (sizeof written / sizeof *written)

static void write_sealed_box(bg_sim *sim)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_box *b;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_open(s, "b", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b) == 0);
    for (size_t i = 0; i < NWRITTEN; i++)
        FUZZ_ASSERT(bg_box_put(b, written[i][0], strlen(written[i][0]), 0,
                               written[i][1], strlen(written[i][1])) == 0);
    FUZZ_ASSERT(bg_box_del(b, "delta", 5) == 0);
    FUZZ_ASSERT(bg_store_close(s) == 0);
}

static int was_written(const rec *r)
{
    for (size_t i = 0; i < NWRITTEN; i++)
        if (r->klen == strlen(written[i][0]) &&
            !memcmp(r->key, written[i][0], r->klen) &&
            r->vlen == strlen(written[i][1]) &&
            !memcmp(r->val, written[i][1], r->vlen) && r->type == 0)
            return 1;
    return 0;
}

/* ---- 'F': a box built from the input, damaged past its checksums ---- */

static const char *const fkeys[] = {"k0", "k1", "k2", "k3",
                                    "k4", "k5", "k6", "k7"};
static const char *const fvals[] = {
    "{\"a\":1}",
    "[1,2,3]",
    "\"text\"",
    "null",
    "true",
    "{\"n\":{\"m\":[]}}",
    "{\"pad\":\"0123456789012345678901234567890123456789\"}",
    "-2.5e3"};

static struct {
    const char *k, *v;
} fwritten[64];
static size_t nfwritten;

static int was_fwritten(const rec *r)
{
    for (size_t i = 0; i < nfwritten; i++)
        if (r->klen == strlen(fwritten[i].k) &&
            !memcmp(r->key, fwritten[i].k, r->klen) &&
            r->vlen == strlen(fwritten[i].v) &&
            !memcmp(r->val, fwritten[i].v, r->vlen) && r->type == 0)
            return 1;
    return 0;
}

static void refit_frame(uint8_t *p)
{
    uint32_t flen = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                    (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    uint64_t sum = XXH3_64bits(p, flen - 8);
    for (int i = 0; i < 8; i++)
        p[flen - 8 + i] = (uint8_t)(sum >> (8 * i));
}

/* Returns whether the box is sealed: only then does an edit whose checksum
 * was recomputed have to be caught (a plain frame is only checksummed). */
static int build_box(bg_sim *sim, fuzz_producer *p)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_box *b;
    uint32_t sealed = fuzz_u32(p, 0, 1);
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_open(s, "b",
                            BG_BOX_CREATE | (sealed ? BG_BOX_ENCRYPT : 0),
                            &b) == 0);
    nfwritten = 0;
    uint32_t nops = fuzz_u32(p, 1, 12);
    for (uint32_t i = 0; i < nops; i++) {
        uint8_t c = fuzz_byte(p);
        bg_write w[3];
        size_t n = c % 4 == 3 ? 2 + (c >> 7) : 1; /* a batch of 2 or 3 */
        for (size_t j = 0; j < n; j++) {
            const char *k = fkeys[(c >> 2 ^ (uint8_t)j) % 8];
            const char *v = fvals[(c >> 3 ^ (uint8_t)(j * 5)) % 8];
            int del = n == 1 && c % 4 == 2;
            w[j] = (bg_write){
                del, k, strlen(k), 0, del ? NULL : v, del ? 0 : strlen(v)};
            if (!del && nfwritten < 64) {
                fwritten[nfwritten].k = k;
                fwritten[nfwritten].v = v;
                nfwritten++;
            }
        }
        bg_err err = bg_box_write_batch(b, w, n);
        FUZZ_ASSERT(err == 0);
    }
    FUZZ_ASSERT(bg_store_close(s) == 0);

    uint8_t *f;
    size_t len;
    read_all(sim, &f, &len);
    uint64_t offs[64];
    size_t nf = tu_frames(f, len, offs, 64);
    uint32_t nedits = fuzz_u32(p, 0, 3);
    for (uint32_t e = 0; e < nedits && nf; e++) {
        size_t fi = fuzz_u32(p, 0, (uint32_t)nf - 1);
        uint8_t *fr = f + offs[fi];
        uint32_t flen = tu_flen(f, offs[fi]);
        uint32_t what = fuzz_u32(p, 0, 7), x = fuzz_u32(p, 1, 255);
        switch (what) {
        case 0: /* kind */
            fr[8] ^= (uint8_t)x;
            break;
        case 1: /* flags: the batch bit */
            fr[9] ^= 1;
            break;
        case 2: /* typeId */
            fr[12] ^= (uint8_t)x;
            break;
        case 3: /* sequence */
            fr[16] ^= (uint8_t)x;
            break;
        case 4: /* a byte of the key */
            fr[BG__FRAME_HDR] ^= (uint8_t)x;
            break;
        default: /* a byte of the value (a sealed one: nonce, text, tag) */
            fr[BG__FRAME_HDR + fr[10] +
               x % (flen - BG__FRAME_OVERHEAD - fr[10] + 1)] ^= (uint8_t)x;
            break;
        }
        refit_frame(fr);
    }
    if (sealed && fuzz_u32(p, 0, 7) == 0) {
        f[12] ^= 0x40; /* a key id the store does not have */
        uint64_t sum = XXH3_64bits(f, 40);
        for (int i = 0; i < 8; i++)
            f[40 + i] = (uint8_t)(sum >> (8 * i));
    }
    if (nf && fuzz_u32(p, 0, 3) == 0) { /* cut inside the last frame */
        uint32_t last = tu_flen(f, offs[nf - 1]);
        len = offs[nf - 1] + fuzz_u32(p, 1, last - 1);
    }
    FUZZ_ASSERT(bg_sim_write_file(sim, "s/b.box", f, len) == 0);
    free(f);
    return (int)sealed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    bg_sim *sim = bg_sim_new(size);
    FUZZ_ASSERT(sim);
    FUZZ_ASSERT(bg_sim_mkdir(sim, "s") == 0);
    FUZZ_ASSERT(bg_sim_mkdir(sim, "s/keys") == 0);
    FUZZ_ASSERT(bg_sim_write_file(sim, "s/keys/1.key", fixed_key, 32) == 0);
    int sealed_mode = size > 0 && data[0] == 'E';
    int built_mode = size > 0 && data[0] == 'F';
    if (built_mode) {
        fuzz_producer p = {data + 1, size - 1};
        built_mode = build_box(sim, &p); /* checked below when sealed */
    } else if (sealed_mode) {
        write_sealed_box(sim);
        uint8_t *f;
        size_t n;
        read_all(sim, &f, &n);
        /* Three bytes per flip: offset (16 bits, scaled), bit. A trailing
         * lone byte cuts the file. */
        size_t i = 1;
        for (; i + 3 <= size; i += 3) {
            size_t at = ((size_t)data[i] << 8 | data[i + 1]) % n;
            f[at] ^= (uint8_t)(1u << (data[i + 2] % 8));
        }
        if (i < size)
            n = n * data[i] / 255;
        FUZZ_ASSERT(bg_sim_write_file(sim, "s/b.box", f, n) == 0);
        free(f);
    } else {
        FUZZ_ASSERT(bg_sim_write_file(sim, "s/b.box", data, size) == 0);
    }
    uint8_t *orig;
    size_t olen0;
    read_all(sim, &orig, &olen0);
    data = orig;
    size = olen0;

    /* verify: read-only */
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_box_report rep, rep2;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    bg_err verr = bg_box_verify(s, "b", &rep);
    FUZZ_ASSERT(bg_store_close(s) == 0);
    if (verr == BG_EAUTH) {
        /* Wrong key, or nothing authenticates: every path refuses and
         * nothing on disk changes. */
        recs none = {0};
        FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
        FUZZ_ASSERT(bg_box_recover(s, "b", &rep2) == BG_EAUTH);
        FUZZ_ASSERT(bg_store_close(s) == 0);
        FUZZ_ASSERT(open_collect(sim, &none) == -1);
        uint8_t *now;
        size_t nlen;
        read_all(sim, &now, &nlen);
        FUZZ_ASSERT(nlen == size && !memcmp(now, data, size));
        free(now);
        free(orig);
        bg_sim_free(sim);
        return 0;
    }
    FUZZ_ASSERT_MSG(verr == 0, "verify: %s", bg_err_name(verr));
    uint8_t *now;
    size_t nlen;
    read_all(sim, &now, &nlen);
    FUZZ_ASSERT(nlen == size && !memcmp(now, data, size));
    free(now);
    FUZZ_ASSERT(rep.file_size == size);
    FUZZ_ASSERT(rep.status != BG_BOX_CLEAN || (rep.header_ok && !rep.nranges));

    recs before = {0}, after = {0};
    int status = open_collect(sim, &before);
    FUZZ_ASSERT(status == (int)rep.status);
    for (size_t i = 0; sealed_mode && i < before.n; i++)
        FUZZ_ASSERT_MSG(was_written(&before.v[i]),
                        "a record that was never written came back");
    for (size_t i = 0; built_mode && i < before.n; i++)
        FUZZ_ASSERT_MSG(was_fwritten(&before.v[i]),
                        "a record that was never written came back");

    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_recover(s, "b", &rep2) == 0);
    FUZZ_ASSERT(bg_box_verify(s, "b", &rep2) == 0);
    FUZZ_ASSERT_MSG(rep2.status == BG_BOX_CLEAN, "status %d after recover",
                    (int)rep2.status);
    FUZZ_ASSERT(bg_store_close(s) == 0);

    open_collect(sim, &after);
    FUZZ_ASSERT(same_recs(&before, &after));

    /* Idempotent. */
    uint8_t *once;
    size_t olen;
    read_all(sim, &once, &olen);
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_recover(s, "b", &rep2) == 0);
    FUZZ_ASSERT(rep2.status == BG_BOX_CLEAN);
    FUZZ_ASSERT(bg_store_close(s) == 0);
    read_all(sim, &now, &nlen);
    FUZZ_ASSERT(nlen == olen && !memcmp(now, once, olen));
    free(now);
    free(once);

    free_recs(&before);
    free_recs(&after);
    free(orig);
    bg_sim_free(sim);
    return 0;
}
