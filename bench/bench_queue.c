/*
 * Load benchmark of the pending-ops queue against its references, all in
 * one run, on one directory:
 *   - boxguard: enqueue, and lease+ack, at depths 1k..1M, per durability
 *     mode (full, group of 10, group of 100, off), ~256-byte JSON payloads,
 *     one store per mode;
 *   - raw, with writes the size of our enqueue's frame: an append +
 *     fdatasync loop, a plain append loop, and the physical floor: an
 *     overwrite of a synced zeroed region + fdatasync;
 *   - SQLite as a queue (WAL, locking_mode=EXCLUSIVE, every statement and
 *     BEGIN/COMMIT prepared; synchronous FULL, NORMAL, OFF): INSERT per
 *     enqueue, SELECT lowest + DELETE per dequeue, each in its own
 *     transaction or batched 10/100 per transaction like ours;
 *   - reopen time of 1M pending ops against one sequential read of the same
 *     files, and RSS per pending op (child processes).
 * Method: every fill is synced before anything is timed. At each depth the
 * systems take turns of 100 enqueues then 100 dequeues (the depth moves by
 * at most 100), one after the other, in rounds (5 of 20 turns: 10,000
 * samples per series; --quick: 2 of 5), the first system of each round
 * rotating. p50 and throughput are medians of the rounds, with their
 * spread; p90..max are over every sample. Results as JSON (--json FILE)
 * with the machine and build they came from.
 *
 * usage: bench_queue [--quick] [--json FILE] [--dir DIR]
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "boxguard/boxguard.h"

#ifndef BG_BENCH_BUILD
#define BG_BENCH_BUILD "unknown"
#endif

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_queue: %s: %s\n", what, detail);
    exit(3);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return v[i];
}

static cJSON *results;

/* ---- series: samples pooled over rounds ---------------------------------- */

#define MAX_ROUNDS 16
#define CHUNK      100 /* ops per turn of one op kind: depth moves by at most it */

/* The latencies of one (system, mode, depth, op), pooled over the rounds
 * for the percentiles, with each round's p50 and throughput kept apart so
 * that the figure is a median of rounds with its spread. */
typedef struct series {
    const char *system, *op;
    char mode[32];
    uint64_t depth;
    double *lat;
    size_t n, cap;
    size_t round_start; /* first sample of the current round */
    double round_us;    /* sum of the current round's op latencies */
    double p50r[MAX_ROUNDS], opsr[MAX_ROUNDS];
    int nr;
} series;

static void series_init(series *s, const char *system, const char *mode,
                        const char *op, uint64_t depth, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->system = system;
    s->op = op;
    snprintf(s->mode, sizeof s->mode, "%s", mode);
    s->depth = depth;
    s->cap = cap;
    s->lat = malloc(cap * sizeof *s->lat);
    if (!s->lat)
        die("memory", "samples");
}

static void series_add(series *s, double us)
{
    if (s->n == s->cap)
        die("samples", "more than planned");
    s->lat[s->n++] = us;
    s->round_us += us;
}

