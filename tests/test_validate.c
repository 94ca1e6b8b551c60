/*
 * Startup validation: ready, needs_migration, needs_recovery and blocked,
 * each from the finding that causes it, and never a byte changed.
 */
#include "testutil.h"

#include "box_int.h"
#include "handle_int.h"

static bg_validation v;

static bg_err check(bg_sim *sim, const bg_registry *r, uint32_t version)
{
    bg_validate_opts o = {bg_sim_vfs(sim), r, version};
    return bg_validate("s", &o, &v);
}

static const bg_finding *finding(const char *code)
{
    for (size_t i = 0; i < v.nfindings && i < BG_VALIDATE_MAX_FINDINGS; i++)
        if (!strcmp(v.findings[i].code, code))
            return &v.findings[i];
    return NULL;
}

static int has(const char *code)
{
    return finding(code) != NULL;
}

static bg_err make_store(bg_sim *sim, uint32_t version)
{
    bg_store *s;
    bg_box *b, *meta;
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, &s);
    if (err)
        return err;
    err = bg_box_open(s, "notes", BG_BOX_CREATE, &b);
    if (!err)
        err = tu_put(b, "n1", "{\"t\":1}");
    if (!err && version) {
        char rec[64];
        snprintf(rec, sizeof rec, "{\"version\":%u}", (unsigned)version);
        err = bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta);
        if (!err)
            err =
                bg__box_put_internal(meta, "schema_version", rec, strlen(rec));
    }
    bg_err cerr = bg_store_close(s);
    return err ? err : cerr;
}

static void test_ready_and_versions(void)
{
    bg_sim *sim = bg_sim_new(1);
    CHECK_OK(make_store(sim, 3));
    CHECK_OK(check(sim, NULL, 3));
    CHECK_INT(v.status, ==, BG_READY);
    CHECK_INT(v.stored_version, ==, 3);
    CHECK_INT(v.nfindings, ==, 0);
    CHECK_OK(check(sim, NULL, 4));
    CHECK_INT(v.status, ==, BG_NEEDS_MIGRATION);
    CHECK(has("schema_older"));
    /* Newer than the code: blocked, and nothing is changed. */
    uint8_t *before, *after;
    size_t bn, an;
    CHECK_OK(bg_sim_read_file(sim, "s/meta.box", &before, &bn));
    bg_sim_stats st0 = bg_sim_get_stats(sim);
    CHECK_OK(check(sim, NULL, 2));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    CHECK(has("schema_newer"));
    CHECK_CONTAINS(v.findings[0].action, "never downgrade");
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, st0.changes);
    CHECK_OK(bg_sim_read_file(sim, "s/meta.box", &after, &an));
    CHECK(bn == an && !memcmp(before, after, bn));
    free(before);
    free(after);
    bg_sim_free(sim);
}

static void test_needs_recovery(void)
{
    bg_sim *sim = bg_sim_new(2);
    CHECK_OK(make_store(sim, 0));
    CHECK_OK(bg_sim_write_file(sim, "s/migration.journal",
                               (const uint8_t *)"{}", 2));
    CHECK_OK(check(sim, NULL, 0));
    CHECK_INT(v.status, ==, BG_NEEDS_RECOVERY);
    CHECK(has("migration_interrupted"));
    bg_sim_free(sim);

    sim = bg_sim_new(3);
    CHECK_OK(make_store(sim, 0));
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/notes.box", &f, &n));
    f[60] ^= 1;
    /* A second frame after the damage makes it corruption, not a tail. */
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "notes", 0, &s, &b));
    CHECK_OK(tu_put(b, "n2", "2"));
    CHECK_OK(bg_store_close(s));
    uint8_t *g;
    size_t gn;
    CHECK_OK(bg_sim_read_file(sim, "s/notes.box", &g, &gn));
    g[60] ^= 1;
    CHECK_OK(bg_sim_write_file(sim, "s/notes.box", g, gn));
    CHECK_OK(check(sim, NULL, 0));
    CHECK_INT(v.status, ==, BG_NEEDS_RECOVERY);
    CHECK(has("box_damaged"));
    /* The action is the command to run, on this store and box. */
    CHECK_STR(finding("box_damaged")->action,
              "boxguard recover --store s --box notes");
    free(f);
    free(g);
    bg_sim_free(sim);
}

/* A synced batch whose first frame is damaged since ends the file in a tail
 * whose other frames verify: validate calls it damage that needs recovery
 * (recover keeps a copy of the tail), not a torn write the next open cuts
 * without a word. A tail in which no frame verifies stays box_torn. */
