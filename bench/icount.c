/*
 * The CPU-bound costs of boxguard as workloads for an instruction count:
 * `ci/icount` runs each under callgrind, collecting only inside
 * icount_run (--toggle-collect), so setup and teardown are not counted,
 * and divides by N. Instruction counts do not move with a neighbour's
 * load, so the gate built on them does not flake.
 *
 *   record_check   bg_record_validate of a ~256-byte payload
 *   box_put_off    a put into a box, durability off
 *   box_get        a get of a record by key
 *   enqueue_off    a queue enqueue, durability off
 *   lease_ack_off  a lease and its ack, durability off
 *   reopen         opening a queue of N pending ops (per op), from the
 *                  index checkpoint its close wrote
 *   reopen_scan    the same with no checkpoint: a full scan of the log
 *
 * usage: icount WORKLOAD N DIR   (DIR: a scratch store directory)
 *        icount --build            the compiler and flags it was built with
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/boxguard.h"

/* The payloads and keys of every op, made before the count starts: their
 * snprintf is the workload's cost, not boxguard's. */
#define PAYLOAD_CAP 512
#define KEY_CAP     32
static char *payloads, *keys;
static size_t *payload_lens;

static const char *payload_of(uint64_t i, size_t *len)
{
    *len = payload_lens[i];
    return payloads + i * PAYLOAD_CAP;
}

static const char *key_of(uint64_t i)
{
    return keys + i * KEY_CAP;
}

static void make_inputs(uint64_t n)
{
    payloads = malloc(n * PAYLOAD_CAP);
    keys = malloc(n * KEY_CAP);
    payload_lens = malloc(n * sizeof *payload_lens);
    if (!payloads || !keys || !payload_lens) {
        fprintf(stderr, "icount: out of memory\n");
        exit(3);
    }
    for (uint64_t i = 0; i < n; i++) {
        payload_lens[i] = (size_t)snprintf(
            payloads + i * PAYLOAD_CAP, PAYLOAD_CAP,
            "{\"type\":\"update\",\"entity\":\"note\",\"id\":%" PRIu64
            ",\"fields\":{\"title\":\"Shopping list\",\"body\":\"milk, eggs, "
            "bread, coffee, apples, rice, olive oil\",\"tags\":[\"home\","
            "\"weekly\"]},\"client_ts\":1795348800123,\"device\":"
            "\"a1b2c3d4e5\","
            "\"pad\":\"%020d\"}",
            10000000 + i, 0);
        snprintf(keys + i * KEY_CAP, KEY_CAP, "op-%08" PRIu64, i);
    }
}

static void die(const char *what, bg_store *s)
{
    fprintf(stderr, "icount: %s: %s\n", what, s ? bg_store_detail(s) : "");
    exit(3);
}

/* A fixed clock: the envelope's time has the same digits in every run. */
static int64_t fixed_ms(void *ctx)
{
    (void)ctx;
    return 1795348800000LL;
}

typedef struct ctx {
    const char *work, *dir;
    uint64_t n;
    bg_store *s;
    bg_queue *q;
    bg_box *b;
} ctx;

static void open_store(ctx *c)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.create = 1;
    o.durability = BG_DURABILITY_OFF;
    o.clock.now_ms = fixed_ms;
    if (bg_store_open(c->dir, &o, &c->s))
        die("open", NULL);
}

static void enqueue_n(ctx *c, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const char *p = payload_of(i, &len);
        uint64_t id;
        if (bg_queue_enqueue(c->q, BG_LANE_NORMAL, key_of(i), p, len, &id))
            die("enqueue", c->s);
    }
}

/* What is counted: N operations of the workload, nothing else. */
__attribute__((noinline)) void icount_run(ctx *c);
__attribute__((noinline)) void icount_run(ctx *c)
{
    char why[256];
    size_t len;
    const char *p;
    if (!strcmp(c->work, "record_check")) {
        for (uint64_t i = 0; i < c->n; i++) {
            p = payload_of(i, &len);
            if (bg_record_validate(p, len, why, sizeof why))
                die(why, NULL);
        }
    } else if (!strcmp(c->work, "box_put_off")) {
        for (uint64_t i = 0; i < c->n; i++) {
            p = payload_of(i, &len);
            if (bg_box_put(c->b, key_of(i), strlen(key_of(i)), 0, p, len))
                die("put", c->s);
        }
    } else if (!strcmp(c->work, "box_get")) {
        for (uint64_t i = 0; i < c->n; i++) {
            uint32_t t;
            char *v;
            if (bg_box_get(c->b, key_of(i), strlen(key_of(i)), &t, &v, &len))
                die("get", c->s);
            bg_store_free(c->s, v);
        }
    } else if (!strcmp(c->work, "enqueue_off")) {
        enqueue_n(c, c->n);
    } else if (!strcmp(c->work, "lease_ack_off")) {
        for (uint64_t i = 0; i < c->n; i++) {
            bg_queue_op op;
            if (bg_queue_lease(c->q, &op) || bg_queue_ack(c->q, op.id))
                die("lease+ack", c->s);
            bg_queue_op_clear(&op);
        }
    } else if (!strcmp(c->work, "reopen") || !strcmp(c->work, "reopen_scan")) {
        if (bg_queue_open(c->s, NULL, &c->q))
            die("reopen", c->s);
    }
}

#ifndef BG_ICOUNT_BUILD
#define BG_ICOUNT_BUILD "unknown"
#endif

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--build")) {
        puts(BG_ICOUNT_BUILD);
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: icount WORKLOAD N DIR\n");
        return 2;
    }
    ctx c = {.work = argv[1], .dir = argv[3]};
    c.n = strtoull(argv[2], NULL, 10);
    make_inputs(c.n);
    open_store(&c);
    const char *w = c.work;
    if (!strcmp(w, "box_put_off") || !strcmp(w, "box_get")) {
        if (bg_box_open(c.s, "bench", BG_BOX_CREATE, &c.b))
            die("box", c.s);
        if (!strcmp(w, "box_get")) {
            for (uint64_t i = 0; i < c.n; i++) {
                size_t len;
                const char *p = payload_of(i, &len);
                if (bg_box_put(c.b, key_of(i), strlen(key_of(i)), 0, p, len))
                    die("put", c.s);
            }
        }
    } else if (!strcmp(w, "enqueue_off") || !strcmp(w, "lease_ack_off") ||
               !strcmp(w, "reopen") || !strcmp(w, "reopen_scan")) {
        if (bg_queue_open(c.s, NULL, &c.q))
            die("queue", c.s);
        if (strcmp(w, "enqueue_off"))
            enqueue_n(&c, c.n);
        if (strncmp(w, "reopen", 6) == 0) { /* as a new process opens it */
            if (bg_queue_close(c.q))
                die("close queue", c.s);
            c.q = NULL;
            if (bg_store_close(c.s))
                die("close", NULL);
            if (!strcmp(w, "reopen_scan")) {
                char path[4096];
                snprintf(path, sizeof path, "%s/pending_ops.index", c.dir);
                if (remove(path))
                    die("remove the checkpoint", NULL);
            }
            open_store(&c);
        }
    } else if (strcmp(w, "record_check")) {
        fprintf(stderr, "icount: unknown workload '%s'\n", w);
        return 2;
    }
    icount_run(&c);
    if (c.q)
        bg_queue_close(c.q);
    if (bg_store_close(c.s))
        die("close", NULL);
    free(payloads);
    free(keys);
    free(payload_lens);
    return 0;
}
