/*
 * The migration runner (migrate.h): the dry run and the journaled steps of
 * a migration (backup, dry run, migrate beside, verify) up to its commit
 * point, history, status and rollback; finishing and undoing are
 * journal.c's, shared with the open that follows a crash. Declarative
 * plans are plan.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/migrate.h"
#include "json_int.h"
#include "meta_int.h"
#include "journal_int.h"
#include "keys_int.h"
#include "box_int.h"
#include "handle_int.h"

/* ---- the runner -------------------------------------------------------- */

/* Transform one record with m and check the result against target:
 * returns 0 (*out filled; out->value is in's unless *fresh), BG_ESCHEMA
 * with why, or another error. */
typedef struct xform {
    uint32_t type;
    char *fresh; /* a new value (malloc), or NULL: the input's */
    const char *value;
    size_t value_len;
} xform;

static bg_err transform(const bg_migration *m, const bg_registry *target,
                        const char *box, const bg_record *in, xform *out,
                        char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    why[0] = '\0';
    size_t vlen = 0;
    bg_err err =
        m->transform(m->arg, box, in, &out->type, &out->fresh, &vlen, why, cap);
    if (!err && out->fresh && !vlen)
        vlen = strlen(out->fresh);
    out->value = out->fresh ? out->fresh : in->value;
    out->value_len = out->fresh ? vlen : in->value_len;
    if (!err)
        err = bg_registry_check(target, out->type, out->value, out->value_len,
                                why, cap);
    if (err) {
        if (!why[0])
            snprintf(why, cap, "%s", bg_strerror(err));
        if (err == BG_EINVALID)
            err = BG_ESCHEMA; /* the transform made JSON that does not parse */
        free(out->fresh);
        out->fresh = NULL;
    }
    return err;
}

static const bg_registry *target_of(bg_store *s, const bg_migration *m,
                                    const bg_migrate_opts *o)
{
    if (m->adapters)
        return m->adapters;
    return o && o->adapters ? o->adapters : s->types;
}

static bg_err check_migration(bg_store *s, const bg_migration *m)
{
    BG_FAIL_IF(!m->id || !bg__journal_id_ok(m->id), s, BG_EINVALID,
               "bad migration id '%.80s'", m->id ? m->id : "");
    BG_FAIL_IF(m->from < 1 || m->from >= m->to || !m->transform || !m->nboxes,
               s, BG_EINVALID,
               "migration '%s': needs from < to, a transform "
               "and at least one box",
               m->id);
    for (size_t i = 0; i < m->nboxes; i++) {
        BG_FAIL_IF(bg__box_check_name(m->boxes[i]), s, BG_EINVALID,
                   "migration '%s': bad box name '%.80s'", m->id, m->boxes[i]);
        BG_FAIL_IF(bg__box_is_reserved(m->boxes[i]), s, BG_EINVALID,
                   "migration '%s': box '%s' belongs to the "
                   "store and cannot be migrated",
                   m->id, m->boxes[i]);
    }
    return 0;
}

typedef struct run_ctx {
    bg_store *s;
    const bg_migration *m;
    const bg_registry *target;
    const bg_migrate_opts *o;
    bg_migrate_report *rep;
    const char *box;
    bg_box *src, *dst;
    uint64_t done, total;
    bg_err err;
    char why[256];
    /* migrate: the batch being written; each key and value share one
     * allocation, at the key */
    bg_write *batch;
    size_t nbatch, capbatch, bytes;
    /* verify */
    uint64_t seen;
} run_ctx;

static void failure(run_ctx *c, const char *mig, const bg_record *r,
                    const char *why)
{
    c->rep->failed++;
    if (c->o && c->o->on_failure)
        c->o->on_failure(c->o->failure_ctx, mig, c->box, r->key, r->key_len,
                         why);
}

static void tick(run_ctx *c)
{
    if (++c->done % 1024 == 0 || c->done == c->total) {
        char what[BG_MIGRATION_ID_MAX + 16];
        snprintf(what, sizeof what, "migrate %s", c->m->id);
        bg__handle_progress(c->s, what, c->done, c->total);
    }
}

