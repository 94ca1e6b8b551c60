/*
 * Load benchmark of the pending-ops queue against its references, all in
 * one run, on one directory:
 *   - boxguard: enqueue, and lease+ack, at depths 1k..1M, per durability
 *     mode (full, group of 10, group of 100, off), ~256-byte JSON payloads;
 *   - raw: a 256-byte append + fdatasync loop, and a plain append loop;
 *   - SQLite as a queue (WAL; synchronous FULL, NORMAL, OFF): INSERT per
 *     enqueue, SELECT lowest + DELETE per dequeue, each in its own
 *     transaction or batched 10/100 per transaction like ours;
 *   - reopen time of 1M pending ops against one sequential read of the same
 *     files, and peak RSS per pending op (child processes).
 * Latencies per op: p50, p90, p99, p99.9, max; throughput. Results as JSON
 * (--json FILE) with the machine and build they came from.
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

/* Record one series of per-op latencies (µs); v is sorted in place. */
static void record(const char *system, const char *mode, uint64_t depth,
                   const char *op, double *v, size_t n, double wall_us)
{
    qsort(v, n, sizeof *v, cmp_d);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "system", system);
    cJSON_AddStringToObject(o, "mode", mode);
    cJSON_AddNumberToObject(o, "depth", (double)depth);
    cJSON_AddStringToObject(o, "op", op);
    cJSON_AddNumberToObject(o, "n", (double)n);
    cJSON_AddNumberToObject(o, "p50_us", pct(v, n, 50));
    cJSON_AddNumberToObject(o, "p90_us", pct(v, n, 90));
    cJSON_AddNumberToObject(o, "p99_us", pct(v, n, 99));
    cJSON_AddNumberToObject(o, "p999_us", pct(v, n, 99.9));
    cJSON_AddNumberToObject(o, "max_us", n ? v[n - 1] : 0);
    cJSON_AddNumberToObject(o, "ops_per_s",
                            wall_us > 0 ? n / (wall_us / 1e6) : 0);
    cJSON_AddItemToArray(results, o);
    fprintf(stderr,
            "  %-9s %-7s depth %-8" PRIu64
            " %-10s n=%-6zu p50 %8.1f us  p99 %9.1f us  %9.0f op/s\n",
            system, mode, depth, op, n, pct(v, n, 50), pct(v, n, 99),
            wall_us > 0 ? n / (wall_us / 1e6) : 0);
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

static void bg_fill(const char *dir, uint64_t to, uint64_t *have)
{
    if (*have >= to)
        return;
    bgq b;
    bg_open(&b, dir, BG_DURABILITY_OFF, 0);
    for (; *have < to; (*have)++) {
        char idem[32];
        snprintf(idem, sizeof idem, "op-%" PRIu64, ++idem_seq);
        make_payload(idem_seq);
        uint64_t id;
        if (bg_queue_enqueue(b.q, BG_LANE_NORMAL, idem, payload, payload_len,
                             &id))
            die("prefill", bg_store_detail(b.s));
    }
    bg_shut(&b);
}

static void bg_measure(const char *dir, const char *mode, bg_durability d,
                       unsigned group, uint64_t depth, size_t n)
{
    bgq b;
    bg_open(&b, dir, d, group);
    double *lat = malloc(n * sizeof *lat);
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        char idem[32];
        snprintf(idem, sizeof idem, "op-%" PRIu64, ++idem_seq);
        make_payload(idem_seq);
        uint64_t id;
        double a = now_us();
        if (bg_queue_enqueue(b.q, BG_LANE_NORMAL, idem, payload, payload_len,
                             &id))
            die("enqueue", bg_store_detail(b.s));
        lat[i] = now_us() - a;
    }
    if (bg_store_sync(b.s))
        die("sync", bg_store_detail(b.s));
    record("boxguard", mode, depth, "enqueue", lat, n, now_us() - t0);
    t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        bg_queue_op op;
        double a = now_us();
        if (bg_queue_lease(b.q, &op) || bg_queue_ack(b.q, op.id))
            die("lease+ack", bg_store_detail(b.s));
        lat[i] = now_us() - a;
        bg_queue_op_clear(&op);
    }
    if (bg_store_sync(b.s))
        die("sync", bg_store_detail(b.s));
    record("boxguard", mode, depth, "lease+ack", lat, n, now_us() - t0);
    free(lat);
    bg_shut(&b);
}

