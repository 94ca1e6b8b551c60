/*
 * Migrations: plans and their ops, the journaled run to its commit, the dry
 * runs, the failures that roll back (a record that does not fit, a
 * verification that does not hold, an I/O error at every operation), the
 * rollback of a committed migration and the history in the audit box.
 */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <cjson/cJSON.h>

#include "box_int.h"
#include "migrate_fixture.h"
#include "handle_int.h"

static bg_sim *sim;
static bg_store *s;

static bg_err open_store(const bg_registry *r)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    return bg_store_open("s", &o, &s);
}

static void fresh(int n, int sealed)
{
    (void)bg_store_close(s);
    s = NULL;
    bg_sim_free(sim);
    sim = bg_sim_new(7);
    CHECK_OK(mf_setup(sim, n, sealed));
    CHECK_OK(open_store(NULL));
}

static bg_err run_plan(const char *json, const bg_migrate_opts *o,
                       bg_migrate_report *rep)
{
    bg_plan *p;
    char detail[256];
    bg_err err = bg_plan_parse(json, strlen(json), &p, detail, sizeof detail);
    if (err)
        return err;
    bg_migrate_report dummy;
    err = bg_migrate_run(s, bg_plan_at(p, 0), bg_plan_count(p), o,
                         rep ? rep : &dummy);
    bg_plan_free(p);
    return err;
}

static uint32_t version(void)
{
    bg_migrate_status st;
    if (bg_migrate_get_status(s, &st))
        return 0;
    return st.version;
}

/* Every file of the store, concatenated: "nothing changed" is equality. */
static char *snapshot(size_t *len)
{
    static const char *files[] = {"s/users.box", "s/notes.box", "s/meta.box",
                                  "s/audit.box"};
    char *all = NULL;
    *len = 0;
    for (size_t i = 0; i < 4; i++) {
        uint8_t *b;
        size_t n;
        if (bg_sim_read_file(sim, files[i], &b, &n))
            continue;
        all = realloc(all, *len + n + 1);
        memcpy(all + *len, b, n);
        *len += n;
        free(b);
    }
    return all;
}

static void test_plan_errors(void)
{
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{", "not JSON"},
        {"{\"migrations\":[]}", "non-empty"},
        {"{\"migrations\":[{\"id\":\"a b\",\"from\":1,\"to\":2,\"boxes\":"
         "[\"x\"],\"ops\":[]}]}",
         "\"id\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":2,\"to\":2,\"boxes\":[\"x\"],"
         "\"ops\":[]}]}",
         "\"from\" < \"to\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]"
         ",\"ops\":[]},{\"id\":\"b\",\"from\":3,\"to\":4,\"boxes\":[\"x\"],"
         "\"ops\":[]}]}",
         "previous migration"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":"
         "[\"x/y\"],\"ops\":[]}]}",
         "bad box name"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]"
         ",\"ops\":[{\"op\":\"explode\",\"type\":1,\"field\":\"f\"}]}]}",
         "op 1: unknown op"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]"
         ",\"ops\":[{\"op\":\"add\",\"type\":1,\"field\":\"f\"}]}]}",
         "\"default\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]"
         ",\"ops\":[{\"op\":\"retype\",\"type\":1,\"field\":\"f\",\"to\":"
         "\"string\",\"conversion\":\"parse\"}]}]}",
         "no such conversion"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]"
         ",\"ops\":[{\"op\":\"move\",\"type\":1}]}]}",
         "to_type"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]"
         ",\"ops\":[],\"adapters\":{\"adapters\":[{\"typeId\":0}]}}]}",
         "adapters"},
        {"{\"migrations\":[7]}", "is not an object"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"],"
         "\"description\":5,\"ops\":[]}]}",
         "\"description\" must be a string"},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"ops\":[]}]}",
         "needs \"boxes\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"]}"
         "]}",
         "needs \"ops\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"],"
         "\"ops\":[{\"type\":1}]}]}",
         "needs \"op\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"],"
         "\"ops\":[{\"op\":\"remove\",\"field\":\"f\"}]}]}",
         "needs \"type\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"],"
         "\"ops\":[{\"op\":\"rename\",\"type\":1,\"field\":"
         "\"f\"}]}]}",
         "rename needs \"to\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":[\"x\"],"
         "\"ops\":[{\"op\":\"retype\",\"type\":1,\"field\":"
         "\"f\"}]}]}",
         "retype needs \"to\""},
        {"{\"migrations\":[{\"id\":\"a\",\"from\":1,\"to\":2,\"boxes\":"
         "[\"x\",\"x\"],\"ops\":[]}]}",
         "twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bg_plan *p = (bg_plan *)1;
        char detail[300];
        CHECK_INT(bg_plan_parse(bad[i].json, strlen(bad[i].json), &p, detail,
                                sizeof detail),
                  ==, BG_EINVALID);
        CHECK(p == NULL);
        CHECK_CONTAINS(detail, bad[i].says);
    }
}