static int dry_fn(void *arg, const bg_record *r)
{
    run_ctx *c = arg;
    xform x;
    c->err = transform(c->m, c->target, c->box, r, &x, c->why, sizeof c->why);
    if (c->err == BG_ESCHEMA) {
        failure(c, c->m->id, r, c->why);
        c->err = 0;
    } else if (!c->err) {
        c->rep->records++;
        c->rep->changed += x.fresh || x.type != r->type;
        free(x.fresh);
    }
    tick(c);
    return c->err != 0;
}

static void batch_clear(run_ctx *c)
{
    for (size_t i = 0; i < c->nbatch; i++)
        bg__handle_free(c->s, (char *)c->batch[i].key);
    c->nbatch = 0;
    c->bytes = 0;
}

static bg_err batch_flush(run_ctx *c)
{
    bg_err err =
        c->nbatch ? bg__box_write_trusted(c->dst, c->batch, c->nbatch) : 0;
    batch_clear(c);
    return err;
}

static int write_fn(void *arg, const bg_record *r)
{
    run_ctx *c = arg;
    xform x;
    c->err = transform(c->m, c->target, c->box, r, &x, c->why, sizeof c->why);
    if (c->err == BG_ESCHEMA)
        c->err = bg__handle_fail(c->s, BG_ESCHEMA,
                                 "migration '%s', box '%s', key '%.*s': %s "
                                 "(passed the dry run: the transform is not "
                                 "deterministic)",
                                 c->m->id, c->box,
                                 (int)(r->key_len > 80 ? 80 : r->key_len),
                                 r->key, c->why);
    if (c->err)
        return 1;
    int changed = x.fresh != NULL || x.type != r->type;
    char *both = NULL;
    c->err = bg__handle_grow(c->s, &c->batch, c->nbatch, &c->capbatch,
                             sizeof *c->batch, 64);
    if (!c->err &&
        !(both = bg__handle_malloc(c->s, r->key_len + x.value_len + 1)))
        c->err = BG_ENOMEM;
    if (c->err) {
        free(x.fresh);
        return 1;
    }
    memcpy(both, r->key, r->key_len);
    memcpy(both + r->key_len, x.value, x.value_len);
    both[r->key_len + x.value_len] = '\0';
    free(x.fresh);
    c->batch[c->nbatch++] =
        (bg_write){0, both, r->key_len, x.type, both + r->key_len, x.value_len};
    c->bytes += r->key_len + x.value_len;
    c->rep->records++;
    c->rep->changed += changed;
    if (c->nbatch >= 256 || c->bytes >= (1u << 20))
        c->err = batch_flush(c);
    tick(c);
    return c->err != 0;
}

/* The staged record r must be the transform of the box's record. */
static int verify_fn(void *arg, const bg_record *r)
{
    run_ctx *c = arg;
    uint32_t t;
    char *v = NULL;
    size_t vlen;
    c->seen++;
    c->err = bg__box_get_raw(c->src, r->key, r->key_len, &t, &v, &vlen);
    if (c->err == BG_ENOTFOUND) {
        snprintf(c->why, sizeof c->why, "key '%.*s' is not in the box",
                 (int)(r->key_len > 80 ? 80 : r->key_len), r->key);
        c->err = BG_ECORRUPT;
        return 1;
    }
    if (c->err)
        return 1;
    bg_record in = {r->key, r->key_len, t, v, vlen, 0};
    xform x;
    c->err = transform(c->m, c->target, c->box, &in, &x, c->why, sizeof c->why);
    if (!c->err && (x.type != r->type || x.value_len != r->value_len ||
                    memcmp(x.value, r->value, r->value_len))) {
        snprintf(c->why, sizeof c->why,
                 "key '%.*s' differs from the transform of the original",
                 (int)(r->key_len > 80 ? 80 : r->key_len), r->key);
        c->err = BG_ECORRUPT;
    } else if (!c->err) {
        c->err = bg_registry_check(c->target, r->type, r->value, r->value_len,
                                   c->why, sizeof c->why);
        if (c->err && c->err != BG_ENOMEM)
            c->err = BG_ECORRUPT;
    } else if (c->err != BG_ENOMEM) {
        c->err = BG_ECORRUPT; /* the transform no longer takes the original */
    }
    free(x.fresh);
    bg__handle_free(c->s, v);
    tick(c);
    return c->err != 0;
}

