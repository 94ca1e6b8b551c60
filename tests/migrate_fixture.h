/*
 * A store to migrate, shared by test_migrate.c, the crash enumeration and
 * fuzz_migration_crash: box "users" of User records (typeId 3) at schema
 * version 1, a plan that takes it to version 2 by adding a required field,
 * and the check that a store is entirely at one version or the other.
 */
#ifndef BOXGUARD_MIGRATE_FIXTURE_H
#define BOXGUARD_MIGRATE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MF_ADAPTERS_V1                                                         \
    "{\"adapters\":[{\"typeId\":3,\"name\":\"User\",\"version\":1,"            \
    "\"fields\":[{\"name\":\"id\",\"type\":\"integer\",\"required\":true},"    \
    "{\"name\":\"name\",\"type\":\"string\",\"required\":true}]}]}"

#define MF_ADAPTERS_V2                                                         \
    "{\"adapters\":[{\"typeId\":3,\"name\":\"User\",\"version\":2,"            \
    "\"fields\":[{\"name\":\"id\",\"type\":\"integer\",\"required\":true},"    \
    "{\"name\":\"name\",\"type\":\"string\",\"required\":true},"               \
    "{\"name\":\"email\",\"type\":\"string\",\"required\":true}]}]}"

/* Version 1 -> 2: every User gets a required email. */
#define MF_PLAN                                                                \
    "{\"migrations\":[{\"id\":\"user-email\",\"from\":1,\"to\":2,"             \
    "\"description\":\"users get a required email\",\"boxes\":[\"users\"],"    \
    "\"adapters\":" MF_ADAPTERS_V2 ","                                         \
    "\"ops\":[{\"op\":\"add\",\"type\":3,\"field\":\"email\","                 \
    "\"default\":\"\"}]}]}"

/* A plan with one operation of every kind, on box "things": User
 * records (typeId 3) become Thing records (typeId 4). */
#define MF_EVERY_OP                                                            \
    "{\"migrations\":[{\"id\":\"ops\",\"from\":1,\"to\":2,\"boxes\":"          \
    "[\"things\"],\"adapters\":{\"adapters\":[{\"typeId\":4,\"name\":"         \
    "\"Thing\",\"version\":2,\"fields\":[{\"name\":\"label\",\"type\":"        \
    "\"string\",\"required\":true},{\"name\":\"n\",\"type\":\"integer\"},"     \
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"bool\"}," \
    "{\"name\":\"tags\",\"type\":\"array\"},{\"name\":\"r\",\"type\":"         \
    "\"integer\"}]}]},\"ops\":["                                               \
    "{\"op\":\"rename\",\"type\":3,\"field\":\"name\",\"to\":\"label\"},"      \
    "{\"op\":\"remove\",\"type\":3,\"field\":\"legacy\"},"                     \
    "{\"op\":\"retype\",\"type\":3,\"field\":\"n\",\"to\":\"integer\","        \
    "\"conversion\":\"parse\"},"                                               \
    "{\"op\":\"retype\",\"type\":3,\"field\":\"s\",\"to\":\"string\","         \
    "\"conversion\":\"format\"},"                                              \
    "{\"op\":\"retype\",\"type\":3,\"field\":\"b\",\"to\":\"bool\","           \
    "\"conversion\":\"nonzero\"},"                                             \
    "{\"op\":\"retype\",\"type\":3,\"field\":\"tags\",\"to\":\"array\","       \
    "\"conversion\":\"wrap\"},"                                                \
    "{\"op\":\"retype\",\"type\":3,\"field\":\"r\",\"to\":\"integer\","        \
    "\"conversion\":\"round\"},"                                               \
    "{\"op\":\"move\",\"type\":3,\"to_type\":4},"                              \
    "{\"op\":\"add\",\"type\":4,\"field\":\"label\",\"default\":\"none\"}"     \
    "]}]}"

static inline void mf_old(int i, char *out, size_t cap)
{
    snprintf(out, cap, "{\"id\":%d,\"name\":\"user %d\"}", i, i);
}

static inline void mf_new(int i, char *out, size_t cap)
{
    snprintf(out, cap, "{\"id\":%d,\"name\":\"user %d\",\"email\":\"\"}", i, i);
}

static inline bg_err mf_registry(const char *manifest, bg_registry **out)
{
    *out = bg_registry_new();
    if (!*out)
        return BG_ENOMEM;
    return bg_registry_add_json(*out, manifest, strlen(manifest));
}

/* A transform that answers differently each time it is asked, so that
 * the verification (which transforms every record again) fails. */
