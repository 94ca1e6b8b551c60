/*
 * Shared helpers of the fuzz targets: an always-on assertion, a data
 * producer that takes parameters from the tail of the input, leaving its
 * head as the payload (after zstd's fuzz_data_producer), and the stores on
 * the simulated disk that the tests use too (tests/simstore.h).
 */
#ifndef BOXGUARD_FUZZ_HELPERS_H
#define BOXGUARD_FUZZ_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/boxguard.h"
#include "boxguard/sim.h"
#include "simstore.h"

/* Checked in every build, release included: a fuzz target's properties are
 * the point of running it. */
#define FUZZ_ASSERT(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: FUZZ_ASSERT(%s) failed\n", __FILE__,       \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_ASSERT_MSG(cond, ...)                                             \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: FUZZ_ASSERT(%s) failed: ", __FILE__,       \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

typedef struct fuzz_producer {
    const uint8_t *data;
    size_t size;
} fuzz_producer;

/* A value in [min, max] from the last bytes of the input (min when the
 * input is used up); min <= max or the target aborts. */
static inline uint32_t fuzz_u32(fuzz_producer *p, uint32_t min, uint32_t max)
{
    /* min > max is a bug in the target, not a property of the input. */
    FUZZ_ASSERT_MSG(min <= max, "fuzz_u32(%u, %u): empty range", (unsigned)min,
                    (unsigned)max);
    uint64_t range = (uint64_t)max - min, v = 0;
    for (uint64_t r = range; r && p->size; r >>= 8) {
        v = (v << 8) | p->data[--p->size];
    }
    return range ? min + (uint32_t)(v % (range + 1)) : min;
}

/* The next byte from the front (0 when used up). */
static inline uint8_t fuzz_byte(fuzz_producer *p)
{
    if (!p->size)
        return 0;
    p->size--;
    return *p->data++;
}

#endif