static uint64_t box_records(bg_box *b)
{
    bg_box_stats st;
    bg_box_stats_of(b, &st);
    return st.records;
}

static bg_err step_backup(bg_store *s, const bg_migration *m, const char *rel)
{
    char dir[BG_PATH_MAX];
    bg__handle_path(s, dir, sizeof dir, BG__BACKUPS_DIR);
    BG_TRY(bg__handle_mkdir(s, dir));
    bg__handle_path(s, dir, sizeof dir, rel);
    BG_TRY(bg__handle_mkdir(s, dir));
    for (size_t i = 0; i < m->nboxes; i++) {
        char from[BG_PATH_MAX], to[BG_PATH_MAX], file[BG_BOX_NAME_MAX + 8];
        snprintf(file, sizeof file, "%s.box", m->boxes[i]);
        bg__handle_path(s, from, sizeof from, file);
        if (snprintf(to, sizeof to, "%s/%s", dir, file) >= (int)sizeof to)
            return BG_EINVALID;
        BG_TRY(bg__handle_copy_file(s, from, to));
    }
    bg_err err = bg__vfs_sync_dir(s, dir);
    BG_FAIL_IF(err, s, err, "cannot sync '%s'", dir);
    return 0;
}

/* The target adapters become the store's schema lock on commit: a box the
 * migration does not touch must not hold records of a typeId they leave
 * out, or those records could no longer be read. */
typedef struct type_check {
    const bg_registry *target;
    uint32_t missing; /* the first typeId without an adapter, or 0 */
} type_check;

static void type_fn(void *arg, uint32_t type)
{
    type_check *t = arg;
    if (type && !t->missing && !bg_registry_find(t->target, type))
        t->missing = type;
}

/* m is chain[n - 1]: in a dry run of a whole plan the boxes an earlier
 * migration of it changes are left to the run, which checks each. */
static bg_err check_untouched(bg_store *s, const bg_migration *chain, size_t n,
                              const bg_registry *target)
{
    const bg_migration *m = &chain[n - 1];
    bg__box_list ns;
    BG_TRY(bg__box_list_names(s, &ns));
    bg_err err = 0;
    for (size_t i = 0; i < ns.n && !err; i++) {
        int touched = bg__box_is_reserved(ns.v[i]);
        for (size_t k = 0; k < n && !touched; k++)
            for (size_t j = 0; j < chain[k].nboxes && !touched; j++)
                touched = !strcmp(chain[k].boxes[j], ns.v[i]);
        if (touched)
            continue;
        bg_box *b;
        if ((err = bg_box_open(s, ns.v[i], 0, &b)))
            break;
        type_check t = {target, 0};
        bg__box_each_type(b, type_fn, &t);
        if (t.missing)
            err = bg__handle_fail(
                s, BG_ESCHEMA,
                "migration '%s': box '%s', which it does not migrate, holds "
                "records of typeId %u, which its target adapters leave out "
                "(they would no longer be read); add that adapter to the "
                "plan's adapters; nothing changed",
                m->id, ns.v[i], (unsigned)t.missing);
    }
    bg__box_list_free(s, &ns);
    return err;
}

static bg_err step_dry_run(run_ctx *c)
{
    const bg_migration *m = c->m;
    uint64_t failed = c->rep->failed;
    for (size_t i = 0; i < m->nboxes; i++) {
        c->box = m->boxes[i];
        BG_TRY(bg_box_open(c->s, c->box, 0, &c->src));
        BG_TRY(bg__box_iterate_raw(c->src, dry_fn, c));
        BG_TRY(c->err);
    }
    BG_FAIL_IF(c->rep->failed > failed, c->s, BG_ESCHEMA,
               "migration '%s': %" PRIu64
               " records fail the dry run; nothing changed",
               m->id, c->rep->failed - failed);
    return check_untouched(c->s, m, 1, c->target);
}

