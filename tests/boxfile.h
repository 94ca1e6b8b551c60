/*
 * Reading box files in tests that damage or craft them (format in
 * engine/src/box_int.h).
 */
#ifndef BOXGUARD_BOXFILE_H
#define BOXGUARD_BOXFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/boxguard.h"
#include "boxguard/sim.h"

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
        uint32_t flen = tu_flen(f, pos);
        if (flen == 0) /* the zeroed region after the last frame */
            break;
        offs[n++] = pos;
        pos += flen;
    }
    return n;
}

/* Whether any of n bytes at p is not zero. */
static inline int tu_nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 1;
    return 0;
}

/* After a repair (a writable open that cut a torn tail, a recover, a
 * compaction) the box file of box in store dir must be exact: verify calls
 * it clean, it ends where its last frame ends or holds only zeros after it
 * (room kept for appends, or the untouched sectors of a torn write), and a
 * further writable open and close changes no byte. NULL, or what is
 * wrong. */
static inline const char *tu_repaired_exactly(bg_sim *sim,
                                              const bg_store_opts *o,
                                              const char *dir, const char *box)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.box", dir, box);
    uint8_t *a = NULL, *b = NULL;
    size_t na, nb;
    const char *bad = NULL;
    bg_store *s = NULL;
    bg_box *bx;
    bg_box_report rep;
    if (bg_sim_read_file(sim, path, &a, &na))
        return "the box file cannot be read";
    if (bg_store_open(dir, o, &s) || bg_box_verify(s, box, &rep))
        bad = "the store or box does not open for verify";
    else if (rep.status != BG_BOX_CLEAN)
        bad = "verify does not call the repaired box clean";
    else if (rep.file_size != na || rep.valid_end > na ||
             rep.valid_end + rep.zeroed != na)
        bad = "the repaired file does not end where its last frame ends";
    else if (tu_nonzero(a + rep.valid_end, rep.zeroed))
        bad = "the repaired file holds more than zeros after its last frame";
    else if (bg_box_open(s, box, 0, &bx))
        bad = "the repaired box does not open";
    if (s && bg_store_close(s) && !bad)
        bad = "the store does not close";
    if (!bad && bg_sim_read_file(sim, path, &b, &nb))
        bad = "the box file cannot be read again";
    else if (!bad && (nb != na || memcmp(a, b, na)))
        bad = "a second open of the repaired box changed its bytes";
    free(a);
    free(b);
    return bad;
}

#endif