/* ---- raw --------------------------------------------------------------- */

static void raw_measure(const char *dir, int sync, uint64_t depth, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/raw.log", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0644);
    if (fd < 0)
        die("raw", strerror(errno));
    char buf[256];
    memset(buf, 'r', sizeof buf);
    double *lat = malloc(n * sizeof *lat);
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        double a = now_us();
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf ||
            (sync && fdatasync(fd)))
            die("raw", strerror(errno));
        lat[i] = now_us() - a;
    }
    record("raw", sync ? "append+fdatasync" : "append", depth, "append", lat, n,
           now_us() - t0);
    free(lat);
    close(fd);
    unlink(path);
}

/* ---- SQLite ------------------------------------------------------------ */

static void sq_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die(sql, msg ? msg : sqlite3_errmsg(db));
}

static sqlite3 *sq_open(const char *dir, const char *sync)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/queue.sqlite", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("sqlite open", sqlite3_errmsg(db));
    sq_exec(db, "PRAGMA journal_mode=WAL");
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s", sync);
    sq_exec(db, pragma);
    sq_exec(db, "CREATE TABLE IF NOT EXISTS ops(id INTEGER PRIMARY KEY, "
                "idem TEXT UNIQUE NOT NULL, payload TEXT NOT NULL)");
    return db;
}

static uint64_t sq_seq;