static void test_every_op(void)
{
    fresh(0, 0);
    bg_box *b;
    CHECK_OK(bg_box_open(s, "things", BG_BOX_CREATE, &b));
    static const char *in[][2] = {
        {"a", "{\"name\":\"A\",\"legacy\":1,\"n\":\"12\",\"s\":3.5,\"b\":0,"
              "\"tags\":\"x\",\"r\":2.5}"},
        {"b", "{\"n\":7,\"s\":true,\"b\":2,\"tags\":[\"y\"],\"r\":-2.5}"},
    };
    static const char *out[] = {
        "{\"n\":12,\"s\":\"3.5\",\"b\":false,\"tags\":[\"x\"],\"r\":3,"
        "\"label\":\"A\"}",
        "{\"n\":7,\"s\":\"true\",\"b\":true,\"tags\":[\"y\"],\"r\":-3,"
        "\"label\":\"none\"}",
    };
    for (int i = 0; i < 2; i++)
        CHECK_OK(bg_box_put(b, in[i][0], 1, 0, in[i][1], strlen(in[i][1])));
    /* typeId 0 records: the ops of typeId 3 leave them alone. */
    CHECK_OK(run_plan(MF_EVERY_OP, NULL, NULL));
    CHECK_OK(bg_box_open(s, "things", 0, &b));
    CHECK(tu_has(b, "a", in[0][1]));

    /* The same records typed 3 are converted and moved to typeId 4. */
    fresh(0, 0);
    bg_registry *v1;
    CHECK_OK(mf_registry("{\"adapters\":[{\"typeId\":3,\"name\":\"User\","
                         "\"version\":1,\"fields\":[]}]}",
                         &v1));
    (void)bg_store_close(s);
    CHECK_OK(open_store(v1));
    CHECK_OK(bg_box_open(s, "things", BG_BOX_CREATE, &b));
    for (int i = 0; i < 2; i++)
        CHECK_OK(bg_box_put(b, in[i][0], 1, 3, in[i][1], strlen(in[i][1])));
    bg_migrate_report rep;
    CHECK_OK(run_plan(MF_EVERY_OP, NULL, &rep));
    CHECK_INT(rep.applied, ==, 1);
    CHECK_INT(rep.records, ==, 2);
    CHECK_INT(rep.changed, ==, 2);
    CHECK_INT(rep.version_after, ==, 2);
    CHECK_OK(bg_box_open(s, "things", 0, &b));
    for (int i = 0; i < 2; i++) {
        uint32_t t;
        char *v;
        size_t n;
        CHECK_OK(bg_box_get(b, in[i][0], 1, &t, &v, &n));
        CHECK_INT(t, ==, 4);
        CHECK_STR(v, out[i]);
        free(v);
    }
    /* The schema lock moved with the data: typeId 3 is gone from it. */
    (void)bg_store_close(s);
    CHECK_OK(open_store(NULL));
    CHECK(bg_registry_find(s->types, 4) != NULL);
    CHECK(bg_registry_find(s->types, 3) == NULL);
    bg_registry_free(v1);
}

static void test_migrates_and_records_history(void)
{
    fresh(40, 0);
    bg_migrate_report rep;
    CHECK_OK(run_plan(MF_PLAN, NULL, &rep));
    CHECK_INT(rep.version_before, ==, 1);
    CHECK_INT(rep.version_after, ==, 2);
    CHECK_INT(rep.records, ==, 40);
    CHECK_INT(rep.changed, ==, 40);
    CHECK_STR(rep.migration, "user-email");
    CHECK_INT(version(), ==, 2);
    /* The backup holds the old box. */
    uint8_t *b;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/backups/user-email/users.box", &b, &n));
    free(b);
    /* Running the plan again skips what is done. */
    CHECK_OK(run_plan(MF_PLAN, NULL, &rep));
    CHECK_INT(rep.skipped, ==, 1);
    CHECK_INT(rep.applied, ==, 0);
    bg_migrate_status st;
    CHECK_OK(bg_migrate_get_status(s, &st));
    CHECK_INT(st.history, ==, 1);
    CHECK_STR(st.resolved, "");
    (void)bg_store_close(s);
    s = NULL;
    uint32_t ver;
    const char *bad = mf_check(sim, 40, &ver);
    CHECK(bad == NULL);
    CHECK_INT(ver, ==, 2);
    /* The code's adapters at version 2 open it. */
    bg_registry *v2;
    CHECK_OK(mf_registry(MF_ADAPTERS_V2, &v2));
    CHECK_OK(open_store(v2));
    bg_registry_free(v2);
}

static int saw_failures;
static void on_failure(void *ctx, const char *mig, const char *box,
                       const char *key, size_t klen, const char *why)
{
    (void)ctx;
    saw_failures++;
    CHECK_STR(mig, "user-email");
    CHECK_STR(box, "users");
    CHECK_INT(klen, ==, 4);
    CHECK(!memcmp(key, "bad", 3));
    CHECK_CONTAINS(why, "email");
}

/* A record that cannot get the field (email already there as a number):
 * the dry run names it and nothing changes. */
static void test_failing_record_changes_nothing(void)
{
    fresh(10, 0);
    bg_box *b;
    CHECK_OK(bg_box_open(s, "users", 0, &b));
    const char *v = "{\"id\":99,\"name\":\"x\",\"email\":5}";
    CHECK_OK(bg_box_put(b, "bad1", 4, 3, v, strlen(v)));
    (void)bg_store_close(s);
    size_t len0, len1;
    char *before = snapshot(&len0);
    CHECK_OK(open_store(NULL));
    bg_migrate_opts o = {0};
    o.on_failure = on_failure;
    bg_migrate_report rep;
    saw_failures = 0;
    o.dry_run = 1;
    CHECK_INT(run_plan(MF_PLAN, &o, &rep), ==, BG_ESCHEMA);
    CHECK_INT(saw_failures, ==, 1);
    CHECK_INT(rep.failed, ==, 1);
    CHECK_INT(rep.records, ==, 10);
    o.dry_run = 0;
    CHECK_INT(run_plan(MF_PLAN, &o, &rep), ==, BG_ESCHEMA);
    CHECK_INT(saw_failures, ==, 2);
    CHECK_CONTAINS(bg_store_detail(s), "fail the dry run");
    CHECK_CONTAINS(bg_store_detail(s), "rolled back");
    CHECK_INT(version(), ==, 1);
    (void)bg_store_close(s);
    s = NULL;
    /* The boxes and the version are as they were; only the audit box
     * (the rolled back attempt) and the backup are new. */
    uint8_t *j;
    size_t jn;
    CHECK(bg_sim_read_file(sim, "s/migration.journal", &j, &jn) ==
          BG_ENOTFOUND);
    char *after = snapshot(&len1);
    uint8_t *a0, *a1;
    size_t n0, n1;
    CHECK_OK(bg_sim_read_file(sim, "s/users.box", &a0, &n0));
    CHECK(len1 > len0);
    CHECK(!memcmp(after, before, n0));
    CHECK_OK(open_store(NULL));
    bg_box *audit;
    CHECK_OK(bg_box_open(s, "audit", 0, &audit));
    bg_box_stats st;
    bg_box_stats_of(audit, &st);
    CHECK_INT(st.records, ==, 1);
    (void)a1, (void)n1;
    free(a0);
    free(before);
    free(after);
}

