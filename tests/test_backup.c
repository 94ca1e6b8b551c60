/*
 * Encrypted backups: what a backup holds comes back record for record; a
 * wrong key is told from damage; every truncation at a chunk boundary and
 * at every byte of the last chunk, every flipped byte of the header, a
 * flipped byte in each chunk, chunks dropped, duplicated, reordered and
 * spliced from another backup, and bytes after the final chunk are each
 * refused with their own error, the chunk named.
 */
#define _GNU_SOURCE
#include <sodium.h>

#include "backup_int.h"
#include "backup_plain.h"
#include "erase_store.h"
#include "sodium_seed.h"
#include "testutil.h"

#define HDR   112
#define CHUNK (BG_BACKUP_CHUNK + 17)

static const uint8_t raw[32] = "0123456789abcdef0123456789abcdef";
static const bg_backup_key rawkey = {BG_BACKUP_RAW_KEY, raw, 32, 0, 0};

typedef struct recs {
    char lines[4096][96];
    size_t n;
} recs;

static int keep(void *arg, const char *box, const bg_record *r)
{
    recs *c = arg;
    if (!strcmp(box, "audit"))
        return 0; /* the store's holds the backup's own record too */
    if (c->n < 4096)
        snprintf(c->lines[c->n], sizeof c->lines[0], "%s|%.*s|%u|%.*s", box,
                 (int)r->key_len, r->key, (unsigned)r->type,
                 r->value_len > 40 ? 6 : (int)r->value_len,
                 r->value_len > 40 ? "(long)" : r->value);
    c->n++;
    return 0;
}

typedef struct store_recs {
    recs *c;
    const char *box;
} store_recs;

static int keep_store(void *arg, const bg_record *r)
{
    store_recs *sr = arg;
    bg_record copy = *r;
    return keep(sr->c, sr->box, &copy);
}

static int add_box(void *arg, const char *name)
{
    char(*names)[72] = arg;
    for (int i = 0; i < 32; i++)
        if (!names[i][0]) {
            snprintf(names[i], sizeof names[i], "%s", name);
            break;
        }
    return 0;
}

/* A store with every kind of box and a box of random text, big enough for
 * several chunks after compression. */
static bg_err big_store(bg_sim *sim)
{
    es_store e;
    bg_err err = es_build(sim, ES_ALL, 9, &e);
    bg_store *s;
    bg_box *b;
    if (!err)
        err = tu_open_box(sim, "noise", BG_BOX_CREATE, &s, &b);
    if (err)
        return err;
    char v[1024];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 300 && !err; i++) {
        v[0] = '"';
        for (int j = 1; j < 1000; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v[j] = "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36];
        }
        v[1000] = '"';
        char k[16];
        snprintf(k, sizeof k, "n%03d", i);
        err = bg_box_put(b, k, strlen(k), 0, v, 1001);
    }
    bg_err cerr = bg_store_close(s);
    return err ? err : cerr;
}

static bg_err make_backup(bg_sim *sim, const char *path, const bg_backup_key *k,
                          bg_backup_info *info)
{
    bg_store *s;
    BG_TRY(tu_open(sim, BG_DURABILITY_FULL, &s));
    bg_err err = bg_backup_create(s, path, k, 0, info);
    bg_err cerr = bg_store_close(s);
    return err ? err : cerr;
}

static bg_backup_info info;
static char detail[512];

static bg_err read_it(bg_sim *sim, const char *path, const bg_backup_key *k)
{
    return bg_backup_read(path, bg_sim_vfs(sim), k, NULL, NULL, &info, detail,
                          sizeof detail);
}

