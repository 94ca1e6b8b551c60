/*
 * Target Functions: bg_plan_parse, bg_migrate_run (backup, dry run,
 * migrate, verify, commit, roll back), the journal resolution of
 * bg_store_open, and the simulated disk's crash model.
 *
 * The input makes a random store (one box, plain or sealed, of records of
 * typeId 3 or 0 with fields of every JSON type), a random plan of rename,
 * add, remove, retype and move ops with target adapters that some records
 * may not fit (one migration, or two chained: 1 -> 2 -> 3), and a power
 * loss at a random I/O operation of the run, in a random crash mode; or
 * the same plan as a dry run, or the rollback of the committed migration
 * cut by the power loss, or the plan broken in one of several ways.
 * Properties, after a writable open: the schema version is v and the box
 * holds exactly what the plan's first v - 1 migrations make of each record
 * (v = 1: the records as they were); a migration some record cannot take
 * never commits; a run the power loss did not reach ends at the last
 * version every record can take; a dry run changes no byte and answers as
 * the checks do; a rollback ends at 1 or, cut short, at 1 or 2; a broken
 * plan is refused with BG_EINVALID and a detail; no journal or staged box
 * is left.
 */
#include "fuzz_helpers.h"

#define MAXREC 12

typedef struct rec {
    char key[16];
    uint32_t type;
    char value[512];
} rec;

static const char *fields[] = {"f0", "f1", "f2", "f3"};
static const char *jtypes[] = {"string", "number", "integer", "bool", "array"};
static const char *convs[][3] = {{"format", NULL, NULL},
                                 {"parse", NULL, NULL},
                                 {"parse", "truncate", "round"},
                                 {"parse", "nonzero", NULL},
                                 {"wrap", NULL, NULL}};

static void make_value(fuzz_producer *p, uint32_t type, char *out, size_t cap)
{
    static const char *vals[] = {"1",    "2.5",  "-3",    "\"12\"", "\"x\"",
                                 "true", "null", "[1,2]", "{}",     "\"true\""};
    if (type == 0 && fuzz_byte(p) % 4 == 0) {
        snprintf(out, cap, "%s", vals[fuzz_byte(p) % 10]);
        return;
    }
    size_t n = (size_t)snprintf(out, cap, "{");
    for (int f = 0; f < 4; f++) {
        uint8_t b = fuzz_byte(p);
        if (b % 3 == 0)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\":%s", n > 1 ? "," : "",
                              fields[f], vals[b % 10]);
    }
    snprintf(out + n, cap - n, "}");
}

/* One op of the plan, as JSON. */
static void make_op(fuzz_producer *p, char *out, size_t cap)
{
    uint8_t k = fuzz_byte(p) % 5, f = fuzz_byte(p) % 4, g = fuzz_byte(p) % 4;
    unsigned type = fuzz_byte(p) % 4 ? 3 : 0;
    switch (k) {
    case 0:
        snprintf(
            out, cap,
            "{\"op\":\"rename\",\"type\":%u,\"field\":\"%s\",\"to\":\"%s\"}",
            type, fields[f], fields[g]);
        break;
    case 1:
        snprintf(out, cap,
                 "{\"op\":\"add\",\"type\":%u,\"field\":\"%s\",\"default\":%s}",
                 type, fields[f], g % 2 ? "\"\"" : "0");
        break;
    case 2:
        snprintf(out, cap, "{\"op\":\"remove\",\"type\":%u,\"field\":\"%s\"}",
                 type, fields[f]);
        break;
    case 3: {
        uint8_t t = fuzz_byte(p) % 5, c = fuzz_byte(p) % 3;
        while (!convs[t][c])
            c--;
        snprintf(
            out, cap,
            "{\"op\":\"retype\",\"type\":%u,\"field\":\"%s\",\"to\":\"%s\","
            "\"conversion\":\"%s\"}",
            type, fields[f], jtypes[t], convs[t][c]);
        break;
    }
    default:
        snprintf(out, cap, "{\"op\":\"move\",\"type\":%u,\"to_type\":%u}", type,
                 type == 3 ? 4 : 3);
        break;
    }
}

static int find(const rec *r, int n, const char *key, size_t klen)
{
    for (int i = 0; i < n; i++)
        if (strlen(r[i].key) == klen && !memcmp(r[i].key, key, klen))
            return i;
    return -1;
}

