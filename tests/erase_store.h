/*
 * A store on the simulated disk with every kind of file an erase must
 * remove, for test_erase and fuzz_erase_crash: a plaintext box, a sealed
 * box (so a key file), a box recovered from damage (a quarantine copy), a
 * migrated box (a backup under backups/, audit and meta records) and a
 * queue with pending ops and a lease (the lease log). Each part can be
 * left out. Every value holds a marker, a string found nowhere else, so a
 * test can look for its bytes anywhere on the disk afterwards.
 */
#ifndef BOXGUARD_ERASE_STORE_H
#define BOXGUARD_ERASE_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box_file_int.h"
#include "simstore.h"

enum {
    ES_PLAIN = 1,
    ES_SEALED = 2,
    ES_QUARANTINE = 4,
    ES_BACKUP = 8,
    ES_QUEUE = 16,
    ES_ALL = 31
};

#define ES_MARKERS    16
#define ES_MARKER_LEN 20

typedef struct es_store {
    char markers[ES_MARKERS][ES_MARKER_LEN + 1];
    int plain[ES_MARKERS]; /* the marker went into a plaintext file */
    size_t n;
} es_store;

static inline const char *es_marker(es_store *e, uint64_t seed, int plain)
{
    char *m = e->markers[e->n];
    snprintf(m, ES_MARKER_LEN + 1, "MRK%02zu%015llx", e->n,
             (unsigned long long)(seed * 0x9E3779B97F4A7C15ull) >> 4);
    e->plain[e->n++] = plain;
    return m;
}

static inline bg_err es_put(bg_box *b, const char *key, const char *marker)
{
    char v[64];
    int n = snprintf(v, sizeof v, "\"%s\"", marker);
    return bg_box_put(b, key, strlen(key), 0, v, (size_t)n);
}

static inline bg_err es_identity(void *arg, const char *box,
                                 const bg_record *in, uint32_t *type,
                                 char **value, size_t *value_len, char *why,
                                 size_t whylen)
{
    (void)arg, (void)box, (void)value, (void)value_len, (void)why, (void)whylen;
    *type = in->type;
    return 0;
}

/* Build the store "s" with the parts in mask; closed on return. */
static inline bg_err es_build(bg_sim *sim, unsigned mask, uint64_t seed,
                              es_store *e)
{
    memset(e, 0, sizeof *e);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_box *b;
    bg_err err = bg_store_open("s", &o, &s);
    if (err)
        return err;
#define ES_TRY(x)                                                              \
    do {                                                                       \
        if ((err = (x)) != 0)                                                  \
            goto out;                                                          \
    } while (0)
    if (mask & ES_PLAIN) {
        ES_TRY(bg_box_open(s, "plain", BG_BOX_CREATE, &b));
        ES_TRY(es_put(b, "p1", es_marker(e, seed + 1, 1)));
        ES_TRY(es_put(b, "p2", es_marker(e, seed + 2, 1)));
        /* A value past the first 64 KiB of the file, its marker last. */
        enum { BIG = 100000 };
        char *big = malloc(BIG + ES_MARKER_LEN + 2);
        if (!big) {
            err = BG_ENOMEM;
            goto out;
        }
        big[0] = '"';
        memset(big + 1, 'a', BIG);
        memcpy(big + 1 + BIG, es_marker(e, seed + 9, 1), ES_MARKER_LEN);
        big[BIG + ES_MARKER_LEN + 1] = '"';
        err = bg_box_put(b, "p3", 2, 0, big, BIG + ES_MARKER_LEN + 2);
        free(big);
        if (err)
            goto out;
    }
    if (mask & ES_SEALED) {
        ES_TRY(bg_box_open(s, "sealed", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b));
        ES_TRY(es_put(b, "s1", es_marker(e, seed + 3, 0)));
    }
    if (mask & ES_BACKUP) {
        ES_TRY(bg_box_open(s, "mig", BG_BOX_CREATE, &b));
        ES_TRY(es_put(b, "m1", es_marker(e, seed + 4, 1)));
        const char *boxes[] = {"mig"};
        bg_migration m = {"m1", "keep",      1,    2,   boxes,
                          1,    es_identity, NULL, NULL};
        bg_migrate_report rep;
        ES_TRY(bg_migrate_run(s, &m, 1, NULL, &rep));
    }
    if (mask & ES_QUEUE) {
        bg_queue *q;
        bg_queue_opts qo;
        bg_queue_opts_init(&qo);
        ES_TRY(bg_queue_open(s, &qo, &q));
        char p[64];
        uint64_t id;
        for (int i = 0; i < 2 && !err; i++) {
            char idem[8];
            snprintf(idem, sizeof idem, "i%d", i);
            int n = snprintf(p, sizeof p, "{\"m\":\"%s\"}",
                             es_marker(e, seed + 5 + (uint64_t)i, 1));
            err = bg_queue_enqueue(q, BG_LANE_NORMAL, idem, p, (size_t)n, &id);
        }
        bg_queue_op op;
        if (!err && (err = bg_queue_lease(q, &op)) == 0)
            bg_queue_op_clear(&op);
        bg_queue_close(q);
        if (err)
            goto out;
    }
    if (mask & ES_QUARANTINE) {
        ES_TRY(bg_box_open(s, "hurt", BG_BOX_CREATE, &b));
        ES_TRY(es_put(b, "h1", es_marker(e, seed + 7, 1)));
        ES_TRY(es_put(b, "h2", es_marker(e, seed + 8, 1)));
        ES_TRY(bg_store_close(s));
        s = NULL;
        uint8_t *f;
        size_t len;
        ES_TRY(bg_sim_read_file(sim, "s/hurt.box", &f, &len));
        f[BG__BOX_HDR_SIZE + BG__FRAME_HDR] ^= 1; /* the first frame's key */
        err = bg_sim_write_file(sim, "s/hurt.box", f, len);
        free(f);
        if (err)
            goto out;
        ES_TRY(bg_store_open("s", &o, &s));
        bg_box_report r;
        ES_TRY(bg_box_recover(s, "hurt", &r));
    }
#undef ES_TRY
out:;
    bg_err cerr = bg_store_close(s);
    return err ? err : cerr;
}

