/*
 * Allocation through the store's hook or the C library, and growing arrays.
 */
#define _DEFAULT_SOURCE /* madvise */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "alloc_int.h"

void *bg__alloc_malloc(const bg_allocator *a, size_t n)
{
    if (a && a->malloc)
        return a->malloc(a->ctx, n ? n : 1);
    return malloc(n ? n : 1);
}

void *bg__alloc_realloc(const bg_allocator *a, void *p, size_t n)
{
    if (a && a->realloc)
        return a->realloc(a->ctx, p, n ? n : 1);
    return realloc(p, n ? n : 1);
}

void *bg__alloc_zeroed(const bg_allocator *a, size_t n)
{
    if (!a || !a->malloc)
        return calloc(1, n ? n : 1);
    void *p = a->malloc(a->ctx, n ? n : 1);
    if (p)
        memset(p, 0, n);
    return p;
}

void bg__alloc_free(const bg_allocator *a, void *p)
{
    if (!p)
        return;
    if (a && a->free)
        a->free(a->ctx, p);
    else
        free(p);
}

bg_err bg__alloc_grow(const bg_allocator *a, void *arrp, size_t n, size_t *cap,
                      size_t elem, size_t min)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : min;
    if (ncap <= n || ncap > SIZE_MAX / elem)
        return BG_ENOMEM;
    void *old;
    memcpy(&old, arrp, sizeof old);
    void *p = bg__alloc_realloc(a, old, ncap * elem);
    if (!p)
        return BG_ENOMEM;
    memcpy(arrp, &p, sizeof p);
    *cap = ncap;
    return 0;
}

void bg__alloc_advise_table(void *p, size_t n)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (n >= 2 * huge && hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice only */
#else
    (void)p;
    (void)n;
#endif
}
