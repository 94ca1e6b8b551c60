/*
 * Secure erase: every file the store made is overwritten and removed, keys
 * first; a directory holding files the store did not make is refused whole;
 * an interrupted erase is finished by the next open and never read; the
 * verification scan; the bytes left on the disk (with a positive control,
 * as SQLite's securedel2.test); crash-point enumeration over every
 * state-changing operation in every crash mode; an I/O fault at every
 * operation.
 */
#include "erase_store.h"
#include "testutil.h"

static bg_erase_report rep;

/* The intent's bytes as the erase writes them, at tu_now. */
static size_t intent_len(void)
{
    char body[96];
    return (size_t)snprintf(body, sizeof body,
                            "{\"event\":\"erase\",\"started_at\":%lld}\n",
                            (long long)tu_now);
}

/* ---- the erase itself -------------------------------------------------- */

static void test_erase_removes_every_file(void)
{
    bg_sim *sim = bg_sim_new(1);
    es_store e;
    CHECK_OK(es_build(sim, ES_ALL, 1, &e));
    snap before;
    snap_take(sim, &before);
    size_t files, keys;
    uint64_t bytes = snap_bytes(&before, &files, &keys);
    CHECK(es_exists(sim, "s/quarantine") &&
          es_exists(sim, "s/backups/m1/mig.box"));
    CHECK(es_exists(sim, "s/pending_ops.leases") &&
          es_exists(sim, "s/audit.box"));
    CHECK_INT(keys, ==, 1);
    bg_store *s;
    CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
    bg_box *b;
    CHECK_OK(bg_box_open(s, "plain", 0, &b)); /* an open box is closed */
    CHECK_OK(bg_erase(s, &rep));
    CHECK_STR(rep.detail, "");
    CHECK_INT(rep.keys_destroyed, ==, 1);
    /* Every other file, the lock and the intent among them. */
    CHECK_INT(rep.files_removed, ==, files + 2);
    CHECK_INT(rep.bytes_overwritten, ==, bytes + intent_len());
    /* keys/, quarantine/, backups/m1/, backups/ and the store's own. */
    CHECK_INT(rep.dirs_removed, ==, 5);
    CHECK(rep.scan.complete);
    CHECK(!es_exists(sim, "s"));
    /* Nothing of it comes back after a power cut. */
    CHECK_OK(bg_sim_crash(sim, BG_CRASH_DROP, 1));
    CHECK(!es_exists(sim, "s"));
    bg_erase_scan sc;
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK(sc.complete);
    snap_free(&before);
    bg_sim_free(sim);
}

/* A name the store did not make anywhere below it: nothing is erased. */
static void test_refuses_foreign_files(void)
{
    bg_sim *sim = bg_sim_new(2);
    es_store e;
    CHECK_OK(es_build(sim, ES_PLAIN | ES_SEALED, 2, &e));
    CHECK_OK(bg_sim_write_file(sim, "s/notes.txt", (const uint8_t *)"n", 1));
    CHECK_OK(bg_sim_write_file(sim, "s/keys/readme", (const uint8_t *)"r", 1));
    CHECK_OK(bg_sim_mkdir(sim, "s/photos"));
    snap before, after;
    snap_take(sim, &before);
    bg_store *s;
    CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
    CHECK_ERR(bg_erase(s, &rep), BG_EEXISTS);
    CHECK_INT(rep.foreign.n, ==, 3);
    int notes = 0, readme = 0, photos = 0;
    for (size_t i = 0; i < rep.foreign.n; i++) {
        notes |= !strcmp(rep.foreign.names[i], "notes.txt");
        readme |= !strcmp(rep.foreign.names[i], "keys/readme");
        photos |= !strcmp(rep.foreign.names[i], "photos/");
    }
    CHECK(notes && readme && photos);
    CHECK_CONTAINS(rep.detail, "holds 3 entries it did not make");
    CHECK_CONTAINS(rep.detail, "nothing was erased");
    CHECK_INT(rep.keys_destroyed + rep.files_removed, ==, 0);
    snap_take(sim, &after);
    const char *d = snap_diff(&before, &after);
    CHECK_STR(d ? d : "", "");
    CHECK(!es_exists(sim, "s/erase.intent"));
    snap_free(&before);
    snap_free(&after);

    /* A read-only handle may not erase either. */
    snap_take(sim, &before);
    CHECK_OK(es_open(sim, 1, NULL, NULL, 0, &s));
    CHECK_ERR(bg_erase(s, &rep), BG_ESTATE);
    CHECK_CONTAINS(rep.detail, "read-only");
    snap_take(sim, &after);
    d = snap_diff(&before, &after);
    CHECK_STR(d ? d : "", "");
    snap_free(&before);
    snap_free(&after);
    bg_sim_free(sim);
}

