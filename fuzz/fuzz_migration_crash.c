/*
 * Target Functions: bg_plan_parse, bg_migrate_run (backup, dry run,
 * migrate, verify, commit, roll back), the journal resolution of
 * bg_store_open, and the simulated disk's crash model.
 *
 * The input makes a random store (one box, plain or sealed, of records of
 * typeId 3 or 0 with fields of every JSON type), a random plan of rename,
 * add, remove, retype and move ops with target adapters that some records
 * may not fit, and a power loss at a random I/O operation of the run, in a
 * random crash mode. Properties, after a writable open: the schema version
 * is 1 and the box holds exactly the records it held, or it is 2 and the
 * box holds exactly what the plan's transform makes of each of them; a
 * plan some record cannot take never reaches 2; a run the power loss did
 * not reach ends at 2; no journal or staged box is left.
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

    /* The store, at version 1. */
    rec old[MAXREC], fresh[MAXREC];
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

    /* The plan, and what it makes of each record. */
    char plan[2048], op[256];
    char req[96] = "";
    if (require < 5)
        snprintf(req, sizeof req,
                 "{\"name\":\"f1\",\"type\":\"%s\",\"required\":true}",
                 jtypes[require]);
    size_t len = (size_t)snprintf(
        plan, sizeof plan,
        "{\"migrations\":[{\"id\":\"m\",\"from\":1,\"to\":2,\"boxes\":[\"a\"],"
        "\"adapters\":{\"adapters\":[{\"typeId\":3,\"name\":\"T\",\"version\":"
        "2,\"fields\":[%s]},{\"typeId\":4,\"name\":\"U\",\"version\":1}]},"
        "\"ops\":[",
        req);
    for (int i = 0; i < nops; i++) {
        make_op(&p, op, sizeof op);
        len += (size_t)snprintf(plan + len, sizeof plan - len, "%s%s",
                                i ? "," : "", op);
    }
    snprintf(plan + len, sizeof plan - len, "]}]}");
    bg_plan *pl;
    char detail[256];
    FUZZ_ASSERT_MSG(
        !bg_plan_parse(plan, strlen(plan), &pl, detail, sizeof detail),
        "%s: %s", detail, plan);
    const bg_migration *m = bg_plan_at(pl, 0);
    int fits = 1;
    for (int i = 0; i < n; i++) {
        bg_record in = {old[i].key,   strlen(old[i].key),   old[i].type,
                        old[i].value, strlen(old[i].value), 0};
        char *v = NULL, why[160];
        size_t vlen = 0;
        uint32_t t;
        bg_err err =
            m->transform(m->arg, "a", &in, &t, &v, &vlen, why, sizeof why);
        const char *nv = v ? v : old[i].value;
        FUZZ_ASSERT(strlen(nv) < sizeof fresh[i].value);
        if (!err)
            err = bg_registry_check(m->adapters, t, nv, strlen(nv), why,
                                    sizeof why);
        fits &= !err;
        fresh[i] = old[i];
        fresh[i].type = t;
        if (!err)
            snprintf(fresh[i].value, sizeof fresh[i].value, "%s", nv);
        free(v);
    }

    /* The run, with the power cut at operation crash_at of it. */
    o.registry = NULL;
    bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + crash_at);
    bg_migrate_report rep;
    bg_err run_err = BG_EIO;
    if (!bg_store_open("s", &o, &s)) {
        run_err = bg_migrate_run(s, m, 1, NULL, &rep);
        (void)bg_store_close(s);
    }
    int crashed = bg_sim_frozen(sim);
    FUZZ_ASSERT(!bg_sim_crash(sim, mode, seed));
    FUZZ_ASSERT(crashed || (run_err == 0) == fits);

    /* After the power cut. */
    FUZZ_ASSERT(!bg_store_open("s", &o, &s));
    bg_migrate_status st;
    FUZZ_ASSERT(!bg_migrate_get_status(s, &st));
    FUZZ_ASSERT(st.version == 1 || st.version == 2);
    FUZZ_ASSERT_MSG(st.version == 1 || fits, "a plan a record cannot take "
                                             "was committed");
    FUZZ_ASSERT(crashed || st.version == (fits ? 2u : 1u));
    FUZZ_ASSERT(!bg_box_open(s, "a", 0, &b));
    cmp_ctx c = {st.version == 2 ? fresh : old, n, 0, 0};
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
    bg_plan_free(pl);
    bg_sim_free(sim);
    return 0;
}
