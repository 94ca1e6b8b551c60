/*
 * Reading box files in tests that damage or craft them (format in
 * engine/src/box_int.h).
 */
#ifndef BOXGUARD_BOXFILE_H
#define BOXGUARD_BOXFILE_H

#include <stddef.h>
#include <stdint.h>

#include "box_int.h"

/* The length of the frame at pos. */
static inline uint32_t tu_flen(const uint8_t *f, uint64_t pos)
{
    return (uint32_t)f[pos + 4] | (uint32_t)f[pos + 5] << 8 |
           (uint32_t)f[pos + 6] << 16 | (uint32_t)f[pos + 7] << 24;
}

/* The offsets of the first max frames of a box file of len bytes, walked
 * by their length fields; returns how many. */
static inline size_t tu_frames(const uint8_t *f, size_t len, uint64_t *offs,
                               size_t max)
{
    size_t n = 0;
    uint64_t pos = BG__BOX_HDR_SIZE;
    while (pos + BG__FRAME_OVERHEAD <= len && n < max) {
        offs[n++] = pos;
        pos += tu_flen(f, pos);
    }
    return n;
}

#endif
