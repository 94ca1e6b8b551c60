/*
 * The migration journal (format and protocol in journal_int.h): its atomic
 * writes, and the two ways a journaled piece of work ends, finished or
 * undone, shared by the migration runner and by the open that finds a
 * journal left by a crash. Every step here is idempotent, so the open
 * that follows a crash in the middle of one simply runs it again.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/migrate.h"
#include "boxguard/record.h"
#include "record_int.h"
#include "boxguard/registry.h"
#include "box_int.h"
#include "journal_int.h"
#include "json_int.h"
#include "meta_int.h"

static double jnum(const cJSON *doc, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, name);
    return cJSON_IsNumber(it) ? it->valuedouble : -1;
}

static const cJSON *jboxes(const cJSON *doc)
{
    return cJSON_GetObjectItemCaseSensitive(doc, "boxes");
}

static int is_migrate(const cJSON *doc)
{
    return !strcmp(bg__json_str(doc, "kind"), "migrate");
}

static void journal_path(bg_store *s, char *out, size_t cap, const char *sfx)
{
    char name[64];
    snprintf(name, sizeof name, "%s%s", BG__JOURNAL, sfx);
    bg__handle_path(s, out, cap, name);
}

void bg__journal_box_file(bg_store *s, const char *name, const char *stage,
                          char *out, size_t cap)
{
    char file[BG_BOX_NAME_MAX + 16];
    snprintf(file, sizeof file, "%s%s.box", name, stage);
    bg__handle_path(s, out, cap, file);
}

bg_err bg__journal_close_box(bg_store *s, const char *name)
{
    const char *stages[] = {"", BG__STAGE_MIG, BG__STAGE_RB};
    for (size_t i = 0; i < 3; i++) {
        char full[BG_BOX_NAME_MAX + 8];
        snprintf(full, sizeof full, "%s%s", name, stages[i]);
        bg_box *b = bg__box_table_find(s, full);
        if (b)
            BG_TRY(bg__box_close(b));
    }
    return 0;
}

int bg__journal_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > BG_MIGRATION_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return strcmp(id, ".") && strcmp(id, "..");
}

static int phase_known(const char *p)
{
    static const char *const phases[] = {
        "not_started", "backup_created", "dry_run_passed", "migrating",
        "migrated",    "verifying",      "verified",       "committed",
        "rolled_back", "rolling_back"};
    for (size_t i = 0; i < sizeof phases / sizeof *phases; i++)
        if (!strcmp(p, phases[i]))
            return 1;
    return 0;
}

/* A schema lock in the journal (absent, or adapters that load). */
static int lock_ok(const cJSON *doc, const char *name)
{
    const cJSON *lock = cJSON_GetObjectItemCaseSensitive(doc, name);
    if (!lock)
        return 1;
    if (!cJSON_IsObject(lock))
        return 0;
    char *txt = bg__json_print(lock);
    bg_registry *r = txt ? bg_registry_new() : NULL;
    int ok = r && !bg_registry_add_json(r, txt, strlen(txt));
    bg_registry_free(r);
    cJSON_free(txt);
    return ok;
}

/* Everything that finishing or undoing the journal will use, checked
 * before any of it is used: a journal edited behind the store's back is
 * refused whole, never acted on halfway. */
