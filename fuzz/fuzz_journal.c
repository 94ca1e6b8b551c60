/*
 * Target Functions: bg_store_open's resolution of migration.journal
 * (bg__journal_read, bg__journal_resolve: finish or roll back), which every
 * writable open runs first.
 *
 * The input picks where a real migration (adding a required field to four
 * users, plain or sealed) is cut by power loss, which leaves a journal in
 * some phase with its backup and staged box, and then either keeps that
 * journal, replaces it with the input's bytes, or overlays them on it.
 * Properties: no crash or leak; a writable open either refuses with an
 * error and leaves every box file byte for byte as it was, or succeeds with
 * the store entirely at version 1 (every user as before) or entirely at
 * version 2 (every user migrated), the other box untouched, and no journal
 * or staged box left.
 */
#include "fuzz_helpers.h"
#include "migrate_fixture.h"

#define USERS 4

static const char *const files[] = {"s/users.box", "s/notes.box", "s/meta.box"};
#define NFILES (sizeof files / sizeof *files)

typedef struct snap {
    uint8_t *b[NFILES];
    size_t n[NFILES];
} snap;

static void take(bg_sim *sim, snap *s)
{
    for (size_t i = 0; i < NFILES; i++)
        if (bg_sim_read_file(sim, files[i], &s->b[i], &s->n[i]))
            s->b[i] = NULL;
}

static int same(bg_sim *sim, const snap *s)
{
    int ok = 1;
    for (size_t i = 0; i < NFILES; i++) {
        uint8_t *b;
        size_t n;
        int there = !bg_sim_read_file(sim, files[i], &b, &n);
        if (there != (s->b[i] != NULL) ||
            (there && (n != s->n[i] || memcmp(b, s->b[i], n))))
            ok = 0;
        if (there)
            free(b);
    }
    return ok;
}

static void drop(snap *s)
{
    for (size_t i = 0; i < NFILES; i++)
        free(s->b[i]);
}

/* The migration, cut after `cut` state-changing operations (0: not cut). */
static void migrate_cut(bg_sim *sim, uint32_t cut, bg_crash_mode mode)
{
    bg_plan *p;
    FUZZ_ASSERT(bg_plan_parse(MF_PLAN, strlen(MF_PLAN), &p, NULL, 0) == 0);
    if (cut)
        bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + cut);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    if (!bg_store_open("s", &o, &s)) {
        bg_migrate_report rep;
        /* Cut short, it fails; the journal it leaves is the point. */
        if (bg_migrate_run(s, bg_plan_at(p, 0), bg_plan_count(p), NULL, &rep))
            rep.applied = 0;
        (void)bg_store_close(s);
    }
    bg_plan_free(p);
    if (cut)
        FUZZ_ASSERT(bg_sim_crash(sim, mode, cut) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    fuzz_producer p = {data, size};
    uint32_t cut = fuzz_u32(&p, 0, 80);
    uint32_t how = fuzz_u32(&p, 0, 2);
    uint32_t sealed = fuzz_u32(&p, 0, 1);
    bg_crash_mode mode = (bg_crash_mode)fuzz_u32(&p, 0, BG_CRASH_MODES - 1);
    bg_sim *sim = bg_sim_new(cut);
    FUZZ_ASSERT(sim);
    FUZZ_ASSERT(mf_setup(sim, USERS, (int)sealed) == 0);
    migrate_cut(sim, cut, mode);

    uint8_t *j = NULL;
    size_t jn = 0;
    int had = !bg_sim_read_file(sim, "s/migration.journal", &j, &jn);
    if (how == 0 && p.size) { /* the input is the journal */
        FUZZ_ASSERT(
            bg_sim_write_file(sim, "s/migration.journal", p.data, p.size) == 0);
    } else if (how == 1 && had && p.size) { /* overlaid on the real one */
        size_t at = p.data[0] % (jn + 1);
        size_t n = p.size - 1;
        uint8_t *k = malloc(at + n > jn ? at + n : jn);
        FUZZ_ASSERT(k);
        memcpy(k, j, jn);
        memcpy(k + at, p.data + 1, n);
        FUZZ_ASSERT(bg_sim_write_file(sim, "s/migration.journal", k,
                                      at + n > jn ? at + n : jn) == 0);
        free(k);
    }
    free(j);

    snap before = {0};
    take(sim, &before);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_err err = bg_store_open("s", &o, &s);
    if (err) {
        FUZZ_ASSERT_MSG(err != BG_ENOMEM, "open: out of memory");
        FUZZ_ASSERT_MSG(same(sim, &before),
                        "an open that refused the journal (%s) changed a box "
                        "file",
                        bg_err_name(err));
    } else {
        (void)bg_store_close(s);
        uint32_t version;
        const char *bad = mf_check(sim, USERS, &version);
        FUZZ_ASSERT_MSG(!bad, "after the journal was resolved: %s", bad);
    }
    drop(&before);
    bg_sim_free(sim);
    return 0;
}
