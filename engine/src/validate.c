/*
 * Startup validation (see validate.h): a read-only open, then the checks
 * in order of what they can find, each adding a finding with its action.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "boxguard/validate.h"
#include "json_int.h"
#include "meta_int.h"
#include "box_int.h"
#include "handle_int.h"

const char *bg_readiness_name(bg_readiness r)
{
    switch (r) {
    case BG_READY:
        return "ready";
    case BG_NEEDS_MIGRATION:
        return "needs_migration";
    case BG_NEEDS_RECOVERY:
        return "needs_recovery";
    case BG_BLOCKED:
        return "blocked";
    }
    return "unknown";
}

__attribute__((format(printf, 5, 6))) static void
add(bg_validation *v, bg_readiness sev, const char *code, const char *action,
    const char *fmt, ...)
{
    if (sev > v->status)
        v->status = sev;
    if (v->nfindings < BG_VALIDATE_MAX_FINDINGS) {
        bg_finding *f = &v->findings[v->nfindings];
        f->severity = sev;
        snprintf(f->code, sizeof f->code, "%s", code);
        snprintf(f->action, sizeof f->action, "%s", action);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->message, sizeof f->message, fmt, ap);
        va_end(ap);
    }
    v->nfindings++;
}

bg_err bg_validate(const char *dir, const bg_validate_opts *o, bg_validation *v)
{
    memset(v, 0, sizeof *v); /* stored_version 0: not read */
    bg_store_opts so;
    bg_store_opts_init(&so);
    so.vfs = o ? o->vfs : NULL;
    so.read_only = 1;
    char detail[512] = "";
    so.detail = detail;
    so.detail_len = sizeof detail;
    int erasing = 0;
    so.erase_found = &erasing;
    bg_store *s;
    bg_err err = bg_store_open(dir, &so, &s);
    if (err == BG_ENOMEM)
        return err;
    if (err) {
        char action[160];
        snprintf(action, sizeof action,
                 "boxguard erase --store %s --yes finishes it (as does any "
                 "writable open)",
                 dir);
        if (erasing)
            add(v, BG_NEEDS_RECOVERY, "erase_interrupted", action,
                "a secure erase was interrupted (erase.intent is present): "
                "nothing is read from the store");
        else if (err == BG_ELOCKED)
            add(v, BG_BLOCKED, "store_locked", "wait for the other opener",
                "store '%s' is open in another process", dir);
        else if (err == BG_ENOTFOUND)
            add(v, BG_BLOCKED, "store_missing", "check the store path", "%s",
                detail);
        else
            add(v, BG_BLOCKED, "store_unreadable",
                "check the store's permissions and disk", "%s", detail);
        return 0;
    }
    BG__JSON_SCOPE(&s->alloc);
    /* Work that was interrupted comes first: the next open finishes it. */
    int journal;
    err = bg__handle_has(s, "migration.journal", &journal);
    if (err) {
        (void)bg_store_close(s);
        return err;
    }
    if (journal)
        add(v, BG_NEEDS_RECOVERY, "migration_interrupted",
            "open the store for writing (or `boxguard migrate status`) to "
            "finish or roll back the migration",
            "a migration was interrupted (migration.journal is present)");
    /* Adapters against the schema lock. */
    if (o && o->registry && s->types) {
        char first[256] = "";
        size_t n =
            bg__meta_schema_compare(s->types, o->registry, first, sizeof first);
        if (n)
            add(v, BG_BLOCKED, "adapters",
                "register the missing adapters, or accept the change "
                "explicitly (--accept-schema)",
                "%s (%zu finding%s against the schema lock)", first, n,
                n == 1 ? "" : "s");
    }
    /* The schema version. */
    err = bg__meta_schema_version(s, &v->stored_version);
    if (err == BG_ENOMEM) {
        (void)bg_store_close(s);
        return err;
    }
    if (err)
        add(v, BG_BLOCKED, "schema_unreadable",
            "restore meta.box from a backup", "%s", bg_store_detail(s));
    if (o && o->code_version) {
        if (v->stored_version > o->code_version)
            add(v, BG_BLOCKED, "schema_newer",
                "update the app; never downgrade stored data",
                "the store is at schema version %u, newer than the code's %u",
                (unsigned)v->stored_version, (unsigned)o->code_version);
        else if (v->stored_version < o->code_version)
            add(v, BG_NEEDS_MIGRATION, "schema_older",
                "run the migrations to the code's version",
                "the store is at schema version %u, older than the code's %u",
                (unsigned)v->stored_version, (unsigned)o->code_version);
    }
    /* Every box must open. */
    bg__box_list ns = {0};
    err = bg__box_list_names(s, &ns);
    for (size_t i = 0; i < ns.n && !err; i++) {
        bg_box_report r;
        bg_err e = bg_box_verify(s, ns.v[i], &r);
        char recover[160];
        snprintf(recover, sizeof recover,
                 "boxguard recover --store %s --box %s", dir, ns.v[i]);
        if (e == BG_EAUTH)
            add(v, BG_BLOCKED, "box_key",
                "restore the store's data key; nothing was changed", "%s",
                bg_store_detail(s));
        else if (e == BG_ENOMEM)
            err = e;
        else if (e)
            add(v, BG_NEEDS_RECOVERY, "box_damaged", recover,
                "box '%s' cannot be read: %s", ns.v[i], bg_strerror(e));
        else if (r.status == BG_BOX_CORRUPT)
            add(v, BG_NEEDS_RECOVERY, "box_damaged", recover,
                "box '%s' is damaged at offset %llu", ns.v[i],
                (unsigned long long)r.first_damage);
        else if (r.status == BG_BOX_TORN && r.tail_frames)
            add(v, BG_NEEDS_RECOVERY, "box_damaged_tail", recover,
                "box '%s' ends in a tail of %llu bytes at offset %llu in "
                "which %llu frame(s) verify (a synced batch damaged since, or "
                "a batch a crash cut short); recover keeps a copy of it",
                ns.v[i], (unsigned long long)r.lost_bytes,
                (unsigned long long)r.cut, (unsigned long long)r.tail_frames);
        else if (r.status == BG_BOX_TORN)
            add(v, BG_READY, "box_torn", "none: the next writable open cuts it",
                "box '%s' ends in a torn write of %llu bytes (a crash)",
                ns.v[i], (unsigned long long)r.lost_bytes);
    }
    bg__box_list_free(s, &ns);
    (void)bg_store_close(s);
    return err;
}
