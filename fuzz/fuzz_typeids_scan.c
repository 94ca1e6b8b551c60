/*
 * Target Functions: bg_typeids_scan_text, bg_typeids_check,
 * bg_typeids_lock_json, bg_typeids_load_lock (typeids.c: the lexer and the C,
 * Dart, YAML and JSON recognisers).
 *
 * The input's first byte picks the file kind (C, Dart, generated Dart, the
 * hive_ce schema, a JSON manifest); the rest is its text. A first byte
 * from 0xF0 makes the rest a tree instead: files split at NUL bytes, each
 * in turn a pubspec.yaml, a pubspec.lock, Dart source, hive_ce's
 * registrar, and a second package's pubspec and source, so that
 * constants, packages and the registrar meet across files. Properties: no
 * crash or leak; the findings are the same when the check runs again and
 * when a fresh scanner scans the same text; when the scan has no
 * collision, the lock written for it, loaded back, yields no reused or
 * moved finding.
 */
#include "boxguard/typeids.h"
#include "fuzz_helpers.h"

static const char *const paths[] = {"src/a.c", "lib/a.dart", "lib/a.g.dart",
                                    "lib/hive/hive_adapters.g.yaml",
                                    "app.adapters.json"};

static const char *const tree[] = {
    "app/pubspec.yaml",   "app/pubspec.lock",
    "app/lib/a.dart",     "app/lib/hive/hive_registrar.g.dart",
    "pkg/b/pubspec.yaml", "pkg/b/lib/ids.dart",
    "app/lib/a.g.dart",   "app/lib/hive/hive_adapters.g.yaml"};

static size_t scan(const uint8_t *data, size_t size, bg_typeids **out,
                   const bg_typeids_finding **f)
{
    bg_typeids *t = bg_typeids_new();
    FUZZ_ASSERT(t);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] < 0xF0) {
        FUZZ_ASSERT(bg_typeids_scan_text(t, paths[data[0] % 5], text, len) ==
                    0);
    } else {
        for (size_t k = 0, at = 0; at <= len; k++) {
            const char *nul = memchr(text + at, '\0', len - at);
            size_t n = nul ? (size_t)(nul - (text + at)) : len - at;
            FUZZ_ASSERT(bg_typeids_scan_text(t, tree[k % 8], text + at, n) ==
                        0);
            at += n + 1;
        }
    }
    *out = t;
    size_t n;
    FUZZ_ASSERT(bg_typeids_check(t, f, &n) == 0);
    return n;
}

/* The findings as one string (they are only valid until the next check). */
static char *flatten(const bg_typeids_finding *f, size_t n)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap +=
            strlen(f[i].code) + strlen(f[i].file) + strlen(f[i].message) + 16;
    char *out = malloc(cap), *p = out;
    FUZZ_ASSERT(out);
    *p = '\0';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s|%s|%u|%s\n", f[i].code, f[i].file, f[i].line,
                     f[i].message);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    bg_typeids *t1, *t2;
    const bg_typeids_finding *f1, *f2, *f1b;
    size_t n1 = scan(data, size, &t1, &f1);
    char *first = flatten(f1, n1);
    size_t n1b; /* the check is repeatable */
    FUZZ_ASSERT(bg_typeids_check(t1, &f1b, &n1b) == 0);
    char *again = flatten(f1b, n1b);
    FUZZ_ASSERT(!strcmp(first, again));
    size_t n2 = scan(data, size, &t2, &f2); /* and deterministic */
    char *fresh = flatten(f2, n2);
    FUZZ_ASSERT(!strcmp(first, fresh));
    free(first);
    free(again);
    free(fresh);

    char *lock = bg_typeids_lock_json(t1);
    FUZZ_ASSERT(lock);
    char why[256];
    FUZZ_ASSERT_MSG(
        bg_typeids_load_lock(t2, lock, strlen(lock), why, sizeof why) == 0,
        "own lock refused: %s", why);
    int collision = 0;
    for (size_t i = 0; i < n1b; i++)
        collision |= !strcmp(f1b[i].code, "collision") ||
                     !strcmp(f1b[i].code, "stale-generated");
    size_t n3;
    FUZZ_ASSERT(bg_typeids_check(t2, &f2, &n3) == 0);
    for (size_t i = 0; i < n3 && !collision; i++)
        FUZZ_ASSERT_MSG(
            strcmp(f2[i].code, "reused") && strcmp(f2[i].code, "moved"),
            "the scan's own lock reports %s: %s", f2[i].code, f2[i].message);
    free(lock);
    bg_typeids_free(t1);
    bg_typeids_free(t2);
    return 0;
}
