/*
 * Helpers shared by the test files: stores and boxes on the simulated disk
 * (simstore.h), records by string, and an allocator that can fail the Nth
 * allocation.
 */
#ifndef BOXGUARD_TESTUTIL_H
#define BOXGUARD_TESTUTIL_H

#include "check.h"
#include "simstore.h"

typedef struct tu_alloc {
    long n;       /* allocations so far */
    long fail_at; /* fail this one (1-based); 0: never */
    long live;    /* outstanding */
} tu_alloc;

/* Every block it hands out starts TU_ALLOC_PAD bytes into one from malloc
 * with a mark before it, so that a block freed by the wrong allocator is
 * caught where it happens: the C library's free of it is an invalid free
 * (ASan names it), and tu_free of a block it did not make aborts. */
#define TU_ALLOC_PAD  16
#define TU_ALLOC_MARK 0x7475616cu

static inline void *tu_block(void *raw)
{
    *(unsigned *)raw = TU_ALLOC_MARK;
    return (char *)raw + TU_ALLOC_PAD;
}

static inline void *tu_raw(void *p)
{
    char *raw = (char *)p - TU_ALLOC_PAD;
    if (*(unsigned *)raw != TU_ALLOC_MARK) {
        fprintf(stderr, "tu_alloc: a block it did not make reached it\n");
        abort();
    }
    return raw;
}

static inline void *tu_malloc(void *ctx, size_t n)
{
    tu_alloc *a = ctx;
    if (++a->n == a->fail_at)
        return NULL;
    void *p = malloc(n + TU_ALLOC_PAD);
    if (!p)
        return NULL;
    a->live++;
    return tu_block(p);
}

static inline void *tu_realloc(void *ctx, void *p, size_t n)
{
    tu_alloc *a = ctx;
    if (++a->n == a->fail_at)
        return NULL;
    void *q = realloc(p ? tu_raw(p) : NULL, n + TU_ALLOC_PAD);
    if (!q)
        return NULL;
    if (!p)
        a->live++;
    return tu_block(q);
}

static inline void tu_free(void *ctx, void *p)
{
    tu_alloc *a = ctx;
    if (!p)
        return;
    a->live--;
    free(tu_raw(p));
}

static inline bg_err tu_open(bg_sim *sim, bg_durability d, bg_store **s)
{
    bg_store_opts o = tu_opts(sim, d);
    return bg_store_open("s", &o, s);
}

/* Store "s" opened with options o, and its box name opened with flags. */
static inline bg_err tu_open_box_with(const bg_store_opts *o, const char *name,
                                      int flags, bg_store **s, bg_box **b)
{
    bg_err err = bg_store_open("s", o, s);
    if (err)
        return err;
    err = bg_box_open(*s, name, flags, b);
    if (err)
        (void)bg_store_close(*s);
    return err;
}

/* Store "s" (FULL durability) and its box name, opened with flags. */
static inline bg_err tu_open_box(bg_sim *sim, const char *name, int flags,
                                 bg_store **s, bg_box **b)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    return tu_open_box_with(&o, name, flags, s, b);
}

static inline bg_err tu_put(bg_box *b, const char *k, const char *v)
{
    return bg_box_put(b, k, strlen(k), 0, v, strlen(v));
}

/* 1 when key k holds exactly v. */
static inline int tu_has(bg_box *b, const char *k, const char *v)
{
    uint32_t t;
    char *got;
    size_t n;
    if (bg_box_get(b, k, strlen(k), &t, &got, &n))
        return 0;
    int ok = n == strlen(v) && !memcmp(got, v, n);
    free(got);
    return ok;
}

#endif
