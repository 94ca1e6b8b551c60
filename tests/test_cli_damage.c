/*
 * Damage through the boxguard command: byte flips and truncations across a
 * box file. For each damaged file the command must never crash; `verify`
 * exits 1 (0 only for a cut exactly between frames, which is a shorter
 * but whole log); `recover` repairs it; `verify` is then clean; and `dump`
 * shows only records that were written, with their exact values, including
 * every record whose frame lies wholly before the first damaged byte.
 *
 * usage: test_cli_damage path/to/boxguard
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "tempdir.h"

#include "boxfile.h"

static const char *cli;
static char base[256];

/* Run the CLI with args; stdout to out_path (or /dev/null). Returns the
 * exit code, or 100 + signal number when it died of a signal. */
static int run(const char *out_path, const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path ? out_path : "/dev/null",
                      O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(nul, 2);
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return 126;
    return WIFSIGNALED(st) ? 100 + WTERMSIG(st) : WEXITSTATUS(st);
}

static int bg(const char *cmd, const char *store, const char *key,
              const char *json, const char *out)
{
    const char *argv[16] = {cli, cmd, "--store", store, "--box", "b"};
    int n = 6;
    if (key) {
        argv[n++] = "--key";
        argv[n++] = key;
    }
    if (json) {
        argv[n++] = "--type";
        argv[n++] = "0";
        argv[n++] = "--json";
        argv[n++] = json;
    }
    argv[n] = NULL;
    return run(out, argv);
}

#define NREC 12

typedef struct frame {
    uint64_t off, end;
    int key; /* index */
    int del;
    int val; /* index into vals, put only */
} frame;

static const char *vals[NREC + 2];
static frame frames[64];
static int nframes;
static uint8_t *file;
static size_t fsize;
static char allowed[NREC + 2][2048]; /* dump line per value index */
static int valkey[NREC + 2];         /* key index per value index */

static void build_values(void)
{
    static char store[NREC + 2][1400];
    for (int i = 0; i < NREC + 2; i++) {
        int pad = (i * 137) % 900;
        snprintf(store[i], sizeof store[i], "{\"i\":%d,\"pad\":\"%.*s\"}", i,
                 pad, "");
        char *p = store[i] + strlen(store[i]) - 2;
        memmove(p + pad, p, 3);
        memset(p, 'a' + i % 26, (size_t)pad);
        vals[i] = store[i];
    }
}

static const char *kname(int k)
{
    static char b[16];
    snprintf(b, sizeof b, "k%d", k);
    return b;
}

/* Writes: put k0..k9 (value i), overwrite k1 (value 10), delete k2,
 * put k10, k11 (values 11, 12). Records which frame is which. */
static void test_build_store(void)
{
    char store[320];
    snprintf(store, sizeof store, "%s/orig", base);
    int order[][3] = {{0, 0, 0},   {1, 0, 1},  {2, 0, 2},  {3, 0, 3},
                      {4, 0, 4},   {5, 0, 5},  {6, 0, 6},  {7, 0, 7},
                      {8, 0, 8},   {9, 0, 9},  {1, 0, 10}, {2, 1, -1},
                      {10, 0, 11}, {11, 0, 12}};
    int n = (int)(sizeof order / sizeof order[0]);
    for (int i = 0; i < n; i++) {
        int rc = order[i][1] ? bg("del", store, kname(order[i][0]), NULL, NULL)
                             : bg("put", store, kname(order[i][0]),
                                  vals[order[i][2]], NULL);
        CHECK_INT(rc, ==, 0);
        frames[i].key = order[i][0];
        frames[i].del = order[i][1];
        frames[i].val = order[i][2];
    }
    nframes = n;
    for (int v = 0; v < NREC + 1; v++) {
        int k = v < 10 ? v : v == 10 ? 1 : v - 1;
        valkey[v] = k;
        snprintf(allowed[v], sizeof allowed[v],
                 "{\"key\":\"%s\",\"type\":0,\"value\":%s}", kname(k), vals[v]);
    }
    char path[400];
    snprintf(path, sizeof path, "%s/b.box", store);
    FILE *f = fopen(path, "rb");
    CHECK(f);
    file = malloc(1 << 20);
    fsize = fread(file, 1, 1 << 20, f);
    fclose(f);
    uint64_t pos = BG__BOX_HDR_SIZE;
    for (int i = 0; i < nframes; i++) {
        CHECK(pos + 8 <= fsize);
        uint32_t len = tu_flen(file, pos);
        frames[i].off = pos;
        frames[i].end = pos + len;
        pos += len;
    }
    CHECK_INT(pos, ==, fsize);
}