static bg_err step_migrate(run_ctx *c)
{
    bg_store *s = c->s;
    const bg_migration *m = c->m;
    for (size_t i = 0; i < m->nboxes; i++) {
        c->box = m->boxes[i];
        char path[BG_PATH_MAX];
        bg__journal_box_file(s, c->box, BG__STAGE_MIG, path, sizeof path);
        bg_err err = bg__vfs_unlink(s, path);
        BG_FAIL_IF(err && err != BG_ENOTFOUND, s, err, "cannot remove '%s'",
                   path);
        BG_TRY(bg_box_open(s, c->box, 0, &c->src));
        int flags = BG_BOX_CREATE;
        if (bg__box_key_id(c->src))
            flags |= BG_BOX_ENCRYPT;
        BG_TRY(bg__box_open_staged(s, c->box, BG__STAGE_MIG, flags, &c->dst));
        err = bg__box_iterate_raw(c->src, write_fn, c);
        if (!err)
            err = c->err;
        if (!err)
            err = batch_flush(c);
        batch_clear(c);
        if (!err)
            err = bg_box_sync(c->dst);
        bg_err cerr = bg__box_close(c->dst);
        c->dst = NULL;
        BG_TRY(err ? err : cerr);
    }
    return 0;
}

static bg_err step_verify(run_ctx *c)
{
    bg_store *s = c->s;
    const bg_migration *m = c->m;
    for (size_t i = 0; i < m->nboxes; i++) {
        c->box = m->boxes[i];
        bg_box *staged;
        BG_TRY(bg_box_open(s, c->box, 0, &c->src));
        BG_TRY(bg__box_open_staged(s, c->box, BG__STAGE_MIG, 0, &staged));
        c->seen = 0;
        c->err = 0;
        bg_err err = bg_box_report_of(staged)->status == BG_BOX_CLEAN
                         ? bg__box_iterate_raw(staged, verify_fn, c)
                         : BG_ECORRUPT;
        if (!err)
            err = c->err;
        if (!err && (c->seen != box_records(c->src) ||
                     box_records(staged) != c->seen)) {
            err = BG_ECORRUPT;
            snprintf(c->why, sizeof c->why,
                     "%" PRIu64 " records written, %" PRIu64 " in the box",
                     c->seen, box_records(c->src));
        }
        bg_err cerr = bg__box_close(staged);
        BG_FAIL_IF(err == BG_ECORRUPT, s, BG_ECORRUPT,
                   "migration '%s': verification of box '%s' "
                   "failed: %s",
                   m->id, c->box, c->why);
        BG_TRY(err ? err : cerr);
    }
    return 0;
}

static cJSON *lock_json(const bg_registry *r)
{
    char *txt = bg_registry_to_json(r);
    cJSON *doc = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    return doc;
}