static double median(double *v, int n)
{
    double t[MAX_ROUNDS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void series_end_round(series *s)
{
    size_t k = s->n - s->round_start;
    if (!k || s->nr == MAX_ROUNDS)
        return;
    double *t = malloc(k * sizeof *t);
    if (!t)
        die("memory", "round");
    memcpy(t, s->lat + s->round_start, k * sizeof *t);
    qsort(t, k, sizeof *t, cmp_d);
    s->p50r[s->nr] = pct(t, k, 50);
    s->opsr[s->nr] = s->round_us > 0 ? (double)k / (s->round_us / 1e6) : 0;
    s->nr++;
    free(t);
    s->round_start = s->n;
    s->round_us = 0;
}

static cJSON *num_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static double spread(const double *v, int n)
{
    double lo = v[0], hi = v[0];
    for (int i = 1; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    return lo > 0 ? hi / lo - 1 : 0;
}

/* Record a series: p50 and throughput as medians of its rounds (with
 * their spread, max/min - 1), the other percentiles over every sample. */
static void record(series *s)
{
    if (!s->n)
        return;
    double *v = s->lat;
    size_t n = s->n;
    qsort(v, n, sizeof *v, cmp_d);
    double p50 = median(s->p50r, s->nr), ops = median(s->opsr, s->nr);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "system", s->system);
    cJSON_AddStringToObject(o, "mode", s->mode);
    cJSON_AddNumberToObject(o, "depth", (double)s->depth);
    cJSON_AddStringToObject(o, "op", s->op);
    cJSON_AddNumberToObject(o, "n", (double)n);
    cJSON_AddNumberToObject(o, "rounds", s->nr);
    cJSON_AddNumberToObject(o, "p50_us", p50);
    cJSON_AddNumberToObject(o, "p50_spread", spread(s->p50r, s->nr));
    cJSON_AddItemToObject(o, "p50_rounds", num_array(s->p50r, s->nr));
    cJSON_AddNumberToObject(o, "p90_us", pct(v, n, 90));
    cJSON_AddNumberToObject(o, "p99_us", pct(v, n, 99));
    cJSON_AddNumberToObject(o, "p999_us", pct(v, n, 99.9));
    cJSON_AddNumberToObject(o, "max_us", v[n - 1]);
    cJSON_AddNumberToObject(o, "ops_per_s", ops);
    cJSON_AddNumberToObject(o, "ops_spread", spread(s->opsr, s->nr));
    cJSON_AddItemToObject(o, "ops_rounds", num_array(s->opsr, s->nr));
    cJSON_AddItemToArray(results, o);
    fprintf(stderr,
            "  %-9s %-16s depth %-8" PRIu64
            " %-10s n=%-6zu p50 %8.1f us (+%4.1f%%)  p99.9 %9.1f us  "
            "%9.0f op/s\n",
            s->system, s->mode, s->depth, s->op, n, p50,
            100 * spread(s->p50r, s->nr), pct(v, n, 99.9), ops);
    free(s->lat);
    s->lat = NULL;
}

static char payload[512];
static size_t payload_len;

static void make_payload(uint64_t i)
{
    payload_len = (size_t)snprintf(
        payload, sizeof payload,
        "{\"type\":\"update\",\"entity\":\"note\",\"id\":%" PRIu64
        ",\"fields\":{\"title\":\"Shopping list\",\"body\":\"milk, eggs, "
        "bread, coffee, apples, rice, olive oil\",\"tags\":[\"home\","
        "\"weekly\"]},\"client_ts\":1795348800123,\"device\":\"a1b2c3d4e5\","
        "\"pad\":\"%0*d\"}",
        i, 20, 0);
}

/* ---- boxguard ----------------------------------------------------------- */

typedef struct bgq {
    bg_store *s;
    bg_queue *q;
} bgq;

static void bg_open(bgq *b, const char *dir, bg_durability d, unsigned group)
{
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.create = 1;
    o.durability = d;
    o.group_size = group ? group : 100;
    char detail[512] = "";
    o.detail = detail;
    o.detail_len = sizeof detail;
    if (bg_store_open(dir, &o, &b->s))
        die("open store", detail);
    if (bg_queue_open(b->s, NULL, &b->q))
        die("open queue", bg_store_detail(b->s));
}

static void bg_shut(bgq *b)
{
    bg_queue_close(b->q);
    if (bg_store_close(b->s))
        die("close store", "sync failed");
}

static uint64_t idem_seq;

static void bg_enqueue_one(bgq *b)
{
    char idem[32];
    snprintf(idem, sizeof idem, "op-%" PRIu64, ++idem_seq);
    make_payload(idem_seq);
    uint64_t id;
    if (bg_queue_enqueue(b->q, BG_LANE_NORMAL, idem, payload, payload_len, &id))
        die("enqueue", bg_store_detail(b->s));
}

/* Fill the queue of dir (durability off) up to `to` pending ops. */
static void bg_fill(const char *dir, uint64_t to, uint64_t *have)
{
    if (*have >= to)
        return;
    bgq b;
    bg_open(&b, dir, BG_DURABILITY_OFF, 0);
    for (; *have < to; (*have)++)
        bg_enqueue_one(&b);
    bg_shut(&b);
}

/* ---- the systems measured, each a contestant taking turns --------------- */

typedef enum kind { K_BG, K_SQLITE, K_RAW, K_FLOOR } kind;

typedef struct contestant {
    kind k;
    const char *system;
    const char *mode;
    bg_durability dur; /* K_BG */
    unsigned group;    /* K_BG: group size; K_SQLITE: ops per transaction */
    const char *sync;  /* K_SQLITE: PRAGMA synchronous; K_RAW: NULL = none */
    char dir[1100];    /* K_BG */
    uint64_t have;     /* K_BG: ops pending (before the depth's turns) */
    bgq b;
    series enq, deq; /* K_RAW and K_FLOOR: enq only */
    int fd;
    uint64_t off; /* K_FLOOR: next offset to overwrite */
} contestant;

static size_t frame_bytes; /* one enqueue's frame in pending_ops */
static char raw_buf[4096];

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *ins, *sel, *del, *begin, *commit;
    uint64_t seq, have;
    const char *sync; /* the synchronous level set now */
} sq;

static void sq_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die(sql, msg ? msg : sqlite3_errmsg(db));
}

