/*
 * The runtime guardrails, each invariant driven to both sides of its
 * bound (at the bound it holds; one past it, it is violated with its
 * severity, what was measured and the bound), and the policy file.
 */
#include "boxguard/guard.h"
#include "box_int.h"
#include "meta_int.h"
#include "testutil.h"

static bg_guard_report rep;

static const bg_guard_result *find(const char *name)
{
    for (int i = 0; i < BG_GUARD_CHECKS; i++)
        if (!strcmp(rep.checks[i].name, name))
            return &rep.checks[i];
    return &rep.checks[BG_GUARD_CHECKS - 1];
}

/* Run the guard into rep; r the result of the invariant called name. */
#define GUARD(r, s, q, code, version, p, nm)                                   \
    do {                                                                       \
        CHECK_OK(bg_guard_check(s, q, code, version, p, &rep));                \
        r = find(nm);                                                          \
        CHECK_STR(r->name, nm);                                                \
    } while (0)

static bg_queue *queue(bg_store *s, uint32_t max_attempts)
{
    bg_queue_opts o;
    bg_queue_opts_init(&o);
    o.max_attempts = max_attempts;
    bg_queue *q = NULL;
    if (bg_queue_open(s, &o, &q)) {
        fprintf(stderr, "cannot open the queue\n");
        abort();
    }
    return q;
}

static void enqueue(bg_queue *q, bg_lane lane, const char *idem)
{
    uint64_t id;
    CHECK_OK(bg_queue_enqueue(q, lane, idem, "{\"op\":1}", 8, &id));
}

/* A fresh store with nothing in it: every invariant holds. */
static void test_healthy(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_guard_check(s, NULL, NULL, 0, NULL, &rep));
    CHECK_INT(rep.worst, ==, BG_GUARD_OK);
    for (int i = 0; i < BG_GUARD_CHECKS; i++) {
        CHECK_INT(rep.checks[i].severity, ==, BG_GUARD_OK);
        CHECK(rep.checks[i].message[0] != '\0'); /* every one evaluated */
        CHECK_STR(rep.checks[i].action, "");
    }
    CHECK_STR(rep.checks[0].message, "the store has no queue");
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* The key of the last op put into a pending_ops box, from its frames. */
typedef struct last_key {
    char key[128];
    uint16_t klen;
} last_key;

static bg_err grab(void *arg, const bg__frame_info *fi)
{
    last_key *f = arg;
    if (fi && !fi->del && fi->key[0] != '~') { /* the last op put: "c" */
        memcpy(f->key, fi->key, fi->klen);
        f->klen = fi->klen;
    }
    return 0;
}