/* The dry run of the whole plan chains the migrations in memory and writes
 * nothing: no journal, no backup, the version stays. */
static void test_plan_dry_run_writes_nothing(void)
{
    fresh(12, 0);
    const char *plan =
        "{\"migrations\":[{\"id\":\"one\",\"from\":1,\"to\":2,\"boxes\":"
        "[\"users\"],\"ops\":[{\"op\":\"add\",\"type\":3,\"field\":\"email\","
        "\"default\":\"\"}]},{\"id\":\"two\",\"from\":2,\"to\":3,\"boxes\":"
        "[\"users\"],\"ops\":[{\"op\":\"retype\",\"type\":3,\"field\":"
        "\"email\",\"to\":\"array\",\"conversion\":\"wrap\"}]}]}";
    bg_sim_stats before = bg_sim_get_stats(sim);
    bg_migrate_opts o = {0};
    o.dry_run = 1;
    bg_migrate_report rep;
    CHECK_OK(run_plan(plan, &o, &rep));
    CHECK_INT(rep.records, ==, 12);
    CHECK_INT(rep.changed, ==, 12);
    CHECK_INT(rep.version_after, ==, 3);
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, before.changes);
    CHECK_INT(version(), ==, 1);
    /* Run for real: two migrations, each journaled and committed. */
    CHECK_OK(run_plan(plan, NULL, &rep));
    CHECK_INT(rep.applied, ==, 2);
    CHECK_INT(version(), ==, 3);
    bg_box *b;
    CHECK_OK(bg_box_open(s, "users", 0, &b));
    CHECK(tu_has(b, "u003", "{\"id\":3,\"name\":\"user 3\",\"email\":[\"\"]}"));
}

/* mf_flaky: the verification catches it and the migration rolls back. */
static void test_failed_verification_rolls_back(void)
{
    fresh(5, 1);
    const char *boxes[] = {"users"};
    bg_migration m = {"flaky", NULL, 1, 2, boxes, 1, mf_flaky, NULL, NULL};
    bg_migrate_report rep;
    CHECK_INT(bg_migrate_run(s, &m, 1, NULL, &rep), ==, BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "verification of box 'users' failed");
    CHECK_CONTAINS(bg_store_detail(s), "rolled back");
    CHECK_INT(version(), ==, 1);
    (void)bg_store_close(s);
    s = NULL;
    uint32_t ver;
    CHECK(mf_check(sim, 5, &ver) == NULL);
    CHECK_INT(ver, ==, 1);
}

/* The journal's phases, as the runner writes them: a VFS in front of the
 * simulated disk reads each new journal just before it is renamed into
 * place, and checks what the phase claims is already true (a backup
 * written before backup_created, the staged box before migrated). */
typedef struct phase_log {
    const bg_vfs *inner;
    bg_sim *sim;
    char seq[512];
    int wrong;
} phase_log;

static phase_log plog;

static int sim_has(const char *path)
{
    uint8_t *b;
    size_t n;
    if (bg_sim_read_file(plog.sim, path, &b, &n))
        return 0;
    free(b);
    return 1;
}

static bg_err log_rename(const bg_vfs *v, const char *from, const char *to)
{
    (void)v;
    size_t tl = strlen(to), jl = strlen("migration.journal");
    if (tl >= jl && !strcmp(to + tl - jl, "migration.journal")) {
        uint8_t *b;
        size_t n;
        if (!bg_sim_read_file(plog.sim, from, &b, &n)) {
            cJSON *d = cJSON_ParseWithLength((const char *)b, n);
            const cJSON *ph = cJSON_GetObjectItemCaseSensitive(d, "phase");
            const char *p = cJSON_IsString(ph) ? ph->valuestring : "?";
            strcat(plog.seq, p);
            strcat(plog.seq, ",");
            if (!strcmp(p, "backup_created") &&
                !sim_has("s/backups/user-email/users.box") &&
                !sim_has("s/backups/flaky/users.box"))
                plog.wrong = 1;
            if (!strcmp(p, "migrated") && !sim_has("s/users.mig.box"))
                plog.wrong = 2;
            cJSON_Delete(d);
            free(b);
        }
    }
    return plog.inner->rename(plog.inner, from, to);
}

static bg_err open_logged(bg_vfs *v)
{
    *v = *bg_sim_vfs(sim);
    v->rename = log_rename;
    memset(&plog, 0, sizeof plog);
    plog.inner = bg_sim_vfs(sim);
    plog.sim = sim;
    (void)bg_store_close(s);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.vfs = v;
    return bg_store_open("s", &o, &s);
}