static void test_round_trip(void)
{
    bg_sim *sim = bg_sim_new(1);
    CHECK_OK(big_store(sim));
    CHECK_OK(bg_sim_mkdir(sim, "bk"));
    bg_backup_info made;
    CHECK_OK(make_backup(sim, "bk/a.bgb", &rawkey, &made));
    CHECK_INT(made.chunks, >=, 3);
    CHECK_ERR(
        bg_sim_read_file(sim, "bk/a.bgb.tmp", &(uint8_t *){0}, &(size_t){0}),
        BG_ENOTFOUND);
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "bk/a.bgb", &f, &len));
    CHECK_INT(len, ==, made.file_bytes);
    CHECK_INT(len, ==,
              HDR + (made.chunks - 1) * CHUNK +
                  (len - HDR - (made.chunks - 1) * CHUNK));
    CHECK(!memcmp(f, "BGBACKUP", 8));
    /* No record's bytes are in the clear. */
    CHECK(!memmem(f, len, "MRK", 3));
    free(f);

    static recs got, want;
    got.n = want.n = 0;
    CHECK_OK(bg_backup_read("bk/a.bgb", bg_sim_vfs(sim), &rawkey, keep, &got,
                            &info, detail, sizeof detail));
    CHECK_STR(detail, "");
    CHECK_INT(info.nboxes, ==, made.nboxes);
    CHECK_INT(info.records, ==, made.records);
    CHECK_INT(info.chunks, ==, made.chunks);
    CHECK_INT(info.schema_version, ==, 2); /* the migration of es_build */
    CHECK_INT(info.created_at, ==, tu_now);
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    char names[32][72] = {{0}};
    CHECK_OK(bg_store_list_boxes(s, add_box, names));
    size_t nb = 0;
    for (; nb < 32 && names[nb][0]; nb++) {
        bg_box *b;
        CHECK_OK(bg_box_open(s, names[nb], 0, &b));
        store_recs sr = {&want, names[nb]};
        CHECK_OK(bg__box_iterate_raw(b, keep_store, &sr));
        CHECK_STR(info.boxes[nb].name, names[nb]);
        CHECK_INT(info.boxes[nb].sealed, ==, !strcmp(names[nb], "sealed"));
    }
    CHECK_INT(nb, ==, info.nboxes);
    CHECK_OK(bg_store_close(s));
    CHECK_INT(got.n, ==, want.n);
    for (size_t i = 0; i < got.n; i++)
        CHECK_STR(got.lines[i], want.lines[i]);

    /* A passphrase, through Argon2id (the smallest limits, for speed). */
    static const uint8_t pass[] = "correct horse battery staple";
    bg_backup_key pk = {BG_BACKUP_PASSPHRASE, pass, sizeof pass - 1,
                        crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
    CHECK_OK(make_backup(sim, "bk/p.bgb", &pk, &made));
    CHECK_OK(read_it(sim, "bk/p.bgb", &pk));
    CHECK_INT(info.records, ==, made.records);
    bg_backup_key wrong = pk;
    wrong.secret = (const uint8_t *)"correct horse battery stapler";
    wrong.len = 29;
    CHECK_ERR(read_it(sim, "bk/p.bgb", &wrong), BG_EAUTH);
    CHECK_STR(detail, "wrong passphrase or key for this backup");
    CHECK_ERR(read_it(sim, "bk/p.bgb", &rawkey), BG_EAUTH);
    CHECK_CONTAINS(detail, "made with a passphrase");
    uint8_t other[32];
    memcpy(other, raw, 32);
    other[31] ^= 1;
    bg_backup_key ok2 = {BG_BACKUP_RAW_KEY, other, 32, 0, 0};
    CHECK_ERR(read_it(sim, "bk/a.bgb", &ok2), BG_EAUTH);
    bg_backup_key short_key = {BG_BACKUP_RAW_KEY, raw, 31, 0, 0};
    CHECK_ERR(read_it(sim, "bk/a.bgb", &short_key), BG_EINVALID);
    CHECK_ERR(read_it(sim, "bk/none.bgb", &rawkey), BG_ENOTFOUND);
    CHECK_OK(
        bg_sim_write_file(sim, "bk/x", (const uint8_t *)"not a backup", 12));
    CHECK_ERR(read_it(sim, "bk/x", &rawkey), BG_EINVALID);
    CHECK_CONTAINS(detail, "not a boxguard backup");
    bg_sim_free(sim);
}

/* Write buf as path and expect the read to fail with code, its detail
 * containing says. */
static int refused(bg_sim *sim, const uint8_t *buf, size_t len, bg_err code,
                   const char *says)
{
    if (bg_sim_write_file(sim, "bk/t.bgb", buf, len))
        return 0;
    bg_err err = read_it(sim, "bk/t.bgb", &rawkey);
    if (err != code || !strstr(detail, says)) {
        fprintf(stderr, "  got %s '%s', expected %s '%s'\n", bg_err_name(err),
                detail, bg_err_name(code), says);
        return 0;
    }
    return 1;
}

