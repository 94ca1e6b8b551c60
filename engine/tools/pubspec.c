/*
 * pubspec.yaml and pubspec.lock, as far as the typeId check reads them
 * (pubspec_int.h): block-style YAML, one key per line, indented with
 * spaces. Flow-style maps and multi-line strings are not read; what they
 * hold is not a dependency name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pubspec_int.h"

/* One line: its indent and its key and value, both trimmed. */
typedef struct yline {
    size_t indent;
    const char *key, *val;
    size_t klen, vlen;
} yline;

/* Split [p, p + n) as "key: value  # comment"; 0 when it is no key. */
static int split(const char *p, size_t n, yline *y)
{
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    y->indent = i;
    if (i == n || p[i] == '#' || p[i] == '-')
        return 0;
    size_t k = i;
    while (k < n && p[k] != ':')
        k++;
    if (k == n)
        return 0;
    y->key = p + i;
    y->klen = k - i;
    while (y->klen && y->key[y->klen - 1] == ' ')
        y->klen--;
    if (y->klen >= 2 && (y->key[0] == '"' || y->key[0] == '\'') &&
        y->key[y->klen - 1] == y->key[0]) {
        y->key++;
        y->klen -= 2;
    }
    size_t v = k + 1;
    while (v < n && p[v] == ' ')
        v++;
    size_t e = v;
    char q = v < n && (p[v] == '"' || p[v] == '\'') ? p[v] : 0;
    if (q) {
        e = v + 1;
        while (e < n && p[e] != q)
            e++;
        y->val = p + v + 1;
        y->vlen = e - v - 1;
        return 1;
    }
    while (e < n && !(p[e] == '#' && e > v && p[e - 1] == ' '))
        e++;
    while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\r'))
        e--;
    y->val = p + v;
    y->vlen = e - v;
    return 1;
}

static int is_key(const yline *y, const char *k)
{
    return y->klen == strlen(k) && !memcmp(y->key, k, y->klen);
}

static void copy(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static int add_dep(bg__pubspec *out, size_t *cap, const yline *y)
{
    if (out->ndeps == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        bg__pub_dep *d = realloc(out->deps, c * sizeof *d);
        if (!d)
            return -1;
        out->deps = d;
        *cap = c;
    }
    bg__pub_dep *d = &out->deps[out->ndeps++];
    copy(d->name, sizeof d->name, y->key, y->klen);
    copy(d->constraint, sizeof d->constraint, y->val, y->vlen);
    return 0;
}

/* lock: the sections are "packages:" and each entry's version sits one
 * level below the package's name. */
static int parse(const char *s, size_t len, int lock, bg__pubspec *out)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0, child = 0;
    int in = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && s[e] != '\n')
            e++;
        yline y;
        if (split(s + i, e - i, &y)) {
            if (y.indent == 0) {
                in = lock ? is_key(&y, "packages")
                          : is_key(&y, "dependencies") ||
                                is_key(&y, "dev_dependencies") ||
                                is_key(&y, "dependency_overrides");
                child = 0;
                if (!lock && is_key(&y, "name"))
                    copy(out->name, sizeof out->name, y.val, y.vlen);
            } else if (in) {
                if (!child)
                    child = y.indent;
                if (y.indent == child) {
                    if (add_dep(out, &cap, &y)) {
                        bg__pubspec_free(out);
                        return -1;
                    }
                    if (lock)
                        out->deps[out->ndeps - 1].constraint[0] = '\0';
                } else if (y.indent > child && out->ndeps &&
                           is_key(&y, "version") &&
                           (!lock || y.indent == child + 2)) {
                    bg__pub_dep *d = &out->deps[out->ndeps - 1];
                    copy(d->constraint, sizeof d->constraint, y.val, y.vlen);
                }
            }
        }
        i = e + 1;
    }
    return 0;
}

int bg__pubspec_parse(const char *s, size_t len, bg__pubspec *out)
{
    return parse(s, len, 0, out);
}

int bg__publock_parse(const char *s, size_t len, bg__pubspec *out)
{
    return parse(s, len, 1, out);
}

void bg__pubspec_free(bg__pubspec *p)
{
    free(p->deps);
    p->deps = NULL;
    p->ndeps = 0;
}

const bg__pub_dep *bg__pubspec_dep(const bg__pubspec *p, const char *name)
{
    for (size_t i = 0; i < p->ndeps; i++)
        if (!strcmp(p->deps[i].name, name))
            return &p->deps[i];
    return NULL;
}

int bg__pub_version_at_least(const char *v, unsigned major, unsigned minor)
{
    while (*v == ' ' || *v == '^' || *v == '>' || *v == '=' || *v == '~')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    unsigned long ma = strtoul(v, (char **)&v, 10), mi = 0;
    if (*v == '.')
        mi = strtoul(v + 1, NULL, 10);
    return ma > major || (ma == major && mi >= minor);
}
