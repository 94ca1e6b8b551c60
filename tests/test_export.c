/*
 * Export to SQLite: tables and typed columns, a run killed after each of
 * its commits in turn (a child process that dies there) and resumed with no
 * row twice or missing, a box that changed between runs, a box that went,
 * a table that no longer matches its box, and a pending migration.
 */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <sys/wait.h>

#include "box_int.h"
#include "migrate_fixture.h"
#include "tempdir.h"
#include "testutil.h"

#define USERS 23

static bg_sim *sim;
static char dir[512], db[600];

static bg_err open_store(bg_store **s)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    return bg_store_open("s", &o, s);
}

static void fresh(void)
{
    bg_sim_free(sim);
    sim = bg_sim_new(3);
    CHECK_OK(mf_setup(sim, USERS, 0));
    snprintf(db, sizeof db, "%s/export.db", dir);
    unlink(db);
}

static int64_t query(const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

static int export_quiet; /* errors expected: do not print them */

static bg_err export(size_t chunk, bg_export_report *rep)
{
    bg_store *s;
    bg_err err = open_store(&s);
    if (err)
        return err;
    bg_export_opts o = {chunk, NULL, NULL};
    err = bg_export_sqlite(s, db, &o, rep);
    if (err && !export_quiet)
        fprintf(stderr, "  (%s)\n", bg_store_detail(s));
    (void)bg_store_close(s);
    return err;
}

static void test_tables_and_columns(void)
{
    fresh();
    bg_export_report rep;
    CHECK_OK(export(5, &rep));
    CHECK_INT(rep.tables, ==, 2);
    CHECK_INT(rep.rows, ==, USERS + 1);
    CHECK_INT(rep.copied, ==, USERS + 1);
    CHECK_INT(rep.chunks, ==, 5 + 1); /* 23 users in fives, one note */
    CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS);
    CHECK_INT(query("SELECT COUNT(DISTINCT key) FROM box_users"), ==, USERS);
    /* Fields of the User adapter are columns, typed. */
    CHECK_INT(query("SELECT id FROM box_users WHERE key = 'u007'"), ==, 7);
    CHECK_INT(query("SELECT COUNT(*) FROM box_users WHERE typeof(id) = "
                    "'integer' AND name = 'user ' || id"),
              ==, USERS);
    CHECK_INT(query("SELECT COUNT(*) FROM box_users WHERE json = '{\"id\":3,"
                    "\"name\":\"user 3\"}'"),
              ==, 1);
    CHECK_INT(query("SELECT COUNT(*) FROM box_notes"), ==, 1);
    CHECK_INT(query("SELECT SUM(done) FROM migration_sync_status"), ==, 2);
    CHECK_INT(query("SELECT COUNT(*) FROM migration_history WHERE kind = "
                    "'export-sqlite'"),
              ==, 1);
    /* A second run finds everything current. */
    CHECK_OK(export(5, &rep));
    CHECK_INT(rep.skipped, ==, 2);
    CHECK_INT(rep.copied, ==, 0);
    CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS);
}

static int die_after, commits;
static void die(void *ctx, const char *box, uint64_t rows)
{
    (void)ctx, (void)box, (void)rows;
    if (++commits == die_after)
        _exit(0); /* no cleanup: as if killed right after the commit */
}

/* A run dies after commit k, for every k; the next run completes it. */
static void test_killed_after_every_commit(void)
{
    fresh();
    bg_export_report rep;
    CHECK_OK(export(4, &rep));
    uint64_t total = rep.chunks;
    for (uint64_t k = 1; k <= total; k++) {
        unlink(db);
        pid_t pid = fork();
        if (pid == 0) {
            bg_store *s;
            bg_export_opts o = {4, die, NULL};
            die_after = (int)k;
            commits = 0;
            if (open_store(&s))
                _exit(2);
            bg_err err = bg_export_sqlite(s, db, &o, &rep);
            _exit(err ? 3 : 1); /* should have died */
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_OK(export(4, &rep));
        CHECK_INT(rep.rows, ==, USERS + 1);
        CHECK_INT(rep.copied, <, USERS + 1); /* the dead run's commits stay */
        CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS);
        CHECK_INT(query("SELECT COUNT(DISTINCT seq) FROM box_users"), ==,
                  USERS);
        CHECK_INT(query("SELECT MAX(seq) - MIN(seq) + 1 FROM box_users"), ==,
                  USERS);
    }
    printf("  killed after each of %llu commits: every rerun complete\n",
           (unsigned long long)total);
}