static void test_journal_phase_order(void)
{
    fresh(4, 0);
    bg_vfs v;
    CHECK_OK(open_logged(&v));
    CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
    CHECK_STR(plog.seq, "not_started,backup_created,dry_run_passed,migrating,"
                        "migrated,verifying,verified,committed,");
    CHECK_INT(plog.wrong, ==, 0);

    /* A verification that fails: rolled back from verifying, never
     * verified. */
    fresh(4, 0);
    CHECK_OK(open_logged(&v));
    const char *boxes[] = {"users"};
    bg_migration m = {"flaky", NULL, 1, 2, boxes, 1, mf_flaky, NULL, NULL};
    bg_migrate_report rep;
    CHECK_ERR(bg_migrate_run(s, &m, 1, NULL, &rep), BG_ECORRUPT);
    CHECK_STR(plog.seq, "not_started,backup_created,dry_run_passed,migrating,"
                        "migrated,verifying,rolled_back,");
    CHECK_INT(plog.wrong, ==, 0);
    (void)bg_store_close(s);
    s = NULL;
}

/* A journal edited behind the store's back is refused whole before
 * anything is done: a string that is not UTF-8 (it would be copied into
 * the audit box halfway through finishing), a box that does not exist, a
 * backup elsewhere than backups/<id>. Every box file stays as it was. */
static void test_edited_journal_is_refused_whole(void)
{
    static const char *const edits[][2] = {
        {"\"description\":\"users get a required email\"",
         "\"description\":\"users get a \xff required email\""},
        {"\"boxes\":[\"users\"]", "\"boxes\":[\"nobody\"]"},
        {"\"backup\":\"backups/user-email\"", "\"backup\":\"backups/other\""},
        {"\"format\":1", "\"format\":2"},
        /* one row for each thing the reader checks before it acts */
        {"\"kind\":\"migrate\"", "\"kind\":\"erase\""},
        {"\"kind\":\"migrate\"", "\"kind\":3"},
        {"\"phase\":\"verified\"", "\"phase\":\"half-done\""},
        {"\"phase\":\"verified\"", "\"phase\":null"},
        {"\"id\":\"user-email\"", "\"id\":\"../user-email\""},
        {"\"from\":1", "\"from\":0"},
        {"\"to\":2", "\"to\":1"},
        {"\"to\":2", "\"to\":4294967296"},
        {"\"version\":2", "\"version\":0"},
        {"\"version\":2", "\"version\":4294967296"},
        {"\"started_at\":1", "\"started_at\":-1"},
        {"\"backup\":\"backups/user-email\"", "\"backup\":7"},
        {"\"audit_key\":\"k-1\"", "\"audit_key\":\"\""},
        {"\"audit_key\":\"k-1\"", "\"audit_key\":null"},
        {"\"boxes\":[\"users\"]", "\"boxes\":[]"},
        {"\"boxes\":[\"users\"]", "\"boxes\":\"users\""},
        {"\"boxes\":[\"users\"]", "\"boxes\":[5]"},
        {"\"boxes\":[\"users\"]", "\"boxes\":[\"no such!\"]"},
        {"\"records\":4}", "\"records\":4,\"lock\":5}"},
        {"\"records\":4}", "\"records\":4,\"old_lock\":{\"adapters\":1}}"},
    };
    for (size_t e = 0; e < sizeof edits / sizeof *edits; e++) {
        fresh(4, 0);
        (void)bg_store_close(s);
        s = NULL;
        /* A migration cut after its commit point: the journal says
         * verified. */
        bg_sim_free(sim);
        sim = bg_sim_new(7);
        CHECK_OK(mf_setup(sim, 4, 0));
        CHECK_OK(open_store(NULL));
        CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
        CHECK_OK(bg_store_close(s));
        s = NULL;
        /* Put a journal back as it stood at "verified", then edit it. */
        char j[4096];
        snprintf(j, sizeof j,
                 "{\"format\":1,\"kind\":\"migrate\",\"phase\":\"verified\","
                 "\"id\":\"user-email\",\"description\":\"users get a "
                 "required email\",\"from\":1,\"to\":2,\"version\":2,"
                 "\"boxes\":[\"users\"],\"backup\":\"backups/user-email\","
                 "\"started_at\":1,\"audit_key\":\"k-1\",\"records\":4}");
        char *at = strstr(j, edits[e][0]);
        CHECK(at != NULL);
        char out[4096];
        snprintf(out, sizeof out, "%.*s%s%s", (int)(at - j), j, edits[e][1],
                 at + strlen(edits[e][0]));
        CHECK_OK(bg_sim_write_file(sim, "s/migration.journal",
                                   (const uint8_t *)out, strlen(out)));
        uint8_t *before, *after;
        size_t bn, an;
        CHECK_OK(bg_sim_read_file(sim, "s/meta.box", &before, &bn));
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        char detail[300];
        o.detail = detail;
        o.detail_len = sizeof detail;
        bg_store *t;
        CHECK_ERR(bg_store_open("s", &o, &t), BG_ECORRUPT);
        CHECK_CONTAINS(detail, "migration.journal is unreadable");
        CHECK_OK(bg_sim_read_file(sim, "s/meta.box", &after, &an));
        CHECK(bn == an && !memcmp(before, after, bn));
        free(before);
        free(after);
    }
}