/* The intent alone is enough: a reader sees nothing and changes nothing,
 * a writer finishes the erase and creates no store, even asked to. */
static void test_intent_is_finished_by_the_next_open(void)
{
    bg_sim *sim = bg_sim_new(3);
    es_store e;
    CHECK_OK(es_build(sim, ES_ALL, 3, &e));
    CHECK_OK(
        bg_sim_write_file(sim, "s/erase.intent", (const uint8_t *)"{}\n", 3));
    snap before, after;
    snap_take(sim, &before);
    bg_store *s = NULL;
    int found = 0;
    char detail[512];
    CHECK_ERR(es_open(sim, 1, &found, detail, sizeof detail, &s), BG_ESTATE);
    CHECK(s == NULL && found == 1);
    CHECK_CONTAINS(detail, "is being erased");
    snap_take(sim, &after);
    const char *d = snap_diff(&before, &after);
    CHECK_STR(d ? d : "", "");
    found = 0;
    CHECK_ERR(es_open(sim, 0, &found, detail, sizeof detail, &s), BG_ENOTFOUND);
    CHECK(s == NULL && found == 1);
    CHECK_CONTAINS(detail, "finished an interrupted erase (1 key file(s) "
                           "destroyed");
    CHECK_CONTAINS(detail, "the store does not exist");
    CHECK(!es_exists(sim, "s"));
    /* And then it is a store that does not exist: not found, not made. */
    found = 0;
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.create = 0;
    o.erase_found = &found;
    CHECK_ERR(bg_store_open("s", &o, &s), BG_ENOTFOUND);
    CHECK_INT(found, ==, 0);
    snap_free(&before);
    snap_free(&after);
    bg_sim_free(sim);
}

static int listed(const bg_erase_list *l, const char *name)
{
    for (size_t i = 0; i < l->n && i < BG_ERASE_LIST_MAX; i++)
        if (!strcmp(l->names[i], name))
            return 1;
    return 0;
}

static void test_verify_scan(void)
{
    bg_sim *sim = bg_sim_new(4);
    bg_erase_scan sc;
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK(sc.complete); /* no directory */
    CHECK_OK(bg_sim_mkdir(sim, "s"));
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK(sc.complete); /* an empty one */
    /* A key file alone, or any file at all, is not complete. */
    CHECK_OK(bg_sim_mkdir(sim, "s/keys"));
    CHECK_OK(bg_sim_write_file(sim, "s/keys/1.key", (const uint8_t *)"k", 1));
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK(!sc.complete);
    CHECK_INT(sc.remaining_keys.n, ==, 1);
    CHECK_INT(sc.existing_boxes.n, ==, 0);
    const bg_vfs *v = bg_sim_vfs(sim);
    CHECK_OK(v->unlink(v, "s/keys/1.key"));
    CHECK_ERR(v->rmdir(v, "s/keys"), BG_EINVALID); /* its unlink unsynced */
    CHECK_OK(v->sync_dir(v, "s/keys"));
    CHECK_OK(v->rmdir(v, "s/keys"));
    CHECK_OK(bg_sim_write_file(sim, "s/x.txt", (const uint8_t *)"x", 1));
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK(!sc.complete);
    CHECK_INT(sc.remaining_files.n, ==, 1);
    CHECK_OK(v->unlink(v, "s/x.txt"));
    es_store e;
    CHECK_OK(es_build(sim, ES_PLAIN | ES_SEALED | ES_BACKUP, 4, &e));
    snap before;
    snap_take(sim, &before);
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK(!sc.complete);
    CHECK_INT(sc.open_boxes.n, ==, 0);
    CHECK_INT(sc.remaining_files.n, ==, before.n + 1); /* and the lock */
    CHECK_INT(sc.remaining_keys.n, ==, 1);
    CHECK(listed(&sc.remaining_keys, "keys/1.key"));
    CHECK(listed(&sc.remaining_files, "keys/"));
    CHECK(listed(&sc.existing_boxes, "plain.box"));
    CHECK(listed(&sc.existing_boxes, "backups/m1/mig.box"));
    bg_store *s;
    CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
    CHECK_OK(bg_erase_verify("s", bg_sim_vfs(sim), &sc));
    CHECK_INT(sc.open_boxes.n, ==, 1); /* the store is held */
    CHECK_OK(bg_store_close(s));
    /* Read-only: the scan changed nothing. */
    snap after;
    snap_take(sim, &after);
    const char *d = snap_diff(&before, &after);
    CHECK_STR(d ? d : "", "");
    snap_free(&before);
    snap_free(&after);
    bg_sim_free(sim);
}

