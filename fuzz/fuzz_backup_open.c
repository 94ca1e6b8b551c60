/*
 * Target Functions: bg_backup_read (the header, the key check, every
 * chunk's authentication, zstd and tar through libarchive, the dump lines,
 * the manifest's checks) and bg_backup_restore into a store on the
 * simulated disk.
 *
 * The first byte picks what the rest is: the bytes of a backup file as
 * they are (odd), or the plaintext beneath the encryption (even), sealed
 * with the right key so that what libarchive and the manifest checks see
 * is the fuzzer's. Properties: no crash or leak; a backup that reads sound
 * restores into a store that then holds exactly the manifest's count of
 * records (and the restore's own audit record); a backup that does not read
 * sound is refused by restore too, and the store it was to replace is left byte
 * for byte.
 */
#include "backup_int.h"
#include "erase_store.h"
#include "fuzz_helpers.h"

static const uint8_t raw[32] = "fuzz-key-fuzz-key-fuzz-key-fuzz!";

typedef struct counted {
    bg_store *s;
    uint64_t records;
} counted;

static int count_box(void *arg, const char *name)
{
    counted *c = arg;
    bg_box *b;
    if (bg_box_open(c->s, name, 0, &b) == 0) {
        bg_box_stats st;
        bg_box_stats_of(b, &st);
        c->records += st.records;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    bg_sim *sim = bg_sim_new(size);
    FUZZ_ASSERT(sim);
    const bg_backup_key key = {BG_BACKUP_RAW_KEY, raw, 32, 0, 0};
    es_store e;
    FUZZ_ASSERT(es_build(sim, ES_PLAIN, 1, &e) == 0);
    FUZZ_ASSERT(bg_sim_mkdir(sim, "bk") == 0);
    if (data[0] & 1) {
        FUZZ_ASSERT(bg_sim_write_file(sim, "bk/f.bgb", data + 1, size - 1) ==
                    0);
    } else {
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        bg_store *s;
        FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
        FUZZ_ASSERT(bg__backup_seal(s, "bk/f.bgb", &key, data + 1, size - 1) ==
                    0);
        FUZZ_ASSERT(bg_store_close(s) == 0);
    }
    snap before;
    snap_take(sim, &before);
    static bg_backup_info info, rinfo;
    char detail[512];
    bg_err err = bg_backup_read("bk/f.bgb", bg_sim_vfs(sim), &key, NULL, NULL,
                                &info, detail, sizeof detail);
    FUZZ_ASSERT_MSG(!err || detail[0], "%s with no detail", bg_err_name(err));
    bg_restore_opts ro = {bg_sim_vfs(sim), {tu_clock_ms, &tu_now}, 0, 0};
    bg_err rerr = bg_backup_restore("s", "bk/f.bgb", &key, &ro, &rinfo, detail,
                                    sizeof detail);
    if (err) {
        FUZZ_ASSERT_MSG(rerr, "read said %s, restore said ok",
                        bg_err_name(err));
        snap now;
        snap_take(sim, &now);
        const char *d = snap_diff(&before, &now);
        FUZZ_ASSERT_MSG(!d && !snap_diff(&now, &before), "store changed: %s",
                        d);
        snap_free(&now);
    } else if (info.nboxes <= BG_BACKUP_BOXES_MAX) {
        FUZZ_ASSERT_MSG(!rerr, "read ok, restore %s: %s", bg_err_name(rerr),
                        detail);
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.accept_schema = 1;
        counted c = {NULL, 0};
        FUZZ_ASSERT(bg_store_open("s", &o, &c.s) == 0);
        FUZZ_ASSERT(bg_store_list_boxes(c.s, count_box, &c) == 0);
        FUZZ_ASSERT(bg_store_close(c.s) == 0);
        FUZZ_ASSERT_MSG(
            c.records == info.records + 1, /* the restore's audit record */
            "%llu records, manifest %llu", (unsigned long long)c.records,
            (unsigned long long)info.records);
    }
    snap_free(&before);
    bg_sim_free(sim);
    return 0;
}