static int journal_ok(const cJSON *d)
{
    const char *kind = bg__json_str(d, "kind");
    const char *id = bg__json_str(d, "id");
    const char *backup = bg__json_str(d, "backup");
    const char *phase = bg__json_str(d, "phase");
    const char *akey = bg__json_str(d, "audit_key");
    const cJSON *boxes = jboxes(d);
    char want[BG_MIGRATION_ID_MAX + 16];
    if (!d || jnum(d, "format") != 1 || !kind ||
        (strcmp(kind, "migrate") && strcmp(kind, "rollback")) || !phase ||
        !phase_known(phase) || !id || !bg__journal_id_ok(id) ||
        jnum(d, "from") < 1 || jnum(d, "to") <= jnum(d, "from") ||
        jnum(d, "to") > UINT32_MAX || jnum(d, "version") < 1 ||
        jnum(d, "version") > UINT32_MAX || jnum(d, "started_at") < 0 ||
        !backup || !akey || bg_record_check_key(akey, strlen(akey), NULL, 0) ||
        !cJSON_IsArray(boxes) || !cJSON_GetArraySize(boxes) ||
        !lock_ok(d, "lock") || !lock_ok(d, "old_lock"))
        return 0;
    snprintf(want, sizeof want, "%s/%s", BG__BACKUPS_DIR, id);
    if (strcmp(backup, want))
        return 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, boxes)
    {
        if (!cJSON_IsString(b) || bg__box_check_name(b->valuestring))
            return 0;
    }
    return 1;
}

bg_err bg__journal_read(bg_store *s, cJSON **doc)
{
    char path[BG_PATH_MAX];
    journal_path(s, path, sizeof path, "");
    bg_file *f;
    bg_err err = bg__vfs_open(s, path, BG_OPEN_READ, &f);
    if (err == BG_ENOTFOUND)
        return err;
    BG_FAIL_IF(err, s, err, "cannot open '%s'", path);
    uint64_t size = 0;
    char *buf = NULL;
    size_t got = 0;
    err = bg__vfs_size(s, f, &size);
    if (!err && size > (1u << 20))
        err = BG_ECORRUPT;
    if (!err && !(buf = bg__handle_malloc(s, (size_t)size + 1)))
        err = BG_ENOMEM;
    if (!err)
        err = bg__vfs_read(s, f, 0, buf, (size_t)size, &got);
    bg__vfs_close(s, f);
    /* The journal is strict JSON first (UTF-8 in every string, no
     * duplicate names): what it holds is copied into the audit box. */
    cJSON *d = NULL;
    if (!err) {
        err = bg__record_parse(buf, got, &s->alloc, NULL, 0, &d);
        if (err == BG_EINVALID)
            err = BG_ECORRUPT;
    }
    bg__handle_free(s, buf);
    if (err == BG_ENOMEM)
        return err;
    int ok = journal_ok(d);
    if (!ok && bg__json_failed()) { /* checking its schema locks */
        cJSON_Delete(d);
        return BG_ENOMEM;
    }
    /* Every box it names is there (a migration and a rollback work on
     * boxes that exist; the staged ones stand beside them). Not being able
     * to look is an error of its own, not an unreadable journal. */
    const cJSON *b, *boxes = ok ? jboxes(d) : NULL;
    cJSON_ArrayForEach(b, boxes)
    {
        char file[BG_BOX_NAME_MAX + 8];
        int there = 0;
        snprintf(file, sizeof file, "%s.box", b->valuestring);
        bg_err herr = bg__handle_has(s, file, &there);
        if (herr) {
            cJSON_Delete(d);
            return herr;
        }
        ok &= there;
    }
    if (!ok) {
        cJSON_Delete(d);
        return bg__handle_fail(s, err ? err : BG_ECORRUPT,
                               "store '%s': %s is unreadable; a migration was "
                               "interrupted and cannot be finished "
                               "automatically",
                               s->dir, BG__JOURNAL);
    }
    *doc = d;
    return 0;
}

bg_err bg__journal_write(bg_store *s, cJSON *doc, const char *phase)
{
    if (bg__json_put(doc, "phase", cJSON_CreateString(phase)))
        return BG_ENOMEM;
    char *txt = bg__json_print(doc);
    if (!txt)
        return BG_ENOMEM;
    char path[BG_PATH_MAX], tmp[BG_PATH_MAX];
    journal_path(s, path, sizeof path, "");
    journal_path(s, tmp, sizeof tmp, ".tmp");
    bg_err err =
        bg__handle_write_file(s, tmp, path, s->dir, txt, strlen(txt), 0);
    cJSON_free(txt);
    BG_FAIL_IF(err, s, err, "cannot write %s (phase %s)", BG__JOURNAL, phase);
    return 0;
}