static void sq_step(sq *q, sqlite3_stmt *st, int want)
{
    if (sqlite3_step(st) != want)
        die("sqlite", sqlite3_errmsg(q->db));
    sqlite3_reset(st);
}

static void sq_prepare(sq *q, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(q->db, sql, -1, st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(q->db));
}

/* SQLite as a queue, made fair: WAL, one connection holding the database
 * (locking_mode=EXCLUSIVE), every statement prepared once, BEGIN and
 * COMMIT included. */
static void sq_open(sq *q, const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/queue.sqlite", dir);
    memset(q, 0, sizeof *q);
    if (sqlite3_open(path, &q->db) != SQLITE_OK)
        die("sqlite open", sqlite3_errmsg(q->db));
    sq_exec(q->db, "PRAGMA locking_mode=EXCLUSIVE");
    sq_exec(q->db, "PRAGMA journal_mode=WAL");
    sq_exec(q->db, "CREATE TABLE IF NOT EXISTS ops(id INTEGER PRIMARY KEY, "
                   "idem TEXT UNIQUE NOT NULL, payload TEXT NOT NULL)");
    sq_prepare(q, "INSERT INTO ops(idem, payload) VALUES(?, ?)", &q->ins);
    sq_prepare(q, "SELECT id, payload FROM ops ORDER BY id LIMIT 1", &q->sel);
    sq_prepare(q, "DELETE FROM ops WHERE id = ?", &q->del);
    sq_prepare(q, "BEGIN", &q->begin);
    sq_prepare(q, "COMMIT", &q->commit);
}

static void sq_set_sync(sq *q, const char *sync)
{
    if (q->sync && !strcmp(q->sync, sync))
        return;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s", sync);
    sq_exec(q->db, pragma);
    q->sync = sync;
}

static void sq_insert_one(sq *q)
{
    char idem[32];
    snprintf(idem, sizeof idem, "op-%" PRIu64, ++q->seq);
    make_payload(q->seq);
    sqlite3_bind_text(q->ins, 1, idem, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q->ins, 2, payload, (int)payload_len, SQLITE_TRANSIENT);
    sq_step(q, q->ins, SQLITE_DONE);
}

/* Fill to `to` rows in one transaction, then checkpoint with a sync, so
 * that no fill is left for the timed commits to write. */