static void test_damage_is_refused(void)
{
    bg_sim *sim = bg_sim_new(2);
    CHECK_OK(big_store(sim));
    CHECK_OK(bg_sim_mkdir(sim, "bk"));
    bg_backup_info made, made2;
    CHECK_OK(make_backup(sim, "bk/a.bgb", &rawkey, &made));
    CHECK_OK(make_backup(sim, "bk/b.bgb", &rawkey, &made2));
    uint8_t *f, *g;
    size_t len, glen;
    CHECK_OK(bg_sim_read_file(sim, "bk/a.bgb", &f, &len));
    CHECK_OK(bg_sim_read_file(sim, "bk/b.bgb", &g, &glen));
    size_t nch = (size_t)made.chunks, last = HDR + (nch - 1) * CHUNK;
    uint8_t *t = malloc(len + CHUNK);
    unsigned cases = 0;
    char msg[96];
    /* Truncated at every chunk boundary, and at every byte of the last. */
    for (size_t c = 0; c < nch; c++) {
        CHECK(refused(sim, f, HDR + c * CHUNK, BG_ECORRUPT,
                      "without its final chunk"));
        cases++;
    }
    for (size_t n = last + 1; n < len; n++) {
        snprintf(msg, sizeof msg,
                 "chunk %zu (at byte %zu) does not "
                 "authenticate",
                 nch - 1, last);
        CHECK(refused(sim, f, n, n - last < 17 ? BG_ECORRUPT : BG_ECORRUPT,
                      n - last < 17 ? "without its final chunk" : msg));
        cases++;
    }
    /* Every byte of the header flipped. */
    for (size_t i = 0; i < HDR; i++) {
        memcpy(t, f, len);
        t[i] ^= 0x40;
        CHECK(refused(sim, t, len, i < 8 ? BG_EINVALID : BG_ECORRUPT,
                      i < 8 ? "not a boxguard backup" : "header is damaged"));
        cases++;
    }
    /* A byte flipped in each chunk, the tag included. */
    for (size_t c = 0; c < nch; c++) {
        size_t end = c + 1 < nch ? HDR + (c + 1) * CHUNK : len;
        size_t at[] = {HDR + c * CHUNK, end - 1, (HDR + c * CHUNK + end) / 2};
        for (size_t j = 0; j < 3; j++) {
            memcpy(t, f, len);
            t[at[j]] ^= 1;
            snprintf(msg, sizeof msg, "chunk %zu (at byte %zu)", c,
                     HDR + c * CHUNK);
            CHECK(refused(sim, t, len, BG_ECORRUPT, msg));
            cases++;
        }
    }
    /* A chunk dropped, duplicated; two swapped; one from another backup. */
    for (size_t c = 0; c + 1 < nch; c++) {
        size_t at = HDR + c * CHUNK;
        memcpy(t, f, at);
        memcpy(t + at, f + at + CHUNK, len - at - CHUNK);
        snprintf(msg, sizeof msg, "chunk %zu (at byte %zu)", c, at);
        CHECK(refused(sim, t, len - CHUNK, BG_ECORRUPT, msg));
        memcpy(t, f, at + CHUNK);
        memcpy(t + at + CHUNK, f + at, len - at);
        snprintf(msg, sizeof msg, "chunk %zu (at byte %zu)", c + 1, at + CHUNK);
        CHECK(refused(sim, t, len + CHUNK, BG_ECORRUPT, msg));
        snprintf(msg, sizeof msg, "chunk %zu (at byte %zu)", c, at);
        if (c + 2 < nch) { /* two whole chunks swapped */
            memcpy(t, f, len);
            memcpy(t + at, f + at + CHUNK, CHUNK);
            memcpy(t + at + CHUNK, f + at, CHUNK);
            CHECK(refused(sim, t, len, BG_ECORRUPT, msg));
            cases++;
        }
        if (at + CHUNK <= glen) { /* the same chunk of the other backup */
            memcpy(t, f, len);
            memcpy(t + at, g + at, CHUNK);
            CHECK(refused(sim, t, len, BG_ECORRUPT, msg));
            cases++;
        }
        cases += 2;
    }
    /* The other backup's header on this one's chunks (same key). */
    memcpy(t, f, len);
    memcpy(t, g, HDR);
    CHECK(refused(sim, t, len, BG_ECORRUPT, "chunk 0 (at byte 112)"));
    /* Bytes after the final chunk: read as part of it, which then fails. */
    memcpy(t, f, len);
    memcpy(t + len, "x", 1);
    snprintf(msg, sizeof msg, "chunk %zu (at byte %zu)", nch - 1, last);
    CHECK(refused(sim, t, len + 1, BG_ECORRUPT, msg));
    cases += 2;
    printf("  damaged backups refused: %u\n", cases);
    free(t);
    free(f);
    free(g);
    bg_sim_free(sim);
}

/* ---- restore ----------------------------------------------------------- */

typedef struct digest {
    crypto_generichash_state st;
    bg_store *s;
    uint64_t records;
} digest;