static void test_damaged_tail_needs_recovery(void)
{
    bg_sim *sim = bg_sim_new(5);
    CHECK_OK(make_store(sim, 0));
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "notes", 0, &s, &b));
    uint8_t *f0;
    size_t n0;
    CHECK_OK(bg_sim_read_file(sim, "s/notes.box", &f0, &n0));
    /* Two frames: the one that still verifies is the least that counts. */
    bg_write w[2] = {{0, "k1", 2, 0, "11", 2}, {0, "k2", 2, 0, "22", 2}};
    CHECK_OK(bg_box_write_batch(b, w, 2));
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/notes.box", &f, &n));
    f[n0 + BG__FRAME_HDR] ^= 1; /* the key of the batch's first frame */
    CHECK_OK(bg_sim_write_file(sim, "s/notes.box", f, n));
    CHECK_OK(check(sim, NULL, 0));
    CHECK_INT(v.status, ==, BG_NEEDS_RECOVERY);
    CHECK_INT(v.nfindings, ==, 1);
    CHECK(has("box_damaged_tail"));
    CHECK_STR(finding("box_damaged_tail")->action,
              "boxguard recover --store s --box notes");
    char want[200];
    snprintf(want, sizeof want,
             "box 'notes' ends in a tail of %zu bytes at offset %zu in which "
             "1 frame(s) verify",
             n - n0, n0);
    CHECK(!strncmp(finding("box_damaged_tail")->message, want, strlen(want)));
    /* Only the last frame cut short: a torn write, ready. */
    CHECK_OK(bg_sim_write_file(sim, "s/notes.box", f0, n0 - 3));
    CHECK_OK(check(sim, NULL, 0));
    CHECK_INT(v.status, ==, BG_READY);
    CHECK(has("box_torn") && !has("box_damaged_tail"));
    free(f0);
    free(f);
    bg_sim_free(sim);
}

static void test_blocked(void)
{
    bg_sim *sim = bg_sim_new(4);
    CHECK_OK(
        bg_validate("nope", &(bg_validate_opts){bg_sim_vfs(sim), NULL, 0}, &v));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    CHECK(has("store_missing"));
    CHECK_STR(finding("store_missing")->message, "store 'nope' does not exist");
    CHECK_INT(v.stored_version, ==, 0); /* not read: none is invented */

    /* Adapters that contradict the schema lock. */
    bg_registry *r = bg_registry_new();
    bg_adapter user = {3, "User", 1, NULL, 0};
    CHECK_OK(bg_registry_add(r, &user));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    bg_store *s;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_store_close(s));
    bg_registry *other = bg_registry_new();
    bg_adapter acct = {3, "Account", 1, NULL, 0};
    CHECK_OK(bg_registry_add(other, &acct));
    CHECK_OK(check(sim, other, 0));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    CHECK(has("adapters"));
    CHECK_CONTAINS(v.findings[0].message, "registered as 'Account'");
    CHECK_OK(check(sim, r, 0));
    CHECK_INT(v.status, ==, BG_READY);

    /* A sealed box whose key is gone. */
    bg_box *b;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_open(s, "secret", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    uint8_t wrong[32] = {1};
    CHECK_OK(bg_sim_write_file(sim, "s/keys/1.key", wrong, 32));
    CHECK_OK(check(sim, r, 0));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    CHECK(has("box_key"));

    /* Locked by another opener. */
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(check(sim, NULL, 0));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    CHECK(has("store_locked"));
    CHECK_OK(bg_store_close(s));
    bg_registry_free(r);
    bg_registry_free(other);
    bg_sim_free(sim);
}

/* Every combination of findings: the status is the most severe of them
 * whatever order the checks add them in, and every finding is there with
 * its action. Conditions: the stored version older or newer than the
 * code's, an interrupted migration, a damaged box, a torn box. */
static bg_err damage_box(bg_sim *sim, const char *path, int torn)
{
    uint8_t *f;
    size_t n;
    bg_err err = bg_sim_read_file(sim, path, &f, &n);
    if (err)
        return err;
    if (torn)
        n -= 5; /* the last frame cut short */
    else
        f[BG__BOX_HDR_SIZE + BG__FRAME_HDR + 4] ^= 0x20; /* the first */
    err = bg_sim_write_file(sim, path, f, n);
    free(f);
    return err;
}

