/*
 * Allocation through a bg_allocator (NULL, or one whose functions are
 * NULL: the C library's), and arrays that grow by doubling.
 */
#ifndef BOXGUARD_ALLOC_INT_H
#define BOXGUARD_ALLOC_INT_H

#include <stddef.h>

#include "boxguard/store.h"

void *bg__alloc_malloc(const bg_allocator *a, size_t n);
void *bg__alloc_realloc(const bg_allocator *a, void *p, size_t n);
void bg__alloc_free(const bg_allocator *a, void *p);

/* n zeroed bytes. With the C library's allocator, calloc: a large block
 * comes as fresh pages the system zeroes when each is first touched, so a
 * table of a million slots costs its zeroing a page at a time as it is
 * used, not all inside one call. With a hook, malloc and memset. */
void *bg__alloc_zeroed(const bg_allocator *a, size_t n);

/* Room for element n of a growing array: arrp is the address of the array
 * pointer (a T **), *cap its capacity in elements of elem bytes. The
 * capacity doubles, from min. BG_ENOMEM leaves the array as it was. */
BG_MUST_CHECK bg_err bg__alloc_grow(const bg_allocator *a, void *arrp, size_t n,
                                    size_t *cap, size_t elem, size_t min);

/* Advise the system that the n bytes at p are a table read at random (an
 * index of a million ops): on Linux, the whole 2 MiB pages inside it may
 * be backed by huge pages, so that a lookup does not also miss the TLB.
 * Advice only: nothing changes when it is not taken. Call it before the
 * table is first written. */
void bg__alloc_advise_table(void *p, size_t n);

#endif