/* ---- the bytes left on the disk --------------------------------------- */

static void key_bytes(bg_sim *sim, uint8_t k[32])
{
    uint8_t *f;
    size_t n;
    memset(k, 0, 32);
    if (bg_sim_read_file(sim, "s/keys/1.key", &f, &n) == 0) {
        memcpy(k, f, n < 32 ? n : 32);
        free(f);
    }
}

/* Remove every file below dir the way `rm -r` would: unlinked, never
 * overwritten. */
static void naive_remove(bg_sim *sim, const char *dir)
{
    const bg_vfs *v = bg_sim_vfs(sim);
    names_ctx c = {.n = 0};
    if (v->list(v, dir, es_add_name, &c))
        return;
    for (size_t i = 0; i < c.n; i++) {
        char p[160];
        if (snprintf(p, sizeof p, "%s/%s", dir, c.v[i]) >= (int)sizeof p)
            continue;
        int is_dir = 0;
        (void)v->stat(v, p, &is_dir);
        if (is_dir)
            naive_remove(sim, p);
        else
            (void)v->unlink(v, p);
    }
    (void)v->sync_dir(v, dir);
    if (v->rmdir(v, dir) == 0)
        (void)v->sync_dir(v, "");
}

/* Random markers in every kind of file, then the erase: the key file's
 * bytes are nowhere on the disk, and no copy of a marker is left but those
 * the file system freed before the erase began (a recovered box's and a
 * migrated box's replaced originals, which no overwrite of the store's
 * files can reach, as the README says). The same look after a plain
 * unlink of the same files finds the key and the markers: the look can
 * see what an erase that skipped its overwrite would leave. */
static void test_markers_are_overwritten(void)
{
    for (int control = 0; control < 2; control++) {
        bg_sim *sim = bg_sim_new(5);
        es_store e;
        CHECK_OK(es_build(sim, ES_ALL, 5, &e));
        uint8_t key[32];
        key_bytes(sim, key);
        CHECK_INT(bg_sim_find_bytes(sim, key, sizeof key, 0), ==, 1);
        size_t freed[ES_MARKERS];
        for (size_t i = 0; i < e.n; i++) {
            const char *m = e.markers[i];
            freed[i] = bg_sim_find_bytes(sim, m, strlen(m), 1);
            size_t all = bg_sim_find_bytes(sim, m, strlen(m), 0);
            if (e.plain[i])
                CHECK_INT(all, >, freed[i]); /* planted in a live file */
            else
                CHECK_INT(all, ==, 0); /* sealed: never plaintext on disk */
        }
        if (control) {
            naive_remove(sim, "s");
            CHECK(!es_exists(sim, "s"));
        } else {
            bg_store *s;
            CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
            CHECK_OK(bg_erase(s, &rep));
        }
        CHECK_INT(bg_sim_find_bytes(sim, key, sizeof key, 0), ==, control);
        size_t more = 0;
        for (size_t i = 0; i < e.n; i++) {
            const char *m = e.markers[i];
            size_t all = bg_sim_find_bytes(sim, m, strlen(m), 0);
            if (!control)
                CHECK_INT(all, ==, freed[i]);
            more += all - freed[i];
        }
        if (control)
            CHECK_INT(more, >=, 7); /* every plaintext marker, at least */
        bg_sim_free(sim);
    }
}

/* ---- crash points and faults ------------------------------------------- */

static uint64_t crash_states, crash_intact, crash_resumed, crash_done;

/* After a crash or a failed erase: one of the outcomes es_check allows. */
static void check_after(bg_sim *sim, const snap *before, const char *what)
{
    es_outcome out;
    const char *bad = es_check(sim, before, &out);
    if (bad)
        fprintf(stderr, "%s: %s\n", what, bad);
    CHECK(bad == NULL);
    if (out == ES_COMPLETE)
        crash_done++;
    else if (out == ES_RESUMED)
        crash_resumed++;
    else
        crash_intact++;
}