static cJSON *journal_new(bg_store *s, const bg_migration *m,
                          const bg_registry *target)
{
    cJSON *d = cJSON_CreateObject(), *boxes = cJSON_CreateArray();
    char backup[BG_MIGRATION_ID_MAX + 16];
    snprintf(backup, sizeof backup, "%s/%s", BG__BACKUPS_DIR, m->id);
    cJSON_AddNumberToObject(d, "format", 1);
    cJSON_AddStringToObject(d, "kind", "migrate");
    cJSON_AddStringToObject(d, "phase", "not_started");
    cJSON_AddStringToObject(d, "id", m->id);
    if (m->description)
        cJSON_AddStringToObject(d, "description", m->description);
    cJSON_AddNumberToObject(d, "from", m->from);
    cJSON_AddNumberToObject(d, "to", m->to);
    cJSON_AddNumberToObject(d, "version", m->to);
    for (size_t i = 0; i < m->nboxes; i++)
        (void)bg__json_push(boxes, cJSON_CreateString(m->boxes[i]));
    (void)bg__json_put(d, "boxes", boxes);
    cJSON_AddStringToObject(d, "backup", backup);
    cJSON_AddNumberToObject(d, "started_at", (double)bg__handle_now_ms(s));
    (void)bg__json_put(d, "lock", lock_json(target));
    (void)bg__json_put(d, "old_lock", lock_json(s->types));
    /* cJSON reports no allocation failure on the way: a document built
     * while one failed may lack a member. */
    if (!d || bg__json_failed() || bg__journal_name(s, d)) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

static bg_err run_one(bg_store *s, const bg_migration *m,
                      const bg_migrate_opts *o, bg_migrate_report *rep)
{
    const bg_registry *target = target_of(s, m, o);
    run_ctx c = {.s = s, .m = m, .target = target, .o = o, .rep = rep};
    /* One open (one scan) per box: it must exist and not be damaged, and
     * its writes so far are made durable before the backup copies it. */
    for (size_t i = 0; i < m->nboxes; i++) {
        bg_box *b;
        bg_err err = bg_box_open(s, m->boxes[i], 0, &b);
        BG_FAIL_IF(err == BG_ENOTFOUND, s, BG_EINVALID,
                   "migration '%s' names box '%s', which does "
                   "not exist",
                   m->id, m->boxes[i]);
        BG_TRY(err);
        const bg_box_report *r = bg_box_report_of(b);
        BG_FAIL_IF(r->status == BG_BOX_CORRUPT, s, BG_ECORRUPT,
                   "box '%s' is damaged at offset %" PRIu64
                   "; recover it before migrating",
                   m->boxes[i], r->first_damage);
        BG_TRY(bg_box_sync(b));
        c.total += box_records(b);
    }
    cJSON *doc = journal_new(s, m, target);
    if (!doc)
        return BG_ENOMEM;
    snprintf(rep->migration, sizeof rep->migration, "%s", m->id);
    uint64_t records = rep->records, changed = rep->changed;
    bg_err err = bg__journal_write(s, doc, "not_started");
    if (!err)
        err =
            step_backup(s, m, cJSON_GetObjectItem(doc, "backup")->valuestring);
    if (!err)
        err = bg__journal_write(s, doc, "backup_created");
    if (!err)
        err = step_dry_run(&c);
    /* The dry run counted the records; the write below counts them again. */
    rep->records = records, rep->changed = changed, c.done = 0;
    if (!err)
        err = bg__journal_write(s, doc, "dry_run_passed");
    if (!err)
        err = bg__journal_write(s, doc, "migrating");
    if (!err)
        err = step_migrate(&c);
    cJSON_AddNumberToObject(doc, "records", (double)(rep->records - records));
    if (!err)
        err = bg__vfs_sync_dir(s, s->dir);
    if (!err)
        err = bg__journal_write(s, doc, "migrated");
    if (!err)
        err = bg__journal_write(s, doc, "verifying");
    c.done = 0;
    if (!err)
        err = step_verify(&c);
    if (!err)
        err = bg__journal_write(s, doc, "verified");
    if (err) {
        /* Before the commit point: undo. Keep the first error's detail. */
        char detail[sizeof s->detail];
        snprintf(detail, sizeof detail, "%s", s->detail);
        if (!bg__journal_abort(s, doc, detail))
            bg__handle_fail(s, 0, "%.400s; rolled back", detail);
        else
            bg__handle_fail(s, 0,
                            "%.400s; the rollback could not be written "
                            "either: the next open of the store rolls it back",
                            detail);
        rep->records = records, rep->changed = changed;
    }
    if (!err)
        err = bg__journal_finish(s, doc);
    bg__handle_free(s, c.batch);
    cJSON_Delete(doc);
    return err;
}

/* The whole plan in memory: every record of every affected box through
 * the chain of the migrations that name its box, each step checked. */
typedef struct chain_ctx {
    run_ctx c;
    const bg_migration *m;
    size_t n;
    const char *box;
} chain_ctx;

static int chain_fn(void *arg, const bg_record *r)
{
    chain_ctx *cc = arg;
    run_ctx *c = &cc->c;
    bg_record cur = *r;
    char *owned = NULL;
    int changed = 0, failed = 0;
    for (size_t i = 0; i < cc->n && !c->err && !failed; i++) {
        int named = 0;
        for (size_t j = 0; j < cc->m[i].nboxes; j++)
            named |= !strcmp(cc->m[i].boxes[j], cc->box);
        if (!named)
            continue;
        xform x;
        c->err = transform(&cc->m[i], target_of(c->s, &cc->m[i], c->o), cc->box,
                           &cur, &x, c->why, sizeof c->why);
        if (c->err == BG_ESCHEMA) {
            c->box = cc->box;
            failure(c, cc->m[i].id, r, c->why);
            c->err = 0;
            failed = 1;
            break;
        }
        if (c->err)
            break;
        changed |= x.fresh || x.type != cur.type;
        cur.type = x.type;
        if (x.fresh) {
            free(owned);
            owned = x.fresh;
            cur.value = owned;
            cur.value_len = x.value_len;
        }
    }
    free(owned);
    if (!failed && !c->err) {
        c->rep->records++;
        c->rep->changed += changed;
    }
    tick(c);
    return c->err != 0;
}

static bg_err dry_run_plan(bg_store *s, const bg_migration *m, size_t n,
                           const bg_migrate_opts *o, bg_migrate_report *rep)
{
    chain_ctx cc = {.c = {.s = s, .o = o, .rep = rep}, .m = m, .n = n};
    for (size_t i = 0; i < n; i++) {
        snprintf(rep->migration, sizeof rep->migration, "%s", m[i].id);
        rep->version_after = m[i].to;
        BG_TRY(check_untouched(s, m, i + 1, target_of(s, &m[i], o)));
        for (size_t j = 0; j < m[i].nboxes; j++) {
            int seen = 0;
            for (size_t k = 0; k < i && !seen; k++)
                for (size_t l = 0; l < m[k].nboxes; l++)
                    seen |= !strcmp(m[k].boxes[l], m[i].boxes[j]);
            if (seen)
                continue;
            bg_box *b;
            bg_err err = bg_box_open(s, m[i].boxes[j], 0, &b);
            BG_FAIL_IF(err == BG_ENOTFOUND, s, BG_EINVALID,
                       "migration '%s' names box '%s', which "
                       "does not exist",
                       m[i].id, m[i].boxes[j]);
            BG_TRY(err);
            cc.box = m[i].boxes[j];
            cc.c.box = cc.box;
            cc.c.m = &m[i];
            cc.c.done = 0;
            cc.c.total = box_records(b);
            BG_TRY(bg__box_iterate_raw(b, chain_fn, &cc));
            BG_TRY(cc.c.err);
        }
    }
    BG_FAIL_IF(rep->failed, s, BG_ESCHEMA,
               "dry run: %" PRIu64 " records would fail", rep->failed);
    return 0;
}

bg_err bg_migrate_run(bg_store *s, const bg_migration *m, size_t n,
                      const bg_migrate_opts *o, bg_migrate_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    memset(rep, 0, sizeof *rep);
    BG_FAIL_IF(s->read_only && !(o && o->dry_run), s, BG_ESTATE,
               "store opened read-only");
    for (size_t i = 0; i < n; i++) {
        BG_TRY(check_migration(s, &m[i]));
        BG_FAIL_IF(i && m[i].from != m[i - 1].to, s, BG_EINVALID,
                   "migration '%s' starts at version %u, not "
                   "where '%s' ends (%u)",
                   m[i].id, (unsigned)m[i].from, m[i - 1].id,
                   (unsigned)m[i - 1].to);
    }
    uint32_t ver;
    BG_TRY(bg__meta_schema_version(s, &ver));
    rep->version_before = rep->version_after = ver;
    size_t first = 0;
    while (first < n && ver >= m[first].to) {
        first++;
        rep->skipped++;
    }
    BG_FAIL_IF(first < n && ver != m[first].from, s, BG_ESCHEMA,
               "the store is at schema version %u; migration "
               "'%s' starts at %u",
               (unsigned)ver, m[first].id, (unsigned)m[first].from);
    if (o && o->dry_run)
        return dry_run_plan(s, m + first, n - first, o, rep);
    for (size_t i = first; i < n; i++) {
        BG_TRY(run_one(s, &m[i], o, rep));
        rep->applied++;
        rep->version_after = m[i].to;
    }
    return 0;
}

/* ---- history, status, rollback ---------------------------------------- */

typedef struct hist_ctx {
    bg_migrate_history_fn fn;
    void *arg;
    unsigned n;
    bg_err err; /* out of memory reading a record: the walk stopped */
} hist_ctx;

static int hist_fn(void *arg, const bg_record *r)
{
    hist_ctx *h = arg;
    cJSON *doc;
    if ((h->err = bg__json_parse(r->value, r->value_len, &doc)) == BG_ENOMEM)
        return 1;
    h->err = 0;
    const char *ev = bg__json_str(doc, "event");
    int mine = ev && !strcmp(ev, "migration");
    cJSON_Delete(doc);
    if (!mine)
        return 0;
    h->n++;
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)r->key_len, r->key);
    return h->fn ? h->fn(h->arg, key, r->value, r->value_len) : 0;
}