/* Killed between any two SQL statements: every connection the export opens
 * gets a trace (through sqlite3_auto_extension) that counts the statements
 * it starts and, in a child, exits at the start of statement k, that is
 * right after statement k - 1. Every k of an uncrashed run is tried; the
 * next run must complete with every row once. */
static long stmt_count, stmt_die_at;

static int on_stmt(unsigned type, void *ctx, void *p, void *x)
{
    (void)type, (void)ctx, (void)p, (void)x;
    if (++stmt_count == stmt_die_at)
        _exit(0);
    return 0;
}

static int trace_init(sqlite3 *h, char **err, const void *api)
{
    (void)err, (void)api;
    sqlite3_trace_v2(h, SQLITE_TRACE_STMT, on_stmt, NULL);
    return SQLITE_OK;
}

/* An extension's entry point as sqlite3_auto_extension takes it (a
 * function pointer converted through its bytes, as C allows no cast). */
typedef void (*entry_fn)(void);
typedef int (*init_fn)(sqlite3 *, char **, const void *);

static entry_fn as_entry(init_fn init)
{
    entry_fn entry;
    memcpy(&entry, &init, sizeof entry);
    return entry;
}

static void test_killed_between_every_statement(void)
{
    fresh();
    entry_fn entry = as_entry(trace_init);
    CHECK_INT(sqlite3_auto_extension(entry), ==, SQLITE_OK);
    bg_export_report rep;
    stmt_count = 0;
    stmt_die_at = 0;
    CHECK_OK(export(4, &rep));
    long total = stmt_count;
    CHECK_INT(total, >, USERS);
    int resumed = 0;
    for (long k = 1; k <= total; k++) {
        unlink(db);
        pid_t pid = fork();
        if (pid == 0) {
            stmt_count = 0;
            stmt_die_at = k;
            bg_export_report r;
            _exit(export(4, &r) ? 3 : 1); /* should have died */
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        stmt_die_at = 0;
        CHECK_OK(export(4, &rep));
        CHECK_INT(rep.rows, ==, USERS + 1);
        resumed += rep.resumed > 0;
        CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS);
        CHECK_INT(query("SELECT COUNT(DISTINCT seq) FROM box_users"), ==,
                  USERS);
        CHECK_INT(query("SELECT COUNT(*) FROM box_notes"), ==, 1);
        CHECK_INT(query("SELECT SUM(rows) FROM migration_sync_status"), ==,
                  USERS + 1);
    }
    CHECK(sqlite3_cancel_auto_extension(entry) == 1);
    CHECK_INT(resumed, >, 0);
    printf("  killed before each of %ld statements: every rerun complete "
           "(%d resumed)\n",
           total, resumed);
}

/* Failed between any two SQL statements: the same trace makes statement
 * k fail (a progress handler interrupts it as it starts running, as a
 * full disk or a busy database would), for every k. The export reports
 * the error, leaves no half-written chunk, and the next run completes
 * with every row once. */
static long fail_at_stmt;
static int stmt_running;

static int fail_progress(void *ctx)
{
    (void)ctx;
    return stmt_running; /* non-zero: interrupt the statement */
}

static int fail_on_stmt(unsigned type, void *ctx, void *p, void *x)
{
    (void)type, (void)ctx, (void)p, (void)x;
    stmt_running = ++stmt_count == fail_at_stmt;
    return 0;
}

static int fail_init(sqlite3 *h, char **err, const void *api)
{
    (void)err, (void)api;
    sqlite3_trace_v2(h, SQLITE_TRACE_STMT, fail_on_stmt, NULL);
    sqlite3_progress_handler(h, 1, fail_progress, NULL);
    return SQLITE_OK;
}

static void test_failed_at_every_statement(void)
{
    fresh();
    entry_fn entry = as_entry(fail_init);
    CHECK_INT(sqlite3_auto_extension(entry), ==, SQLITE_OK);
    bg_export_report rep;
    stmt_count = 0;
    fail_at_stmt = 0;
    CHECK_OK(export(4, &rep));
    long total = stmt_count;
    int reported = 0;
    for (long k = 1; k <= total; k++) {
        unlink(db);
        stmt_count = 0;
        stmt_running = 0;
        fail_at_stmt = k;
        export_quiet = 1;
        bg_err err = export(4, &rep);
        export_quiet = 0;
        reported += err != 0;
        if (!err)
            fprintf(stderr, "  statement %ld failed unreported\n", k);
        fail_at_stmt = 0;
        stmt_running = 0;
        CHECK_OK(export(4, &rep));
        CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS);
        CHECK_INT(query("SELECT COUNT(DISTINCT seq) FROM box_users"), ==,
                  USERS);
        CHECK_INT(query("SELECT COUNT(*) FROM box_notes"), ==, 1);
    }
    CHECK(sqlite3_cancel_auto_extension(entry) == 1);
    printf("  failed at each of %ld statements: %d reported, every rerun "
           "complete\n",
           total, reported);
    CHECK_INT(reported, ==, total); /* no failure swallowed */
}

