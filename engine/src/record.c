/*
 * Record validation: one JSON value exactly as RFC 8259 defines it, within
 * the size, depth and key bounds, checked in one pass over the bytes. The
 * checker is ours because the parsers at hand are lenient (cJSON accepts
 * leading zeros, "1.", raw control characters in strings, a form feed or
 * a vertical tab as whitespace, a byte order mark) and build a tree we do
 * not need. Every refusal names the byte where the text went wrong.
 *
 * Nothing is allocated unless one value holds more object member names at
 * once than fit on the stack; names are compared after unescaping, byte
 * for byte, when their object closes.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "boxguard/record.h"
#include "record_int.h"
#include "try_int.h"

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (whylen)
        vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* The length of the UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        k = 1, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0)
        k = 2, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0)
        k = 3, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (k >= n)
        return 0; /* the sequence runs past the end */
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[j] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return k + 1;
}

/* The offset of the first byte of s[0..len) that is not valid UTF-8, or
 * len. */
static size_t utf8_bad_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_len(s + i, len - i);
        if (!k)
            return i;
        i += k;
    }
    return len;
}

/* One member name: the bytes between its quotes, and its length once
 * unescaped. */
typedef struct {
    const char *p;
    size_t rawlen;
    size_t declen;
} name;

#define NAMES_ON_STACK 64

typedef struct {
    const char *s;
    size_t len;
    size_t i; /* the next byte to read */
    const bg_allocator *a;
    name *names; /* the names of every object still open, outermost first */
    size_t nnames, cap;
    char *why;
    size_t whylen;
} checker;

static bg_err truncated(checker *c)
{
    say(c->why, c->whylen, "truncated JSON: input ends at byte %zu", c->len);
    return BG_EINVALID;
}

static bg_err malformed(checker *c, size_t at, const char *what)
{
    say(c->why, c->whylen, "malformed JSON at byte %zu: %s", at, what);
    return BG_EINVALID;
}

/* A byte where a JSON token should start but none does. */
static bg_err unexpected(checker *c, const char *what)
{
    const unsigned char *u = (const unsigned char *)c->s + c->i;
    if (*u == '\0') {
        say(c->why, c->whylen, "NUL byte in JSON at byte %zu", c->i);
        return BG_EINVALID;
    }
    if (*u >= 0x80 && !utf8_len(u, c->len - c->i)) {
        say(c->why, c->whylen, "invalid UTF-8 at byte %zu", c->i);
        return BG_EINVALID;
    }
    if (c->i == 0 && c->len >= 3 && !memcmp(c->s, "\xEF\xBB\xBF", 3))
        return malformed(c, 0, "a byte order mark is not allowed");
    return malformed(c, c->i, what);
}

static void skip_ws_run(checker *c)
{
    while (c->i < c->len) {
        char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            return;
        c->i++;
    }
}

/* Most tokens follow one another with no whitespace between: that case is
 * one test, inline. */
static inline void skip_ws(checker *c)
{
    if (c->i < c->len && (unsigned char)c->s[c->i] > ' ')
        return;
    skip_ws_run(c);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The four hex digits at s[at..at+4) as a code unit, or -1 (truncated
 * when the input ends first, malformed when a digit is not hex). */
static long hex4(checker *c, size_t at, bg_err *err)
{
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        if (at + k >= c->len) {
            *err = truncated(c);
            return -1;
        }
        int h = hexval(c->s[at + k]);
        if (h < 0) {
            *err = malformed(c, at + k, "a \\u escape needs four hex digits");
            return -1;
        }
        v = v << 4 | h;
    }
    return v;
}

static size_t utf8_bytes(unsigned long cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* The \u escape at c->i (c->i points at the backslash), with its low
 * surrogate when it is a high one; *cp is the code point. */
static bg_err check_u_escape(checker *c, unsigned long *cp)
{
    bg_err err = 0;
    size_t at = c->i;
    long hi = hex4(c, at + 2, &err);
    if (hi < 0)
        return err;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return malformed(c, at, "a low surrogate escape without a high one");
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = (unsigned long)hi;
        c->i = at + 6;
        return 0;
    }
    if (at + 6 >= c->len || (c->s[at + 6] == '\\' && at + 7 >= c->len))
        return truncated(c);
    if (c->s[at + 6] != '\\' || c->s[at + 7] != 'u')
        return malformed(c, at, "a high surrogate escape without a low one");
    long lo = hex4(c, at + 8, &err);
    if (lo < 0)
        return err;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return malformed(c, at, "a high surrogate escape without a low one");
    *cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) +
          ((unsigned long)lo - 0xDC00);
    c->i = at + 12;
    return 0;
}

