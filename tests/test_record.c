/* Record validation: JSON bounds and refusals, key rules. */
#include "check.h"

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

int main(void)
{
    RUN(test_accepts_json_values);
    RUN(test_refuses_bad_json_with_reason);
    RUN(test_every_prefix_of_an_object_is_refused);
    RUN(test_depth_and_size_bounds);
    RUN(test_keys);
    return CHECK_DONE();
}