static int mf_flaky_calls;
static inline bg_err mf_flaky(void *arg, const char *box, const bg_record *in,
                              uint32_t *type, char **value, size_t *vlen,
                              char *why, size_t cap)
{
    (void)arg, (void)box, (void)why, (void)cap;
    *type = in->type;
    char buf[64];
    snprintf(buf, sizeof buf, "{\"id\":1,\"name\":\"n%d\"}", mf_flaky_calls++);
    *vlen = strlen(buf);
    *value = malloc(*vlen + 1);
    if (!*value)
        return BG_ENOMEM;
    memcpy(*value, buf, *vlen + 1);
    return 0;
}

/* Store "s" on sim with n users (sealed when asked) and a box "notes" the
 * plan does not touch. */
static inline bg_err mf_setup(bg_sim *sim, int n, int sealed)
{
    bg_registry *r;
    bg_err err = mf_registry(MF_ADAPTERS_V1, &r);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    bg_store *s = NULL;
    bg_box *users, *notes;
    if (!err)
        err = bg_store_open("s", &o, &s);
    if (!err)
        err = bg_box_open(
            s, "users", BG_BOX_CREATE | (sealed ? BG_BOX_ENCRYPT : 0), &users);
    if (!err)
        err = bg_box_open(s, "notes", BG_BOX_CREATE, &notes);
    for (int i = 0; i < n && !err; i++) {
        char k[16], v[64];
        snprintf(k, sizeof k, "u%03d", i);
        mf_old(i, v, sizeof v);
        err = bg_box_put(users, k, strlen(k), 3, v, strlen(v));
    }
    if (!err)
        err = bg_box_put(notes, "n", 1, 0, "\"keep\"", 6);
    if (s) {
        bg_err cerr = bg_store_close(s);
        if (!err)
            err = cerr;
    }
    bg_registry_free(r);
    return err;
}

typedef struct mf_count {
    int n, old, fresh, other;
} mf_count;

static inline int mf_count_fn(void *arg, const bg_record *r)
{
    mf_count *c = arg;
    int i = -1;
    char want[64];
    if (r->key_len == 4 && sscanf(r->key, "u%3d", &i) == 1) {
        c->n++;
        mf_old(i, want, sizeof want);
        if (r->value_len == strlen(want) &&
            !memcmp(r->value, want, r->value_len))
            c->old++;
        mf_new(i, want, sizeof want);
        if (r->value_len == strlen(want) &&
            !memcmp(r->value, want, r->value_len))
            c->fresh++;
    } else {
        c->other++;
    }
    return 0;
}

/* Open the store for writing (which finishes or rolls back an interrupted
 * migration), then: the schema version is 1 with every user as it was, or
 * 2 with every user migrated; n users, nothing else; notes untouched; no
 * journal or staged file left. NULL, or what is wrong. */
static inline const char *mf_check(bg_sim *sim, int n, uint32_t *version)
{
    static char why[160];
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_err err = bg_store_open("s", &o, &s);
    if (err) {
        snprintf(why, sizeof why, "store does not open: %s", bg_strerror(err));
        return why;
    }
    const char *bad = NULL;
    bg_migrate_status st;
    bg_box *users, *notes;
    mf_count c = {0};
    if (bg_migrate_get_status(s, &st))
        bad = "no migration status";
    else if (bg_box_open(s, "users", 0, &users) ||
             bg_box_open(s, "notes", 0, &notes))
        bad = "a box does not open";
    else if (bg_box_report_of(users)->status != BG_BOX_CLEAN)
        bad = "users is damaged";
    else if (bg_box_iterate(users, mf_count_fn, &c))
        bad = "users cannot be read";
    else if (c.n != n || c.other)
        bad = "records lost or added";
    else if (st.version == 1 && c.old != n)
        bad = "schema version 1 but not every record is at version 1";
    else if (st.version == 2 && c.fresh != n)
        bad = "schema version 2 but not every record is at version 2";
    else if (st.version != 1 && st.version != 2)
        bad = "schema version is neither 1 nor 2";
    else if (!tu_has(notes, "n", "\"keep\""))
        bad = "a box the migration does not name changed";
    *version = st.version;
    (void)bg_store_close(s);
    uint8_t *buf;
    size_t len;
    if (!bad && !bg_sim_read_file(sim, "s/migration.journal", &buf, &len)) {
        free(buf);
        bad = "the journal is still there after a writable open";
    }
    if (!bad && !bg_sim_read_file(sim, "s/users.mig.box", &buf, &len)) {
        free(buf);
        bad = "a staged box is still there after a writable open";
    }
    return bad;
}

#endif