static bg_err journal_remove(bg_store *s)
{
    char path[BG_PATH_MAX];
    journal_path(s, path, sizeof path, "");
    bg_err err = bg__vfs_unlink(s, path);
    if (!err || err == BG_ENOTFOUND)
        err = bg__vfs_sync_dir(s, s->dir);
    BG_FAIL_IF(err, s, err, "cannot remove %s", BG__JOURNAL);
    return 0;
}

bg_err bg__journal_name(bg_store *s, cJSON *doc)
{
    uint8_t r[4];
    bg__vfs_random(s, r, sizeof r);
    char key[160];
    snprintf(key, sizeof key, "%016" PRIx64 "-%02x%02x%02x%02x-%s-%s",
             (uint64_t)jnum(doc, "started_at"), r[0], r[1], r[2], r[3],
             bg__json_str(doc, "kind"), bg__json_str(doc, "id"));
    return cJSON_AddStringToObject(doc, "audit_key", key) ? 0 : BG_ENOMEM;
}

/* The outcome of doc in the audit box: what ran, how it ended, and the
 * state of each affected box after it (what a later rollback checks). */
static bg_err audit(bg_store *s, const cJSON *doc, const char *outcome)
{
    cJSON *rec = cJSON_CreateObject();
    if (!rec)
        return BG_ENOMEM;
    const char *copy[] = {"kind",   "id",       "description", "from",
                          "to",     "backup",   "started_at",  "records",
                          "reason", "old_lock", "rolls_back"};
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, copy[i]);
        if (it)
            (void)bg__json_put(rec, copy[i], cJSON_Duplicate(it, 1));
    }
    cJSON_AddStringToObject(rec, "event", "migration");
    cJSON_AddStringToObject(rec, "outcome", outcome);
    cJSON_AddNumberToObject(rec, "version", jnum(doc, "version"));
    cJSON_AddNumberToObject(rec, "at", (double)bg__handle_now_ms(s));
    cJSON *after = cJSON_AddArrayToObject(rec, "boxes");
    bg_err err = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, jboxes(doc))
    {
        bg_box *box;
        bg_box_stats st = {0};
        err = bg_box_open(s, b->valuestring, 0, &box);
        if (err)
            break;
        bg_box_stats_of(box, &st);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", b->valuestring);
        cJSON_AddNumberToObject(o, "records", (double)st.records);
        cJSON_AddNumberToObject(o, "next_seq", (double)st.next_seq);
        (void)bg__json_push(after, o);
    }
    if (!err)
        err = bg__meta_audit(s, bg__json_str(doc, "audit_key"), rec);
    cJSON_Delete(rec);
    return err;
}

bg_err bg__journal_abort(bg_store *s, cJSON *doc, const char *reason)
{
    const char *phase = bg__json_str(doc, "phase");
    if (!phase || strcmp(phase, "rolled_back")) {
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "reason");
        cJSON_AddStringToObject(doc, "reason", reason);
        BG_TRY(bg__journal_write(s, doc, "rolled_back"));
    }
    const cJSON *b;
    cJSON_ArrayForEach(b, jboxes(doc))
    {
        char path[BG_PATH_MAX];
        BG_TRY(bg__journal_close_box(s, b->valuestring));
        bg__journal_box_file(s, b->valuestring, BG__STAGE_MIG, path,
                             sizeof path);
        bg_err err = bg__vfs_unlink(s, path);
        BG_FAIL_IF(err && err != BG_ENOTFOUND, s, err, "cannot remove '%s'",
                   path);
    }
    bg_err err = bg__vfs_sync_dir(s, s->dir);
    BG_FAIL_IF(err, s, err, "cannot sync directory '%s'", s->dir);
    BG_TRY(audit(s, doc, "rolled_back"));
    return journal_remove(s);
}