/* The bytes that stand for themselves in a JSON string and are one UTF-8
 * character each: 0x20..0x7E but '"' (0x22) and '\\' (0x5C). A table: the
 * loop over a string's usual bytes is one load and one test per byte. */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* A0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* B0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* C0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* D0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* E0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* F0 */
};

/* The string at c->i (its opening quote); *declen is its length once
 * unescaped. */
static bg_err check_string(checker *c, size_t *declen)
{
    size_t n = 0;
    c->i++;
    for (;;) {
        /* The usual bytes (printable ASCII but the quote and the
         * backslash) in one tight run: each needs no other check. */
        size_t run = c->i;
        while (run < c->len && plain_byte[(unsigned char)c->s[run]])
            run++;
        n += run - c->i;
        c->i = run;
        if (c->i >= c->len)
            return truncated(c);
        unsigned char ch = (unsigned char)c->s[c->i];
        if (ch == '"') {
            c->i++;
            *declen = n;
            return 0;
        }
        if (ch == '\\') {
            if (c->i + 1 >= c->len)
                return truncated(c);
            char e = c->s[c->i + 1];
            if (e == 'u') {
                unsigned long cp = 0;
                BG_TRY(check_u_escape(c, &cp));
                n += utf8_bytes(cp);
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0')
                return malformed(c, c->i, "unknown escape in a string");
            c->i += 2;
            n++;
        } else if (ch < 0x20) {
            if (ch == '\0') {
                say(c->why, c->whylen, "NUL byte in JSON at byte %zu", c->i);
                return BG_EINVALID;
            }
            return malformed(c, c->i,
                             "a control character in a string must be "
                             "escaped");
        } else {
            size_t k =
                utf8_len((const unsigned char *)c->s + c->i, c->len - c->i);
            if (!k) {
                say(c->why, c->whylen, "invalid UTF-8 at byte %zu", c->i);
                return BG_EINVALID;
            }
            c->i += k;
            n += k;
        }
    }
}

static int is_digit(checker *c)
{
    return c->i < c->len && c->s[c->i] >= '0' && c->s[c->i] <= '9';
}

/* One or more digits at c->i; what names the part of the number. */
static bg_err digits(checker *c, const char *what)
{
    if (c->i >= c->len)
        return truncated(c);
    if (!is_digit(c))
        return unexpected(c, what);
    while (is_digit(c))
        c->i++;
    return 0;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bg_err check_number(checker *c)
{
    size_t start = c->i;
    if (c->s[c->i] == '-')
        c->i++;
    if (c->i < c->len && c->s[c->i] == '0') {
        c->i++;
        if (is_digit(c))
            return malformed(c, start,
                             "a number must not have a leading "
                             "zero");
    } else {
        BG_TRY(digits(c, "a number needs a digit"));
    }
    if (c->i < c->len && c->s[c->i] == '.') {
        c->i++;
        BG_TRY(digits(c, "a fraction needs a digit after the point"));
    }
    if (c->i < c->len && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        c->i++;
        if (c->i < c->len && (c->s[c->i] == '+' || c->s[c->i] == '-'))
            c->i++;
        BG_TRY(digits(c, "an exponent needs a digit"));
    }
    return 0;
}

static bg_err check_literal(checker *c, const char *word)
{
    size_t n = strlen(word);
    for (size_t k = 0; k < n; k++, c->i++) {
        if (c->i >= c->len)
            return truncated(c);
        if (c->s[c->i] != word[k])
            return unexpected(c, "not a JSON value");
    }
    return 0;
}

/* Unescaped bytes of a member name, one at a time. */
typedef struct {
    const char *p, *end;
    unsigned char buf[4];
    size_t nbuf, next;
} unescaper;

static int unescaped_byte(unescaper *u)
{
    if (u->next < u->nbuf)
        return u->buf[u->next++];
    if (u->p >= u->end)
        return -1;
    if (*u->p != '\\')
        return (unsigned char)*u->p++;
    char e = u->p[1];
    u->p += 2;
    static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
    const char *m = strchr(from, e);
    if (e != 'u')
        return m ? to[m - from] : e;
    /* Escapes were checked when the name was read. */
    unsigned long cp = 0;
    for (int k = 0; k < 4; k++)
        cp = cp << 4 | (unsigned long)hexval(*u->p++);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned long lo = 0;
        u->p += 2;
        for (int k = 0; k < 4; k++)
            lo = lo << 4 | (unsigned long)hexval(*u->p++);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    size_t n = utf8_bytes(cp);
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t k = n - 1; k > 0; k--, cp >>= 6)
        u->buf[k] = (unsigned char)(0x80 | (cp & 0x3F));
    u->buf[0] = (unsigned char)(lead[n] | cp);
    u->nbuf = n;
    u->next = 1;
    return u->buf[0];
}

/* Names ordered by unescaped length, then by unescaped bytes. */
static int name_cmp(const void *x, const void *y)
{
    const name *a = x, *b = y;
    if (a->declen != b->declen)
        return a->declen < b->declen ? -1 : 1;
    /* Every escape is longer than the bytes it stands for: a name as long
     * as its unescaped bytes has none, and two such compare as they are,
     * in the order the unescaper would give. */
    if (a->rawlen == a->declen && b->rawlen == b->declen)
        return memcmp(a->p, b->p, a->declen);
    unescaper ua = {a->p, a->p + a->rawlen, {0}, 0, 0};
    unescaper ub = {b->p, b->p + b->rawlen, {0}, 0, 0};
    for (;;) {
        int ca = unescaped_byte(&ua), cb = unescaped_byte(&ub);
        if (ca != cb)
            return ca < cb ? -1 : 1;
        if (ca < 0)
            return 0;
    }
}

static bg_err duplicate(checker *c, const name *a, const name *b)
{
    const name *later = a->p > b->p ? a : b;
    say(c->why, c->whylen, "duplicate member name \"%.*s\" at byte %zu",
        (int)(later->rawlen > 60 ? 60 : later->rawlen), later->p,
        (size_t)(later->p - 1 - c->s));
    return BG_EINVALID;
}

/* The object whose names are names[base..] has closed: no two are the
 * same. Few names are compared pairwise; more are sorted. */
static bg_err check_names(checker *c, size_t base)
{
    name *v = c->names + base;
    size_t m = c->nnames - base;
    c->nnames = base;
    if (m <= 8) {
        for (size_t x = 1; x < m; x++)
            for (size_t y = 0; y < x; y++)
                if (!name_cmp(&v[x], &v[y]))
                    return duplicate(c, &v[x], &v[y]);
        return 0;
    }
    qsort(v, m, sizeof *v, name_cmp);
    for (size_t x = 1; x < m; x++)
        if (!name_cmp(&v[x - 1], &v[x]))
            return duplicate(c, &v[x - 1], &v[x]);
    return 0;
}

static bg_err push_name(checker *c, name *stack, size_t start, size_t declen)
{
    if (c->nnames == c->cap) {
        size_t ncap = c->cap * 2;
        name *p;
        if (c->names == stack) {
            p = bg__alloc_malloc(c->a, ncap * sizeof *p);
            if (p)
                memcpy(p, stack, c->nnames * sizeof *p);
        } else {
            p = bg__alloc_realloc(c->a, c->names, ncap * sizeof *p);
        }
        if (!p) {
            say(c->why, c->whylen, "out of memory checking member names");
            return BG_ENOMEM;
        }
        c->names = p;
        c->cap = ncap;
    }
    c->names[c->nnames++] = (name){c->s + start + 1, c->i - start - 2, declen};
    return 0;
}

/* The text at c->s, from its first byte to its last. */
static bg_err check_text(checker *c, name *stack)
{
    char open[BG_RECORD_MAX_DEPTH];   /* '{' or '[' for each level */
    size_t base[BG_RECORD_MAX_DEPTH]; /* an object's first name */
    int depth = 0;
    enum { VALUE, AFTER_VALUE, MEMBER } want = VALUE;
    skip_ws(c);
    for (;;) {
        if (want == VALUE) {
            if (c->i >= c->len)
                return truncated(c);
            char ch = c->s[c->i];
            size_t declen;
            if (ch == '{' || ch == '[') {
                if (depth == BG_RECORD_MAX_DEPTH) {
                    say(c->why, c->whylen,
                        "JSON nested deeper than %d at byte %zu",
                        BG_RECORD_MAX_DEPTH, c->i);
                    return BG_EINVALID;
                }
                open[depth] = ch;
                base[depth++] = c->nnames;
                c->i++;
                skip_ws(c);
                char close = ch == '{' ? '}' : ']';
                if (c->i < c->len && c->s[c->i] == close) {
                    c->i++;
                    depth--;
                    want = AFTER_VALUE;
                } else if (ch == '{') {
                    want = MEMBER;
                }
                continue;
            }
            if (ch == '"')
                BG_TRY(check_string(c, &declen));
            else if (ch == '-' || (ch >= '0' && ch <= '9'))
                BG_TRY(check_number(c));
            else if (ch == 't')
                BG_TRY(check_literal(c, "true"));
            else if (ch == 'f')
                BG_TRY(check_literal(c, "false"));
            else if (ch == 'n')
                BG_TRY(check_literal(c, "null"));
            else
                return unexpected(c, "not a JSON value");
            want = AFTER_VALUE;
        } else if (want == AFTER_VALUE) {
            skip_ws(c);
            if (depth == 0) {
                if (c->i != c->len) {
                    say(c->why, c->whylen,
                        "trailing data after the JSON value at byte %zu", c->i);
                    return BG_EINVALID;
                }
                return 0;
            }
            if (c->i >= c->len)
                return truncated(c);
            char ch = c->s[c->i];
            int obj = open[depth - 1] == '{';
            if (ch == ',') {
                c->i++;
                skip_ws(c);
                want = obj ? MEMBER : VALUE;
            } else if (ch == (obj ? '}' : ']')) {
                c->i++;
                depth--;
                if (obj)
                    BG_TRY(check_names(c, base[depth]));
            } else {
                return unexpected(c, obj ? "expected ',' or '}'"
                                         : "expected ',' or ']'");
            }
        } else { /* MEMBER */
            if (c->i >= c->len)
                return truncated(c);
            if (c->s[c->i] != '"')
                return unexpected(c, "expected a member name in quotes");
            size_t start = c->i, declen;
            BG_TRY(check_string(c, &declen));
            BG_TRY(push_name(c, stack, start, declen));
            skip_ws(c);
            if (c->i >= c->len)
                return truncated(c);
            if (c->s[c->i] != ':')
                return unexpected(c, "expected ':' after a member name");
            c->i++;
            skip_ws(c);
            want = VALUE;
        }
    }
}

bg_err bg__record_check(const char *json, size_t len, const bg_allocator *a,
                        char *why, size_t whylen)
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
    name stack[NAMES_ON_STACK];
    checker c = {json, len, 0, a, stack, 0, NAMES_ON_STACK, why, whylen};
    bg_err err = check_text(&c, stack);
    if (c.names != stack)
        bg__alloc_free(a, c.names);
    return err;
}

bg_err bg_record_validate(const char *json, size_t len, char *why,
                          size_t whylen)
{
    return bg__record_check(json, len, NULL, why, whylen);
}

bg_err bg__record_parse(const char *json, size_t len, const bg_allocator *a,
                        char *why, size_t whylen, cJSON **out)
{
    BG_TRY(bg__record_check(json, len, a, why, whylen));
    if (!out)
        return 0;
    /* What the check accepts, cJSON parses: only memory can fail here. */
    *out = cJSON_ParseWithLength(json, len);
    if (!*out) {
        say(why, whylen, "out of memory reading the record's fields");
        return BG_ENOMEM;
    }
    return 0;
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