typedef struct cmp_ctx {
    const rec *want;
    int n, seen, bad;
} cmp_ctx;

static int cmp_fn(void *arg, const bg_record *r)
{
    cmp_ctx *c = arg;
    int i = find(c->want, c->n, r->key, r->key_len);
    c->seen++;
    if (i < 0 || c->want[i].type != r->type ||
        strlen(c->want[i].value) != r->value_len ||
        memcmp(c->want[i].value, r->value, r->value_len))
        c->bad++;
    return 0;
}

/* What migration m makes of records in[0..n) into out; 1 when every one
 * fits m's target adapters. */
static int transform_all(const bg_migration *m, const rec *in, rec *out, int n)
{
    int fits = 1;
    for (int i = 0; i < n; i++) {
        bg_record r = {in[i].key,   strlen(in[i].key),   in[i].type,
                       in[i].value, strlen(in[i].value), 0};
        char *v = NULL, why[160];
        size_t vlen = 0;
        uint32_t t = in[i].type;
        bg_err err =
            m->transform(m->arg, "a", &r, &t, &v, &vlen, why, sizeof why);
        const char *nv = v ? v : in[i].value;
        FUZZ_ASSERT(strlen(nv) < sizeof out[i].value);
        if (!err)
            err = bg_registry_check(m->adapters, t, nv, strlen(nv), why,
                                    sizeof why);
        fits &= !err;
        out[i] = in[i];
        out[i].type = t;
        if (!err)
            snprintf(out[i].value, sizeof out[i].value, "%s", nv);
        free(v);
    }
    return fits;
}

/* One migration of the plan as JSON: from -> to, target adapters with T at
 * version `to` (a required field f1 of a type when require < 5), ops. */
static size_t make_migration(fuzz_producer *p, char *out, size_t cap,
                             unsigned from, int require, int nops)
{
    char req[96] = "", op[256];
    if (require < 5)
        snprintf(req, sizeof req,
                 "{\"name\":\"f1\",\"type\":\"%s\",\"required\":true}",
                 jtypes[require]);
    size_t len = (size_t)snprintf(
        out, cap,
        "{\"id\":\"m%u\",\"from\":%u,\"to\":%u,\"boxes\":[\"a\"],"
        "\"adapters\":{\"adapters\":[{\"typeId\":3,\"name\":\"T\",\"version\":"
        "%u,\"fields\":[%s]},{\"typeId\":4,\"name\":\"U\",\"version\":1}]},"
        "\"ops\":[",
        from, from, from + 1, from + 1, req);
    for (int i = 0; i < nops; i++) {
        make_op(p, op, sizeof op);
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", op);
    }
    len += (size_t)snprintf(out + len, cap - len, "]}");
    return len;
}

/* A plan made wrong in one of several ways; it must be refused. */
static void break_plan(fuzz_producer *p, char *plan, size_t cap)
{
    char *at;
    switch (fuzz_u32(p, 0, 4)) {
    case 0: /* versions that do not go up */
        if ((at = strstr(plan, "\"to\":2")))
            at[5] = '1';
        break;
    case 1: /* an unknown op */
        if ((at = strstr(plan, "\"op\":\"")))
            memcpy(at + 6, "zap", 3);
        break;
    case 2: /* a reserved box */
        if ((at = strstr(plan, "\"boxes\":[\"a\"]")))
            snprintf(at, cap - (size_t)(at - plan),
                     "\"boxes\":[\"meta\"],\"ops\":[]}]}");
        break;
    case 3: /* cut short */
        plan[strlen(plan) / 2] = '\0';
        break;
    default: /* no id */
        if ((at = strstr(plan, "\"id\":\"m1\",")))
            memmove(at, at + 10, strlen(at + 10) + 1);
        break;
    }
}