static void test_every_combination_of_findings(void)
{
    static const char *const codes[] = {"schema_older", "schema_newer",
                                        "migration_interrupted", "box_damaged",
                                        "box_torn"};
    static const bg_readiness sev[] = {BG_NEEDS_MIGRATION, BG_BLOCKED,
                                       BG_NEEDS_RECOVERY, BG_NEEDS_RECOVERY,
                                       BG_READY};
    int combos = 0;
    for (unsigned mask = 0; mask < 32; mask++) {
        if ((mask & 3) == 3)
            continue; /* older and newer at once */
        bg_sim *sim = bg_sim_new(100 + mask);
        CHECK_OK(make_store(sim, 3));
        bg_store *s;
        bg_box *b;
        CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
        CHECK_OK(bg_box_open(s, "notes", 0, &b));
        CHECK_OK(tu_put(b, "n2", "{\"t\":2}"));
        CHECK_OK(bg_box_open(s, "torn", BG_BOX_CREATE, &b));
        CHECK_OK(tu_put(b, "x", "{\"t\":1}"));
        CHECK_OK(tu_put(b, "y", "{\"t\":2}"));
        CHECK_OK(bg_store_close(s));
        if (mask & 4)
            CHECK_OK(bg_sim_write_file(sim, "s/migration.journal",
                                       (const uint8_t *)"{}", 2));
        if (mask & 8)
            CHECK_OK(damage_box(sim, "s/notes.box", 0));
        if (mask & 16)
            CHECK_OK(damage_box(sim, "s/torn.box", 1));
        uint32_t code = mask & 1 ? 4 : mask & 2 ? 2 : 3;
        CHECK_OK(check(sim, NULL, code));
        bg_readiness want = BG_READY;
        size_t nwant = 0;
        for (int c = 0; c < 5; c++) {
            if (!(mask & (1u << c)))
                continue;
            nwant++;
            if (sev[c] > want)
                want = sev[c];
            if (!has(codes[c]))
                fprintf(stderr, "mask %u: no finding %s\n", mask, codes[c]);
            CHECK(has(codes[c]));
        }
        if (v.status != want)
            fprintf(stderr, "mask %u: status %s, want %s\n", mask,
                    bg_readiness_name(v.status), bg_readiness_name(want));
        CHECK_INT(v.status, ==, want);
        CHECK_INT(v.nfindings, ==, nwant);
        for (size_t i = 0; i < v.nfindings; i++) {
            CHECK(v.findings[i].action[0] != '\0');
            CHECK(v.findings[i].message[0] != '\0');
        }
        combos++;
        bg_sim_free(sim);
    }
    CHECK_INT(combos, ==, 24);
}

/* An interrupted erase and an unreadable schema version are findings with
 * their actions; every status has its name. */
static void test_erase_intent_and_unreadable_schema(void)
{
    bg_sim *sim = bg_sim_new(40);
    CHECK_OK(make_store(sim, 2));
    CHECK_OK(
        bg_sim_write_file(sim, "s/erase.intent", (const uint8_t *)"{}", 2));
    CHECK_OK(check(sim, NULL, 2));
    CHECK_INT(v.status, ==, BG_NEEDS_RECOVERY);
    CHECK(has("erase_interrupted"));
    CHECK_INT(v.nfindings, ==, 1); /* nothing else is looked at */
    CHECK_INT(v.stored_version, ==, 0);
    CHECK_STR(v.findings[0].action, "boxguard erase --store s --yes finishes "
                                    "it (as does any writable open)");

    bg_sim *sim2 = bg_sim_new(41);
    CHECK_OK(make_store(sim2, 0));
    bg_store *s;
    bg_box *meta;
    CHECK_OK(tu_open(sim2, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
    CHECK_OK(bg__box_put_internal(meta, "schema_version", "{\"version\":\"x\"}",
                                  15));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(check(sim2, NULL, 1));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    CHECK(has("schema_unreadable"));
    CHECK_STR(bg_readiness_name(BG_READY), "ready");
    CHECK_STR(bg_readiness_name(BG_NEEDS_MIGRATION), "needs_migration");
    CHECK_STR(bg_readiness_name(BG_NEEDS_RECOVERY), "needs_recovery");
    CHECK_STR(bg_readiness_name(BG_BLOCKED), "blocked");
    CHECK_STR(bg_readiness_name((bg_readiness)99), "unknown");
    bg_sim_free(sim);
    bg_sim_free(sim2);
}

int main(void)
{
    RUN(test_ready_and_versions);
    RUN(test_needs_recovery);
    RUN(test_damaged_tail_needs_recovery);
    RUN(test_blocked);
    RUN(test_every_combination_of_findings);
    RUN(test_erase_intent_and_unreadable_schema);
    return CHECK_DONE();
}