static void crash_run(unsigned mask, int verbose)
{
    uint64_t total;
    {
        bg_sim *sim = bg_sim_new(7);
        snap before;
        CHECK_OK(es_prepare(sim, mask, 7, &before));
        bg_store *s;
        CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
        uint64_t c0 = bg_sim_get_stats(sim).changes;
        CHECK_OK(bg_erase(s, &rep));
        total = bg_sim_get_stats(sim).changes - c0;
        snap_free(&before);
        bg_sim_free(sim);
    }
    CHECK_INT(total, >, 8);
    uint64_t states = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int mode = 0; mode < BG_CRASH_MODES; mode++) {
            bg_sim *sim = bg_sim_new(7);
            snap before;
            CHECK_OK(es_prepare(sim, mask, 7, &before));
            bg_store *s;
            CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
            bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + n);
            bg_err err = bg_erase(s, &rep);
            CHECK(err || rep.scan.complete);
            CHECK_OK(bg_sim_crash(sim, (bg_crash_mode)mode, n * 4 + mode));
            char what[64];
            snprintf(what, sizeof what, "mask %u crash after %llu mode %d",
                     mask, (unsigned long long)n, mode);
            int failed_before = check_failed;
            check_after(sim, &before, what);
            snap_free(&before);
            bg_sim_free(sim);
            if (check_failed && !failed_before)
                return;
            states++;
        }
    }
    if (verbose)
        printf("  erase of a store with every kind of file: %llu "
               "state-changing operations, %llu crash states\n",
               (unsigned long long)total, (unsigned long long)states);
    crash_states += states;
}

static void test_crash_at_every_operation(void)
{
    crash_states = crash_intact = crash_resumed = crash_done = 0;
    /* Every combination of the kinds of file, the empty store included. */
    for (unsigned mask = 0; mask <= ES_ALL && !check_failed; mask++)
        crash_run(mask, mask == ES_ALL);
    printf("erase crash states explored: %llu over 32 stores (intact %llu, "
           "finished by the next open %llu, complete %llu)\n",
           (unsigned long long)crash_states, (unsigned long long)crash_intact,
           (unsigned long long)crash_resumed, (unsigned long long)crash_done);
    CHECK(crash_intact && crash_resumed && crash_done);
}

/* EIO and ENOSPC at every operation of an erase: the error is reported,
 * and the next open finishes what the intent started (or the store is as
 * it was). */
static void test_fault_at_every_operation(void)
{
    uint64_t ops;
    {
        bg_sim *sim = bg_sim_new(8);
        snap before;
        CHECK_OK(es_prepare(sim, ES_ALL, 7, &before));
        bg_store *s;
        CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
        uint64_t o0 = bg_sim_get_stats(sim).ops;
        CHECK_OK(bg_erase(s, &rep));
        ops = bg_sim_get_stats(sim).ops - o0;
        snap_free(&before);
        bg_sim_free(sim);
    }
    uint64_t reported = 0, runs = 0;
    crash_intact = crash_resumed = crash_done = 0;
    for (uint64_t k = 1; k <= ops; k++) {
        for (int e = 0; e < 2; e++) {
            bg_err fault = e ? BG_ENOSPACE : BG_EIO;
            bg_sim *sim = bg_sim_new(8);
            snap before;
            CHECK_OK(es_prepare(sim, ES_ALL, 7, &before));
            bg_store *s;
            CHECK_OK(es_open(sim, 0, NULL, NULL, 0, &s));
            bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + k, fault);
            bg_err err = bg_erase(s, &rep);
            bg_sim_fail_at(sim, 0, 0);
            runs++;
            if (err) {
                reported++;
                CHECK(rep.detail[0] != '\0');
            } else {
                CHECK(rep.scan.complete);
            }
            char what[64];
            snprintf(what, sizeof what, "fault %s at op %llu",
                     bg_err_name(fault), (unsigned long long)k);
            int failed_before = check_failed;
            check_after(sim, &before, what);
            snap_free(&before);
            bg_sim_free(sim);
            if (check_failed && !failed_before)
                return;
        }
    }
    printf("erase faults: %llu runs, %llu reported (intact %llu, finished by "
           "the next open %llu, complete %llu)\n",
           (unsigned long long)runs, (unsigned long long)reported,
           (unsigned long long)crash_intact, (unsigned long long)crash_resumed,
           (unsigned long long)crash_done);
    CHECK_INT(reported, ==, runs); /* no fault is swallowed */
}

int main(void)
{
    RUN(test_erase_removes_every_file);
    RUN(test_refuses_foreign_files);
    RUN(test_intent_is_finished_by_the_next_open);
    RUN(test_verify_scan);
    RUN(test_markers_are_overwritten);
    RUN(test_crash_at_every_operation);
    RUN(test_fault_at_every_operation);
    return CHECK_DONE();
}