static void sq_fill(sq *q, uint64_t to)
{
    if (q->have >= to)
        return;
    sq_set_sync(q, "OFF");
    sq_step(q, q->begin, SQLITE_DONE);
    for (; q->have < to; q->have++)
        sq_insert_one(q);
    sq_step(q, q->commit, SQLITE_DONE);
    sq_set_sync(q, "FULL");
    sq_exec(q->db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

static sq sqlite_q;

/* One turn: CHUNK enqueues then CHUNK dequeues (or CHUNK raw writes). */
static void turn(contestant *c)
{
    double a;
    switch (c->k) {
    case K_BG:
        for (int i = 0; i < CHUNK; i++) {
            a = now_us();
            bg_enqueue_one(&c->b);
            series_add(&c->enq, now_us() - a);
        }
        for (int i = 0; i < CHUNK; i++) {
            bg_queue_op op;
            a = now_us();
            if (bg_queue_lease(c->b.q, &op) || bg_queue_ack(c->b.q, op.id))
                die("lease+ack", bg_store_detail(c->b.s));
            series_add(&c->deq, now_us() - a);
            bg_queue_op_clear(&op);
        }
        return;
    case K_SQLITE: {
        sq *q = &sqlite_q;
        sq_set_sync(q, c->sync);
        for (int i = 0; i < CHUNK; i++) {
            a = now_us();
            if (i % c->group == 0)
                sq_step(q, q->begin, SQLITE_DONE);
            sq_insert_one(q);
            if (i % c->group == c->group - 1 || i + 1 == CHUNK)
                sq_step(q, q->commit, SQLITE_DONE);
            series_add(&c->enq, now_us() - a);
        }
        for (int i = 0; i < CHUNK; i++) {
            a = now_us();
            if (i % c->group == 0)
                sq_step(q, q->begin, SQLITE_DONE);
            if (sqlite3_step(q->sel) != SQLITE_ROW)
                die("sqlite select", sqlite3_errmsg(q->db));
            sqlite3_int64 id = sqlite3_column_int64(q->sel, 0);
            (void)sqlite3_column_text(q->sel, 1);
            sqlite3_reset(q->sel);
            sqlite3_bind_int64(q->del, 1, id);
            sq_step(q, q->del, SQLITE_DONE);
            if (i % c->group == c->group - 1 || i + 1 == CHUNK)
                sq_step(q, q->commit, SQLITE_DONE);
            series_add(&c->deq, now_us() - a);
        }
        return;
    }
    case K_RAW:
        for (int i = 0; i < CHUNK; i++) {
            a = now_us();
            if (write(c->fd, raw_buf, frame_bytes) != (ssize_t)frame_bytes ||
                (c->sync && fdatasync(c->fd)))
                die("raw", strerror(errno));
            series_add(&c->enq, now_us() - a);
        }
        return;
    case K_FLOOR:
        for (int i = 0; i < CHUNK; i++) {
            a = now_us();
            if (pwrite(c->fd, raw_buf, frame_bytes, (off_t)c->off) !=
                    (ssize_t)frame_bytes ||
                fdatasync(c->fd))
                die("floor", strerror(errno));
            c->off += frame_bytes;
            series_add(&c->enq, now_us() - a);
        }
        return;
    }
}

/* Write zeros over [0, len) of a new file and sync it: the region the
 * physical floor overwrites. */
static int zeroed_file(const char *path, size_t len)
{
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0)
        die(path, strerror(errno));
    static char z[1 << 16];
    for (size_t at = 0; at < len; at += sizeof z)
        if (write(fd, z, sizeof z) != (ssize_t)sizeof z)
            die(path, strerror(errno));
    if (fsync(fd))
        die(path, strerror(errno));
    return fd;
}

/* The bytes one enqueue adds to pending_ops, measured on a scratch store
 * (durability off: no zeroed region). */
static size_t measure_frame(const char *base)
{
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/frame", base);
    snprintf(path, sizeof path, "%s/pending_ops.box", dir);
    uint64_t have = 0;
    struct stat a, b;
    bg_fill(dir, 1, &have);
    if (stat(path, &a))
        die(path, strerror(errno));
    bg_fill(dir, 101, &have);
    if (stat(path, &b))
        die(path, strerror(errno));
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        die("remove", dir);
    return (size_t)(b.st_size - a.st_size) / 100;
}

/* Every system at one depth, in `rounds` rounds; in each round every
 * contestant takes `turns` turns, one after the other (ABCABC...), the
 * first of each round rotating. */
static void measure_depth(contestant *cs, size_t nc, const char *base,
                          uint64_t depth, int rounds, int turns)
{
    size_t per = (size_t)rounds * (size_t)turns * CHUNK;
    char path[1200];
    for (size_t i = 0; i < nc; i++) {
        contestant *c = &cs[i];
        const char *op = c->k == K_FLOOR ? "overwrite"
                         : c->k == K_RAW ? "append"
                                         : "enqueue";
        series_init(&c->enq, c->system, c->mode, op, depth, per);
        if (c->k == K_BG || c->k == K_SQLITE)
            series_init(&c->deq, c->system, c->mode, "lease+ack", depth, per);
        if (c->k == K_BG) {
            bg_fill(c->dir, depth, &c->have);
            bg_open(&c->b, c->dir, c->dur, c->group);
        } else if (c->k == K_RAW) {
            snprintf(path, sizeof path, "%s/raw-%s.log", base,
                     c->sync ? "sync" : "nosync");
            c->fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0644);
            if (c->fd < 0)
                die(path, strerror(errno));
        } else if (c->k == K_FLOOR) {
            snprintf(path, sizeof path, "%s/floor.log", base);
            c->fd = zeroed_file(path, per * frame_bytes + (1 << 16));
            c->off = 0;
        }
    }
    sq_fill(&sqlite_q, depth);
    sync(); /* every fill on disk before anything is timed */
    for (int r = 0; r < rounds; r++) {
        fprintf(stderr, "depth %" PRIu64 ": round %d of %d\n", depth, r + 1,
                rounds);
        for (int t = 0; t < turns; t++)
            for (size_t i = 0; i < nc; i++)
                turn(&cs[(i + (size_t)r) % nc]);
        for (size_t i = 0; i < nc; i++) {
            series_end_round(&cs[i].enq);
            if (cs[i].deq.lat)
                series_end_round(&cs[i].deq);
        }
    }
    for (size_t i = 0; i < nc; i++) {
        contestant *c = &cs[i];
        record(&c->enq);
        if (c->deq.lat)
            record(&c->deq);
        if (c->k == K_BG)
            bg_shut(&c->b); /* as many ops pending as before the turns */
        else if (c->k == K_RAW || c->k == K_FLOOR)
            close(c->fd);
    }
    static const char *const logs[] = {"raw-sync.log", "raw-nosync.log",
                                       "floor.log"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", base, logs[i]);
        unlink(path);
    }
}