static bg_err history(bg_store *s, hist_ctx *h)
{
    bg_box *audit;
    bg_err err = bg_box_open(s, BG__AUDIT_BOX, 0, &audit);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    BG_TRY(bg__box_iterate_raw(audit, hist_fn, h));
    return h->err;
}

bg_err bg_migrate_history(bg_store *s, bg_migrate_history_fn fn, void *arg)
{
    BG__JSON_SCOPE(&s->alloc);
    hist_ctx h = {fn, arg, 0, 0};
    return history(s, &h);
}

bg_err bg_migrate_get_status(bg_store *s, bg_migrate_status *st)
{
    BG__JSON_SCOPE(&s->alloc);
    memset(st, 0, sizeof *st);
    BG_TRY(bg__meta_schema_version(s, &st->version));
    snprintf(st->resolved, sizeof st->resolved, "%s", s->resolved);
    hist_ctx h = {NULL, NULL, 0, 0};
    BG_TRY(history(s, &h));
    st->history = h.n;
    return 0;
}

/* The committed migrations still in effect, as audit records: a stack
 * where each restored rollback takes off the migration it undid. */
typedef struct undo_ctx {
    cJSON *stack;
    bg_err err; /* out of memory: the walk stopped */
} undo_ctx;

static int undo_fn(void *arg, const char *key, const char *json, size_t len)
{
    undo_ctx *u = arg;
    cJSON *doc;
    if ((u->err = bg__json_parse(json, len, &doc)) == BG_ENOMEM)
        return 1;
    u->err = 0;
    const char *kind = bg__json_str(doc, "kind"),
               *outcome = bg__json_str(doc, "outcome");
    if (kind && outcome && !strcmp(kind, "migrate") &&
        !strcmp(outcome, "committed")) {
        if (bg__json_put(doc, "audit_key", cJSON_CreateString(key))) {
            cJSON_Delete(doc);
            doc = NULL;
        }
        if (bg__json_push(u->stack, doc)) { /* deletes doc */
            u->err = BG_ENOMEM;
            return 1;
        }
        return 0;
    }
    const char *undid = bg__json_str(doc, "rolls_back");
    if (kind && outcome && undid && !strcmp(kind, "rollback") &&
        !strcmp(outcome, "restored")) {
        for (int i = cJSON_GetArraySize(u->stack) - 1; i >= 0; i--) {
            const char *k =
                bg__json_str(cJSON_GetArrayItem(u->stack, i), "audit_key");
            if (k && !strcmp(k, undid)) {
                cJSON_DeleteItemFromArray(u->stack, i);
                break;
            }
        }
    }
    cJSON_Delete(doc);
    return 0;
}

