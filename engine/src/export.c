/*
 * Export to SQLite (export.h): one table per box, filled in chunked
 * transactions that commit the copy position with the rows, so that any
 * interruption resumes without a gap or a duplicate; then the history and
 * backup tables, the count check and integrity_check.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/export.h"
#include "boxguard/migrate.h"
#include "json_int.h"
#include "journal_int.h"
#include "box_int.h"
#include "handle_int.h"

#define MAX_COLS 256

typedef struct col {
    char name[BG_TYPE_NAME_MAX + 8]; /* the column */
    char field[BG_TYPE_NAME_MAX + 1];
} col;

typedef struct ex {
    bg_store *s;
    sqlite3 *db;
    const bg_export_opts *o;
    bg_export_report *rep;
    size_t chunk;
    /* the box being exported */
    const char *box;
    char table[BG_BOX_NAME_MAX + 8];
    col cols[MAX_COLS];
    size_t ncols;
    uint32_t types[64];
    size_t ntypes;
    int types_overflow;
    sqlite3_stmt *ins, *pos;
    uint64_t last_seq, rows, in_chunk, done, total;
    bg_err err;
} ex;

static bg_err sql_fail(ex *e, int rc, const char *what)
{
    bg_err err = BG_EIO;
    switch (rc & 0xff) {
    case SQLITE_FULL:
        err = BG_ENOSPACE;
        break;
    case SQLITE_NOMEM:
        err = BG_ENOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        err = BG_ELOCKED;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        err = BG_ECORRUPT;
        break;
    }
    return bg__handle_fail(e->s, err, "export: %s: sqlite: %s", what,
                           e->db ? sqlite3_errmsg(e->db) : sqlite3_errstr(rc));
}

