/*
 * The audit log: every event recorded with its time from the store's
 * clock and its details (a recovery with the exact ranges lost, a key
 * rotation, migrations applied and rolled back, a stale lock taken), the
 * export lines with their payload redacted or kept, the export file, and
 * an unreadable record refused.
 */
#include "erase_store.h"
#include "box_int.h"
#include "testutil.h"

#define MAXREC 16

typedef struct seen {
    size_t n;
    char event[MAXREC][40];
    char json[MAXREC][1024];
    int64_t at[MAXREC];
} seen;

static int collect(void *arg, const bg_audit_record *r)
{
    seen *s = arg;
    if (s->n < MAXREC) {
        snprintf(s->event[s->n], sizeof s->event[0], "%s", r->event);
        snprintf(s->json[s->n], sizeof s->json[0], "%.*s", (int)r->json_len,
                 r->json);
        s->at[s->n] = r->at_ms;
    }
    s->n++;
    return 0;
}

static void test_recovery_is_recorded(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "k1", "1"));
    CHECK_OK(tu_put(b, "k2", "2"));
    CHECK_OK(bg_store_close(s));
    /* A clean box: a recover records nothing. */
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_box_report rep;
    CHECK_OK(bg_recover_box(s, "b", &rep));
    seen sn = {0};
    CHECK_OK(bg_audit_list(s, collect, &sn));
    CHECK_INT(sn.n, ==, 0);
    CHECK_OK(bg_store_close(s));
    /* Damage in the first frame, a frame after it: corruption. */
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &f, &len));
    f[BG__BOX_HDR_SIZE + BG__FRAME_HDR] ^= 1;
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len));
    free(f);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_recover_box(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_CORRUPT);
    CHECK_OK(bg_audit_list(s, collect, &sn));
    CHECK_INT(sn.n, ==, 1);
    CHECK_STR(sn.event[0], "corruption_recovery");
    CHECK_INT(sn.at[0], ==, tu_now);
    char want[512];
    snprintf(want, sizeof want,
             "{\"event\":\"corruption_recovery\",\"at\":%lld,\"box\":\"b\","
             "\"damage\":\"corrupt\",\"lost_bytes\":%llu,\"frames_kept\":1,"
             "\"ranges\":[[%llu,%llu]],\"damaged_ranges\":1,\"quarantine\":"
             "\"s/quarantine/b_corrupted_20261122.bak\"}",
             (long long)tu_now, (unsigned long long)rep.lost_bytes,
             (unsigned long long)rep.ranges[0].off,
             (unsigned long long)rep.ranges[0].len);
    CHECK_STR(sn.json[0], want);
    CHECK_INT(rep.ranges[0].off, ==, BG__BOX_HDR_SIZE);
    CHECK_INT(rep.lost_bytes, >, 0);
    CHECK_OK(bg_store_close(s));

    /* A torn tail cut by recover: recorded with where it was cut. */
    CHECK_OK(bg_sim_read_file(sim, "s/b.box", &f, &len));
    CHECK_OK(bg_sim_write_file(sim, "s/b.box", f, len - 3));
    free(f);
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    tu_now += 1000;
    CHECK_OK(bg_recover_box(s, "b", &rep));
    CHECK_INT(rep.status, ==, BG_BOX_TORN);
    sn.n = 0;
    CHECK_OK(bg_audit_list(s, collect, &sn));
    CHECK_INT(sn.n, ==, 2);
    CHECK_INT(sn.at[1], ==, tu_now);
    CHECK_CONTAINS(sn.json[1], "\"damage\":\"torn_tail\"");
    char cut[64];
    snprintf(cut, sizeof cut, "\"cut\":%llu", (unsigned long long)rep.cut);
    CHECK_CONTAINS(sn.json[1], cut);
    tu_now -= 1000;
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_rotation_migration_and_lock_are_recorded(void)
{
    bg_sim *sim = bg_sim_new(2);
    es_store e;
    /* A sealed box, and a migration (applied). */
    CHECK_OK(es_build(sim, ES_SEALED | ES_BACKUP, 2, &e));
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_rekey_report rr;
    CHECK_OK(bg_rekey_run(s, &rr));
    bg_migrate_report mr;
    CHECK_OK(bg_migrate_rollback(s, &(bg_migrate_opts){0}, &mr));
    bg_queue *q;
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    CHECK_OK(bg_queue_open(s, &qo, &q));
    int stale;
    CHECK_OK(bg_queue_lock(q, "w1", &stale));
    int64_t saved = tu_now;
    tu_now += 121 * 1000;
    CHECK_OK(bg_queue_lock(q, "w2", &stale));
    CHECK_INT(stale, ==, 1);
    bg_queue_close(q);
    seen sn = {0};
    CHECK_OK(bg_audit_list(s, collect, &sn));
    CHECK_INT(sn.n, ==, 4);
    CHECK_STR(sn.event[0], "migration");
    CHECK_CONTAINS(sn.json[0], "\"outcome\":\"committed\"");
    CHECK_STR(sn.event[1], "key_rotation");
    char want[256];
    snprintf(want, sizeof want,
             "{\"event\":\"key_rotation\",\"at\":%lld,\"key_id\":\"%08x\","
             "\"boxes\":1,\"resealed\":1,\"keys_removed\":1}",
             (long long)saved, (unsigned)rr.key_id);
    CHECK_STR(sn.json[1], want);
    CHECK_STR(sn.event[2], "migration");
    CHECK_CONTAINS(sn.json[2], "\"rolls_back\"");
    CHECK_STR(sn.event[3], "stale_queue_lock_taken");
    CHECK_INT(sn.at[3], ==, tu_now);
    tu_now = saved;
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

typedef struct lines {
    bg_store *s;
    int redact;
    char out[MAXREC][1024];
    size_t n;
} lines;

static int line_of(void *arg, const bg_audit_record *r)
{
    lines *l = arg;
    char *line;
    size_t len;
    if (bg_audit_line(l->s, r, l->redact, &line, &len))
        return 1;
    if (l->n < MAXREC)
        snprintf(l->out[l->n], sizeof l->out[0], "%.*s", (int)len, line);
    l->n++;
    bg_store_free(l->s, line);
    return 0;
}

static void test_export_redacts(void)
{
    bg_sim *sim = bg_sim_new(3);
    es_store e;
    CHECK_OK(es_build(sim, ES_QUARANTINE | ES_BACKUP, 3, &e));
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_box_report rep;
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "s/hurt.box", &f, &len));
    CHECK_OK(bg_sim_write_file(sim, "s/hurt.box", f, len - 2));
    free(f);
    CHECK_OK(bg_recover_box(s, "hurt", &rep));
    lines red = {s, 1, {{0}}, 0}, full = {s, 0, {{0}}, 0};
    CHECK_OK(bg_audit_list(s, line_of, &red));
    CHECK_OK(bg_audit_list(s, line_of, &full));
    CHECK_INT(red.n, ==, 2);
    CHECK_INT(full.n, ==, 2);
    for (size_t i = 0; i < red.n; i++) {
        CHECK_CONTAINS(red.out[i], ",\"payload\":{\"redacted\":true}}");
        /* Nothing of the payload is left: no box, no path, no id (a key
         * names at most a migration's id, which is the code's). */
        const char *p = strstr(red.out[i], "\"payload\"");
        CHECK(!strstr(red.out[i], "hurt") && !strstr(p, "m1"));
        CHECK(!strstr(red.out[i], "quarantine"));
        CHECK(strstr(full.out[i], "\"payload\":{\"redacted\":true}") == NULL);
    }
    /* The envelope is the same; the payload is the record less it. */
    CHECK(!strncmp(red.out[1], full.out[1],
                   (size_t)(strstr(red.out[1], "\"payload\"") - red.out[1])));
    CHECK_CONTAINS(full.out[1], "\"event\":\"corruption_recovery\",\"payload\":"
                                "{\"box\":\"hurt\",\"damage\":\"torn_tail\"");
    CHECK(!strstr(strstr(full.out[1], "\"payload\""), "\"event\""));
    CHECK(!strstr(strstr(full.out[1], "\"payload\""), "\"at\""));
    CHECK_CONTAINS(full.out[0],
                   "\"payload\":{\"kind\":\"migrate\",\"id\":\"m1\"");

    /* The export file: every line, redacted, written whole. */
    CHECK_OK(bg_sim_mkdir(sim, "out"));
    uint64_t n;
    CHECK_OK(bg_audit_export(s, "out/audit.jsonl", 1, &n));
    CHECK_INT(n, ==, 2);
    CHECK_OK(bg_sim_read_file(sim, "out/audit.jsonl", &f, &len));
    char want[2200];
    snprintf(want, sizeof want, "%s\n%s\n", red.out[0], red.out[1]);
    CHECK_INT(len, ==, strlen(want));
    CHECK(!memcmp(f, want, len));
    free(f);
    CHECK_ERR(bg_sim_read_file(sim, "out/audit.jsonl.tmp", &f, &len),
              BG_ENOTFOUND);
    CHECK_OK(bg_audit_export(s, "out/full.jsonl", 0, &n));
    CHECK_OK(bg_sim_read_file(sim, "out/full.jsonl", &f, &len));
    snprintf(want, sizeof want, "%s\n%s\n", full.out[0], full.out[1]);
    CHECK(len == strlen(want) && !memcmp(f, want, len));
    free(f);
    /* A failed write leaves the old file as it was. */
    CHECK_OK(bg_sim_read_file(sim, "out/audit.jsonl", &f, &len));
    bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + 6, BG_EIO);
    bg_err err = bg_audit_export(s, "out/audit.jsonl", 0, &n);
    bg_sim_fail_at(sim, 0, 0);
    CHECK(err == BG_EIO);
    CHECK_CONTAINS(bg_store_detail(s), "cannot write the audit export");
    uint8_t *g;
    size_t glen;
    CHECK_OK(bg_sim_read_file(sim, "out/audit.jsonl", &g, &glen));
    CHECK(glen == len && !memcmp(f, g, len));
    free(f);
    free(g);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

/* A record that is not a JSON object with an event is refused, named. */
static void test_unreadable_record(void)
{
    bg_sim *sim = bg_sim_new(4);
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    const char *bad[] = {"[1]", "{\"at\":1}", "{\"event\":7}", "\"x\""};
    for (size_t i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "bad-%zu", i);
        bg_box *w;
        CHECK_OK(bg_box_open(s, "audit", BG_BOX_CREATE, &w));
        CHECK_OK(bg__box_put_internal(w, key, bad[i], strlen(bad[i])));
        seen sn = {0};
        CHECK_ERR(bg_audit_list(s, collect, &sn), BG_ECORRUPT);
        char want[64];
        snprintf(want, sizeof want, "audit record '%s' is unreadable", key);
        CHECK_CONTAINS(bg_store_detail(s), want);
        CHECK_INT(sn.n, ==, 0);
        bg_box *a;
        CHECK_OK(bg_box_open(s, "audit", 0, &a));
        CHECK_OK(bg__box_del_own(a, key, strlen(key)));
    }
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

int main(void)
{
    RUN(test_recovery_is_recorded);
    RUN(test_rotation_migration_and_lock_are_recorded);
    RUN(test_export_redacts);
    RUN(test_unreadable_record);
    return CHECK_DONE();
}