static bg_err check_rollback(bg_store *s, const cJSON *top, uint32_t ver,
                             int *needs_force, int force)
{
    const char *id = bg__json_str(top, "id");
    BG_FAIL_IF(ver != (uint32_t)cJSON_GetObjectItem(top, "to")->valuedouble, s,
               BG_ESTATE,
               "the store is at schema version %u, not at the "
               "version migration '%s' left it",
               (unsigned)ver, id);
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(top, "boxes"))
    {
        const char *name = bg__json_str(b, "name");
        char rel[BG_PATH_MAX];
        int there;
        snprintf(rel, sizeof rel, "%s/%s.box", bg__json_str(top, "backup"),
                 name);
        BG_TRY(bg__handle_has(s, rel, &there));
        BG_FAIL_IF(!there, s, BG_ECORRUPT,
                   "the backup of box '%s' (%s) is missing; "
                   "cannot roll back migration '%s'",
                   name, rel, id);
        bg_box *box;
        BG_TRY(bg_box_open(s, name, 0, &box));
        bg_box_stats st;
        bg_box_stats_of(box, &st);
        if (!force &&
            (st.records !=
                 (uint64_t)cJSON_GetObjectItem(b, "records")->valuedouble ||
             st.next_seq !=
                 (uint64_t)cJSON_GetObjectItem(b, "next_seq")->valuedouble)) {
            *needs_force = 1;
            return bg__handle_fail(s, BG_ESTATE,
                                   "box '%s' was written after migration '%s' "
                                   "committed; rolling back would lose those "
                                   "writes (force to do it anyway)",
                                   name, id);
        }
    }
    return 0;
}

