/*
 * A must-accept / must-reject corpus for records, one case per rule of
 * RFC 8259 (and of the limits boxguard adds): each refused text names the
 * reason and the byte where it applies. Shared by test_record and the
 * record fuzz target's seeds.
 */
#ifndef BOXGUARD_JSON_GRAMMAR_H
#define BOXGUARD_JSON_GRAMMAR_H

typedef struct {
    const char *text; /* the whole text, no NUL inside */
    int ok;
    const char *why; /* for a refusal: what the reason contains */
} json_case;

static const json_case json_grammar[] = {
    /* values at the top level */
    {"0", 1, 0},
    {"-0", 1, 0},
    {"true", 1, 0},
    {"false", 1, 0},
    {"null", 1, 0},
    {"\"\"", 1, 0},
    {"[]", 1, 0},
    {"{}", 1, 0},
    {" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n2 \t\r\n} "
     "\t\r\n] \t\r\n",
     1, 0},
    /* numbers */
    {"123", 1, 0},
    {"-123", 1, 0},
    {"1.5", 1, 0},
    {"0.0", 1, 0},
    {"1e5", 1, 0},
    {"1E5", 1, 0},
    {"1e+5", 1, 0},
    {"1e-5", 1, 0},
    {"-0.5e-07", 1, 0},
    {"1e999", 1, 0},
    {"-01", 0, "byte 0: a number must not have a leading zero"},
    {"012", 0, "byte 0: a number must not have a leading zero"},
    {"[00]", 0, "byte 1: a number must not have a leading zero"},
    {"1.", 0, "truncated JSON: input ends at byte 2"},
    {"[1.]", 0, "byte 3: a fraction needs a digit"},
    {"2.e3", 0, "byte 2: a fraction needs a digit"},
    {"-.123", 0, "byte 1: a number needs a digit"},
    {".5", 0, "byte 0: not a JSON value"},
    {"+1", 0, "byte 0: not a JSON value"},
    {"-", 0, "truncated JSON: input ends at byte 1"},
    {"[-]", 0, "byte 2: a number needs a digit"},
    {"1e", 0, "truncated JSON"},
    {"[1e]", 0, "byte 3: an exponent needs a digit"},
    {"[1e+]", 0, "byte 4: an exponent needs a digit"},
    {"[1E-x]", 0, "byte 4: an exponent needs a digit"},
    {"0x10", 0, "trailing data after the JSON value at byte 1"},
    {"1 2", 0, "trailing data after the JSON value at byte 2"},
    {"[Infinity]", 0, "byte 1: not a JSON value"},
    {"[NaN]", 0, "byte 1: not a JSON value"},
    /* literals */
    {"tru", 0, "truncated JSON: input ends at byte 3"},
    {"[tru]", 0, "byte 4: not a JSON value"},
    {"True", 0, "byte 0: not a JSON value"},
    {"nul", 0, "truncated"},
    {"[nulll]", 0, "byte 5: expected ',' or ']'"},
    {"[fals]", 0, "byte 5: not a JSON value"},
    /* strings and escapes */
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 1, 0},
    {"\"\\u0000\"", 1, 0},
    {"\"\\u00e9\\u00E9\"", 1, 0},
    {"\"\\ud83d\\ude00\"", 1, 0},
    {"\"\\uDBFF\\uDFFF\"", 1, 0},
    {"\"\\uqqqq\"", 0, "byte 3: a \\u escape needs four hex digits"},
    {"\"\\u12\"", 0, "byte 5: a \\u escape needs four hex digits"},
    {"\"\\u12", 0, "truncated"},
    {"\"\\x41\"", 0, "byte 1: unknown escape"},
    {"\"\\a\"", 0, "byte 1: unknown escape"},
    {"\"\\'\"", 0, "byte 1: unknown escape"},
    {"\"\\", 0, "truncated"},
    {"\"\\ud800\"", 0, "byte 1: a high surrogate escape without a low one"},
    {"\"\\ud800\\n\"", 0, "byte 1: a high surrogate escape without a low"},
    {"\"\\ud800\\u0041\"", 0, "byte 1: a high surrogate escape without a"},
    {"\"\\ud800\\", 0, "truncated"},
    {"\"\\ud800", 0, "truncated"},
    {"\"\\udc00\"", 0, "byte 1: a low surrogate escape without a high one"},
    {"\"\\udfff\"", 0, "byte 1: a low surrogate escape"},
    {"\"a\tb\"", 0, "byte 2: a control character in a string must be"},
    {"\"a\nb\"", 0, "byte 2: a control character"},
    {"\"\x1f\"", 0, "byte 1: a control character"},
    {"\" \x7f\"", 1, 0},
    {"\"abc", 0, "truncated JSON: input ends at byte 4"},
    {"'a'", 0, "byte 0: not a JSON value"},
    /* whitespace: only space, tab, line feed and carriage return */
    {"\f1", 0, "byte 0: not a JSON value"},
    {"[1\f]", 0, "byte 2: expected ',' or ']'"},
    {"[\v1]", 0, "byte 1: not a JSON value"},
    {"1\v", 0, "trailing data after the JSON value at byte 1"},
    {"\xc2\xa0"
     "1",
     0, "byte 0: not a JSON value"},
    {"\xEF\xBB\xBF{}", 0, "byte 0: a byte order mark is not allowed"},
    {"\xff", 0, "invalid UTF-8 at byte 0"},
    /* arrays */
    {"[1,2,[3,[]]]", 1, 0},
    {"[1,]", 0, "byte 3: not a JSON value"},
    {"[,1]", 0, "byte 1: not a JSON value"},
    {"[1 2]", 0, "byte 3: expected ',' or ']'"},
    {"[1}", 0, "byte 2: expected ',' or ']'"},
    {"[1", 0, "truncated JSON: input ends at byte 2"},
    {"[", 0, "truncated JSON: input ends at byte 1"},
    {"]", 0, "byte 0: not a JSON value"},
    /* objects */
    {"{\"a\":1,\"b\":[{}]}", 1, 0},
    {"{\"a\":1,}", 0, "byte 7: expected a member name in quotes"},
    {"{,}", 0, "byte 1: expected a member name in quotes"},
    {"{a:1}", 0, "byte 1: expected a member name in quotes"},
    {"{1:1}", 0, "byte 1: expected a member name in quotes"},
    {"{\"a\" 1}", 0, "byte 5: expected ':' after a member name"},
    {"{\"a\":}", 0, "byte 5: not a JSON value"},
    {"{\"a\":1]", 0, "byte 6: expected ',' or '}'"},
    {"{\"a\":1 \"b\":2}", 0, "byte 7: expected ',' or '}'"},
    {"{\"a\"", 0, "truncated JSON: input ends at byte 4"},
    {"{\"a\":", 0, "truncated JSON: input ends at byte 5"},
    {"{", 0, "truncated JSON: input ends at byte 1"},
    /* member names: compared once unescaped, byte for byte */
    {"{\"a\":1,\"a\\u0000\":2}", 1, 0},
    {"{\"a\\n\":1,\"an\":2}", 1, 0},
    {"{\"\\u00e9\":1,\"\\u00c9\":2}", 1, 0},
    {"{\"a\":1,\"a\":2}", 0, "duplicate member name \"a\" at byte 7"},
    {"{\"a\":1,\"\\u0061\":2}", 0,
     "duplicate member name \"\\u0061\" at byte 7"},
    {"{\"\\u0061\":1,\"a\":2}", 0, "duplicate member name \"a\" at byte 12"},
    {"{\"ab\":1,\"a\\u0062\":2}", 0, "duplicate member name"},
    {"{\"\\u0061b\":1,\"ab\":2}", 0, "duplicate member name"},
    {"{\"ab\":1,\"ac\":2,\"b\\u0061\":3}", 1, 0},
    {"{\"\\/\":1,\"/\":2}", 0, "duplicate member name \"/\" at byte 8"},
    {"{\"\xc3\xa9\":1,\"\\u00e9\":2}", 0, "duplicate member name"},
    {"{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}", 0,
     "duplicate member name"},
    {"{\"\\ud83d\\ude00\":1,\"\\ud83d\\ude01\":2}", 1, 0},
    {"{\"a\":{\"a\":{\"a\":1}}}", 1, 0},
    {"{\"a\":{\"b\":1},\"b\":2}", 1, 0},
    {"{\"x\":1,\"b\":{\"c\":1,\"c\":2}}", 0, "duplicate member name \"c\""},
};

#endif