static int digest_rec(void *arg, const bg_record *r)
{
    digest *d = arg;
    uint8_t t[4] = {(uint8_t)r->type, (uint8_t)(r->type >> 8), 0, 0};
    crypto_generichash_update(&d->st, (const uint8_t *)r->key, r->key_len);
    crypto_generichash_update(&d->st, t, 4);
    crypto_generichash_update(&d->st, (const uint8_t *)r->value, r->value_len);
    d->records++;
    return 0;
}

typedef struct digest_box {
    digest *d;
    bg_err err;
} digest_box;

static int digest_one_box(void *arg, const char *name)
{
    digest_box *db = arg;
    bg_box *b;
    if (!strcmp(name, "audit"))
        return 0; /* a backup and a restore each add their record */
    crypto_generichash_update(&db->d->st, (const uint8_t *)name,
                              strlen(name) + 1);
    db->err = bg_box_open(db->d->s, name, 0, &b);
    if (!db->err)
        db->err = bg__box_iterate_raw(b, digest_rec, db->d);
    if (!db->err)
        crypto_generichash_update(&db->d->st, (const uint8_t *)"|",
                                  1 + bg__box_key_id(b) != 0);
    return db->err != 0;
}

/* Every box's every record (and whether it is sealed), as one hash; the
 * store opened for writing first, which settles what a crash left. */
static bg_err content(bg_sim *sim, const char *dir, uint8_t out[16],
                      uint64_t *records)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.create = 0;
    o.accept_schema = 1;
    digest d = {.records = 0};
    BG_TRY(bg_store_open(dir, &o, &d.s));
    crypto_generichash_init(&d.st, NULL, 0, 16);
    digest_box db = {&d, 0};
    bg_err err = bg_store_list_boxes(d.s, digest_one_box, &db);
    if (!err)
        err = db.err;
    crypto_generichash_final(&d.st, out, 16);
    *records = d.records;
    bg_err cerr = bg_store_close(d.s);
    return err ? err : cerr;
}

static char last_event[40];

static int last_of(void *arg, const bg_audit_record *r)
{
    (void)arg;
    snprintf(last_event, sizeof last_event, "%s", r->event);
    return 0;
}

static bg_restore_opts ropts(bg_sim *sim)
{
    bg_restore_opts o = {bg_sim_vfs(sim), {tu_clock_ms, &tu_now}, 0, 0};
    return o;
}

/* B backed up, then changed into A (a record more, one less). */
static bg_err two_stores(bg_sim *sim, uint8_t a[16], uint8_t b[16])
{
    uint64_t n;
    bg_backup_info made;
    BG_TRY(big_store(sim));
    BG_TRY(bg_sim_mkdir(sim, "bk"));
    BG_TRY(make_backup(sim, "bk/b.bgb", &rawkey, &made));
    BG_TRY(content(sim, "s", b, &n));
    bg_store *s;
    bg_box *bx;
    BG_TRY(tu_open_box(sim, "plain", 0, &s, &bx));
    bg_err err = tu_put(bx, "extra", "\"a\"");
    if (!err)
        err = bg_box_del(bx, "p1", 2);
    bg_err cerr = bg_store_close(s);
    BG_TRY(err ? err : cerr);
    return content(sim, "s", a, &n);
}

/* ---- manifests that lie, sealed with the right key ------------------- */

static const char dump_a[] = "{\"key\":\"k1\",\"type\":0,\"value\":1}\n"
                             "{\"key\":\"k2\",\"type\":0,\"value\":[2]}\n";

/* Seal members, with a manifest of box a (records n, hash sha, schema
 * version ver) appended unless meta is NULL, and read it. */
static bg_err sealed_read(bg_sim *sim, const bp_member *m, size_t nm,
                          const char *meta)
{
    bp_member all[8];
    memcpy(all, m, nm * sizeof *m);
    if (meta)
        all[nm++] = (bp_member){"backup_meta.json", meta, strlen(meta)};
    uint8_t *plain;
    size_t len;
    if (bp_tar_zst(all, nm, &plain, &len))
        return BG_ENOMEM;
    bg_store *s;
    bg_err err = tu_open(sim, BG_DURABILITY_FULL, &s);
    if (!err)
        err = bg__backup_seal(s, "bk/m.bgb", &rawkey, plain, len);
    (void)bg_store_close(s);
    free(plain);
    return err ? err : read_it(sim, "bk/m.bgb", &rawkey);
}