static void test_bad_runs(void)
{
    fresh(3, 0);
    const char *missing[] = {"nope"}, *meta[] = {"meta"};
    bg_migration m = {"x", NULL, 1, 2, missing, 1, mf_flaky, NULL, NULL};
    bg_migrate_report rep;
    CHECK_INT(bg_migrate_run(s, &m, 1, NULL, &rep), ==, BG_EINVALID);
    CHECK_CONTAINS(bg_store_detail(s), "box 'nope'");
    m.boxes = meta;
    CHECK_INT(bg_migrate_run(s, &m, 1, NULL, &rep), ==, BG_EINVALID);
    CHECK_CONTAINS(bg_store_detail(s), "belongs to the store");
    m.from = 2, m.to = 3;
    m.boxes = (const char *[]){"users"};
    CHECK_INT(bg_migrate_run(s, &m, 1, NULL, &rep), ==, BG_ESCHEMA);
    CHECK_CONTAINS(bg_store_detail(s), "at schema version 1");
    m.from = 3;
    CHECK_INT(bg_migrate_run(s, &m, 1, NULL, &rep), ==, BG_EINVALID);
    CHECK_INT(bg_migrate_rollback(s, NULL, &rep), ==, BG_ENOTFOUND);
    (void)bg_store_close(s);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = 1;
    CHECK_OK(bg_store_open("s", &o, &s));
    m.from = 1, m.to = 2;
    CHECK_INT(bg_migrate_run(s, &m, 1, NULL, &rep), ==, BG_ESTATE);
    CHECK_INT(bg_migrate_rollback(s, NULL, &rep), ==, BG_ESTATE);
}

/* A rollback that cannot be done is refused before anything changes: its
 * backup is gone, the store is at another version than the migration left
 * it, the store is read-only. */
static void test_rollback_refusals(void)
{
    fresh(4, 0);
    CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
    (void)bg_store_close(s);
    s = NULL;
    uint8_t *b;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/backups/user-email/users.box", &b, &n));
    /* The backup gone (as a hand-made unlink would leave it). */
    const bg_vfs *v = bg_sim_vfs(sim);
    CHECK_OK(v->unlink(v, "s/backups/user-email/users.box"));
    CHECK_OK(open_store(NULL));
    bg_migrate_report rep;
    size_t blen, alen;
    char *before = snapshot(&blen);
    CHECK_ERR(bg_migrate_rollback(s, NULL, &rep), BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "is missing; cannot roll back");
    char *after = snapshot(&alen);
    CHECK(blen == alen && !memcmp(before, after, blen));
    free(before);
    free(after);
    (void)bg_store_close(s);
    CHECK_OK(bg_sim_write_file(sim, "s/backups/user-email/users.box", b, n));
    free(b);
    /* At another version than the migration left it. */
    CHECK_OK(open_store(NULL));
    bg_box *meta;
    CHECK_OK(bg_box_open(s, BG__META_BOX, 0, &meta));
    CHECK_OK(
        bg__box_put_internal(meta, "schema_version", "{\"version\":3}", 13));
    CHECK_ERR(bg_migrate_rollback(s, NULL, &rep), BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "not at the version migration "
                                       "'user-email' left it");
    (void)bg_store_close(s);
    bg_store_opts ro = tu_opts(sim, BG_DURABILITY_FULL);
    ro.read_only = 1;
    CHECK_OK(bg_store_open("s", &ro, &s));
    CHECK_ERR(bg_migrate_rollback(s, NULL, &rep), BG_ESTATE);
    (void)bg_store_close(s);
    s = NULL;
}

static void test_rollback(void)
{
    fresh(8, 1);
    CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
    CHECK_INT(version(), ==, 2);
    bg_migrate_report rep;
    CHECK_OK(bg_migrate_rollback(s, NULL, &rep));
    CHECK_INT(rep.version_before, ==, 2);
    CHECK_INT(rep.version_after, ==, 1);
    CHECK_STR(rep.migration, "user-email");
    CHECK_INT(bg_migrate_rollback(s, NULL, &rep), ==, BG_ENOTFOUND);
    (void)bg_store_close(s);
    s = NULL;
    uint32_t ver;
    CHECK(mf_check(sim, 8, &ver) == NULL);
    CHECK_INT(ver, ==, 1);

    /* Writes after the migration are not thrown away silently. */
    CHECK_OK(open_store(NULL));
    CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
    bg_box *b;
    CHECK_OK(bg_box_open(s, "users", 0, &b));
    const char *v = "{\"id\":100,\"name\":\"late\",\"email\":\"l@x\"}";
    CHECK_OK(bg_box_put(b, "late", 4, 3, v, strlen(v)));
    CHECK_INT(bg_migrate_rollback(s, NULL, &rep), ==, BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "written after migration");
    CHECK_INT(rep.needs_force, ==, 1); /* a policy: the caller decides */
    bg_migrate_opts o = {0};
    o.force = 1;
    CHECK_OK(bg_migrate_rollback(s, &o, &rep));
    CHECK_INT(version(), ==, 1);
    bg_migrate_status st;
    CHECK_OK(bg_migrate_get_status(s, &st));
    CHECK_INT(st.history, ==, 4); /* two commits, two rollbacks */
}

/* Fail every I/O operation of a migration in turn (EIO, then ENOSPC): the
 * run reports the error, and the store is then entirely at one version. */
/* Every allocation of a migration (through the store's allocator) fails in
 * turn: the run succeeds or reports BG_ENOMEM, nothing leaks, and the next
 * writable open leaves every user at version 1 or every user at 2. */
