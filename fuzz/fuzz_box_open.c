/*
 * Target Functions: bg_box_verify, bg_box_open, bg_box_iterate, bg_box_get,
 * bg_box_recover (box.c scan, salvage and quarantine paths).
 *
 * The input is a box file's bytes. Properties:
 *   - verify changes no byte;
 *   - a box that opens yields only records whose frames verify, and reading
 *     each key again gives the same bytes;
 *   - after recover the box verifies clean and holds exactly the records
 *     the open showed (clean or torn input: recover keeps them all; corrupt
 *     input: the read-only view and the salvage agree);
 *   - recover is idempotent: a second run changes no byte.
 */
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
    bg_store_opts o = fuzz_opts(sim, BG_DURABILITY_FULL);
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
        FUZZ_ASSERT_MSG(err == BG_ENOMEM, "open: %s", bg_err_name(err));
    }
    FUZZ_ASSERT(bg_store_close(s) == 0);
    bg_registry_free(reg);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    bg_sim *sim = bg_sim_new(size);
    FUZZ_ASSERT(sim);
    FUZZ_ASSERT(bg_sim_mkdir(sim, "s") == 0);
    FUZZ_ASSERT(bg_sim_write_file(sim, "s/b.box", data, size) == 0);

    /* verify: read-only */
    bg_store_opts o = fuzz_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_box_report rep, rep2;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_verify(s, "b", &rep) == 0);
    FUZZ_ASSERT(bg_store_close(s) == 0);
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
    bg_sim_free(sim);
    return 0;
}