static void manifest(char *out, size_t cap, int ver, int n, const char *sha,
                     const char *extra)
{
    snprintf(out, cap,
             "{\"format\":1,\"schema_version\":%d,\"created_at\":5,"
             "\"boxguard_version\":\"t\",\"boxes\":[{\"name\":\"a\","
             "\"records\":%d,\"sealed\":false,\"sha256\":\"%s\"}%s]}",
             ver, n, sha, extra);
}

static void test_manifest_checks(void)
{
    bg_sim *sim = bg_sim_new(7);
    CHECK_OK(bg_sim_mkdir(sim, "bk"));
    char sha[65], meta[512];
    bp_sha256(dump_a, strlen(dump_a), sha);
    bp_member a = {"boxes/a.jsonl", dump_a, strlen(dump_a)};
    manifest(meta, sizeof meta, 1, 2, sha, "");
    CHECK_OK(sealed_read(sim, &a, 1, meta));
    CHECK_INT(info.records, ==, 2);
    /* The restore of it gives exactly the manifest's counts. */
    bg_restore_opts o = ropts(sim);
    CHECK_OK(bg_backup_restore("r", "bk/m.bgb", &rawkey, &o, &info, detail,
                               sizeof detail));
    uint8_t h[16];
    uint64_t n;
    CHECK_OK(content(sim, "r", h, &n));
    CHECK_INT(n, ==, 2);
    snap before, after;
    snap_take(sim, &before);

    const struct {
        int ver, n;
        const char *sha, *extra, *says;
    } lies[] = {
        {1, 3, sha, "", "the manifest counts 3 records, the dump holds 2"},
        {1, 2, "00", "", "its dump's SHA-256 is not the manifest's"},
        {2, 2, sha, "", "schema version 2 is not the 1 its meta box holds"},
        {1, 2, sha,
         ",{\"name\":\"b\",\"records\":0,\"sealed\":false,\"sha256\":\"x\"}",
         "the manifest lists 2 boxes, the archive holds 1"},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        manifest(meta, sizeof meta, lies[i].ver, lies[i].n, lies[i].sha,
                 lies[i].extra);
        CHECK_ERR(sealed_read(sim, &a, 1, meta), BG_ECORRUPT);
        CHECK_CONTAINS(detail, lies[i].says);
        CHECK_ERR(bg_backup_restore("s", "bk/m.bgb", &rawkey, &o, &info, detail,
                                    sizeof detail),
                  BG_ECORRUPT);
    }
    manifest(meta, sizeof meta, 1, 2, sha, "");
    bp_member two[2] = {a, {"boxes/a.jsonl", dump_a, strlen(dump_a)}};
    CHECK_ERR(sealed_read(sim, &a, 1, NULL), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "has no manifest");
    bp_member with_late[2] = {a, {"backup_meta.json", meta, strlen(meta)}};
    bp_member trailing[3] = {
        with_late[0], with_late[1], {"boxes/z.jsonl", "", 0}};
    CHECK_ERR(sealed_read(sim, trailing, 3, NULL), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "follows the manifest");
    bp_member odd = {"etc/passwd", "x", 1};
    CHECK_ERR(sealed_read(sim, &odd, 1, meta), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "is not a box dump");
    bp_member badline = {"boxes/a.jsonl", "{\"k\":1}\n", 8};
    CHECK_ERR(sealed_read(sim, &badline, 1, meta), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "box 'a': line 1 is not a dump line");
    bp_member open_line = {"boxes/a.jsonl", dump_a, strlen(dump_a) - 1};
    CHECK_ERR(sealed_read(sim, &open_line, 1, meta), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "ends inside a line");
    CHECK_ERR(sealed_read(sim, two, 2, meta), BG_ECORRUPT); /* a box twice */
    /* Not an archive at all. */
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(
        bg__backup_seal(s, "bk/g.bgb", &rawkey, (const uint8_t *)"junk", 4));
    CHECK_OK(bg__backup_seal(s, "bk/e.bgb", &rawkey, NULL, 0));
    CHECK_OK(bg_store_close(s));
    CHECK_ERR(read_it(sim, "bk/g.bgb", &rawkey), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "archive inside the backup is damaged");
    CHECK_ERR(read_it(sim, "bk/e.bgb", &rawkey), BG_ECORRUPT);
    snap_take(sim, &after);
    const char *d = snap_diff(&before, &after);
    /* Only bk/ changed (the sealed files); the store is as it was. */
    CHECK(d == NULL || !strncmp(d, "bk/", 3) || d[0] == '(');
    snap_free(&before);
    snap_free(&after);
    bg_sim_free(sim);
}