bg_err bg__journal_finish(bg_store *s, cJSON *doc)
{
    int migrate = is_migrate(doc);
    const cJSON *b;
    cJSON_ArrayForEach(b, jboxes(doc))
    {
        const char *name = b->valuestring;
        const char *stage = migrate ? BG__STAGE_MIG : BG__STAGE_RB;
        char path[BG_PATH_MAX], staged[BG_PATH_MAX];
        BG_TRY(bg__journal_close_box(s, name));
        bg__journal_box_file(s, name, "", path, sizeof path);
        bg__journal_box_file(s, name, stage, staged, sizeof staged);
        if (!migrate) {
            char backup[BG_PATH_MAX], rel[BG_PATH_MAX];
            snprintf(rel, sizeof rel, "%s/%s.box", bg__json_str(doc, "backup"),
                     name);
            bg__handle_path(s, backup, sizeof backup, rel);
            BG_TRY(bg__handle_copy_file(s, backup, staged));
        }
        /* A staged file that is gone was renamed by an earlier attempt. */
        bg_err err = bg__vfs_rename(s, staged, path);
        BG_FAIL_IF(err && err != BG_ENOTFOUND, s, err,
                   "cannot rename '%s' to '%s'", staged, path);
    }
    bg_err err = bg__vfs_sync_dir(s, s->dir);
    BG_FAIL_IF(err, s, err, "cannot sync directory '%s'", s->dir);
    const cJSON *lock = cJSON_GetObjectItemCaseSensitive(doc, "lock");
    char *lock_txt = cJSON_IsObject(lock) ? bg__json_print(lock) : NULL;
    if (cJSON_IsObject(lock) && !lock_txt)
        return BG_ENOMEM;
    err = bg__meta_set_schema(s, (uint32_t)jnum(doc, "version"), lock_txt);
    if (!err && lock_txt && s->types) {
        /* The adapters of the new version apply from here on. */
        bg_registry *r = bg_registry_new();
        err = !r ? BG_ENOMEM
                 : bg_registry_add_json(r, lock_txt, strlen(lock_txt));
        if (!err) {
            bg_registry_free(s->types);
            s->types = r;
        } else {
            bg_registry_free(r);
        }
    }
    cJSON_free(lock_txt);
    BG_TRY(err);
    BG_TRY(audit(s, doc, migrate ? "committed" : "restored"));
    BG_TRY(bg__journal_write(s, doc, "committed"));
    return journal_remove(s);
}

bg_err bg__journal_resolve(bg_store *s)
{
    cJSON *doc;
    bg_err err = bg__journal_read(s, &doc);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    char phase[32];
    snprintf(phase, sizeof phase, "%s", bg__json_str(doc, "phase"));
    unsigned from = (unsigned)jnum(doc, "from"), to = (unsigned)jnum(doc, "to");
    if (!is_migrate(doc)) {
        err = bg__journal_finish(s, doc);
        snprintf(s->resolved, sizeof s->resolved,
                 "finished the interrupted rollback of migration '%.64s' "
                 "(schema version %u -> %u)",
                 bg__json_str(doc, "id"), to, from);
    } else if (!strcmp(phase, "verified") || !strcmp(phase, "committed")) {
        err = bg__journal_finish(s, doc);
        snprintf(s->resolved, sizeof s->resolved,
                 "finished migration '%.64s' interrupted after phase %s "
                 "(schema version %u -> %u)",
                 bg__json_str(doc, "id"), phase, from, to);
    } else {
        char reason[96];
        snprintf(reason, sizeof reason, "interrupted in phase %s", phase);
        err = bg__journal_abort(s, doc, reason);
        snprintf(s->resolved, sizeof s->resolved,
                 "rolled back migration '%.64s' interrupted in phase %s "
                 "(schema version stays %u)",
                 bg__json_str(doc, "id"), phase, from);
    }
    cJSON_Delete(doc);
    if (err)
        s->resolved[0] = '\0';
    return err;
}
