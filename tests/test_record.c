/* Record validation: JSON bounds and refusals, key rules. */
#include "check.h"
#include "json_grammar.h"
#include "record_int.h"

static bg_err val(const char *s, char *why)
{
    return bg_record_validate(s, strlen(s), why, 160);
}

static void test_accepts_json_values(void)
{
    char why[160];
    const char *good[] = {"{}",
                          "[]",
                          "0",
                          "-1.5e3",
                          "\"s\"",
                          "true",
                          "null",
                          " {\"a\": [1, {\"b\": null}]} \n",
                          "\"\\u00e9\\n\""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK_OK(val(good[i], why));
}

static void test_refuses_bad_json_with_reason(void)
{
    char why[160];
    CHECK_ERR(val("", why), BG_EINVALID);
    CHECK_CONTAINS(why, "empty");
    CHECK_ERR(val("{\"a\":1", why), BG_EINVALID);
    CHECK_CONTAINS(why, "truncated");
    CHECK_ERR(val("{\"a\":tru}", why), BG_EINVALID);
    CHECK_CONTAINS(why, "malformed JSON at byte");
    CHECK_ERR(val("[1] [2]", why), BG_EINVALID);
    CHECK_CONTAINS(why, "trailing data");
    CHECK_ERR(bg_record_validate("[1,\0]", 5, why, sizeof why), BG_EINVALID);
    CHECK_CONTAINS(why, "NUL byte");
    CHECK_ERR(val("{\"a\":1,\"b\":{\"c\":1,\"c\":2}}", why), BG_EINVALID);
    CHECK_CONTAINS(why, "duplicate member name \"c\"");
    CHECK_OK(val("[{\"a\":1},{\"a\":2}]", why)); /* different objects */
    CHECK_ERR(val("\"\xc3\x28\"", why), BG_EINVALID);
    CHECK_CONTAINS(why, "invalid UTF-8 at byte 1");
    CHECK_ERR(val("[\"\xed\xa0\x80\"]", why), BG_EINVALID); /* surrogate */
    CHECK_ERR(val("\"\\ud800\"", why), BG_EINVALID);        /* lone escape */
    CHECK_ERR(val("\"\\udc00x\"", why), BG_EINVALID);
}

static void test_every_prefix_of_an_object_is_refused(void)
{
    const char *doc = "{\"id\":42,\"name\":\"caf\\u00e9\",\"tags\":[\"a\","
                      "{\"deep\":[1,2.5,-3e2,true,false,null]}],\"o\":{}}";
    char why[160];
    CHECK_OK(val(doc, why));
    for (size_t n = 0; n < strlen(doc); n++) {
        bg_err err = bg_record_validate(doc, n, why, sizeof why);
        if (err != BG_EINVALID) {
            fprintf(stderr, "prefix of %zu bytes accepted\n", n);
            CHECK_ERR(err, BG_EINVALID);
        }
        CHECK(why[0] != '\0');
    }
}

static void test_depth_and_size_bounds(void)
{
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    char why[160];
    CHECK_ERR(bg_record_validate(deep, 2 * n, why, sizeof why), BG_EINVALID);
    CHECK_CONTAINS(why, "nested deeper than 64");
    /* Exactly at the bound is fine; one more is not. */
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    CHECK_OK(bg_record_validate(deep, 128, why, sizeof why));
    memset(deep, '{', 1);
    CHECK_ERR(bg_record_validate(deep, 128, why, sizeof why), BG_EINVALID);
    free(deep);
    /* Brackets inside strings do not count. */
    CHECK_OK(val("\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[\"",
                 why));
    size_t big = BG_RECORD_MAX_BYTES + 1;
    char *s = malloc(big);
    memset(s, ' ', big);
    s[0] = '1';
    CHECK_ERR(bg_record_validate(s, big, why, sizeof why), BG_EINVALID);
    CHECK_CONTAINS(why, "larger than");
    free(s);
}

static void test_keys(void)
{
    char why[160];
    CHECK_OK(bg_record_check_key("user:42", 7, why, sizeof why));
    CHECK_OK(bg_record_check_key("caf\xc3\xa9", 5, why, sizeof why));
    CHECK_ERR(bg_record_check_key("", 0, why, sizeof why), BG_EINVALID);
    CHECK_ERR(bg_record_check_key("a\0b", 3, why, sizeof why), BG_EINVALID);
    CHECK_ERR(bg_record_check_key("\xc3", 1, why, sizeof why), BG_EINVALID);
    CHECK_CONTAINS(why, "UTF-8 at byte 0");
    CHECK_ERR(bg_record_check_key("ab\xc0\xaf", 4, why, sizeof why),
              BG_EINVALID); /* overlong */
    CHECK_ERR(bg_record_check_key("\xed\xa0\x80", 3, why, sizeof why),
              BG_EINVALID); /* surrogate */
    CHECK_ERR(bg_record_check_key("\xf4\x90\x80\x80", 4, why, sizeof why),
              BG_EINVALID); /* past U+10FFFF */
    char k[BG_KEY_MAX + 1];
    memset(k, 'k', sizeof k);
    CHECK_OK(bg_record_check_key(k, BG_KEY_MAX, why, sizeof why));
    CHECK_ERR(bg_record_check_key(k, BG_KEY_MAX + 1, why, sizeof why),
              BG_EINVALID);
}

/* UTF-8 at every edge (RFC 3629): the first and last code point of each
 * encoded length, the code points around the surrogates and the last one
 * are accepted; overlong forms of each length's first code point minus one,
 * surrogates, anything past U+10FFFF, stray continuation bytes and
 * sequences cut short are refused, in a JSON string and in a key. */
typedef struct utf8_case {
    const char *bytes;
    int ok;
    const char *what;
} utf8_case;

static const utf8_case utf8_edges[] = {
    {"\x01", 1, "U+0001"},
    {"\x7f", 1, "U+007F, last of 1 byte"},
    {"\xc2\x80", 1, "U+0080, first of 2 bytes"},
    {"\xdf\xbf", 1, "U+07FF, last of 2 bytes"},
    {"\xe0\xa0\x80", 1, "U+0800, first of 3 bytes"},
    {"\xed\x9f\xbf", 1, "U+D7FF, before the surrogates"},
    {"\xee\x80\x80", 1, "U+E000, after the surrogates"},
    {"\xef\xbf\xbf", 1, "U+FFFF, last of 3 bytes"},
    {"\xf0\x90\x80\x80", 1, "U+10000, first of 4 bytes"},
    {"\xf4\x8f\xbf\xbf", 1, "U+10FFFF, the last code point"},
    {"\xc0\x80", 0, "overlong U+0000 in 2 bytes"},
    {"\xc1\xbf", 0, "overlong U+007F in 2 bytes"},
    {"\xe0\x80\x80", 0, "overlong U+0000 in 3 bytes"},
    {"\xe0\x9f\xbf", 0, "overlong U+07FF in 3 bytes"},
    {"\xf0\x80\x80\x80", 0, "overlong U+0000 in 4 bytes"},
    {"\xf0\x8f\xbf\xbf", 0, "overlong U+FFFF in 4 bytes"},
    {"\xed\xa0\x80", 0, "U+D800, first surrogate"},
    {"\xed\xbf\xbf", 0, "U+DFFF, last surrogate"},
    {"\xf4\x90\x80\x80", 0, "U+110000, past the last code point"},
    {"\xf5\x80\x80\x80", 0, "lead byte F5"},
    {"\xff", 0, "byte FF"},
    {"\x80", 0, "a lone continuation byte"},
    {"\xbf", 0, "the last continuation byte alone"},
    {"\xc3", 0, "2-byte sequence cut after its lead"},
    {"\xe2\x82", 0, "3-byte sequence cut after 2"},
    {"\xf0\x9f\x98", 0, "4-byte sequence cut after 3"},
    {"\xc3\x28", 0, "a lead byte followed by ASCII"},
    {"\xf8\x88\x80\x80\x80", 0, "5-byte form"},
};

static void test_utf8_every_edge_in_records(void)
{
    char why[160], doc[32];
    for (size_t i = 0; i < sizeof utf8_edges / sizeof *utf8_edges; i++) {
        const utf8_case *c = &utf8_edges[i];
        snprintf(doc, sizeof doc, "[\"%s\"]", c->bytes);
        bg_err err = val(doc, why);
        if ((unsigned char)c->bytes[0] < 0x20) {
            /* Valid UTF-8, but a control character: RFC 8259 wants it
             * escaped inside a string. */
            CHECK_ERR(err, BG_EINVALID);
            CHECK_CONTAINS(why, "at byte 2: a control character");
            continue;
        }
        if ((err == 0) != c->ok)
            fprintf(stderr, "record with %s: %s\n", c->what, bg_err_name(err));
        CHECK_INT(err == 0, ==, c->ok);
        if (!c->ok)
            CHECK_CONTAINS(why, "invalid UTF-8 at byte 2");
    }
}

static void test_utf8_every_edge_in_keys(void)
{
    char why[160], key[16];
    for (size_t i = 0; i < sizeof utf8_edges / sizeof *utf8_edges; i++) {
        const utf8_case *c = &utf8_edges[i];
        size_t n = (size_t)snprintf(key, sizeof key, "k%s", c->bytes);
        bg_err err = bg_record_check_key(key, n, why, sizeof why);
        if ((err == 0) != c->ok)
            fprintf(stderr, "key with %s: %s\n", c->what, bg_err_name(err));
        CHECK_INT(err == 0, ==, c->ok);
        if (!c->ok)
            CHECK_CONTAINS(why, "UTF-8 at byte 1");
    }
}

/* A key's last character cut short, with the byte that would complete it
 * lying just past the key's length: the check reads only len bytes. */
static void test_utf8_key_cut_at_its_length(void)
{
    char why[160];
    CHECK_ERR(bg_record_check_key("k\xc3\xa9", 2, why, sizeof why),
              BG_EINVALID);
    CHECK_ERR(bg_record_check_key("k\xe2\x82\xac", 3, why, sizeof why),
              BG_EINVALID);
    CHECK_ERR(bg_record_check_key("k\xf0\x9f\x98\x80", 4, why, sizeof why),
              BG_EINVALID);
    CHECK_OK(bg_record_check_key("k\xf0\x9f\x98\x80", 5, why, sizeof why));
}

/* The size bound at N and N + 1 bytes, with a value that is valid JSON at
 * both lengths. */
static void test_size_bound_at_its_edge(void)
{
    size_t n = BG_RECORD_MAX_BYTES;
    char *s = malloc(n + 1);
    memset(s, ' ', n + 1);
    s[0] = '1';
    char why[160];
    CHECK_OK(bg_record_validate(s, n, why, sizeof why));
    CHECK_ERR(bg_record_validate(s, n + 1, why, sizeof why), BG_EINVALID);
    CHECK_CONTAINS(why, "larger than 4194304 bytes");
    free(s);
}

/* Duplicate member names wherever they sort: first pair, last pair, and
 * in a nested object. */
static void test_duplicate_names_in_every_position(void)
{
    char why[160];
    CHECK_ERR(val("{\"a\":1,\"a\":2,\"b\":3}", why), BG_EINVALID);
    CHECK_CONTAINS(why, "\"a\"");
    CHECK_ERR(val("{\"a\":1,\"z\":2,\"z\":3}", why), BG_EINVALID);
    CHECK_CONTAINS(why, "\"z\"");
    CHECK_ERR(val("{\"x\":{\"q\":1,\"q\":1}}", why), BG_EINVALID);
    CHECK_OK(val("{\"a\":1,\"b\":2,\"c\":3}", why));
}

/* Only JSON whitespace may follow the value. */
static void test_trailing_bytes(void)
{
    char why[160];
    CHECK_OK(val("{} \t\r\n", why));
    CHECK_ERR(val("{} x", why), BG_EINVALID);
    CHECK_CONTAINS(why, "trailing data after the JSON value at byte 3");
    CHECK_ERR(val("1 2", why), BG_EINVALID);
}

/* Every rule of the grammar, each way: what RFC 8259 allows is accepted
 * and what it does not is refused with the rule and the byte. */
static void test_rfc8259_corpus(void)
{
    char why[160];
    for (size_t i = 0; i < sizeof json_grammar / sizeof *json_grammar; i++) {
        const json_case *c = &json_grammar[i];
        bg_err err = val(c->text, why);
        if ((err == 0) != c->ok || (!c->ok && !strstr(why, c->why)))
            fprintf(stderr, "case %zu `%s`: %s (%s)\n", i, c->text,
                    bg_err_name(err), why);
        CHECK_INT(err == 0, ==, c->ok);
        if (!c->ok) {
            CHECK_ERR(err, BG_EINVALID);
            CHECK_CONTAINS(why, c->why);
        }
    }
}

/* Objects with more names than the checker keeps on its stack, and more
 * than it compares pairwise: a duplicate anywhere among them is found. */
static void test_duplicates_in_large_objects(void)
{
    char why[160];
    enum { N = 300 };
    static char doc[N * 16];
    for (int dup = -1; dup < N; dup += 37) {
        size_t n = 0;
        n += (size_t)snprintf(doc + n, sizeof doc - n, "{");
        for (int i = 0; i < N; i++)
            n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"k%d\":%d",
                                  i ? "," : "",
                                  i == N - 1 && dup >= 0 ? dup : i, i);
        n += (size_t)snprintf(doc + n, sizeof doc - n, "}");
        bg_err err = bg_record_validate(doc, n, why, sizeof why);
        if (dup < 0) {
            CHECK_OK(err);
        } else {
            CHECK_ERR(err, BG_EINVALID);
            CHECK_CONTAINS(why, "duplicate member name");
        }
    }
    /* The first two names in sorted order (k0, k0) and, in an object small
     * enough to compare pairwise, the last two. */
    CHECK_ERR(val("{\"k0\":0,\"k1\":0,\"k2\":0,\"k3\":0,\"k4\":0,\"k5\":0,"
                  "\"k6\":0,\"k7\":0,\"k8\":0,\"k0\":0}",
                  why),
              BG_EINVALID);
    CHECK_CONTAINS(why, "duplicate member name \"k0\" at byte 64");
    /* The same when the sort meets escaped and plain names together. */
    CHECK_ERR(val("{\"k0\":0,\"k1\":0,\"k2\":0,\"\\u006b3\":0,\"k4\":0,"
                  "\"k5\":0,\"k6\":0,\"k7\":0,\"k8\":0,\"k3\":0}",
                  why),
              BG_EINVALID);
    CHECK_CONTAINS(why, "duplicate member name \"k3\"");
    CHECK_OK(val("{\"k0\":0,\"k1\":0,\"k2\":0,\"\\u006b3\":0,\"k4\":0,"
                 "\"k5\":0,\"k6\":0,\"k7\":0,\"k8\":0,\"k\\u0039\":0}",
                 why));
    CHECK_ERR(val("{\"a\":0,\"b\":0,\"b\":0}", why), BG_EINVALID);
    CHECK_CONTAINS(why, "duplicate member name \"b\" at byte 13");
    /* Names of nested objects are their own: two siblings with the same
     * members, deep enough that the outer names stay on the stack. */
    CHECK_OK(val("{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":1,\"y\":2}}", why));
}