static void test_restore_round_trip(void)
{
    bg_sim *sim = bg_sim_new(3);
    uint8_t a[16], b[16], got[16];
    CHECK_OK(two_stores(sim, a, b));
    CHECK(memcmp(a, b, 16) != 0);
    bg_restore_opts o = ropts(sim);
    /* Into a directory that does not exist yet. */
    CHECK_OK(bg_backup_restore("r", "bk/b.bgb", &rawkey, &o, &info, detail,
                               sizeof detail));
    uint64_t n;
    CHECK_OK(content(sim, "r", got, &n));
    CHECK(!memcmp(got, b, 16));
    uint64_t audited = 0; /* content() leaves the audit box out */
    for (size_t i = 0; i < info.nboxes; i++)
        if (!strcmp(info.boxes[i].name, "audit"))
            audited = info.boxes[i].records;
    CHECK_INT(n, ==, info.records - audited);
    /* Sealed again, under the restored store's own key. */
    uint8_t *k1, *k2;
    size_t l1, l2;
    CHECK_OK(bg_sim_read_file(sim, "s/keys/1.key", &k1, &l1));
    CHECK_OK(bg_sim_read_file(sim, "r/keys/1.key", &k2, &l2));
    CHECK(l1 == 32 && l2 == 32 && memcmp(k1, k2, 32));
    free(k1);
    free(k2);
    /* The restored store's log is the backup's, the restore last; the
     * store backed up records the backup. */
    bg_store *rs;
    bg_store_opts ro2 = tu_opts(sim, BG_DURABILITY_FULL);
    CHECK_OK(bg_store_open("r", &ro2, &rs));
    last_event[0] = '\0';
    CHECK_OK(bg_audit_list(rs, last_of, NULL));
    CHECK_STR(last_event, "backup_restored");
    CHECK_OK(bg_store_close(rs));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &rs));
    CHECK_OK(bg_audit_list(rs, last_of, NULL));
    CHECK_STR(last_event, "backup_created");
    CHECK_OK(bg_store_close(rs));
    bg_validation v;
    CHECK_OK(
        bg_validate("r", &(bg_validate_opts){bg_sim_vfs(sim), NULL, 2}, &v));
    CHECK_INT(v.status, ==, BG_READY);
    /* The queue comes back with its pending ops. */
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_store_close(s));
    /* Over a store that is there: it becomes the backup's, nothing beside,
     * sealed under that store's key (the only key file, byte for byte). */
    CHECK_OK(bg_sim_read_file(sim, "s/keys/1.key", &k1, &l1));
    CHECK_OK(bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info, detail,
                               sizeof detail));
    CHECK_OK(content(sim, "s", got, &n));
    CHECK(!memcmp(got, b, 16));
    CHECK_OK(bg_sim_read_file(sim, "s/keys/1.key", &k2, &l2));
    CHECK(l2 == 32 && !memcmp(k1, k2, 32));
    free(k2);
    CHECK_ERR(bg_sim_read_file(sim, "s/keys/2.key", &k2, &l2), BG_ENOTFOUND);
    {
        bg_box *sb;
        CHECK_OK(tu_open_box(sim, "sealed", 0, &s, &sb));
        CHECK_INT(bg__box_key_id(sb), ==, bg__key_id(k1));
        CHECK_OK(bg_store_close(s));
    }
    free(k1);
    const bg_vfs *vf = bg_sim_vfs(sim);
    CHECK_ERR(vf->stat(vf, "s.restore", NULL), BG_ENOTFOUND);
    CHECK_ERR(vf->stat(vf, "s.restore-old", NULL), BG_ENOTFOUND);
    bg_sim_free(sim);
}

/* A store with no box at all (made, never written) backs up and restores,
 * into a new directory and over itself: the restored directory's entries
 * are durable before it is renamed in (the sim refuses to rename a
 * directory whose entries are not). */
static void test_boxless_restore(void)
{
    bg_sim *sim = bg_sim_new(7);
    bg_store *s;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_sim_mkdir(sim, "bk"));
    bg_backup_info made;
    CHECK_OK(make_backup(sim, "bk/e.bgb", &rawkey, &made));
    bg_restore_opts o = ropts(sim);
    CHECK_OK(bg_backup_restore("fresh", "bk/e.bgb", &rawkey, &o, &info, detail,
                               sizeof detail));
    CHECK_OK(bg_backup_restore("s", "bk/e.bgb", &rawkey, &o, &info, detail,
                               sizeof detail));
    const bg_vfs *vf = bg_sim_vfs(sim);
    int is_dir = 0;
    CHECK_OK(vf->stat(vf, "fresh", &is_dir));
    CHECK(is_dir);
    CHECK_ERR(vf->stat(vf, "fresh.restore", NULL), BG_ENOTFOUND);
    bg_sim_free(sim);
}