static int scenarios, failures;

static void bad(const char *what, const char *how, uint64_t at)
{
    failures++;
    if (failures <= 10)
        fprintf(stderr, "%s at %llu: %s\n", how, (unsigned long long)at, what);
}

/* Damage the file as given, then verify, recover, verify, dump. first is
 * the first damaged byte; boundary says the damage is a cut between
 * frames. */
static void one(const uint8_t *img, size_t len, uint64_t first, int boundary,
                const char *how, uint64_t at)
{
    char store[320], path[400], out[400];
    snprintf(store, sizeof store, "%s/d%d", base, scenarios++);
    mkdir(store, 0755);
    snprintf(path, sizeof path, "%s/b.box", store);
    snprintf(out, sizeof out, "%s/dump", store);
    FILE *f = fopen(path, "wb");
    fwrite(img, 1, len, f);
    fclose(f);
    int rc = bg("verify", store, NULL, NULL, NULL);
    if (rc != (boundary ? 0 : 1))
        return bad("verify did not report the damage", how, at);
    if (bg("recover", store, NULL, NULL, NULL) != 0)
        return bad("recover failed", how, at);
    if (bg("verify", store, NULL, NULL, NULL) != 0)
        return bad("not clean after recover", how, at);
    if (bg("dump", store, NULL, NULL, out) != 0)
        return bad("dump failed after recover", how, at);
    /* Every line was written; required ones are there. */
    char line[4096];
    int seen[NREC + 2] = {0};
    f = fopen(out, "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        int found = -1;
        for (int v = 0; v < NREC + 1 && found < 0; v++)
            if (!strcmp(line, allowed[v]))
                found = v;
        if (found < 0) {
            fclose(f);
            return bad("dump shows a record that was never written", how, at);
        }
        seen[found] = 1;
    }
    if (f)
        fclose(f);
    /* The last frame of each key wholly before the damage decides it. */
    for (int k = 0; k < NREC; k++) {
        int last = -1;
        for (int i = 0; i < nframes; i++)
            if (frames[i].key == k && frames[i].end <= first)
                last = i;
        int later = 0;
        for (int i = last + 1; i < nframes && last >= 0; i++)
            later |= frames[i].key == k;
        if (last < 0 || later)
            continue; /* a later write of k may or may not survive */
        if (frames[last].del) {
            for (int v = 0; v < NREC + 1; v++)
                if (seen[v] && valkey[v] == k)
                    return bad("a deleted record came back", how, at);
        } else if (!seen[frames[last].val]) {
            return bad("a record before the damage is missing", how, at);
        }
    }
}

static void test_byte_flips(void)
{
    uint8_t *img = malloc(fsize);
    for (size_t p = 0; p < fsize; p++) {
        /* Every byte of the header and the first frames; then a stride. */
        if (p > frames[2].end && p % 11 && p + 60 < fsize)
            continue;
        memcpy(img, file, fsize);
        img[p] ^= (uint8_t)(1u << (p % 8));
        /* The first damaged byte is the start of the frame holding p (a
         * frame is only as good as its checksum). */
        uint64_t first = p;
        for (int i = 0; i < nframes; i++)
            if (p >= frames[i].off && p < frames[i].end)
                first = frames[i].off;
        one(img, fsize, first, 0, "flip", p);
    }
    free(img);
    CHECK_INT(failures, ==, 0);
}

static void test_truncations(void)
{
    for (size_t len = 0; len < fsize; len++) {
        int boundary = len == BG__BOX_HDR_SIZE;
        for (int i = 0; i < nframes; i++)
            boundary |= frames[i].end == len;
        if (!boundary && len > 60 && len % 13 && len + 20 < fsize)
            continue;
        one(file, len, len, boundary, "truncate to", len);
    }
    CHECK_INT(failures, ==, 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/boxguard\n", argv[0]);
        return 2;
    }
    cli = argv[1];
    if (tu_tempdir(base, sizeof base, "damage")) {
        perror("test_cli_damage: temporary directory");
        return 2;
    }
    build_values();
    RUN(test_build_store);
    RUN(test_byte_flips);
    RUN(test_truncations);
    printf("damaged files checked: %d, failures: %d\n", scenarios, failures);
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", base);
    return CHECK_DONE();
}
