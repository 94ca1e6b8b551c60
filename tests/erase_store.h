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

#endif