/* A restore that is refused or fails leaves the store byte for byte. */
static void test_failed_restore_changes_nothing(void)
{
    bg_sim *sim = bg_sim_new(4);
    uint8_t a[16], b[16];
    CHECK_OK(two_stores(sim, a, b));
    snap before, after;
    snap_take(sim, &before);
    bg_restore_opts o = ropts(sim);
    uint8_t *f;
    size_t len;
    CHECK_OK(bg_sim_read_file(sim, "bk/b.bgb", &f, &len));
    f[HDR + CHUNK + 5] ^= 1;
    CHECK_OK(bg_sim_write_file(sim, "bk/bad.bgb", f, len));
    CHECK_OK(bg_sim_write_file(sim, "bk/cut.bgb", f, HDR + CHUNK));
    free(f);
    const char *d;
    CHECK_ERR(bg_backup_restore("s", "bk/bad.bgb", &rawkey, &o, &info, detail,
                                sizeof detail),
              BG_ECORRUPT);
    CHECK_CONTAINS(detail, "chunk 1 ");
    CHECK_ERR(bg_backup_restore("s", "bk/cut.bgb", &rawkey, &o, &info, detail,
                                sizeof detail),
              BG_ECORRUPT);
    CHECK_CONTAINS(detail, "truncated");
    bg_backup_key wrong = rawkey;
    wrong.secret = (const uint8_t *)"1123456789abcdef0123456789abcdef";
    CHECK_ERR(bg_backup_restore("s", "bk/b.bgb", &wrong, &o, &info, detail,
                                sizeof detail),
              BG_EAUTH);
    o.expect_schema = 3;
    CHECK_ERR(bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info, detail,
                                sizeof detail),
              BG_ESCHEMA);
    CHECK_CONTAINS(detail, "schema version 2, not the expected 3");
    o.expect_schema = 0;
    o.code_version = 1;
    CHECK_ERR(bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info, detail,
                                sizeof detail),
              BG_ESCHEMA);
    CHECK_CONTAINS(detail, "newer than the code's 1");
    snap_take(sim, &after);
    d = snap_diff(&before, &after);
    CHECK_STR(d ? d : "", "");
    CHECK(!es_exists(sim, "s.restore"));
    snap_free(&before);
    snap_free(&after);
    bg_sim_free(sim);
}

/* Power lost after every state-changing operation of a restore over a
 * store, in every crash mode: the next open finds entirely the old store
 * or entirely the restored one, and nothing left beside it. */
static void test_restore_crash_points(void)
{
    uint64_t total;
    {
        bg_sim *sim = bg_sim_new(5);
        uint8_t a[16], b[16];
        CHECK_OK(two_stores(sim, a, b));
        bg_restore_opts o = ropts(sim);
        uint64_t c0 = bg_sim_get_stats(sim).changes;
        CHECK_OK(bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info, detail,
                                   sizeof detail));
        total = bg_sim_get_stats(sim).changes - c0;
        bg_sim_free(sim);
    }
    uint64_t states = 0, olds = 0, news = 0;
    for (uint64_t n = 1; n <= total; n++) {
        for (int mode = 0; mode < BG_CRASH_MODES; mode++) {
            bg_sim *sim = bg_sim_new(5);
            uint8_t a[16], b[16], got[16];
            CHECK_OK(two_stores(sim, a, b));
            bg_restore_opts o = ropts(sim);
            bg_sim_crash_after(sim, bg_sim_get_stats(sim).changes + n);
            bg_err err = bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info,
                                           detail, sizeof detail);
            /* Cut before its last change, it must say so. */
            if (!err && n < total)
                fprintf(stderr, "crash after %llu of %llu: restore said ok\n",
                        (unsigned long long)n, (unsigned long long)total);
            CHECK(err || n == total);
            CHECK_OK(bg_sim_crash(sim, (bg_crash_mode)mode, n * 4 + mode));
            uint64_t cnt;
            err = content(sim, "s", got, &cnt);
            if (err)
                fprintf(stderr, "crash after %llu mode %d: %s\n",
                        (unsigned long long)n, mode, bg_err_name(err));
            CHECK_OK(err);
            int is_old = !memcmp(got, a, 16), is_new = !memcmp(got, b, 16);
            if (!is_old && !is_new)
                fprintf(stderr, "crash after %llu mode %d: a mix\n",
                        (unsigned long long)n, mode);
            CHECK(is_old || is_new);
            olds += is_old;
            news += is_new;
            CHECK(!es_exists(sim, "s.restore") &&
                  !es_exists(sim, "s.restore-old"));
            states++;
            bg_sim_free(sim);
        }
    }
    printf("restore crash states explored: %llu over %llu operations (old "
           "store %llu, restored %llu)\n",
           (unsigned long long)states, (unsigned long long)total,
           (unsigned long long)olds, (unsigned long long)news);
    CHECK(olds && news);
}