/* An export that cannot tell whether a migration was interrupted (an I/O
 * error looking for its journal) does not go on as if there were none. */
static void test_journal_lookup_error_stops_the_export(void)
{
    fresh();
    bg_store *s;
    CHECK_OK(open_store(&s));
    bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + 1, BG_EIO);
    bg_export_report rep;
    CHECK_ERR(bg_export_sqlite(s, db, NULL, &rep), BG_EIO);
    CHECK_CONTAINS(bg_store_detail(s), "cannot look for");
    bg_sim_fail_at(sim, 0, 0);
    (void)bg_store_close(s);
    CHECK(access(db, F_OK) != 0); /* no database was made */
}

static void test_changed_and_removed_boxes(void)
{
    fresh();
    bg_export_report rep;
    CHECK_OK(export(100, &rep));
    bg_store *s;
    bg_box *b;
    CHECK_OK(open_store(&s));
    CHECK_OK(bg_box_open(s, "users", 0, &b));
    CHECK_OK(bg_box_del(b, "u000", 4));
    CHECK_OK(bg_box_open(s, "gone", BG_BOX_CREATE, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    (void)bg_store_close(s);
    CHECK_OK(export(100, &rep));
    CHECK_INT(rep.restarted, ==, 1);
    CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS - 1);
    CHECK_INT(query("SELECT COUNT(*) FROM box_gone"), ==, 1);
    /* The box goes: its table goes with it. */
    const bg_vfs *v = bg_sim_vfs(sim);
    CHECK_OK(v->unlink(v, "s/gone.box"));
    CHECK_OK(export(100, &rep));
    CHECK_INT(query("SELECT COUNT(*) FROM sqlite_master WHERE name = "
                    "'box_gone'"),
              ==, 0);
    CHECK_INT(rep.tables, ==, 2);
}

static void test_table_that_lost_rows_fails(void)
{
    fresh();
    bg_export_report rep;
    CHECK_OK(export(100, &rep));
    sqlite3 *h;
    CHECK(sqlite3_open(db, &h) == SQLITE_OK);
    CHECK(sqlite3_exec(h, "DELETE FROM box_users WHERE key = 'u001'", NULL,
                       NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    bg_store *s;
    CHECK_OK(open_store(&s));
    CHECK_INT(bg_export_sqlite(s, db, NULL, &rep), ==, BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "count check: table 'box_users'");
    (void)bg_store_close(s);
    /* Not a database at all. */
    FILE *f = fopen(db, "w");
    CHECK(f != NULL);
    fputs("this is not an SQLite database, not even close...........", f);
    fclose(f);
    CHECK_OK(open_store(&s));
    CHECK_INT(bg_export_sqlite(s, db, NULL, &rep), ==, BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "sqlite:");
    (void)bg_store_close(s);
}

/* Columns of every field type (null, bool, integer, a number that is not
 * one, string, array, object, and a field a record lacks); a damaged box
 * and a database another connection holds are refused. */
static void test_typed_columns_damage_and_a_busy_database(void)
{
    bg_sim_free(sim);
    sim = bg_sim_new(9);
    snprintf(db, sizeof db, "%s/export.db", dir);
    unlink(db);
    const char *manifest =
        "{\"adapters\":[{\"typeId\":5,\"name\":\"Row\",\"version\":1,"
        "\"fields\":[{\"name\":\"n\",\"type\":\"null\"},"
        "{\"name\":\"b\",\"type\":\"bool\"},"
        "{\"name\":\"i\",\"type\":\"integer\"},"
        "{\"name\":\"d\",\"type\":\"number\"},"
        "{\"name\":\"s\",\"type\":\"string\"},"
        "{\"name\":\"a\",\"type\":\"array\"},"
        "{\"name\":\"o\",\"type\":\"object\"},"
        "{\"name\":\"gone\",\"type\":\"any\"}]}]}";
    bg_registry *r;
    CHECK_OK(mf_registry(manifest, &r));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    bg_store *s;
    bg_box *b;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_open(s, "rows", BG_BOX_CREATE, &b));
    const char *row = "{\"n\":null,\"b\":true,\"i\":42,\"d\":2.5,\"s\":\"x\","
                      "\"a\":[1,2],\"o\":{\"k\":1}}";
    CHECK_OK(bg_box_put(b, "r1", 2, 5, row, strlen(row)));
    bg_export_report rep;
    CHECK_OK(bg_export_sqlite(s, db, NULL, &rep));
    CHECK_OK(bg_store_close(s));
    bg_registry_free(r);
    CHECK_INT(query("SELECT COUNT(*) FROM box_rows WHERE n IS NULL AND b = 1 "
                    "AND i = 42 AND d = 2.5 AND s = 'x' AND a = '[1,2]' AND "
                    "o = '{\"k\":1}' AND gone IS NULL"),
              ==, 1);
    CHECK_INT(query("SELECT typeof(d) = 'real' AND typeof(i) = 'integer' "
                    "FROM box_rows"),
              ==, 1);

    /* Another connection holds the database: a clear refusal. */
    sqlite3 *h;
    CHECK(sqlite3_open(db, &h) == SQLITE_OK);
    CHECK(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_OK(open_store(&s));
    CHECK_ERR(bg_export_sqlite(s, db, NULL, &rep), BG_ELOCKED);
    (void)bg_store_close(s);
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(h);

    /* A damaged box: recover it first. */
    CHECK_OK(open_store(&s));
    CHECK_OK(bg_box_open(s, "rows", 0, &b));
    CHECK_OK(tu_put(b, "r2", "1"));
    CHECK_OK(bg_store_close(s));
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_read_file(sim, "s/rows.box", &f, &n));
    f[BG__BOX_HDR_SIZE + BG__FRAME_HDR + 4] ^= 0x02;
    CHECK_OK(bg_sim_write_file(sim, "s/rows.box", f, n));
    free(f);
    CHECK_OK(open_store(&s));
    CHECK_ERR(bg_export_sqlite(s, db, NULL, &rep), BG_ECORRUPT);
    CHECK_CONTAINS(bg_store_detail(s), "is damaged; recover it first");
    (void)bg_store_close(s);
}

/* Every allocation of an export through the store's allocator fails in
 * turn: the export succeeds or says BG_ENOMEM, nothing leaks, and the
 * database it leaves (completed by a clean rerun) holds every row with its
 * exact columns: an object or array that could not be printed is never
 * exported as NULL. */
static void test_allocation_failure_at_every_allocation(void)
{
    const char *manifest =
        "{\"adapters\":[{\"typeId\":5,\"name\":\"Row\",\"version\":1,"
        "\"fields\":[{\"name\":\"i\",\"type\":\"integer\"},"
        "{\"name\":\"a\",\"type\":\"array\"},"
        "{\"name\":\"o\",\"type\":\"object\"}]}]}";
    bg_registry *r;
    CHECK_OK(mf_registry(manifest, &r));
    long runs = 0;
    for (long fail = 1;; fail++) {
        bg_sim_free(sim);
        sim = bg_sim_new(9);
        unlink(db);
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
        o.registry = r;
        bg_store *s;
        bg_box *b;
        CHECK_OK(bg_store_open("s", &o, &s));
        CHECK_OK(bg_box_open(s, "rows", BG_BOX_CREATE, &b));
        for (int i = 0; i < 4; i++) {
            char k[8], v[96];
            snprintf(k, sizeof k, "r%d", i);
            snprintf(v, sizeof v, "{\"i\":%d,\"a\":[%d,2],\"o\":{\"k\":%d}}", i,
                     i, i);
            CHECK_OK(bg_box_put(b, k, strlen(k), 5, v, strlen(v)));
        }
        CHECK_OK(bg_store_close(s));
        tu_alloc a = {.fail_at = fail};
        o.alloc = (bg_allocator){tu_malloc, tu_realloc, tu_free, &a};
        bg_export_report rep;
        bg_err err = bg_store_open("s", &o, &s);
        if (!err)
            err = bg_export_sqlite(s, db, NULL, &rep);
        if (err && err != BG_ENOMEM)
            fprintf(stderr, "allocation %ld: %s: %s\n", fail, bg_err_name(err),
                    bg_store_detail(s));
        (void)bg_store_close(s);
        CHECK_INT(a.live, ==, 0);
        CHECK(!err || err == BG_ENOMEM);
        o.alloc = (bg_allocator){0};
        CHECK_OK(bg_store_open("s", &o, &s));
        CHECK_OK(bg_export_sqlite(s, db, NULL, &rep));
        CHECK_OK(bg_store_close(s));
        CHECK_INT(query("SELECT COUNT(*) FROM box_rows WHERE a = '[' || i || "
                        "',2]' AND o = '{\"k\":' || i || '}'"),
                  ==, 4);
        runs++;
        if (!err && a.n < fail)
            break;
    }
    bg_registry_free(r);
    printf("  export: %ld allocations failed in turn\n", runs - 1);
    CHECK_INT(runs, >, 20);
}

/* Each I/O operation of the store during an export (opening it, reading
 * the boxes, the journal check) fails in turn, EIO then ENOSPC: the export
 * reports it, and a rerun on a sound disk completes with every row once. */
static void test_io_error_at_every_store_operation(void)
{
    fresh();
    bg_export_report rep;
    uint64_t base = bg_sim_get_stats(sim).ops;
    CHECK_OK(export(5, &rep));
    uint64_t total = bg_sim_get_stats(sim).ops - base;
    CHECK_INT(total, >, 10);
    int said = 0;
    export_quiet = 1;
    for (uint64_t n = 1; n <= total; n++) {
        for (int e = 0; e < 2; e++) {
            fresh();
            bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + n,
                           e ? BG_ENOSPACE : BG_EIO);
            said += export(5, &rep) != 0;
            bg_sim_fail_at(sim, 0, 0);
            CHECK_OK(export(5, &rep));
            CHECK_INT(query("SELECT COUNT(*) FROM box_users"), ==, USERS);
            CHECK_INT(query("SELECT COUNT(DISTINCT key) FROM box_users"), ==,
                      USERS);
            CHECK_INT(query("SELECT COUNT(*) FROM box_notes"), ==, 1);
        }
    }
    export_quiet = 0;
    printf("  store operations of an export: %llu failed in turn, %d runs "
           "reported it\n",
           (unsigned long long)total, said);
    CHECK_INT(said, ==, 2 * (int)total); /* no failure swallowed */
}

/* Field columns of every shape: names that clash with the fixed columns
 * get a prefix, a quote in a name is escaped, a field two adapters share
 * is one column, numbers past 64 bits are reals, a record without a field
 * has NULL there. A database that is not one, or in a directory that does
 * not exist, is refused with SQLite's reason. */
static void test_column_shapes_and_bad_databases(void)
{
    bg_sim_free(sim);
    sim = bg_sim_new(12);
    snprintf(db, sizeof db, "%s/export.db", dir);
    unlink(db);
    const char *manifest =
        "{\"adapters\":[{\"typeId\":5,\"name\":\"A\",\"version\":1,"
        "\"fields\":[{\"name\":\"key\",\"type\":\"string\"},"
        "{\"name\":\"type_id\",\"type\":\"integer\"},"
        "{\"name\":\"seq\",\"type\":\"integer\"},"
        "{\"name\":\"json\",\"type\":\"string\"},"
        "{\"name\":\"q\\\"uote\",\"type\":\"integer\"},"
        "{\"name\":\"n\",\"type\":\"number\"}]},"
        "{\"typeId\":6,\"name\":\"B\",\"version\":1,"
        "\"fields\":[{\"name\":\"n\",\"type\":\"number\"},"
        "{\"name\":\"m\",\"type\":\"number\"}]}]}";
    bg_registry *r;
    CHECK_OK(mf_registry(manifest, &r));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    bg_store *s;
    bg_box *b;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_box_open(s, "shapes", BG_BOX_CREATE, &b));
    const char *r1 = "{\"key\":\"kk\",\"type_id\":1,\"seq\":2,\"json\":\"j\","
                     "\"q\\\"uote\":7,\"n\":1e19}";
    const char *r2 = "{\"n\":-2.5,\"m\":-1e19}";
    const char *r3 = "{}";
    CHECK_OK(bg_box_put(b, "r1", 2, 5, r1, strlen(r1)));
    CHECK_OK(bg_box_put(b, "r2", 2, 6, r2, strlen(r2)));
    CHECK_OK(bg_box_put(b, "r3", 2, 5, r3, strlen(r3)));
    bg_export_report rep;
    CHECK_OK(bg_export_sqlite(s, db, NULL, &rep));
    CHECK_INT(query("SELECT COUNT(*) FROM box_shapes WHERE key = 'r1' AND "
                    "field_key = 'kk' AND field_type_id = 1 AND field_seq = 2 "
                    "AND field_json = 'j' AND \"q\"\"uote\" = 7 AND "
                    "typeof(n) = 'real' AND n > 9e18"),
              ==, 1);
    CHECK_INT(query("SELECT COUNT(*) FROM box_shapes WHERE key = 'r2' AND "
                    "n = -2.5 AND typeof(m) = 'real' AND m < -9e18"),
              ==, 1);
    CHECK_INT(query("SELECT COUNT(*) FROM box_shapes WHERE key = 'r3' AND "
                    "n IS NULL AND m IS NULL AND field_key IS NULL"),
              ==, 1);
    /* Not a database; a directory that is not there. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/not-a-db", dir);
    FILE *f = fopen(bad, "w");
    CHECK(f != NULL);
    fputs("this is not an SQLite database, only text that goes on for a "
          "while to fill the header that SQLite reads first\n",
          f);
    fclose(f);
    CHECK(bg_export_sqlite(s, bad, NULL, &rep) != 0);
    CHECK_CONTAINS(bg_store_detail(s), "not a database");
    unlink(bad);
    snprintf(bad, sizeof bad, "%s/none/x.db", dir);
    CHECK(bg_export_sqlite(s, bad, NULL, &rep) != 0);
    CHECK_CONTAINS(bg_store_detail(s), "x.db");
    CHECK_OK(bg_store_close(s));
    bg_registry_free(r);
}

/* The store's migration history and backups come along. */
static void test_history_and_backups(void)
{
    fresh();
    bg_store *s;
    bg_plan *p;
    bg_migrate_report mr;
    CHECK_OK(bg_plan_parse(MF_PLAN, strlen(MF_PLAN), &p, NULL, 0));
    CHECK_OK(open_store(&s));
    CHECK_OK(bg_migrate_run(s, bg_plan_at(p, 0), bg_plan_count(p), NULL, &mr));
    (void)bg_store_close(s);
    bg_plan_free(p);
    bg_export_report rep;
    CHECK_OK(export(100, &rep));
    CHECK_INT(query("SELECT COUNT(*) FROM migration_history WHERE kind = "
                    "'migrate' AND id = 'user-email' AND outcome = "
                    "'committed' AND from_version = 1 AND to_version = 2 AND "
                    "records = 23"),
              ==, 1);
    CHECK_INT(query("SELECT bytes FROM migration_backups WHERE migration_id "
                    "= 'user-email' AND box = 'users' AND path = "
                    "'backups/user-email/users.box'"),
              >, 1000);
    /* The audit box is a table too, and the users carry their email. */
    CHECK_INT(query("SELECT COUNT(*) FROM box_audit"), ==, 1);
    CHECK_INT(query("SELECT COUNT(*) FROM box_users WHERE email = ''"), ==,
              USERS);
}

static void test_pending_migration_refused(void)
{
    fresh();
    CHECK_OK(bg_sim_write_file(sim, "s/migration.journal",
                               (const uint8_t *)"{}", 2));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = 1;
    bg_store *s;
    CHECK_OK(bg_store_open("s", &o, &s));
    bg_export_report rep;
    CHECK_INT(bg_export_sqlite(s, db, NULL, &rep), ==, BG_ESTATE);
    CHECK_CONTAINS(bg_store_detail(s), "migration was interrupted");
    (void)bg_store_close(s);
    CHECK(access(db, F_OK) != 0);
}

int main(void)
{
    if (tu_tempdir(dir, sizeof dir, "export")) {
        perror("tempdir");
        return 1;
    }
    RUN(test_tables_and_columns);
    RUN(test_killed_after_every_commit);
    RUN(test_killed_between_every_statement);
    RUN(test_failed_at_every_statement);
    RUN(test_journal_lookup_error_stops_the_export);
    RUN(test_changed_and_removed_boxes);
    RUN(test_table_that_lost_rows_fails);
    RUN(test_history_and_backups);
    RUN(test_allocation_failure_at_every_allocation);
    RUN(test_io_error_at_every_store_operation);
    RUN(test_column_shapes_and_bad_databases);
    RUN(test_typed_columns_damage_and_a_busy_database);
    RUN(test_pending_migration_refused);
    bg_sim_free(sim);
    unlink(db);
    char j[700];
    snprintf(j, sizeof j, "%s/export.db-journal", dir);
    unlink(j);
    rmdir(dir);
    return CHECK_DONE();
}