/* ---- reopen and memory ------------------------------------------------- */

/* Resident memory now (VmRSS), KiB. */
static long rss_now_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Child mode: open the queue of DIR and print the open time (µs), the
 * pending count, the peak RSS and the RSS once open (KiB). */
static int probe(const char *dir)
{
    double a = now_us();
    bgq b;
    bg_open(&b, dir, BG_DURABILITY_FULL, 0);
    double t = now_us() - a;
    bg_queue_stats st;
    bg_queue_stats_of(b.q, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.1f %" PRIu64 " %ld %ld\n", t, st.pending[0] + st.pending[1],
           ru.ru_maxrss, rss_now_kib());
    bg_shut(&b);
    return 0;
}

static int run_probe(const char *self, const char *dir, double *us,
                     uint64_t *pending, long *rss_kib, long *now_kib)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --probe '%s'", self, dir);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int n = fscanf(p, "%lf %" SCNu64 " %ld %ld", us, pending, rss_kib, now_kib);
    int rc = pclose(p);
    return n == 4 && rc == 0 ? 0 : -1;
}

/* One sequential read of every file of the store (boxes, the index
 * checkpoint, the lease log). */
static double read_all(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "find '%s' -maxdepth 1 -type f", dir);
    FILE *p = popen(cmd, "r");
    char path[1024];
    static char buf[1 << 20];
    double a = now_us();
    while (p && fgets(path, sizeof path, p)) {
        path[strcspn(path, "\n")] = '\0';
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        while (read(fd, buf, sizeof buf) > 0) {
        }
        close(fd);
    }
    double t = now_us() - a;
    if (p)
        pclose(p);
    return t;
}

/* ---- machine ----------------------------------------------------------- */