/* Refused by one allocator, the names' room is BG_ENOMEM, not a verdict
 * on the text. */
static void *no_malloc(void *ctx, size_t n)
{
    (void)ctx, (void)n;
    return NULL;
}

static void test_names_out_of_memory(void)
{
    char why[160];
    enum { N = 100 };
    static char doc[N * 16];
    size_t n = (size_t)snprintf(doc, sizeof doc, "{");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"k%d\":0",
                              i ? "," : "", i);
    n += (size_t)snprintf(doc + n, sizeof doc - n, "}");
    bg_allocator a = {0};
    a.malloc = no_malloc;
    CHECK_ERR(bg__record_check(doc, n, &a, why, sizeof why), BG_ENOMEM);
    CHECK_CONTAINS(why, "out of memory");
    CHECK_ERR(bg__record_check(doc, 50, &a, why, sizeof why), BG_EINVALID);
    CHECK_OK(bg__record_check(doc, n, NULL, why, sizeof why));
}

int main(void)
{
    RUN(test_accepts_json_values);
    RUN(test_refuses_bad_json_with_reason);
    RUN(test_every_prefix_of_an_object_is_refused);
    RUN(test_depth_and_size_bounds);
    RUN(test_keys);
    RUN(test_utf8_every_edge_in_records);
    RUN(test_utf8_every_edge_in_keys);
    RUN(test_utf8_key_cut_at_its_length);
    RUN(test_size_bound_at_its_edge);
    RUN(test_duplicate_names_in_every_position);
    RUN(test_trailing_bytes);
    RUN(test_rfc8259_corpus);
    RUN(test_duplicates_in_large_objects);
    RUN(test_names_out_of_memory);
    return CHECK_DONE();
}