bg_err bg_migrate_rollback(bg_store *s, const bg_migrate_opts *o,
                           bg_migrate_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    memset(rep, 0, sizeof *rep);
    BG_FAIL_IF(s->read_only, s, BG_ESTATE, "store opened read-only");
    undo_ctx u = {cJSON_CreateArray(), 0};
    if (!u.stack)
        return BG_ENOMEM;
    cJSON *doc = NULL;
    uint32_t ver;
    bg_err err = bg__meta_schema_version(s, &ver);
    if (!err)
        err = bg_migrate_history(s, undo_fn, &u);
    if (!err)
        err = u.err;
    int n = cJSON_GetArraySize(u.stack);
    const cJSON *top = n ? cJSON_GetArrayItem(u.stack, n - 1) : NULL;
    if (!err && !top)
        err = bg__handle_fail(s, BG_ENOTFOUND,
                              "no committed migration to roll back");
    if (!err)
        err = check_rollback(s, top, ver, &rep->needs_force, o && o->force);
    if (err)
        goto out;
    doc = cJSON_CreateObject();
    const char *copy[] = {"id", "description", "from", "to", "backup"};
    for (size_t i = 0; i < sizeof copy / sizeof *copy; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(top, copy[i]);
        if (it)
            (void)bg__json_put(doc, copy[i], cJSON_Duplicate(it, 1));
    }
    cJSON *boxes = cJSON_AddArrayToObject(doc, "boxes");
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(top, "boxes"))(void)
        bg__json_push(boxes, cJSON_CreateString(bg__json_str(b, "name")));
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(top, "old_lock");
    if (old)
        (void)bg__json_put(doc, "lock", cJSON_Duplicate(old, 1));
    cJSON_AddNumberToObject(doc, "format", 1);
    cJSON_AddStringToObject(doc, "kind", "rollback");
    cJSON_AddNumberToObject(doc, "version",
                            cJSON_GetObjectItem(top, "from")->valuedouble);
    cJSON_AddNumberToObject(doc, "started_at", (double)bg__handle_now_ms(s));
    cJSON_AddStringToObject(doc, "rolls_back", bg__json_str(top, "audit_key"));
    cJSON_AddStringToObject(doc, "reason", "rollback requested");
    err = bg__json_failed() ? BG_ENOMEM : bg__journal_name(s, doc);
    if (err)
        goto out;
    snprintf(rep->migration, sizeof rep->migration, "%s",
             bg__json_str(top, "id"));
    rep->version_before = ver;
    err = bg__journal_write(s, doc, "rolling_back");
    if (!err)
        err = bg__journal_finish(s, doc);
    if (!err) {
        rep->applied = 1;
        rep->version_after =
            (uint32_t)cJSON_GetObjectItem(top, "from")->valuedouble;
    }
out:
    cJSON_Delete(doc);
    cJSON_Delete(u.stack);
    return err;
}