static void test_allocation_failure_at_every_allocation(void)
{
    (void)bg_store_close(s);
    s = NULL;
    long runs = 0, at_new = 0;
    for (long fail = 1;; fail++) {
        bg_sim_free(sim);
        sim = bg_sim_new(7);
        CHECK_OK(mf_setup(sim, 6, fail % 2));
        tu_alloc a = {.fail_at = fail};
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        char detail[512] = "";
        o.detail = detail;
        o.detail_len = sizeof detail;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err)
            err = run_plan(MF_PLAN, NULL, NULL);
        if (s && err)
            snprintf(detail, sizeof detail, "%s", bg_store_detail(s));
        if (s)
            (void)bg_store_close(s);
        s = NULL;
        if (a.live || (err && err != BG_ENOMEM))
            fprintf(stderr, "allocation %ld: %s, %ld left allocated: %s\n",
                    fail, bg_err_name(err), a.live, detail);
        CHECK_INT(a.live, ==, 0);
        CHECK(!err || err == BG_ENOMEM);
        uint32_t ver;
        const char *bad = mf_check(sim, 6, &ver);
        if (bad)
            fprintf(stderr, "allocation %ld failed: %s\n", fail, bad);
        CHECK(bad == NULL);
        at_new += ver == 2;
        runs++;
        if (!err && a.n < fail)
            break; /* the run made fewer allocations than fail: all done */
    }
    printf("  migrate: %ld allocations failed in turn (%ld ended at 2)\n",
           runs - 1, at_new);
    CHECK_INT(runs, >, 50);
}

/* A migration cut by a power loss at step cut (a count of disk changes
 * into the run), on a fresh disk; the disk is left as the crash left it. */
static bg_err interrupted_at(uint64_t cut)
{
    bg_sim_free(sim);
    sim = bg_sim_new(7);
    bg_err err = mf_setup(sim, 6, 0);
    if (!err)
        err = open_store(NULL);
    if (err)
        return err;
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + cut);
    (void)run_plan(MF_PLAN, NULL, NULL);
    (void)bg_store_close(s);
    s = NULL;
    return bg_sim_crash(sim, BG_CRASH_DROP, 1);
}

/* Every allocation of the open that finishes an interrupted migration
 * (reading the journal, its locks, the staged boxes, the audit record)
 * fails in turn, with the power lost at several points of the run: the
 * open succeeds or says BG_ENOMEM, nothing leaks, and the store is then
 * at one version, with the journal gone after a clean open. */
static void test_allocation_failure_finishing_a_migration(void)
{
    (void)bg_store_close(s);
    s = NULL;
    CHECK_OK(interrupted_at(0));
    CHECK_OK(open_store(NULL));
    uint64_t mark = bg_sim_get_stats(sim).changes;
    CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
    uint64_t span = bg_sim_get_stats(sim).changes - mark;
    (void)bg_store_close(s);
    s = NULL;
    long runs = 0, journals = 0;
    for (uint64_t cut = span / 4; cut < span; cut += span / 4) {
        for (long fail = 1;; fail++) {
            CHECK_OK(interrupted_at(cut));
            int journal = 0;
            uint8_t *j;
            size_t jn;
            if (!bg_sim_read_file(sim, "s/migration.journal", &j, &jn)) {
                journal = 1;
                free(j);
            }
            tu_alloc a = {.fail_at = fail};
            bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
            o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
            char detail[512] = "";
            o.detail = detail;
            o.detail_len = sizeof detail;
            bg_err err = bg_store_open("s", &o, &s);
            if (s)
                (void)bg_store_close(s);
            s = NULL;
            if (a.live || (err && err != BG_ENOMEM))
                fprintf(stderr,
                        "cut %" PRIu64 ", allocation %ld: %s, %ld left: %s\n",
                        cut, fail, bg_err_name(err), a.live, detail);
            CHECK_INT(a.live, ==, 0);
            CHECK(!err || err == BG_ENOMEM);
            CHECK_OK(open_store(NULL));
            (void)bg_store_close(s);
            s = NULL;
            uint32_t ver;
            const char *bad = mf_check(sim, 6, &ver);
            if (bad)
                fprintf(stderr, "cut %" PRIu64 ", allocation %ld: %s\n", cut,
                        fail, bad);
            CHECK(bad == NULL);
            CHECK(bg_sim_read_file(sim, "s/migration.journal", &j, &jn) ==
                  BG_ENOTFOUND);
            runs++;
            journals += fail == 1 && journal;
            if (!err && a.n < fail)
                break;
        }
    }
    printf("  finishing a migration: %ld opens with an allocation failed\n",
           runs);
    CHECK_INT(runs, >, 50);
    CHECK_INT(journals, >=, 2); /* most cuts leave a journal to finish */
    CHECK_OK(open_store(NULL));
}

static void test_io_error_at_every_operation(void)
{
    (void)bg_store_close(s);
    bg_sim_free(sim);
    bg_sim *counter = bg_sim_new(7);
    CHECK_OK(mf_setup(counter, 6, 0));
    uint64_t base = bg_sim_get_stats(counter).ops;
    sim = counter;
    CHECK_OK(open_store(NULL));
    CHECK_OK(run_plan(MF_PLAN, NULL, NULL));
    (void)bg_store_close(s);
    uint64_t total = bg_sim_get_stats(counter).ops - base;
    CHECK(total > 20);
    unsigned failures = 0, at_new = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int e = 0; e < 2; e++) {
            sim = bg_sim_new(7);
            CHECK_OK(mf_setup(sim, 6, 0));
            bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + n,
                           e ? BG_ENOSPACE : BG_EIO);
            if (!open_store(NULL)) {
                failures += run_plan(MF_PLAN, NULL, NULL) != 0;
                (void)bg_store_close(s);
            }
            uint32_t ver;
            const char *bad = mf_check(sim, 6, &ver);
            if (bad)
                fprintf(stderr, "fail at op %llu (%s): %s\n",
                        (unsigned long long)n, e ? "ENOSPC" : "EIO", bad);
            CHECK(bad == NULL);
            at_new += ver == 2;
            bg_sim_free(sim);
        }
    }
    sim = NULL;
    s = NULL;
    bg_sim_free(counter);
    printf("  %llu operations failed in turn: %u runs failed, %u ended at "
           "version 2\n",
           (unsigned long long)total, failures, at_new);
    CHECK(failures > total);
}

