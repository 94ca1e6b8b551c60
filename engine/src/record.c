/*
 * Record validation: one JSON value within the size, depth and key bounds.
 * cJSON does the parsing; here we only add the bounds it does not enforce
 * and turn its failure position into a message.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/record.h"
#include "record_int.h"

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (whylen)
        vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static int depth_ok(const cJSON *item, int depth)
{
    if (depth > BG_RECORD_MAX_DEPTH)
        return 0;
    for (const cJSON *c = item->child; c; c = c->next)
        if ((c->child || cJSON_IsArray(c) || cJSON_IsObject(c)) &&
            !depth_ok(c, depth + 1))
            return 0;
    return 1;
}

/* Nesting is checked on the raw text first, so that a deep document is
 * refused before cJSON recurses into it. Brackets inside strings are
 * skipped. *open tells whether the text ends inside a string or with
 * brackets still open: a document cut short. */
static size_t raw_depth_exceeded(const char *s, size_t len, int *open)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > BG_RECORD_MAX_DEPTH)
                return i + 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    *open = in_str || depth > 0;
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past
 * U+10FFFF. Returns the offset of the first bad byte, or len. */
static size_t utf8_bad_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return i;
        }
        if (i + n >= len)
            return i; /* the sequence runs past the end */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first member name that occurs twice in one object of the tree, or
 * NULL. Names are sorted per object, so large objects stay cheap. */
static const char *duplicate_name(const cJSON *item, int *nomem)
{
    if (cJSON_IsObject(item)) {
        size_t n = 0;
        for (const cJSON *c = item->child; c; c = c->next)
            n++;
        if (n > 1) {
            const char **names = malloc(n * sizeof *names);
            if (!names) {
                *nomem = 1;
                return NULL;
            }
            size_t i = 0;
            for (const cJSON *c = item->child; c; c = c->next)
                names[i++] = c->string;
            qsort(names, n, sizeof *names, cmp_name);
            const char *dup = NULL;
            for (i = 1; i < n && !dup; i++)
                if (!strcmp(names[i - 1], names[i]))
                    dup = names[i];
            free(names);
            if (dup)
                return dup;
        }
    }
    for (const cJSON *c = item->child; c; c = c->next) {
        const char *d = duplicate_name(c, nomem);
        if (d || *nomem)
            return d;
    }
    return NULL;
}

bg_err bg_record_validate(const char *json, size_t len, char *why,
                          size_t whylen)
{
    return bg__record_parse(json, len, why, whylen, NULL);
}

bg_err bg__record_parse(const char *json, size_t len, char *why, size_t whylen,
                        cJSON **out)
{
    if (whylen)
        why[0] = '\0';
    if (!json || len == 0) {
        say(why, whylen, "empty JSON value");
        return BG_EINVALID;
    }
    if (len > BG_RECORD_MAX_BYTES) {
        say(why, whylen, "JSON value larger than %zu bytes",
            (size_t)BG_RECORD_MAX_BYTES);
        return BG_EINVALID;
    }
    if (memchr(json, '\0', len)) {
        say(why, whylen, "NUL byte in JSON at byte %zu",
            (size_t)((const char *)memchr(json, '\0', len) - json));
        return BG_EINVALID;
    }
    size_t bad = utf8_bad_at((const unsigned char *)json, len);
    if (bad != len) {
        say(why, whylen, "invalid UTF-8 at byte %zu", bad);
        return BG_EINVALID;
    }
    int open = 0;
    size_t deep = raw_depth_exceeded(json, len, &open);
    if (deep) {
        say(why, whylen, "JSON nested deeper than %d at byte %zu",
            BG_RECORD_MAX_DEPTH, deep - 1);
        return BG_EINVALID;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!doc) {
        /* cJSON reports where it gave up through end (its global error
         * pointer is not used: it is shared by every thread). */
        const char *at = end;
        size_t off =
            (at && at >= json && at <= json + len) ? (size_t)(at - json) : len;
        if (off >= len || open)
            say(why, whylen, "truncated JSON: input ends at byte %zu", len);
        else
            say(why, whylen, "malformed JSON at byte %zu", off);
        return BG_EINVALID;
    }
    /* Only whitespace may follow the value. */
    size_t used = (size_t)(end - json);
    while (used < len && (json[used] == ' ' || json[used] == '\t' ||
                          json[used] == '\n' || json[used] == '\r'))
        used++;
    bg_err err = 0;
    if (used != len) {
        say(why, whylen, "trailing data after the JSON value at byte %zu",
            used);
        err = BG_EINVALID;
    } else if (!depth_ok(doc, 1)) {
        say(why, whylen, "JSON nested deeper than %zu",
            (size_t)BG_RECORD_MAX_DEPTH);
        err = BG_EINVALID;
    } else {
        int nomem = 0;
        const char *dup = duplicate_name(doc, &nomem);
        if (nomem) {
            say(why, whylen, "out of memory checking member names");
            err = BG_ENOMEM;
        } else if (dup) {
            say(why, whylen, "duplicate member name \"%.60s\"", dup);
            err = BG_EINVALID;
        }
    }
    if (!err && out)
        *out = doc;
    else
        cJSON_Delete(doc);
    return err;
}

bg_err bg_record_check_key(const void *key, size_t len, char *why,
                           size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    if (!key || len == 0) {
        say(why, whylen, "empty key");
        return BG_EINVALID;
    }
    if (len > BG_KEY_MAX) {
        say(why, whylen, "key longer than %zu bytes", (size_t)BG_KEY_MAX);
        return BG_EINVALID;
    }
    if (memchr(key, '\0', len)) {
        say(why, whylen, "NUL byte in key at byte %zu",
            (size_t)((const char *)memchr(key, '\0', len) - (const char *)key));
        return BG_EINVALID;
    }
    size_t bad = utf8_bad_at(key, len);
    if (bad != len) {
        say(why, whylen, "key is not valid UTF-8 at byte %zu", bad);
        return BG_EINVALID;
    }
    return 0;
}