/* ---- the files of a directory, to compare before and after ------------- */

#define SNAP_MAX 64

typedef struct snap {
    size_t n;
    char path[SNAP_MAX][160];
    uint8_t *data[SNAP_MAX];
    size_t len[SNAP_MAX];
    int is_dir[SNAP_MAX];
} snap;

typedef struct names_ctx {
    char v[SNAP_MAX][160];
    size_t n;
} names_ctx;

static inline int es_add_name(void *arg, const char *name)
{
    names_ctx *c = arg;
    if (c->n < SNAP_MAX)
        snprintf(c->v[c->n++], sizeof c->v[0], "%s", name);
    return 0;
}

static inline void snap_dir(bg_sim *sim, const char *dir, snap *sn)
{
    const bg_vfs *v = bg_sim_vfs(sim);
    names_ctx c = {.n = 0};
    if (v->list(v, dir, es_add_name, &c))
        return;
    for (size_t i = 0; i < c.n && sn->n < SNAP_MAX; i++) {
        char p[160];
        if (snprintf(p, sizeof p, "%s/%s", dir, c.v[i]) >= (int)sizeof p)
            continue;
        if (!strcmp(p, "s/store.lock"))
            continue; /* empty; it tells of opens, not of data */
        int is_dir = 0;
        (void)v->stat(v, p, &is_dir);
        size_t k = sn->n++;
        snprintf(sn->path[k], sizeof sn->path[k], "%s", p);
        sn->is_dir[k] = is_dir;
        sn->data[k] = NULL;
        sn->len[k] = 0;
        if (is_dir)
            snap_dir(sim, p, sn);
        else
            (void)bg_sim_read_file(sim, p, &sn->data[k], &sn->len[k]);
    }
}

static inline void snap_take(bg_sim *sim, snap *sn)
{
    memset(sn, 0, sizeof *sn);
    snap_dir(sim, "s", sn);
}

static inline void snap_free(snap *sn)
{
    for (size_t i = 0; i < sn->n; i++)
        free(sn->data[i]);
    sn->n = 0;
}

/* The path of a that b lacks or holds other bytes under, or NULL. */
static inline const char *snap_diff(const snap *a, const snap *b)
{
    if (b->n > a->n)
        return "(an entry only the second holds)";
    for (size_t i = 0; i < a->n; i++) {
        size_t j = 0;
        while (j < b->n && strcmp(a->path[i], b->path[j]))
            j++;
        if (j == b->n || a->is_dir[i] != b->is_dir[j] ||
            a->len[i] != b->len[j] ||
            (a->len[i] && memcmp(a->data[i], b->data[j], a->len[i])))
            return a->path[i];
    }
    return NULL;
}