/* A committed migration, then its rollback with each I/O operation of the
 * rollback failing in turn (EIO, then ENOSPC): the rollback reports the
 * error or completes, and the store, opened again on a sound disk, is
 * entirely at one version, the journal gone. */
static bg_err committed(void)
{
    bg_sim_free(sim);
    sim = bg_sim_new(7);
    bg_err err = mf_setup(sim, 6, 0);
    if (!err)
        err = open_store(NULL);
    if (!err)
        err = run_plan(MF_PLAN, NULL, NULL);
    if (s)
        (void)bg_store_close(s);
    s = NULL;
    return err;
}

static void test_io_error_at_every_operation_of_a_rollback(void)
{
    (void)bg_store_close(s);
    s = NULL;
    bg_migrate_report rep;
    CHECK_OK(committed());
    CHECK_OK(open_store(NULL));
    uint64_t base = bg_sim_get_stats(sim).ops;
    CHECK_OK(bg_migrate_rollback(s, NULL, &rep));
    uint64_t total = bg_sim_get_stats(sim).ops - base;
    (void)bg_store_close(s);
    s = NULL;
    CHECK(total > 20);
    unsigned failed = 0, at_new = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int e = 0; e < 2; e++) {
            CHECK_OK(committed());
            CHECK_OK(open_store(NULL));
            bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + n,
                           e ? BG_ENOSPACE : BG_EIO);
            failed += bg_migrate_rollback(s, NULL, &rep) != 0;
            (void)bg_store_close(s);
            s = NULL;
            bg_sim_fail_at(sim, 0, 0);
            CHECK_OK(open_store(NULL)); /* finishes what was cut */
            (void)bg_store_close(s);
            s = NULL;
            uint32_t ver;
            const char *bad = mf_check(sim, 6, &ver);
            if (bad)
                fprintf(stderr, "rollback, op %llu failing (%s): %s\n",
                        (unsigned long long)n, e ? "ENOSPC" : "EIO", bad);
            CHECK(bad == NULL);
            uint8_t *j;
            size_t jn;
            CHECK(bg_sim_read_file(sim, "s/migration.journal", &j, &jn) ==
                  BG_ENOTFOUND);
            at_new += ver == 2;
        }
    }
    printf("  rollback: %llu operations failed in turn: %u runs failed, %u "
           "stayed at version 2\n",
           (unsigned long long)total, failed, at_new);
    CHECK_INT(failed, ==, 2 * total); /* no failure swallowed */
    CHECK_OK(open_store(NULL));
}

/* Every allocation of a rollback (through the store's allocator) fails in
 * turn: it completes or says BG_ENOMEM, nothing leaks, and the store is
 * at one version after a clean open; a rollback that completed is at 1. */
static void test_allocation_failure_in_a_rollback(void)
{
    (void)bg_store_close(s);
    s = NULL;
    long runs = 0;
    for (long fail = 1;; fail++) {
        CHECK_OK(committed());
        tu_alloc a = {.fail_at = fail};
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        char detail[512] = "";
        o.detail = detail;
        o.detail_len = sizeof detail;
        bg_migrate_report rep;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err)
            err = bg_migrate_rollback(s, NULL, &rep);
        if (s && err)
            snprintf(detail, sizeof detail, "%s", bg_store_detail(s));
        if (s)
            (void)bg_store_close(s);
        s = NULL;
        if (a.live || (err && err != BG_ENOMEM))
            fprintf(stderr, "rollback, allocation %ld: %s, %ld left: %s\n",
                    fail, bg_err_name(err), a.live, detail);
        CHECK_INT(a.live, ==, 0);
        CHECK(!err || err == BG_ENOMEM);
        uint32_t ver;
        const char *bad = mf_check(sim, 6, &ver);
        if (bad)
            fprintf(stderr, "rollback, allocation %ld: %s\n", fail, bad);
        CHECK(bad == NULL);
        if (!err)
            CHECK_INT(ver, ==, 1);
        runs++;
        if (!err && a.n < fail)
            break;
    }
    printf("  rollback: %ld allocations failed in turn\n", runs - 1);
    CHECK_INT(runs, >, 50);
    CHECK_OK(open_store(NULL));
}

/* Every I/O operation of the engine goes through the store handle: over a
 * workload that touches every module (a migration and its rollback, key
 * rotation, box verification, recovery and compaction, the queue), the
 * handle counts exactly the operations the disk saw. An I/O call that
 * went around the handle would be seen by the disk alone. */
