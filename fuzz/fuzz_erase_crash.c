/*
 * Target Functions: bg_erase (the refusal of foreign files, the intent,
 * the wipe), bg_store_open finishing an interrupted erase, bg_erase_verify,
 * and the simulated disk's crash and fault model.
 *
 * The input makes a random store: any combination of a plaintext box, a
 * sealed box, a quarantine copy, a migration backup and a queue with a
 * lease (tests/erase_store.h), plus up to eight more records in new,
 * plain or sealed boxes, and perhaps a file the store did not make. Then
 * an erase is cut by a power loss after a random state-changing operation
 * in a random crash mode, or by EIO or ENOSPC at a random operation.
 * Properties: a store holding a foreign file is refused with BG_EEXISTS
 * and left byte for byte as it was; otherwise, after the cut, the scan is
 * complete, or the intent is there (no box gone while keys/ remains, a
 * reader refused, a writer finishing the erase, the scan then complete),
 * or the store opens exactly as before; and an erase the cut did not
 * reach finishes with a complete scan.
 */
#include "erase_store.h"
#include "fuzz_helpers.h"

static void add_records(bg_sim *sim, fuzz_producer *p, unsigned mask)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    uint32_t n = fuzz_u32(p, 0, 8);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b = fuzz_byte(p);
        const char *box = (b & 3) == 0 && (mask & ES_PLAIN)    ? "plain"
                          : (b & 3) == 1 && (mask & ES_SEALED) ? "sealed"
                                                               : NULL;
        char name[8], key[8], value[32];
        snprintf(name, sizeof name, "x%u", (unsigned)(b >> 5));
        int flags = BG_BOX_CREATE | ((b & 4) ? BG_BOX_ENCRYPT : 0);
        bg_box *bx;
        if (bg_box_open(s, box ? box : name, box ? 0 : flags, &bx))
            continue; /* a plain x<n> asked to be sealed, or the reverse */
        snprintf(key, sizeof key, "k%u", (unsigned)fuzz_byte(p));
        int len = snprintf(value, sizeof value, "[%u,%u]", (unsigned)b,
                           (unsigned)fuzz_byte(p));
        FUZZ_ASSERT(bg_box_put(bx, key, strlen(key), 0, value, (size_t)len) ==
                    0);
    }
    FUZZ_ASSERT(bg_store_close(s) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_producer p = {data, size};
    unsigned mask = fuzz_u32(&p, 0, ES_ALL);
    uint32_t seed = fuzz_u32(&p, 0, 0xFFFF);
    uint32_t how = fuzz_u32(&p, 0, 7); /* 0..3 crash mode, 4 EIO, 5 ENOSPC,
                                          6 no cut, 7 a foreign file */
    uint32_t at = fuzz_u32(&p, 1, 400);
    bg_sim *sim = bg_sim_new(seed);
    FUZZ_ASSERT(sim);
    snap before;
    es_store e;
    FUZZ_ASSERT(es_build(sim, mask, seed, &e) == 0);
    add_records(sim, &p, mask);
    if (how == 7) {
        const char *where[] = {"s/notes.txt", "s/keys/readme", "s/x.box.bak",
                               "s/quarantine/a.txt"};
        const char *f = where[fuzz_byte(&p) % 4];
        if (!strncmp(f, "s/keys/", 7) || !strncmp(f, "s/quarantine/", 13)) {
            char dir[32];
            snprintf(dir, sizeof dir, "%.*s", (int)(strchr(f + 2, '/') - f), f);
            (void)bg_sim_mkdir(sim, dir);
        }
        FUZZ_ASSERT(bg_sim_write_file(sim, f, (const uint8_t *)"x", 1) == 0);
    }
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_store_close(s) == 0);
    FUZZ_ASSERT(bg_sim_crash(sim, BG_CRASH_DROP, 0) == 0);
    snap_take(sim, &before);

    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    bg_sim_stats st = bg_sim_get_stats(sim);
    if (how < 4)
        bg_sim_crash_after(sim, st.changes + at);
    else if (how < 6)
        bg_sim_fail_at(sim, st.ops + at, how == 4 ? BG_EIO : BG_ENOSPACE);
    static bg_erase_report rep;
    bg_err err = bg_erase(s, &rep);
    if (how == 7) {
        FUZZ_ASSERT_MSG(err == BG_EEXISTS, "%s", bg_err_name(err));
        FUZZ_ASSERT(rep.foreign.n == 1);
        snap now;
        snap_take(sim, &now);
        const char *d = snap_diff(&before, &now);
        FUZZ_ASSERT_MSG(!d && !snap_diff(&now, &before), "changed: %s", d);
        snap_free(&now);
    } else {
        int cut = how < 4 ? bg_sim_frozen(sim) : err != 0;
        FUZZ_ASSERT_MSG(cut || (err == 0 && rep.scan.complete), "%s: %s",
                        bg_err_name(err), rep.detail);
        if (how < 4)
            FUZZ_ASSERT(bg_sim_crash(sim, (bg_crash_mode)how, at) == 0);
        else
            bg_sim_fail_at(sim, 0, 0);
        es_outcome out;
        const char *bad = es_check(sim, &before, &out);
        FUZZ_ASSERT_MSG(!bad, "mask %u how %u at %u: %s", mask, (unsigned)how,
                        (unsigned)at, bad);
    }
    snap_free(&before);
    bg_sim_free(sim);
    return 0;
}