static bg_err exec(ex *e, const char *sql)
{
    int rc = sqlite3_exec(e->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_fail(e, rc, sql);
}

static bg_err prepare(ex *e, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(e->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : sql_fail(e, rc, sql);
}

/* Quote an identifier for SQL ("..." with " doubled). */
static void quote(char *out, size_t cap, const char *name)
{
    size_t n = 0;
    out[n++] = '"';
    for (const char *p = name; *p && n + 3 < cap; p++) {
        if (*p == '"')
            out[n++] = '"';
        out[n++] = *p;
    }
    out[n++] = '"';
    out[n] = '\0';
}

static bg_err schema(ex *e)
{
    return exec(e,
                "CREATE TABLE IF NOT EXISTS migration_sync_status("
                "box TEXT PRIMARY KEY, tbl TEXT NOT NULL, "
                "box_records INTEGER NOT NULL, box_next_seq INTEGER NOT NULL, "
                "last_seq INTEGER NOT NULL, rows INTEGER NOT NULL, "
                "done INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
                "CREATE TABLE IF NOT EXISTS migration_history("
                "audit_key TEXT PRIMARY KEY, kind TEXT, id TEXT, "
                "from_version INTEGER, to_version INTEGER, outcome TEXT, "
                "reason TEXT, records INTEGER, at INTEGER, json TEXT);"
                "CREATE TABLE IF NOT EXISTS migration_backups("
                "migration_id TEXT NOT NULL, box TEXT NOT NULL, "
                "path TEXT NOT NULL, bytes INTEGER, "
                "PRIMARY KEY(migration_id, box));");
}

static void add_type(void *arg, uint32_t t)
{
    ex *e = arg;
    for (size_t i = 0; i < e->ntypes; i++)
        if (e->types[i] == t)
            return;
    if (e->ntypes < sizeof e->types / sizeof e->types[0])
        e->types[e->ntypes++] = t;
    else
        e->types_overflow = 1;
}

/* The field columns of box b: every field the adapters of its typeIds
 * declare, once, in typeId order. */
static void columns(ex *e, bg_box *b)
{
    e->ntypes = 0;
    e->ncols = 0;
    e->types_overflow = 0;
    bg__box_each_type(b, add_type, e);
    for (size_t i = 0; i < bg_registry_count(e->s->types); i++) {
        const bg_adapter *a = bg_registry_at(e->s->types, i);
        int present = 0;
        for (size_t t = 0; t < e->ntypes; t++)
            present |= e->types[t] == a->type_id;
        for (size_t f = 0; present && f < a->nfields && e->ncols < MAX_COLS;
             f++) {
            const char *fn = a->fields[f].name;
            int dup = 0;
            for (size_t c = 0; c < e->ncols; c++)
                dup |= !strcmp(e->cols[c].field, fn);
            if (dup)
                continue;
            col *c = &e->cols[e->ncols++];
            snprintf(c->field, sizeof c->field, "%s", fn);
            /* The fixed columns keep their names. */
            int clash = !strcmp(fn, "key") || !strcmp(fn, "type_id") ||
                        !strcmp(fn, "seq") || !strcmp(fn, "json");
            snprintf(c->name, sizeof c->name, "%s%s", clash ? "field_" : "",
                     fn);
        }
    }
}

/* head, then ", col" for every field column, then ")" and, for an
 * insert, the placeholders. */
static char *column_sql(ex *e, const char *head, int insert)
{
    size_t cap = strlen(head) + 64 + e->ncols * (BG_TYPE_NAME_MAX * 2 + 8);
    char *sql = malloc(cap), q[BG_TYPE_NAME_MAX * 2 + 8];
    if (!sql)
        return NULL;
    size_t n = (size_t)snprintf(sql, cap, "%s", head);
    for (size_t i = 0; i < e->ncols; i++) {
        quote(q, sizeof q, e->cols[i].name);
        n += (size_t)snprintf(sql + n, cap - n, ", %s", q);
    }
    n += (size_t)snprintf(sql + n, cap - n, ")");
    if (insert) {
        n += (size_t)snprintf(sql + n, cap - n, " VALUES(?, ?, ?, ?");
        for (size_t i = 0; i < e->ncols; i++)
            n += (size_t)snprintf(sql + n, cap - n, ", ?");
        snprintf(sql + n, cap - n, ")");
    }
    return sql;
}

static bg_err create_table(ex *e)
{
    char q[BG_BOX_NAME_MAX * 2 + 16], head[BG_BOX_NAME_MAX * 4 + 192];
    quote(q, sizeof q, e->table);
    snprintf(head, sizeof head,
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s(key TEXT PRIMARY KEY, "
             "type_id INTEGER NOT NULL, seq INTEGER NOT NULL, json TEXT NOT "
             "NULL",
             q, q);
    char *sql = column_sql(e, head, 0);
    bg_err err = sql ? exec(e, sql) : BG_ENOMEM;
    free(sql);
    return err;
}

static bg_err prepare_insert(ex *e)
{
    char q[BG_BOX_NAME_MAX * 2 + 16], head[BG_BOX_NAME_MAX * 2 + 64];
    quote(q, sizeof q, e->table);
    snprintf(head, sizeof head, "INSERT INTO %s(key, type_id, seq, json", q);
    char *sql = column_sql(e, head, 1);
    bg_err err = sql ? prepare(e, sql, &e->ins) : BG_ENOMEM;
    free(sql);
    return err;
}

/* Bind field v (NULL: absent) to column i; BG_ENOMEM when an object or
 * array cannot be printed. */
static bg_err bind_field(sqlite3_stmt *st, int i, const cJSON *v)
{
    if (!v || cJSON_IsNull(v)) {
        sqlite3_bind_null(st, i);
    } else if (cJSON_IsBool(v)) {
        sqlite3_bind_int(st, i, cJSON_IsTrue(v));
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* In range before the cast: a cast out of range is undefined. */
        if (d < 9.2e18 && d > -9.2e18 && d == (double)(int64_t)d)
            sqlite3_bind_int64(st, i, (sqlite3_int64)d);
        else
            sqlite3_bind_double(st, i, d);
    } else if (cJSON_IsString(v)) {
        sqlite3_bind_text(st, i, v->valuestring, -1, SQLITE_TRANSIENT);
    } else {
        char *txt = bg__json_print(v);
        if (!txt)
            return BG_ENOMEM;
        sqlite3_bind_text(st, i, txt, -1, SQLITE_TRANSIENT);
        cJSON_free(txt);
    }
    return 0;
}

/* Commit the open chunk with the copy position. */
static bg_err commit_chunk(ex *e)
{
    if (!e->in_chunk)
        return 0;
    sqlite3_reset(e->pos);
    sqlite3_bind_int64(e->pos, 1, (sqlite3_int64)e->last_seq);
    sqlite3_bind_int64(e->pos, 2, (sqlite3_int64)e->rows);
    sqlite3_bind_int64(e->pos, 3, (sqlite3_int64)bg__handle_now_ms(e->s));
    sqlite3_bind_text(e->pos, 4, e->box, -1, SQLITE_STATIC);
    int rc = sqlite3_step(e->pos);
    if (rc != SQLITE_DONE)
        return sql_fail(e, rc, "updating migration_sync_status");
    BG_TRY(exec(e, "COMMIT"));
    e->rep->chunks++;
    e->in_chunk = 0;
    if (e->o && e->o->on_commit)
        e->o->on_commit(e->o->ctx, e->box, e->rows);
    return 0;
}

static int row_fn(void *arg, const bg_record *r)
{
    ex *e = arg;
    char what[BG_BOX_NAME_MAX + 16];
    if (++e->done % 1024 == 0 || e->done == e->total) {
        snprintf(what, sizeof what, "export %s", e->box);
        bg__handle_progress(e->s, what, e->done, e->total);
    }
    if (r->seq <= e->last_seq)
        return 0; /* committed by an earlier run */
    if (!e->in_chunk && (e->err = exec(e, "BEGIN IMMEDIATE")))
        return 1;
    sqlite3_stmt *st = e->ins;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, r->key, (int)r->key_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->type);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->seq);
    sqlite3_bind_text(st, 4, r->value, (int)r->value_len, SQLITE_STATIC);
    if (e->ncols) {
        const bg_adapter *a = bg_registry_find(e->s->types, r->type);
        cJSON *doc = NULL;
        if (a && bg__json_parse(r->value, r->value_len, &doc) == BG_ENOMEM)
            e->err = BG_ENOMEM;
        for (size_t i = 0; i < e->ncols && !e->err; i++) {
            const cJSON *v = NULL;
            for (size_t f = 0; doc && f < a->nfields && !v; f++)
                if (!strcmp(a->fields[f].name, e->cols[i].field))
                    v = cJSON_GetObjectItemCaseSensitive(doc, e->cols[i].field);
            e->err = bind_field(st, (int)i + 5, v);
        }
        cJSON_Delete(doc);
        if (e->err)
            return 1;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        e->err = sql_fail(e, rc, "inserting a row");
        return 1;
    }
    e->rows++;
    e->rep->copied++;
    e->last_seq = r->seq;
    if (++e->in_chunk >= e->chunk)
        e->err = commit_chunk(e);
    return e->err != 0;
}

static bg_err count_rows(ex *e, const char *table, uint64_t *n)
{
    char q[BG_BOX_NAME_MAX * 2 + 16], sql[BG_BOX_NAME_MAX * 2 + 64];
    quote(q, sizeof q, table);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", q);
    sqlite3_stmt *st;
    BG_TRY(prepare(e, sql, &st));
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : sql_fail(e, rc, sql);
}

/* The status row of the box: 1 when there is one (its fields filled). */
static int status_of(ex *e, uint64_t *records, uint64_t *next_seq,
                     uint64_t *last_seq, uint64_t *rows, int *done)
{
    sqlite3_stmt *st;
    if (prepare(e,
                "SELECT box_records, box_next_seq, last_seq, rows, done FROM "
                "migration_sync_status WHERE box = ?",
                &st))
        return -1;
    sqlite3_bind_text(st, 1, e->box, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW;
    if (found) {
        *records = (uint64_t)sqlite3_column_int64(st, 0);
        *next_seq = (uint64_t)sqlite3_column_int64(st, 1);
        *last_seq = (uint64_t)sqlite3_column_int64(st, 2);
        *rows = (uint64_t)sqlite3_column_int64(st, 3);
        *done = sqlite3_column_int(st, 4);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}

/* Begin (or begin again) the table of the box, in one transaction. */
static bg_err begin_table(ex *e, const bg_box_stats *bs)
{
    BG_TRY(exec(e, "BEGIN IMMEDIATE"));
    bg_err err = create_table(e);
    sqlite3_stmt *st = NULL;
    if (!err)
        err = prepare(e,
                      "INSERT OR REPLACE INTO migration_sync_status(box, tbl, "
                      "box_records, box_next_seq, last_seq, rows, done, "
                      "updated_at) VALUES(?, ?, ?, ?, 0, 0, 0, ?)",
                      &st);
    if (!err) {
        sqlite3_bind_text(st, 1, e->box, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->table, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)bs->records);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)bs->next_seq);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)bg__handle_now_ms(e->s));
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            err = sql_fail(e, rc, "writing migration_sync_status");
    }
    sqlite3_finalize(st);
    if (!err)
        return exec(e, "COMMIT");
    (void)sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static bg_err export_box(ex *e, const char *name)
{
    bg_store *s = e->s;
    bg_box *b;
    BG_TRY(bg_box_open(s, name, 0, &b));
    BG_FAIL_IF(bg_box_report_of(b)->status == BG_BOX_CORRUPT, s, BG_ECORRUPT,
               "export: box '%s' is damaged; recover it first", name);
    bg_box_stats bs;
    bg_box_stats_of(b, &bs);
    e->box = name;
    snprintf(e->table, sizeof e->table, "box_%s", name);
    columns(e, b);
    uint64_t records = 0, next_seq = 0;
    int done = 0;
    e->last_seq = e->rows = e->in_chunk = e->done = 0;
    e->total = bs.records;
    int found =
        status_of(e, &records, &next_seq, &e->last_seq, &e->rows, &done);
    if (found < 0)
        return sql_fail(e, sqlite3_errcode(e->db), "reading the sync status");
    if (found && records == bs.records && next_seq == bs.next_seq) {
        if (done) {
            e->rep->skipped++;
            return 0;
        }
        e->rep->resumed += e->rows;
    } else {
        e->rep->restarted += found;
        e->last_seq = e->rows = 0;
        BG_TRY(begin_table(e, &bs));
    }
    bg_err err = prepare_insert(e);
    if (!err)
        err = prepare(e,
                      "UPDATE migration_sync_status SET last_seq = ?, rows = "
                      "?, updated_at = ? WHERE box = ?",
                      &e->pos);
    if (!err) {
        e->err = 0;
        err = bg__box_iterate_raw(b, row_fn, e);
        if (!err)
            err = e->err;
        if (!err)
            err = commit_chunk(e);
        if (err && e->in_chunk)
            (void)sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_finalize(e->ins);
    sqlite3_finalize(e->pos);
    e->ins = e->pos = NULL;
    BG_TRY(err);
    uint64_t n;
    BG_TRY(count_rows(e, e->table, &n));
    BG_FAIL_IF(n != bs.records || n != e->rows, s, BG_ECORRUPT,
               "export: table '%s' has %" PRIu64 " rows, its box %" PRIu64
               " records",
               e->table, n, bs.records);
    char sql[BG_BOX_NAME_MAX * 2 + 96], q[BG_BOX_NAME_MAX * 2 + 8];
    snprintf(q, sizeof q, "'%s'", name); /* names have no quote */
    snprintf(sql, sizeof sql,
             "UPDATE migration_sync_status SET done = 1 WHERE box = %s", q);
    return exec(e, sql);
}

/* migration_history and migration_backups from the audit box. */
typedef struct hist {
    ex *e;
    sqlite3_stmt *h, *b;
    bg_err err;
} hist;

static int hist_fn(void *arg, const char *key, const char *json, size_t len)
{
    hist *c = arg;
    cJSON *d;
    bg_err perr = bg__json_parse(json, len, &d);
    if (perr == BG_ENOMEM)
        c->err = perr;
    if (perr)
        return perr == BG_ENOMEM;
    const char *txt[] = {"kind", "id", "outcome", "reason"};
    sqlite3_reset(c->h);
    sqlite3_clear_bindings(c->h);
    sqlite3_bind_text(c->h, 1, key, -1, SQLITE_TRANSIENT);
    for (int i = 0; i < 4; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(d, txt[i]);
        if (cJSON_IsString(it))
            sqlite3_bind_text(c->h, 2 + i, it->valuestring, -1,
                              SQLITE_TRANSIENT);
    }
    const char *num[] = {"from", "to", "records", "at"};
    for (int i = 0; i < 4; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(d, num[i]);
        if (cJSON_IsNumber(it))
            sqlite3_bind_int64(c->h, 6 + i, (sqlite3_int64)it->valuedouble);
    }
    sqlite3_bind_text(c->h, 10, json, (int)len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(c->h);
    if (rc != SQLITE_DONE)
        c->err = sql_fail(c->e, rc, "writing migration_history");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(d, "outcome");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
    const cJSON *bk = cJSON_GetObjectItemCaseSensitive(d, "backup");
    const cJSON *boxes = cJSON_GetObjectItemCaseSensitive(d, "boxes");
    const cJSON *it;
    if (!c->err && cJSON_IsString(out) &&
        !strcmp(out->valuestring, "committed") && cJSON_IsString(id) &&
        cJSON_IsString(bk)) {
        cJSON_ArrayForEach(it, boxes)
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            if (!cJSON_IsString(nm) || c->err)
                continue;
            char rel[BG_PATH_MAX], path[BG_PATH_MAX];
            snprintf(rel, sizeof rel, "%s/%s.box", bk->valuestring,
                     nm->valuestring);
            bg_file *f;
            uint64_t bytes = 0;
            int have = strlen(rel) <= BG__NAME_MAX &&
                       (bg__handle_path(c->e->s, path, sizeof path, rel), 1) &&
                       !bg__vfs_open(c->e->s, path, BG_OPEN_READ, &f);
            if (have) {
                if (bg__vfs_size(c->e->s, f, &bytes))
                    bytes = 0;
                bg__vfs_close(c->e->s, f);
            }
            sqlite3_reset(c->b);
            sqlite3_bind_text(c->b, 1, id->valuestring, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(c->b, 2, nm->valuestring, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(c->b, 3, rel, -1, SQLITE_TRANSIENT);
            if (have)
                sqlite3_bind_int64(c->b, 4, (sqlite3_int64)bytes);
            else
                sqlite3_bind_null(c->b, 4);
            rc = sqlite3_step(c->b);
            if (rc != SQLITE_DONE)
                c->err = sql_fail(c->e, rc, "writing migration_backups");
        }
    }
    cJSON_Delete(d);
    return c->err != 0;
}

static bg_err history(ex *e)
{
    hist c = {.e = e};
    BG_TRY(exec(e, "BEGIN IMMEDIATE"));
    bg_err err = prepare(e,
                         "INSERT OR REPLACE INTO migration_history(audit_key, "
                         "kind, id, outcome, reason, from_version, "
                         "to_version, records, at, json) VALUES(?, ?, ?, ?, "
                         "?, ?, ?, ?, ?, ?)",
                         &c.h);
    if (!err)
        err = prepare(e,
                      "INSERT OR REPLACE INTO migration_backups(migration_id, "
                      "box, path, bytes) VALUES(?, ?, ?, ?)",
                      &c.b);
    if (!err)
        err = bg_migrate_history(e->s, hist_fn, &c);
    if (!err)
        err = c.err;
    if (!err) {
        /* This run itself. */
        char key[64];
        int64_t now = bg__handle_now_ms(e->s);
        snprintf(key, sizeof key, "%016" PRIx64 "-export-sqlite",
                 (uint64_t)now);
        sqlite3_reset(c.h);
        sqlite3_clear_bindings(c.h);
        sqlite3_bind_text(c.h, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(c.h, 2, "export-sqlite", -1, SQLITE_STATIC);
        sqlite3_bind_text(c.h, 4, "completed", -1, SQLITE_STATIC);
        sqlite3_bind_int64(c.h, 8, (sqlite3_int64)e->rep->rows);
        sqlite3_bind_int64(c.h, 9, now);
        int rc = sqlite3_step(c.h);
        if (rc != SQLITE_DONE)
            err = sql_fail(e, rc, "writing migration_history");
    }
    sqlite3_finalize(c.h);
    sqlite3_finalize(c.b);
    if (!err)
        return exec(e, "COMMIT");
    (void)sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

/* Every table in the status against its box; tables of boxes that are
 * gone are dropped. Then integrity_check. */
static bg_err final_check(ex *e, const bg__box_list *ns)
{
    sqlite3_stmt *st;
    BG_TRY(prepare(e, "SELECT box, tbl FROM migration_sync_status", &st));
    bg_err err = 0;
    char gone[BG_BOX_NAME_MAX + 1] = "";
    int rc;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *box = (const char *)sqlite3_column_text(st, 0);
        const char *tbl = (const char *)sqlite3_column_text(st, 1);
        int present = 0;
        for (size_t i = 0; box && i < ns->n && !present; i++)
            present = !strcmp(ns->v[i], box);
        if (!present) {
            if (box && strlen(box) <= BG_BOX_NAME_MAX)
                snprintf(gone, sizeof gone, "%s", box);
            continue;
        }
        bg_box *b;
        uint64_t n;
        err = bg_box_open(e->s, box, 0, &b);
        if (!err)
            err = count_rows(e, tbl, &n);
        if (!err) {
            bg_box_stats bs;
            bg_box_stats_of(b, &bs);
            e->rep->rows += n;
            e->rep->tables++;
            if (n != bs.records)
                err = bg__handle_fail(e->s, BG_ECORRUPT,
                                      "export: count check: table '%s' has "
                                      "%" PRIu64 " rows, box '%s' %" PRIu64
                                      " records",
                                      tbl, n, box, bs.records);
        }
    }
    /* A step that failed ends the loop too: the check did not run, and
     * must not pass for one that found nothing wrong. */
    if (!err && rc != SQLITE_DONE)
        err = sql_fail(e, rc, "reading migration_sync_status");
    sqlite3_finalize(st);
    BG_TRY(err);
    if (gone[0] && !bg__box_check_name(gone)) {
        /* One per run is enough: a box rarely goes; the next run takes
         * the next. */
        char sql[BG_BOX_NAME_MAX * 2 + 128];
        snprintf(sql, sizeof sql,
                 "BEGIN; DROP TABLE IF EXISTS \"box_%s\"; DELETE FROM "
                 "migration_sync_status WHERE box = '%s'; COMMIT",
                 gone, gone);
        BG_TRY(exec(e, sql));
    }
    BG_TRY(prepare(e, "PRAGMA integrity_check", &st));
    rc = sqlite3_step(st);
    const char *res =
        rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (!res || strcmp(res, "ok"))
        err = bg__handle_fail(e->s, BG_ECORRUPT,
                              "export: integrity_check: %.200s",
                              res ? res : sqlite3_errmsg(e->db));
    sqlite3_finalize(st);
    return err;
}

bg_err bg_export_sqlite(bg_store *s, const char *db_path,
                        const bg_export_opts *o, bg_export_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    memset(rep, 0, sizeof *rep);
    int journal;
    BG_TRY(bg__handle_has(s, BG__JOURNAL, &journal));
    BG_FAIL_IF(journal, s, BG_ESTATE,
               "export: a migration was interrupted; open the "
               "store for writing (boxguard migrate status) "
               "first");
    ex e = {.s = s, .o = o, .rep = rep};
    e.chunk = o && o->chunk ? o->chunk : 1000;
    int rc = sqlite3_open_v2(db_path, &e.db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    bg__box_list ns = {0};
    bg_err err = rc == SQLITE_OK ? 0 : sql_fail(&e, rc, db_path);
    if (!err)
        err = exec(&e, "PRAGMA synchronous = FULL");
    if (!err)
        err = schema(&e);
    if (!err)
        err = bg__box_list_names(s, &ns);
    for (size_t i = 0; i < ns.n && !err; i++)
        if (strcmp(ns.v[i], BG__META_BOX))
            err = export_box(&e, ns.v[i]);
    if (!err)
        err = final_check(&e, &ns);
    if (!err)
        err = history(&e);
    bg__box_list_free(s, &ns);
    if (e.db && sqlite3_close(e.db) != SQLITE_OK && !err)
        err = bg__handle_fail(s, BG_EIO, "export: cannot close '%s'", db_path);
    return err;
}