/* The index, the box and a rebuild must agree, and the box hold only ops. */
static void test_pending_count(void)
{
    bg_sim *sim = bg_sim_new(2);
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_queue *q = queue(s, 5);
    enqueue(q, BG_LANE_NORMAL, "a");
    enqueue(q, BG_LANE_NORMAL, "b");
    enqueue(q, BG_LANE_NORMAL, "c");
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    CHECK_OK(bg_queue_ack(q, op.id));
    bg_queue_op_clear(&op);
    const bg_guard_result *r;
    GUARD(r, s, q, NULL, 0, NULL, "pending_count");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_INT(r->measured, ==, 2);
    CHECK_INT(r->bound, ==, 2);
    CHECK_CONTAINS(r->message, "2 in the index, 2 op records in pending_ops, "
                               "2 after a rebuild; 0 records that are no op");
    /* An op deleted behind the queue's back: the index still counts it. */
    bg_box *pb;
    CHECK_OK(bg_box_open(s, "pending_ops", 0, &pb));
    last_key fk = {"", 0};
    CHECK_OK(bg__box_scan_with(pb, grab, &fk));
    CHECK(fk.klen > 0);
    bg_write del = {1, fk.key, fk.klen, 0, NULL, 0};
    uint64_t off;
    uint32_t flen;
    CHECK_OK(bg__box_append_ext(pb, &del, 1, &off, &flen));
    GUARD(r, s, q, NULL, 0, NULL, "pending_count");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_INT(r->measured, ==, 2);
    CHECK_INT(r->bound, ==, 1);
    CHECK_CONTAINS(r->message, "2 in the index, 1 op records in pending_ops, "
                               "1 after a rebuild");
    CHECK_CONTAINS(r->action, "rebuild-index");
    CHECK_INT(rep.worst, ==, BG_GUARD_CRITICAL);
    /* The check changed nothing: still violated, until the index is
     * rebuilt (its action). */
    GUARD(r, s, q, NULL, 0, NULL, "pending_count");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_OK(bg_queue_rebuild(q));
    GUARD(r, s, q, NULL, 0, NULL, "pending_count");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_INT(r->measured, ==, 1);
    /* A record that is no op. */
    bg_write junk = {0, "junk", 4, 0, "1", 1};
    CHECK_OK(bg__box_append_ext(pb, &junk, 1, &off, &flen));
    GUARD(r, s, q, NULL, 0, NULL, "pending_count");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_CONTAINS(r->message, "; 1 records that are no op");
    junk.del = 1;
    CHECK_OK(bg__box_append_ext(pb, &junk, 1, &off, &flen));
    GUARD(r, s, q, NULL, 0, NULL, "pending_count");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    bg_queue_close(q);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* The emergency head, leased or failing, may wait up to the bound. */
static void test_emergency_lane(void)
{
    bg_sim *sim = bg_sim_new(3);
    int64_t t0 = tu_now;
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_queue *q = queue(s, 5);
    bg_guard_policy p;
    bg_guard_policy_init(&p);
    p.emergency_blocked_ms = 60000;
    enqueue(q, BG_LANE_NORMAL, "n");
    const bg_guard_result *r;
    GUARD(r, s, q, NULL, 0, &p, "emergency_lane");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_STR(r->message, "the emergency lane is empty");
    enqueue(q, BG_LANE_EMERGENCY, "e");
    /* Waiting, neither leased nor failed: not blocked, however long. */
    tu_now = t0 + 10 * 60000;
    GUARD(r, s, q, NULL, 0, &p, "emergency_lane");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_INT(r->measured, ==, 10 * 60000);
    /* Leased: at the bound it holds, one past it, it is blocked. */
    tu_now = t0;
    bg_queue_close(q);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
    sim = bg_sim_new(3);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    qo.lease_ms = 10 * 60000;
    CHECK_OK(bg_queue_open(s, &qo, &q));
    enqueue(q, BG_LANE_EMERGENCY, "e");
    bg_queue_op op;
    CHECK_OK(bg_queue_lease(q, &op));
    uint64_t eid = op.id;
    bg_queue_op_clear(&op);
    tu_now = t0 + 60000;
    GUARD(r, s, q, NULL, 0, &p, "emergency_lane");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_INT(r->measured, ==, 60000);
    CHECK_INT(r->bound, ==, 60000);
    tu_now = t0 + 60001;
    GUARD(r, s, q, NULL, 0, &p, "emergency_lane");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_CONTAINS(r->message, "has waited 60001 ms, leased, 0 failed");
    CHECK_CONTAINS(r->action, "emergency op");
    /* Failing: nacked (a failed delivery), not leased, past the bound. */
    int failed;
    CHECK_OK(bg_queue_nack(q, eid, "503", &failed));
    CHECK_INT(failed, ==, 0);
    GUARD(r, s, q, NULL, 0, &p, "emergency_lane");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_CONTAINS(r->message, "not leased, 1 failed deliveries");
    tu_now = t0 + 60000;
    GUARD(r, s, q, NULL, 0, &p, "emergency_lane");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    tu_now = t0;
    bg_queue_close(q);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* Every sensitive box sealed, its key present. */
static void test_encryption_policy(void)
{
    bg_sim *sim = bg_sim_new(4);
    bg_guard_policy p;
    bg_guard_policy_init(&p);
    p.nsensitive = 2;
    snprintf(p.sensitive[0], sizeof p.sensitive[0], "vault");
    snprintf(p.sensitive[1], sizeof p.sensitive[1], "tokens");
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    const bg_guard_result *r;
    GUARD(r, s, NULL, NULL, 0, &p, "encryption_policy");
    CHECK_INT(r->severity, ==, BG_GUARD_OK); /* nothing stored yet */
    CHECK_OK(bg_box_open(s, "vault", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    CHECK_OK(bg_box_open(s, "tokens", BG_BOX_CREATE, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    GUARD(r, s, NULL, NULL, 0, &p, "encryption_policy");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_INT(r->measured, ==, 1);
    CHECK_CONTAINS(r->message, "'tokens' (not sealed)");
    CHECK(!strstr(r->message, "vault"));
    p.nsensitive = 1; /* vault alone: sealed, its key there */
    GUARD(r, s, NULL, NULL, 0, &p, "encryption_policy");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_OK(bg_store_close(s));
    /* Its key gone. */
    const bg_vfs *vf = bg_sim_vfs(sim);
    CHECK_OK(vf->unlink(vf, "s/keys/1.key"));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    GUARD(r, s, NULL, NULL, 0, &p, "encryption_policy");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_CONTAINS(r->message, "'vault' (its key is missing)");
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* The code's adapters against the schema lock; the schema version. */
static void test_adapters_and_schema(void)
{
    bg_sim *sim = bg_sim_new(5);
    bg_registry *lock = bg_registry_new(), *same = bg_registry_new(),
                *renamed = bg_registry_new();
    bg_adapter note = {1, "Note", 1, NULL, 0}, memo = {1, "Memo", 1, NULL, 0};
    CHECK_OK(bg_registry_add(lock, &note));
    CHECK_OK(bg_registry_add(same, &note));
    CHECK_OK(bg_registry_add(renamed, &memo));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = lock;
    bg_store *s;
    CHECK_OK(bg_store_open("s", &o, &s));
    const bg_guard_result *r;
    GUARD(r, s, NULL, same, 0, NULL, "adapters");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    GUARD(r, s, NULL, renamed, 0, NULL, "adapters");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_INT(r->measured, >=, 1);
    CHECK_CONTAINS(r->message, "against the schema lock");
    GUARD(r, s, NULL, NULL, 0, NULL, "adapters");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    /* The schema version: stored 2. */
    CHECK_OK(bg__meta_set_schema(s, 2, NULL));
    GUARD(r, s, NULL, NULL, 2, NULL, "schema_version");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    GUARD(r, s, NULL, NULL, 1, NULL, "schema_version");
    CHECK_INT(r->severity, ==, BG_GUARD_CRITICAL);
    CHECK_INT(r->measured, ==, 2);
    CHECK_INT(r->bound, ==, 1);
    CHECK_CONTAINS(r->action, "never downgrade");
    GUARD(r, s, NULL, NULL, 3, NULL, "schema_version");
    CHECK_INT(r->severity, ==, BG_GUARD_WARNING);
    CHECK_CONTAINS(r->action, "migrations");
    CHECK_INT(rep.worst, ==, BG_GUARD_WARNING);
    GUARD(r, s, NULL, NULL, 0, NULL, "schema_version");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_OK(bg_store_close(s));
    bg_registry_free(lock);
    bg_registry_free(same);
    bg_registry_free(renamed);
    bg_sim_free(sim);
}

/* Failed ops up to the bound; the processing lock up to stale. */
static void test_failed_and_lock(void)
{
    bg_sim *sim = bg_sim_new(6);
    int64_t t0 = tu_now;
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_OFF, &s));
    bg_queue *q = queue(s, 1);
    bg_guard_policy p;
    bg_guard_policy_init(&p);
    p.failed_max = 3;
    for (int i = 0; i < 4; i++) {
        char idem[8];
        snprintf(idem, sizeof idem, "f%d", i);
        enqueue(q, BG_LANE_NORMAL, idem);
        bg_queue_op op;
        CHECK_OK(bg_queue_lease(q, &op));
        int failed;
        CHECK_OK(bg_queue_nack(q, op.id, "400", &failed));
        CHECK_INT(failed, ==, 1);
        bg_queue_op_clear(&op);
        const bg_guard_result *r;
        GUARD(r, s, q, NULL, 0, &p, "failed_ops");
        CHECK_INT(r->measured, ==, i + 1);
        CHECK_INT(r->severity, ==, i + 1 > 3 ? BG_GUARD_WARNING : BG_GUARD_OK);
    }
    CHECK_CONTAINS(rep.checks[5].action, "queue failed");
    p.lock_stale_ms = 120000;
    const bg_guard_result *r;
    GUARD(r, s, q, NULL, 0, &p, "processing_lock");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_STR(r->message, "the processing lock is free");
    int stale;
    CHECK_OK(bg_queue_lock(q, "worker-1", &stale));
    tu_now = t0 + 120000;
    GUARD(r, s, q, NULL, 0, &p, "processing_lock");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    CHECK_INT(r->measured, ==, 120000);
    tu_now = t0 + 120001;
    GUARD(r, s, q, NULL, 0, &p, "processing_lock");
    CHECK_INT(r->severity, ==, BG_GUARD_WARNING);
    CHECK_CONTAINS(r->message, "held by 'worker-1' for 120001 ms");
    CHECK_OK(bg_queue_unlock(q, "worker-1"));
    GUARD(r, s, q, NULL, 0, &p, "processing_lock");
    CHECK_INT(r->severity, ==, BG_GUARD_OK);
    tu_now = t0;
    bg_queue_close(q);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_policy_file(void)
{
    bg_guard_policy p;
    char why[256];
    const char *ok = "{\"failed_max\": 7, \"lock_stale_seconds\": 30, "
                     "\"emergency_blocked_seconds\": 90, "
                     "\"sensitive_boxes\": [\"vault\", \"tokens\"]}";
    CHECK_OK(bg_guard_policy_parse(ok, strlen(ok), &p, why, sizeof why));
    CHECK_INT(p.failed_max, ==, 7);
    CHECK_INT(p.lock_stale_ms, ==, 30000);
    CHECK_INT(p.emergency_blocked_ms, ==, 90000);
    CHECK_INT(p.nsensitive, ==, 2);
    CHECK_STR(p.sensitive[1], "tokens");
    CHECK_OK(bg_guard_policy_parse("{}", 2, &p, why, sizeof why));
    CHECK_INT(p.failed_max, ==, 20);
    CHECK_INT(p.lock_stale_ms, ==, 120000);
    CHECK_INT(p.emergency_blocked_ms, ==, 300000);
    static const struct {
        const char *json, *why;
    } bad[] = {
        {"[]", "one JSON object"},
        {"{\"failed_max\": -1}", "\"failed_max\" must be a whole number"},
        {"{\"failed_max\": 1.5}", "\"failed_max\" must be a whole number"},
        {"{\"lock_stale_seconds\": 0}", "a whole number of seconds from 1"},
        {"{\"emergency_blocked_seconds\": \"5\"}", "seconds from 1"},
        {"{\"sensitive_boxes\": \"vault\"}", "an array of at most 32"},
        {"{\"sensitive_boxes\": [\"\"]}", "an array of at most 32"},
        {"{\"sensitive_boxes\": [1]}", "an array of at most 32"},
        {"{\"failed_maximum\": 3}", "unknown member \"failed_maximum\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        CHECK_ERR(bg_guard_policy_parse(bad[i].json, strlen(bad[i].json), &p,
                                        why, sizeof why),
                  BG_EINVALID);
        CHECK_CONTAINS(why, bad[i].why);
    }
    char many[2048] = "{\"sensitive_boxes\": [";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"b%d\"",
                 i ? "," : "", i);
    strcat(many, "]}");
    CHECK_ERR(bg_guard_policy_parse(many, strlen(many), &p, why, sizeof why),
              BG_EINVALID);
    many[strlen(many) - 8] = '\0'; /* 32 boxes */
    strcat(many, "]}");
    CHECK_OK(bg_guard_policy_parse(many, strlen(many), &p, why, sizeof why));
    CHECK_INT(p.nsensitive, ==, 32);
}

int main(void)
{
    RUN(test_healthy);
    RUN(test_pending_count);
    RUN(test_emergency_lane);
    RUN(test_encryption_policy);
    RUN(test_adapters_and_schema);
    RUN(test_failed_and_lock);
    RUN(test_policy_file);
    return CHECK_DONE();
}