static inline uint64_t snap_bytes(const snap *sn, size_t *files, size_t *keys)
{
    uint64_t bytes = 0;
    *files = *keys = 0;
    for (size_t i = 0; i < sn->n; i++) {
        if (sn->is_dir[i])
            continue;
        bytes += sn->len[i];
        if (!strncmp(sn->path[i], "s/keys/", 7))
            (*keys)++;
        else
            (*files)++;
    }
    return bytes;
}

static inline int es_exists(bg_sim *sim, const char *path)
{
    const bg_vfs *v = bg_sim_vfs(sim);
    return v->stat(v, path, NULL) == 0;
}

static inline bg_err es_open(bg_sim *sim, int read_only, int *erase_found,
                             char *detail, size_t cap, bg_store **s)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.read_only = read_only;
    o.erase_found = erase_found;
    o.detail = detail;
    o.detail_len = cap;
    return bg_store_open("s", &o, s);
}

/* ---- what a crash or a fault may leave --------------------------------- */

typedef enum es_outcome {
    ES_INTACT = 0,  /* the store exactly as before */
    ES_RESUMED = 1, /* the intent there: the next open finished the erase */
    ES_COMPLETE = 2 /* nothing of the store left */
} es_outcome;

/* Build the store with the parts of mask, open and close it once (what an
 * open settles is settled), let a power cut drop what was never synced
 * (the lease log is written without a sync: a crash during the erase may
 * lose it whatever the erase does), and take the state every check
 * compares with. */
static inline bg_err es_prepare(bg_sim *sim, unsigned mask, uint64_t seed,
                                snap *before)
{
    es_store e;
    bg_store *s;
    bg_err err = es_build(sim, mask, seed, &e);
    if (!err)
        err = es_open(sim, 0, NULL, NULL, 0, &s);
    if (!err)
        err = bg_store_close(s);
    if (!err)
        err = bg_sim_crash(sim, BG_CRASH_DROP, 0);
    snap_take(sim, before);
    return err;
}

/* After a crash or a failed erase, one of three: the scan is complete; or
 * the intent is there, no box is gone while keys/ remains, a reader is
 * refused (BG_ESTATE) and a writer finishes the erase (BG_ENOTFOUND) with
 * the scan then complete; or the store opens and is exactly as before,
 * byte for byte. Returns NULL with *out, or what is wrong. */
static inline const char *es_check(bg_sim *sim, const snap *before,
                                   es_outcome *out)
{
    static char why[512];
    bg_erase_scan sc;
    *out = ES_INTACT;
    if (bg_erase_verify("s", bg_sim_vfs(sim), &sc))
        return "the scan could not run";
    if (sc.complete) {
        *out = ES_COMPLETE;
        return NULL;
    }
    bg_store *s = NULL;
    int found = 0;
    char detail[512];
    if (es_exists(sim, "s/erase.intent")) {
        *out = ES_RESUMED;
        for (size_t i = 0; i < before->n; i++) {
            size_t n = strlen(before->path[i]);
            if (n > 4 && !strcmp(before->path[i] + n - 4, ".box") &&
                !es_exists(sim, before->path[i]) && es_exists(sim, "s/keys")) {
                snprintf(why, sizeof why, "'%s' is gone, keys/ is not",
                         before->path[i]);
                return why;
            }
        }
        if (es_open(sim, 1, &found, detail, sizeof detail, &s) != BG_ESTATE ||
            !found)
            return "a reader of a store being erased was not refused";
        found = 0;
        if (es_open(sim, 0, &found, detail, sizeof detail, &s) !=
                BG_ENOTFOUND ||
            !found)
            return "a writer did not finish the erase";
        if (bg_erase_verify("s", bg_sim_vfs(sim), &sc) || !sc.complete) {
            snprintf(why, sizeof why, "the resumed erase left '%s'",
                     sc.remaining_files.names[0]);
            return why;
        }
        return NULL;
    }
    bg_err err = es_open(sim, 0, &found, detail, sizeof detail, &s);
    if (err) {
        snprintf(why, sizeof why,
                 "no intent, and the store does not open: %.400s", detail);
        return why;
    }
    (void)bg_store_close(s);
    if (found)
        return "an erase was found with no intent";
    snap now;
    snap_take(sim, &now);
    const char *d = snap_diff(before, &now);
    if (!d)
        d = snap_diff(&now, before);
    if (d) {
        int n = snprintf(why, sizeof why, "half erased: '%s' differs; now:", d);
        for (size_t i = 0; i < now.n && n > 0 && (size_t)n < sizeof why; i++)
            n += snprintf(why + n, sizeof why - (size_t)n, " %s(%zu)",
                          now.path[i], now.len[i]);
    }
    snap_free(&now);
    return d ? why : NULL;
}

#endif