static void check_version(bg_sim *sim, bg_store_opts *o, const rec *const *at,
                          int n, uint32_t max, const char *plan)
{
    bg_store *s;
    bg_box *b;
    FUZZ_ASSERT(!bg_store_open("s", o, &s));
    bg_migrate_status st;
    FUZZ_ASSERT(!bg_migrate_get_status(s, &st));
    FUZZ_ASSERT_MSG(st.version >= 1 && st.version <= max, "version %u",
                    (unsigned)st.version);
    FUZZ_ASSERT(!bg_box_open(s, "a", 0, &b));
    cmp_ctx c = {at[st.version - 1], n, 0, 0};
    FUZZ_ASSERT(!bg_box_iterate(b, cmp_fn, &c));
    FUZZ_ASSERT_MSG(c.seen == n && !c.bad,
                    "version %u: %d of %d records, %d differ (plan %s)",
                    (unsigned)st.version, c.seen, n, c.bad, plan);
    FUZZ_ASSERT(!bg_store_close(s));
    uint8_t *buf;
    size_t blen;
    FUZZ_ASSERT(bg_sim_read_file(sim, "s/migration.journal", &buf, &blen) ==
                BG_ENOTFOUND);
    FUZZ_ASSERT(bg_sim_read_file(sim, "s/a.mig.box", &buf, &blen) ==
                BG_ENOTFOUND);
}