static void sq_fill(const char *dir, uint64_t to, uint64_t *have)
{
    if (*have >= to)
        return;
    sqlite3 *db = sq_open(dir, "OFF");
    sqlite3_stmt *ins;
    sqlite3_prepare_v2(db, "INSERT INTO ops(idem, payload) VALUES(?, ?)", -1,
                       &ins, NULL);
    sq_exec(db, "BEGIN");
    for (; *have < to; (*have)++) {
        char idem[32];
        snprintf(idem, sizeof idem, "op-%" PRIu64, ++sq_seq);
        make_payload(sq_seq);
        sqlite3_bind_text(ins, 1, idem, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, payload, (int)payload_len, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die("sqlite prefill", sqlite3_errmsg(db));
        sqlite3_reset(ins);
    }
    sq_exec(db, "COMMIT");
    sqlite3_finalize(ins);
    sqlite3_close(db);
}

static void sq_measure(const char *dir, const char *sync, unsigned batch,
                       uint64_t depth, size_t n)
{
    sqlite3 *db = sq_open(dir, sync);
    sqlite3_stmt *ins, *sel, *del;
    sqlite3_prepare_v2(db, "INSERT INTO ops(idem, payload) VALUES(?, ?)", -1,
                       &ins, NULL);
    sqlite3_prepare_v2(db, "SELECT id, payload FROM ops ORDER BY id LIMIT 1",
                       -1, &sel, NULL);
    sqlite3_prepare_v2(db, "DELETE FROM ops WHERE id = ?", -1, &del, NULL);
    char mode[32];
    snprintf(mode, sizeof mode, "%s%s%u", sync, batch > 1 ? "/batch" : "",
             batch > 1 ? batch : 0u);
    if (batch <= 1)
        snprintf(mode, sizeof mode, "%s", sync);
    double *lat = malloc(n * sizeof *lat);
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        char idem[32];
        snprintf(idem, sizeof idem, "op-%" PRIu64, ++sq_seq);
        make_payload(sq_seq);
        double a = now_us();
        if (i % batch == 0)
            sq_exec(db, "BEGIN");
        sqlite3_bind_text(ins, 1, idem, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, payload, (int)payload_len, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die("sqlite insert", sqlite3_errmsg(db));
        sqlite3_reset(ins);
        if (i % batch == batch - 1 || i + 1 == n)
            sq_exec(db, "COMMIT");
        lat[i] = now_us() - a;
    }
    record("sqlite", mode, depth, "enqueue", lat, n, now_us() - t0);
    t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        double a = now_us();
        if (i % batch == 0)
            sq_exec(db, "BEGIN");
        if (sqlite3_step(sel) != SQLITE_ROW)
            die("sqlite select", sqlite3_errmsg(db));
        sqlite3_int64 id = sqlite3_column_int64(sel, 0);
        (void)sqlite3_column_text(sel, 1);
        sqlite3_reset(sel);
        sqlite3_bind_int64(del, 1, id);
        if (sqlite3_step(del) != SQLITE_DONE)
            die("sqlite delete", sqlite3_errmsg(db));
        sqlite3_reset(del);
        if (i % batch == batch - 1 || i + 1 == n)
            sq_exec(db, "COMMIT");
        lat[i] = now_us() - a;
    }
    record("sqlite", mode, depth, "lease+ack", lat, n, now_us() - t0);
    free(lat);
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    sqlite3_finalize(del);
    sqlite3_close(db);
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

/* One sequential read of every file of the store. */
static double read_all(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "find '%s' -maxdepth 1 -name '*.box' -type f",
             dir);
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
    char qdir[1100], sdir[1100];
    snprintf(qdir, sizeof qdir, "%s/queue", base);
    snprintf(sdir, sizeof sdir, "%s/sqlite", base);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' && mkdir -p '%s'", qdir, sdir,
             sdir);
    if (system(cmd) != 0)
        die("prepare", base);

    static const uint64_t depths_full[] = {1000, 10000, 100000, 1000000};
    static const uint64_t depths_quick[] = {1000, 10000, 100000};
    const uint64_t *depths = quick ? depths_quick : depths_full;
    size_t ndepths = quick ? 3 : 4;
    /* Samples per measurement: durable ops cost an fdatasync each. */
    size_t n_full = quick ? 100 : 300, n_group = quick ? 500 : 2000,
           n_off = quick ? 2000 : 10000;

    results = cJSON_CreateArray();
    double t_start = now_us();
    fprintf(stderr, "bench_queue: %s run in %s\n", quick ? "quick" : "full",
            base);
    uint64_t have = 0, sq_have = 0;
    for (size_t d = 0; d < ndepths; d++) {
        uint64_t depth = depths[d];
        fprintf(stderr, "depth %" PRIu64 ": filling\n", depth);
        bg_fill(qdir, depth, &have);
        sq_fill(sdir, depth, &sq_have);
        /* The raw limits beside ours, at each depth, in the same minute. */
        raw_measure(base, 1, depth, n_full);
        raw_measure(base, 0, depth, n_off);
        bg_measure(qdir, "full", BG_DURABILITY_FULL, 0, depth, n_full);
        bg_measure(qdir, "group10", BG_DURABILITY_GROUP, 10, depth, n_group);
        bg_measure(qdir, "group100", BG_DURABILITY_GROUP, 100, depth, n_group);
        bg_measure(qdir, "off", BG_DURABILITY_OFF, 0, depth, n_off);
        sq_measure(sdir, "FULL", 1, depth, n_full);
        sq_measure(sdir, "NORMAL", 1, depth, n_group);
        sq_measure(sdir, "OFF", 1, depth, n_off);
        sq_measure(sdir, "FULL", 10, depth, n_group);
        sq_measure(sdir, "FULL", 100, depth, n_group);
    }
    /* Reopen and memory at the deepest depth, against an empty store. */
    char edir[1100];
    snprintf(edir, sizeof edir, "%s/empty", base);
    bg_fill(edir, 0, &(uint64_t){0});
    {
        bgq e;
        bg_open(&e, edir, BG_DURABILITY_FULL, 0);
        bg_shut(&e);
    }
    double open_us = 0, empty_us = 0;
    uint64_t pending = 0, p0 = 0;
    long rss = 0, rss0 = 0, now = 0, now0 = 0;
    cJSON *reopen = cJSON_CreateObject();
    double read_us = read_all(qdir); /* warm the cache like the open will */
    read_us = read_all(qdir);
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = '\0';
    if (run_probe(self, qdir, &open_us, &pending, &rss, &now) == 0 &&
        run_probe(self, edir, &empty_us, &p0, &rss0, &now0) == 0) {
        cJSON_AddNumberToObject(reopen, "pending", (double)pending);
        cJSON_AddNumberToObject(reopen, "open_us", open_us);
        cJSON_AddNumberToObject(reopen, "sequential_read_us", read_us);
        cJSON_AddNumberToObject(reopen, "open_over_read", open_us / read_us);
        cJSON_AddNumberToObject(reopen, "rss_kib", (double)rss);
        cJSON_AddNumberToObject(reopen, "empty_rss_kib", (double)rss0);
        cJSON_AddNumberToObject(
            reopen, "bytes_per_pending_op",
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