static void test_all_io_goes_through_the_handle(void)
{
    fresh(12, 1);
    CHECK_OK(bg_store_close(s));
    uint64_t before = bg_sim_get_stats(sim).ops;
    CHECK_OK(open_store(NULL));
    bg_migrate_report rep;
    CHECK_OK(run_plan(MF_PLAN, NULL, &rep));
    CHECK_OK(bg_migrate_rollback(s, NULL, &rep));
    bg_rekey_report rk;
    CHECK_OK(bg_rekey_run(s, &rk));
    bg_box_report br;
    CHECK_OK(bg_box_verify(s, "notes", &br));
    CHECK_OK(bg_box_recover(s, "notes", &br));
    bg_box *b;
    CHECK_OK(bg_box_open(s, "users", 0, &b));
    CHECK_OK(bg_box_compact(b));
    bg_queue *q;
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    qo.max_attempts = 1;
    CHECK_OK(bg_queue_open(s, &qo, &q));
    uint64_t id;
    CHECK_OK(bg_queue_enqueue(q, BG_LANE_NORMAL, "a", "{}", 2, &id));
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    int failed;
    CHECK_OK(bg_queue_nack(q, op.id, "down", &failed));
    CHECK_INT(failed, ==, 1);
    bg_queue_op_clear(&op);
    CHECK_OK(bg_queue_compact(q));
    bg_queue_close(q);
    uint64_t seen = bg_sim_get_stats(sim).ops - before;
    CHECK_INT(bg_store_io_count(s), ==, seen);
    CHECK_INT(seen, >, 100);
    CHECK_OK(bg_store_close(s));
    s = NULL;
}

/* The target adapters become the schema lock on commit: a migration whose
 * adapters leave out the typeId of records in a box it does not migrate
 * is refused, in its dry run and in its run, with the box and typeId
 * named and every box file as it was (those records would otherwise no
 * longer be read). With that adapter in the plan it goes through. */
static void test_untouched_box_keeps_its_adapter(void)
{
    fresh(5, 0);
    CHECK_OK(bg_store_close(s));
    bg_registry *r;
    CHECK_OK(mf_registry(
        "{\"adapters\":[{\"typeId\":3,\"name\":\"User\",\"version\":1,"
        "\"fields\":[{\"name\":\"id\",\"type\":\"integer\",\"required\":true},"
        "{\"name\":\"name\",\"type\":\"string\",\"required\":true}]},"
        "{\"typeId\":5,\"name\":\"Tag\",\"version\":1}]}",
        &r));
    CHECK_OK(open_store(r));
    bg_box *b;
    CHECK_OK(bg_box_open(s, "tags", BG_BOX_CREATE, &b));
    CHECK_OK(bg_box_put(b, "t1", 2, 5, "{}", 2));
    CHECK_OK(bg_store_close(s));
    bg_registry_free(r);
    uint8_t *t0, *u0, *t1, *u1;
    size_t tn0, un0, tn1, un1;
    CHECK_OK(bg_sim_read_file(sim, "s/tags.box", &t0, &tn0));
    CHECK_OK(bg_sim_read_file(sim, "s/users.box", &u0, &un0));
    CHECK_OK(open_store(NULL));
    bg_migrate_report rep;
    bg_migrate_opts o = {0};
    o.dry_run = 1;
    CHECK_ERR(run_plan(MF_PLAN, &o, &rep), BG_ESCHEMA);
    CHECK_CONTAINS(bg_store_detail(s), "box 'tags', which it does not migrate");
    CHECK_CONTAINS(bg_store_detail(s), "typeId 5");
    CHECK_ERR(run_plan(MF_PLAN, NULL, &rep), BG_ESCHEMA);
    CHECK_CONTAINS(bg_store_detail(s), "box 'tags', which it does not migrate");
    CHECK_INT(version(), ==, 1);
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_read_file(sim, "s/tags.box", &t1, &tn1));
    CHECK_OK(bg_sim_read_file(sim, "s/users.box", &u1, &un1));
    CHECK(tn0 == tn1 && !memcmp(t0, t1, tn0));
    CHECK(un0 == un1 && !memcmp(u0, u1, un0));
    free(t1);
    free(u1);
    /* The plan with Tag among its adapters. */
    const char *plan =
        "{\"migrations\":[{\"id\":\"user-email\",\"from\":1,\"to\":2,"
        "\"boxes\":[\"users\"],\"adapters\":{\"adapters\":["
        "{\"typeId\":3,\"name\":\"User\",\"version\":2,\"fields\":["
        "{\"name\":\"email\",\"type\":\"string\",\"required\":true}]},"
        "{\"typeId\":5,\"name\":\"Tag\",\"version\":1}]},"
        "\"ops\":[{\"op\":\"add\",\"type\":3,\"field\":\"email\","
        "\"default\":\"\"}]}]}";
    CHECK_OK(open_store(NULL));
    CHECK_OK(run_plan(plan, NULL, &rep));
    CHECK_INT(version(), ==, 2);
    CHECK_OK(bg_box_open(s, "tags", 0, &b));
    CHECK(tu_has(b, "t1", "{}"));
    CHECK_OK(bg_store_close(s));
    s = NULL;
    free(t0);
    free(u0);
}

int main(void)
{
    RUN(test_plan_errors);
    RUN(test_all_io_goes_through_the_handle);
    RUN(test_untouched_box_keeps_its_adapter);
    RUN(test_every_op);
    RUN(test_migrates_and_records_history);
    RUN(test_failing_record_changes_nothing);
    RUN(test_plan_dry_run_writes_nothing);
    RUN(test_failed_verification_rolls_back);
    RUN(test_journal_phase_order);
    RUN(test_edited_journal_is_refused_whole);
    RUN(test_bad_runs);
    RUN(test_rollback);
    RUN(test_rollback_refusals);
    RUN(test_io_error_at_every_operation);
    RUN(test_io_error_at_every_operation_of_a_rollback);
    RUN(test_allocation_failure_in_a_rollback);
    RUN(test_allocation_failure_at_every_allocation);
    RUN(test_allocation_failure_finishing_a_migration);
    (void)bg_store_close(s);
    bg_sim_free(sim);
    return CHECK_DONE();
}