/* EIO and ENOSPC at every operation of a backup and of a restore: each is
 * reported; a failed backup leaves no file (nor its .tmp); after a failed
 * restore the next open finds the old store or the restored one. */
static void test_faults(void)
{
    uint64_t runs = 0, reported = 0;
    for (int phase = 0; phase < 2; phase++) {
        uint64_t ops;
        {
            bg_sim *sim = bg_sim_new(6);
            uint8_t a[16], b[16];
            CHECK_OK(two_stores(sim, a, b));
            bg_restore_opts o = ropts(sim);
            bg_store *s;
            CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
            uint64_t o0 = bg_sim_get_stats(sim).ops;
            if (phase == 0)
                CHECK_OK(bg_backup_create(s, "bk/f.bgb", &rawkey, 0, &info));
            CHECK_OK(bg_store_close(s));
            if (phase == 1) {
                o0 = bg_sim_get_stats(sim).ops;
                CHECK_OK(bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info,
                                           detail, sizeof detail));
            }
            ops = bg_sim_get_stats(sim).ops - o0;
            bg_sim_free(sim);
        }
        for (uint64_t k = 1; k <= ops; k++) {
            for (int e = 0; e < 2; e++) {
                bg_sim *sim = bg_sim_new(6);
                uint8_t a[16], b[16], got[16];
                CHECK_OK(two_stores(sim, a, b));
                bg_restore_opts o = ropts(sim);
                bg_err fault = e ? BG_ENOSPACE : BG_EIO, err;
                if (phase == 0) {
                    bg_store *s;
                    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
                    bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + k, fault);
                    err = bg_backup_create(s, "bk/f.bgb", &rawkey, 0, &info);
                    bg_sim_fail_at(sim, 0, 0);
                    if (err)
                        CHECK(bg_store_detail(s)[0] != '\0');
                    (void)bg_store_close(s);
                    /* Never a half file: none, or one that reads sound
                     * (the fault hit the directory's sync after the
                     * rename); never a .tmp left. */
                    int left = es_exists(sim, "bk/f.bgb.tmp");
                    bg_err rd = es_exists(sim, "bk/f.bgb")
                                    ? read_it(sim, "bk/f.bgb", &rawkey)
                                    : (err ? 0 : BG_ENOTFOUND);
                    bg_sim_free(sim);
                    CHECK(!left);
                    CHECK_OK(rd);
                    runs++;
                    reported += err != 0;
                    continue;
                } else {
                    bg_sim_fail_at(sim, bg_sim_get_stats(sim).ops + k, fault);
                    err = bg_backup_restore("s", "bk/b.bgb", &rawkey, &o, &info,
                                            detail, sizeof detail);
                    bg_sim_fail_at(sim, 0, 0);
                    if (err)
                        CHECK(detail[0] != '\0');
                    uint64_t n;
                    CHECK_OK(content(sim, "s", got, &n));
                    CHECK(!memcmp(got, a, 16) || !memcmp(got, b, 16));
                    if (!err)
                        CHECK(!memcmp(got, b, 16));
                    CHECK(!es_exists(sim, "s.restore") &&
                          !es_exists(sim, "s.restore-old"));
                }
                runs++;
                reported += err != 0;
                bg_sim_free(sim);
            }
        }
    }
    printf("  backup and restore faults: %llu runs, %llu reported\n",
           (unsigned long long)runs, (unsigned long long)reported);
    CHECK_INT(reported, >, runs / 2);
}

int main(void)
{
    ss_seed_sodium();
    RUN(test_round_trip);
    RUN(test_damage_is_refused);
    RUN(test_manifest_checks);
    RUN(test_restore_round_trip);
    RUN(test_boxless_restore);
    RUN(test_failed_restore_changes_nothing);
    RUN(test_restore_crash_points);
    RUN(test_faults);
    return CHECK_DONE();
}