static cJSON *machine(void)
{
    cJSON *m = cJSON_CreateObject();
    struct utsname u;
    if (uname(&u) == 0) {
        cJSON_AddStringToObject(m, "kernel", u.release);
        cJSON_AddStringToObject(m, "arch", u.machine);
        cJSON_AddStringToObject(m, "host", u.nodename);
    }
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *v = strchr(line, ':');
            if (v) {
                v[strcspn(v, "\n")] = '\0';
                cJSON_AddStringToObject(m, "cpu", v + 2);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    cJSON_AddNumberToObject(m, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(m, "mem_mib",
                            (double)sysconf(_SC_PHYS_PAGES) *
                                (double)sysconf(_SC_PAGESIZE) / 1048576.0);
    return m;
}

int main(int argc, char **argv)
{
    const char *json_path = NULL, *dir = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--probe") && i + 1 < argc)
            return probe(argv[i + 1]);
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_queue [--quick] [--json FILE] "
                            "[--dir DIR]\n");
            return 2;
        }
    }
    char base[1024];
    if (dir) {
        snprintf(base, sizeof base, "%s", dir);
    } else {
        /* A fresh directory of ours under $TMPDIR, removed at the end. */
        const char *root = getenv("TMPDIR");
        snprintf(base, sizeof base, "%s/bg_bench.%ld",
                 root && *root ? root : "/tmp", (long)getpid());
        if (mkdir(base, 0700) != 0)
            die(base, strerror(errno));
    }
    char sdir[1100];
    snprintf(sdir, sizeof sdir, "%s/sqlite", base);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && rm -rf queue-full queue-group10 "
             "queue-group100 queue-off sqlite frame empty && mkdir sqlite",
             base, base);
    if (system(cmd) != 0)
        die("prepare", base);

    static const uint64_t depths_full[] = {1000, 10000, 100000, 1000000};
    static const uint64_t depths_quick[] = {1000, 10000, 100000};
    const uint64_t *depths = quick ? depths_quick : depths_full;
    size_t ndepths = quick ? 3 : 4;
    /* Samples per series and depth: rounds x turns x CHUNK, 10,000 in a
     * full run (so that p99.9 is not the maximum), 1,000 in a quick one. */
    int rounds = quick ? 2 : 5, turns = quick ? 5 : 20;

    frame_bytes = measure_frame(base);
    if (frame_bytes == 0 || frame_bytes > sizeof raw_buf)
        die("frame size", "out of range");
    memset(raw_buf, 'r', sizeof raw_buf);
    contestant cs[] = {
        {.k = K_RAW, .system = "raw", .mode = "append+fdatasync", .sync = "1"},
        {.k = K_FLOOR, .system = "raw", .mode = "overwrite+fdatasync"},
        {.k = K_RAW, .system = "raw", .mode = "append"},
        {.k = K_BG,
         .system = "boxguard",
         .mode = "full",
         .dur = BG_DURABILITY_FULL},
        {.k = K_BG,
         .system = "boxguard",
         .mode = "group10",
         .dur = BG_DURABILITY_GROUP,
         .group = 10},
        {.k = K_BG,
         .system = "boxguard",
         .mode = "group100",
         .dur = BG_DURABILITY_GROUP,
         .group = 100},
        {.k = K_BG,
         .system = "boxguard",
         .mode = "off",
         .dur = BG_DURABILITY_OFF},
        {.k = K_SQLITE,
         .system = "sqlite",
         .mode = "FULL",
         .sync = "FULL",
         .group = 1},
        {.k = K_SQLITE,
         .system = "sqlite",
         .mode = "NORMAL",
         .sync = "NORMAL",
         .group = 1},
        {.k = K_SQLITE,
         .system = "sqlite",
         .mode = "OFF",
         .sync = "OFF",
         .group = 1},
        {.k = K_SQLITE,
         .system = "sqlite",
         .mode = "FULL/batch10",
         .sync = "FULL",
         .group = 10},
        {.k = K_SQLITE,
         .system = "sqlite",
         .mode = "FULL/batch100",
         .sync = "FULL",
         .group = 100},
    };
    size_t nc = sizeof cs / sizeof cs[0];
    for (size_t i = 0; i < nc; i++)
        if (cs[i].k == K_BG)
            snprintf(cs[i].dir, sizeof cs[i].dir, "%s/queue-%s", base,
                     cs[i].mode);
    sq_open(&sqlite_q, sdir);

    results = cJSON_CreateArray();
    double t_start = now_us();
    fprintf(stderr,
            "bench_queue: %s run in %s: %d rounds of %d turns of %d ops, "
            "frames of %zu bytes\n",
            quick ? "quick" : "full", base, rounds, turns, CHUNK, frame_bytes);
    for (size_t d = 0; d < ndepths; d++) {
        fprintf(stderr, "depth %" PRIu64 ": filling\n", depths[d]);
        measure_depth(cs, nc, base, depths[d], rounds, turns);
    }
    sqlite3_finalize(sqlite_q.ins);
    sqlite3_finalize(sqlite_q.sel);
    sqlite3_finalize(sqlite_q.del);
    sqlite3_finalize(sqlite_q.begin);
    sqlite3_finalize(sqlite_q.commit);
    sqlite3_close(sqlite_q.db);
    const char *qdir = cs[3].dir; /* full: the deepest queue, reopened */
    /* Reopen and memory at the deepest depth, against an empty store. */
    char edir[1100];
    snprintf(edir, sizeof edir, "%s/empty", base);
    bg_fill(edir, 0, &(uint64_t){0});
    {
        bgq e;
        bg_open(&e, edir, BG_DURABILITY_FULL, 0);
        bg_shut(&e);
    }
    /* Three rounds of (read every file, open in a fresh process), with
     * the cache warm for both: medians, and the spread of the opens. */
    double opens[3], reads[3], empty_us = 0;
    uint64_t pending = 0, p0 = 0;
    long rss = 0, rss0 = 0, now = 0, now0 = 0;
    cJSON *reopen = cJSON_CreateObject();
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = '\0';
    (void)read_all(qdir); /* warm the cache as the opens will find it */
    int ok = run_probe(self, edir, &empty_us, &p0, &rss0, &now0) == 0;
    for (int r = 0; r < 3 && ok; r++) {
        /* nothing left to write back while either is timed (a probe's
         * close writes the checkpoint) */
        sync();
        reads[r] = read_all(qdir);
        sync();
        ok = run_probe(self, qdir, &opens[r], &pending, &rss, &now) == 0;
    }
    if (ok) {
        double open_us = median(opens, 3), read_us = median(reads, 3);
        cJSON_AddNumberToObject(reopen, "pending", (double)pending);
        cJSON_AddNumberToObject(reopen, "open_us", open_us);
        cJSON_AddNumberToObject(reopen, "open_spread", spread(opens, 3));
        cJSON_AddNumberToObject(reopen, "sequential_read_us", read_us);
        cJSON_AddNumberToObject(reopen, "open_over_read", open_us / read_us);
        cJSON_AddNumberToObject(reopen, "rss_kib", (double)rss);
        cJSON_AddNumberToObject(reopen, "empty_rss_kib", (double)rss0);
        cJSON_AddNumberToObject(reopen, "rss_now_kib", (double)now);
        cJSON_AddNumberToObject(reopen, "empty_rss_now_kib", (double)now0);
        cJSON_AddNumberToObject(
            reopen, "bytes_per_pending_op",
            pending ? (double)(now - now0) * 1024.0 / (double)pending : 0);
        cJSON_AddNumberToObject(
            reopen, "peak_bytes_per_pending_op",
            pending ? (double)(rss - rss0) * 1024.0 / (double)pending : 0);
        fprintf(stderr,
                "reopen of %" PRIu64 " pending ops: %.0f ms (read %.0f ms), "
                "%.1f bytes/op held beyond a %ld KiB base (peak %.1f)\n",
                pending, open_us / 1e3, read_us / 1e3,
                pending ? (double)(now - now0) * 1024.0 / (double)pending : 0,
                now0,
                pending ? (double)(rss - rss0) * 1024.0 / (double)pending : 0);
    }

    cJSON *doc = cJSON_CreateObject();
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    cJSON_AddStringToObject(doc, "date", date);
    cJSON_AddStringToObject(doc, "kind", quick ? "quick" : "full");
    cJSON_AddItemToObject(doc, "machine", machine());
    cJSON *build = cJSON_CreateObject();
    cJSON_AddStringToObject(build, "boxguard", BOXGUARD_VERSION);
    cJSON_AddStringToObject(build, "build", BG_BENCH_BUILD);
    cJSON_AddStringToObject(build, "sqlite", sqlite3_libversion());
    cJSON_AddItemToObject(doc, "build", build);
    cJSON_AddNumberToObject(doc, "payload_bytes", (double)payload_len);
    cJSON_AddNumberToObject(doc, "frame_bytes", (double)frame_bytes);
    cJSON *method = cJSON_CreateObject();
    cJSON_AddNumberToObject(method, "rounds", rounds);
    cJSON_AddNumberToObject(method, "turns_per_round", turns);
    cJSON_AddNumberToObject(method, "ops_per_turn", CHUNK);
    cJSON_AddItemToObject(doc, "method", method);
    cJSON_AddNumberToObject(doc, "seconds", (now_us() - t_start) / 1e6);
    cJSON_AddItemToObject(doc, "results", results);
    cJSON_AddItemToObject(doc, "reopen", reopen);
    char *txt = cJSON_Print(doc);
    if (json_path) {
        FILE *f = fopen(json_path, "w");
        if (!f || fputs(txt, f) < 0 || fclose(f))
            die("write", json_path);
    } else {
        puts(txt);
    }
    cJSON_free(txt);
    cJSON_Delete(doc);
    if (!dir) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_queue: could not remove %s\n", base);
    }
    return 0;
}
