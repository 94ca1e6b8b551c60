/*
 * Stores on the simulated disk, shared by the tests and the fuzz targets:
 * the options of a store whose clock reads tu_now (2026-11-22 12:00 UTC, so
 * quarantine names are reproducible; a test may move it), and a kill at
 * the current point of a run.
 */
#ifndef BOXGUARD_SIMSTORE_H
#define BOXGUARD_SIMSTORE_H

#include <stdint.h>
#include <stdio.h>

#include "boxguard/boxguard.h"
#include "boxguard/sim.h"

static inline int64_t tu_clock_ms(void *ctx)
{
    return *(int64_t *)ctx;
}

static int64_t tu_now = 1795348800000LL;

static inline bg_store_opts tu_opts(bg_sim *sim, bg_durability d)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.vfs = bg_sim_vfs(sim);
    o.durability = d;
    o.create = 1;
    o.clock.now_ms = tu_clock_ms;
    o.clock.ctx = &tu_now;
    return o;
}

/* Power loss now: the disk freezes, so nothing the store writes on its way
 * out lands; then mode decides which unsynced writes survive. */
static inline bg_err tu_kill(bg_sim *sim, bg_store *s, bg_crash_mode mode,
                             uint64_t seed)
{
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes);
    (void)bg_store_close(s);
    return bg_sim_crash(sim, mode, seed);
}

/* Drop the queue's lease log of the store in dir (closed), durably: every
 * lease is gone, as a power cut may leave it. */
static inline void tu_forget_leases(bg_sim *sim, const char *dir)
{
    const bg_vfs *v = bg_sim_vfs(sim);
    char path[256];
    snprintf(path, sizeof path, "%s/pending_ops.leases", dir);
    if (v->unlink(v, path) == 0)
        (void)v->sync_dir(v, dir);
}

#endif