enum { RUN_ONE, RUN_DRY, RUN_CHAIN, RUN_ROLLBACK, RUN_BAD_PLAN };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_producer p = {data, size};
    int nrec = (int)fuzz_u32(&p, 0, MAXREC);
    int sealed = (int)fuzz_u32(&p, 0, 1);
    int nops = (int)fuzz_u32(&p, 1, 4);
    int require = (int)fuzz_u32(&p, 0, 5); /* 5: no required field */
    uint32_t crash_at = fuzz_u32(&p, 1, 400);
    bg_crash_mode mode = (bg_crash_mode)fuzz_u32(&p, 0, BG_CRASH_MODES - 1);
    uint64_t seed = fuzz_u32(&p, 0, 1000);
    int how = (int)fuzz_u32(&p, 0, 7);
    how = how < 4 ? RUN_ONE : how - 3; /* the plain run most often */

    /* The store, at version 1. */
    static rec old[MAXREC], fresh[MAXREC], fresh2[MAXREC];
    const char *v1 = "{\"adapters\":[{\"typeId\":3,\"name\":\"T\","
                     "\"version\":1,\"fields\":[]}]}";
    bg_registry *r1 = bg_registry_new();
    FUZZ_ASSERT(r1 && !bg_registry_add_json(r1, v1, strlen(v1)));
    bg_sim *sim = bg_sim_new(seed);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r1;
    bg_store *s;
    bg_box *b;
    FUZZ_ASSERT(!bg_store_open("s", &o, &s));
    FUZZ_ASSERT(!bg_box_open(
        s, "a", BG_BOX_CREATE | (sealed ? BG_BOX_ENCRYPT : 0), &b));
    int n = 0;
    for (int i = 0; i < nrec; i++) {
        rec *r = &old[n];
        snprintf(r->key, sizeof r->key, "k%02d", i);
        r->type = fuzz_byte(&p) % 3 ? 3 : 0;
        make_value(&p, r->type, r->value, sizeof r->value);
        if (!bg_box_put(b, r->key, strlen(r->key), r->type, r->value,
                        strlen(r->value)))
            n++;
    }
    FUZZ_ASSERT(!bg_store_close(s));
    bg_registry_free(r1);

    /* The plan (one migration, or two chained), and what it makes of each
     * record. */
    char plan[4096];
    size_t len = (size_t)snprintf(plan, sizeof plan, "{\"migrations\":[");
    len += make_migration(&p, plan + len, sizeof plan - len, 1, require, nops);
    if (how == RUN_CHAIN) {
        plan[len++] = ',';
        len += make_migration(&p, plan + len, sizeof plan - len, 2,
                              (int)fuzz_u32(&p, 0, 5), (int)fuzz_u32(&p, 1, 3));
    }
    snprintf(plan + len, sizeof plan - len, "]}");
    bg_plan *pl;
    char detail[256];
    if (how == RUN_BAD_PLAN) {
        break_plan(&p, plan, sizeof plan);
        bg_err err =
            bg_plan_parse(plan, strlen(plan), &pl, detail, sizeof detail);
        if (!err) { /* the break did not apply (e.g. no op to rename) */
            bg_plan_free(pl);
        } else {
            FUZZ_ASSERT_MSG(err == BG_EINVALID && detail[0],
                            "a bad plan: %s, '%s'", bg_err_name(err), detail);
        }
        bg_sim_free(sim);
        return 0;
    }
    FUZZ_ASSERT_MSG(
        !bg_plan_parse(plan, strlen(plan), &pl, detail, sizeof detail),
        "%s: %s", detail, plan);
    const bg_migration *m = bg_plan_at(pl, 0);
    size_t nm = bg_plan_count(pl);
    int fits = transform_all(m, old, fresh, n);
    int fits2 = nm > 1 ? transform_all(bg_plan_at(pl, 1), fresh, fresh2, n) : 1;
    const rec *const at[] = {old, fresh, fresh2};
    o.registry = NULL;

    if (how == RUN_DRY) { /* nothing written, the verdict of the checks */
        uint8_t *before, *after;
        size_t bn, an;
        FUZZ_ASSERT(!bg_sim_read_file(sim, "s/a.box", &before, &bn));
        bg_migrate_opts mo = {0};
        mo.dry_run = 1;
        bg_migrate_report rep;
        FUZZ_ASSERT(!bg_store_open("s", &o, &s));
        bg_err err = bg_migrate_run(s, m, nm, &mo, &rep);
        FUZZ_ASSERT(!bg_store_close(s));
        FUZZ_ASSERT_MSG((err == 0) == fits, "dry run: %s, fits %d",
                        bg_err_name(err), fits);
        FUZZ_ASSERT(!bg_sim_read_file(sim, "s/a.box", &after, &an));
        FUZZ_ASSERT(an == bn && !memcmp(before, after, bn));
        free(before);
        free(after);
        check_version(sim, &o, at, n, 1, plan);
        bg_plan_free(pl);
        bg_sim_free(sim);
        return 0;
    }

    bg_migrate_report rep;
    if (how == RUN_ROLLBACK) { /* migrate, then the cut rollback */
        FUZZ_ASSERT(!bg_store_open("s", &o, &s));
        bg_err err = bg_migrate_run(s, m, nm, NULL, &rep);
        FUZZ_ASSERT(!bg_store_close(s));
        FUZZ_ASSERT((err == 0) == fits);
        if (err) {
            bg_plan_free(pl);
            bg_sim_free(sim);
            return 0;
        }
        bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + crash_at);
        if (!bg_store_open("s", &o, &s)) {
            err = bg_migrate_rollback(s, NULL, &rep);
            (void)bg_store_close(s);
        }
        int crashed = bg_sim_frozen(sim);
        FUZZ_ASSERT(!bg_sim_crash(sim, mode, seed));
        FUZZ_ASSERT_MSG(crashed || err == 0, "rollback: %s", bg_err_name(err));
        check_version(sim, &o, at, n, 2, plan);
        if (!crashed) { /* and it went back to 1 */
            FUZZ_ASSERT(!bg_store_open("s", &o, &s));
            bg_migrate_status st;
            FUZZ_ASSERT(!bg_migrate_get_status(s, &st));
            FUZZ_ASSERT(st.version == 1);
            FUZZ_ASSERT(!bg_store_close(s));
        }
        bg_plan_free(pl);
        bg_sim_free(sim);
        return 0;
    }

    /* The run, with the power cut at operation crash_at of it. */
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + crash_at);
    bg_err run_err = BG_EIO;
    if (!bg_store_open("s", &o, &s)) {
        run_err = bg_migrate_run(s, m, nm, NULL, &rep);
        (void)bg_store_close(s);
    }
    int crashed = bg_sim_frozen(sim);
    FUZZ_ASSERT(!bg_sim_crash(sim, mode, seed));
    FUZZ_ASSERT(crashed || (run_err == 0) == (fits && fits2));

    /* After the power cut: at some version, every record as it was made
     * at it; a migration a record cannot take never committed. */
    FUZZ_ASSERT(!bg_store_open("s", &o, &s));
    bg_migrate_status st;
    FUZZ_ASSERT(!bg_migrate_get_status(s, &st));
    FUZZ_ASSERT(!bg_store_close(s));
    FUZZ_ASSERT_MSG(st.version == 1 || fits, "a plan a record cannot take "
                                             "was committed");
    FUZZ_ASSERT_MSG(st.version <= 2 || fits2, "a second migration a record "
                                              "cannot take was committed");
    uint32_t want = !fits ? 1 : nm > 1 && fits2 ? 3 : 2;
    FUZZ_ASSERT(crashed || st.version == want);
    check_version(sim, &o, at, n, (uint32_t)nm + 1, plan);
    bg_plan_free(pl);
    bg_sim_free(sim);
    return 0;
}
