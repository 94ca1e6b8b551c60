/* The typeId scanner on single texts: comment and string forms, files cut
 * off mid-edit, and text that is not NUL-terminated. The CLI and whole
 * trees are tests/test_typeids_cli.sh. */
#include "boxguard/typeids.h"
#include "check.h"

/* Scan text (of len bytes) as path; the declarations and registrations
 * found, and every finding as "code:line;" in order. */
typedef struct scan_out {
    size_t decls, regs;
    char findings[1024];
    char lock[2048];
} scan_out;

static bg_err scan(const char *path, const char *text, size_t len, scan_out *o)
{
    bg_typeids *t = bg_typeids_new();
    if (!t)
        return BG_ENOMEM;
    bg_err err = bg_typeids_scan_text(t, path, text, len);
    const bg_typeids_finding *f;
    size_t n;
    if (!err)
        err = bg_typeids_check(t, &f, &n);
    if (err)
        n = 0;
    bg_typeids_counts(t, &o->decls, &o->regs);
    o->findings[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t at = strlen(o->findings);
        snprintf(o->findings + at, sizeof o->findings - at, "%s:%u;", f[i].code,
                 f[i].line);
    }
    char *lock = bg_typeids_lock_json(t);
    snprintf(o->lock, sizeof o->lock, "%s", lock ? lock : "");
    free(lock);
    bg_typeids_free(t);
    return err;
}

static bg_err scan_s(const char *path, const char *text, scan_out *o)
{
    return scan(path, text, strlen(text), o);
}

#define DART_CLASS                                                             \
    "@HiveType(typeId: 1)\nclass User {}\n"                                    \
    "void main() { Hive.registerAdapter(UserAdapter()); }\n"

static void test_dart_baseline_one_declared_and_registered(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart", DART_CLASS, &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_INT(o.regs, ==, 1);
    CHECK_STR(o.findings, "");
}

static void test_dart_line_comment_annotation_ignored(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart", "// @HiveType(typeId: 1)\n" DART_CLASS, &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_STR(o.findings, "");
}

static void test_dart_doc_comment_annotation_ignored(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart",
                    "/// Was @HiveType(typeId: 1) once.\n"
                    "/** @HiveType(typeId: 1) */\n" DART_CLASS,
                    &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_STR(o.findings, "");
}

static void test_dart_block_comment_on_one_line_ignored(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart",
                    "/* @HiveType(typeId: 1) class Old {} */ " DART_CLASS, &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_STR(o.findings, "");
}

static void test_dart_block_comment_over_lines_ignored_and_lines_kept(void)
{
    scan_out o;
    /* The commented-out class shares the typeId: were it read, it would be
     * a collision; the line of the real declaration must still be 5. */
    CHECK_OK(scan_s("lib/a.dart",
                    "/*\n@HiveType(typeId: 1)\nclass Old {}\n*/\n"
                    "@HiveType(typeId: 1)\nclass User {}\n"
                    "@HiveType(typeId: 1)\nclass Dup {}\n",
                    &o));
    CHECK_INT(o.decls, ==, 2);
    CHECK_STR(o.findings, "unregistered:5;collision:7;unregistered:7;");
}

static void test_dart_commented_out_registration_ignored(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart",
                    "@HiveType(typeId: 1)\nclass User {}\n"
                    "// Hive.registerAdapter(UserAdapter());\n"
                    "/* Hive.registerAdapter(UserAdapter()); */\n",
                    &o));
    CHECK_INT(o.regs, ==, 0);
    CHECK_CONTAINS(o.findings, "unregistered:1;");
}

static void test_dart_annotation_inside_strings_ignored(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart",
                    "var a = '@HiveType(typeId: 1) class X {}';\n"
                    "var b = \"@HiveType(typeId: 1) class Y {}\";\n"
                    "var c = '''\n@HiveType(typeId: 1)\nclass Z {}\n''';\n"
                    "var d = 'Hive.registerAdapter(ZAdapter())';\n" DART_CLASS,
                    &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_INT(o.regs, ==, 1);
    CHECK_STR(o.findings, "");
}

static void test_c_comments_ignored(void)
{
    scan_out o;
    CHECK_OK(scan_s("src/a.c",
                    "// static const bg_adapter old = {7, \"Old\"};\n"
                    "/* static const bg_adapter older = {7, \"Older\"}; */\n"
                    "static const bg_adapter note = {7, \"Note\"};\n"
                    "void f(bg_registry *r) { (void)bg_registry_add(r, "
                    "&note); }\n",
                    &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_INT(o.regs, ==, 1);
    CHECK_STR(o.findings, "");
}

/* A file being edited ends inside an unclosed annotation. The token array
 * is made exactly full (256 tokens) so that a read past its last token is
 * a heap overflow under ASan. */
static void test_dart_unclosed_annotation_at_end_of_file(void)
{
    char text[1024] = "";
    for (int i = 0; i < 251; i++)
        strcat(text, "x ");
    strcat(text, "@HiveType(typeId:");
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart", text, &o));
    CHECK_INT(o.decls, ==, 0);
    CHECK_OK(scan_s("lib/a.dart", "@HiveType(typeId: 3", &o));
    CHECK_INT(o.decls, ==, 0);
}

/* The scanner reads only len bytes: digits just past the end of the text
 * are not part of the number. */
static void test_yaml_numbers_end_at_the_buffer(void)
{
    const char *yaml = "types:\n  Note:\n    typeId: 7"
                       "00";
    scan_out o;
    CHECK_OK(scan("lib/hive/hive_adapters.g.yaml", yaml, strlen(yaml) - 2, &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_CONTAINS(o.lock, "\"typeId\": 7,");

    /* nextTypeId must be above every typeId: 1 is not (a finding), 19
     * would be. */
    const char *next = "types:\n  Note:\n    typeId: 5\nnextTypeId: 1"
                       "9";
    CHECK_OK(scan("lib/hive/hive_adapters.g.yaml", next, strlen(next) - 1, &o));
    CHECK_CONTAINS(o.findings, "collision:4;");
    CHECK_OK(scan_s("lib/hive/hive_adapters.g.yaml", next, &o));
    CHECK(!strstr(o.findings, "collision"));
}

static void test_yaml_typeid_not_a_number_is_a_parse_finding(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/hive/hive_adapters.g.yaml",
                    "types:\n  Note:\n    typeId: seven\n", &o));
    CHECK_INT(o.decls, ==, 0);
    CHECK_CONTAINS(o.findings, "parse:3;");
    CHECK_OK(scan_s("lib/hive/hive_adapters.g.yaml",
                    "types:\n  Note:\n    typeId: 1\nnextTypeId: soon\n", &o));
    CHECK_CONTAINS(o.findings, "parse:4;");
}

/* A backslash escapes the quote after it: the string goes on, and the
 * annotation inside it is still text. */
static void test_dart_escaped_quotes_keep_the_string_open(void)
{
    scan_out o;
    CHECK_OK(scan_s(
        "lib/a.dart",
        "var a = 'it\\'s @HiveType(typeId: 1) class X {}';\n"
        "var b = \"say \\\"@HiveType(typeId: 1) class Y {}\\\"\";\n" DART_CLASS,
        &o));
    CHECK_INT(o.decls, ==, 1);
    CHECK_STR(o.findings, "");
}

/* hive's typeIds run 0..223: 223 is fine, 224 is a range finding. */
static void test_hive_range_at_its_edge(void)
{
    scan_out o;
    CHECK_OK(scan_s("lib/a.dart",
                    "@HiveType(typeId: 223)\nclass Last {}\n"
                    "void f() { Hive.registerAdapter(LastAdapter()); }\n",
                    &o));
    CHECK_STR(o.findings, "");
    CHECK_OK(scan_s("lib/a.dart",
                    "@HiveType(typeId: 224)\nclass Over {}\n"
                    "void f() { Hive.registerAdapter(OverAdapter()); }\n",
                    &o));
    CHECK_STR(o.findings, "range:1;");
}

/* Lock and policy files that are not what they should be: refused, each
 * saying what it needs. */
static void test_bad_lock_and_policy_files(void)
{
    static const char *const locks[] = {
        "",
        "[]",
        "{\"typeids\":{}}",
        "{\"typeids\":[{\"ns\":\"dart\",\"typeId\":1,\"name\":\"A\"}]}",
        "{\"typeids\":[{\"ns\":\"hive\",\"typeId\":-1,\"name\":\"A\"}]}",
        "{\"typeids\":[{\"ns\":\"hive\",\"typeId\":1}]}"};
    static const char *const policies[] = {
        "{}",
        "{\"ranges\":[{\"domain\":\"x\",\"paths\":[],\"min\":5,"
        "\"max\":4}]}",
        "{\"ranges\":[{\"paths\":[],\"min\":1,\"max\":4}]}",
        "{\"ranges\":[{\"domain\":\"x\",\"paths\":\"lib\",\"min\":1,"
        "\"max\":4}]}"};
    char why[160];
    for (size_t i = 0; i < sizeof locks / sizeof *locks; i++) {
        bg_typeids *t = bg_typeids_new();
        why[0] = '\0';
        CHECK_ERR(bg_typeids_load_lock(t, locks[i], strlen(locks[i]), why,
                                       sizeof why),
                  BG_EINVALID);
        CHECK_CONTAINS(why, "lock ");
        bg_typeids_free(t);
    }
    for (size_t i = 0; i < sizeof policies / sizeof *policies; i++) {
        bg_typeids *t = bg_typeids_new();
        why[0] = '\0';
        CHECK_ERR(bg_typeids_load_policy(t, policies[i], strlen(policies[i]),
                                         why, sizeof why),
                  BG_EINVALID);
        CHECK_CONTAINS(why, "policy ");
        bg_typeids_free(t);
    }
    /* A good policy: typeIds of lib/billing/ must lie in 100..149. */
    bg_typeids *t = bg_typeids_new();
    const char *pol = "{\"ranges\":[{\"domain\":\"billing\",\"paths\":"
                      "[\"lib/billing/\"],\"min\":100,\"max\":149}]}";
    CHECK_OK(bg_typeids_load_policy(t, pol, strlen(pol), why, sizeof why));
    const char *dart = "@HiveType(typeId: 7)\nclass Invoice {}\n"
                       "void f() { Hive.registerAdapter(InvoiceAdapter()); }\n";
    CHECK_OK(bg_typeids_scan_text(t, "lib/billing/invoice.dart", dart,
                                  strlen(dart)));
    const bg_typeids_finding *f;
    size_t n;
    CHECK_OK(bg_typeids_check(t, &f, &n));
    CHECK_INT(n, ==, 1);
    CHECK_STR(f[0].code, "range");
    CHECK_CONTAINS(f[0].message, "billing");
    bg_typeids_free(t);
}

/* The JSON manifest form and C arrays of adapters. */
static void test_manifest_and_c_array_declarations(void)
{
    scan_out o;
    CHECK_OK(scan_s("app.adapters.json",
                    "{\"adapters\":[{\"typeId\":3,\"name\":\"Note\"},"
                    "{\"typeId\":3,\"name\":\"Other\"}]}",
                    &o));
    CHECK_INT(o.decls, ==, 2);
    CHECK_CONTAINS(o.findings, "collision:");
    CHECK_OK(scan_s("src/a.c",
                    "static const bg_adapter all[] = {\n"
                    "    {.type_id = 3, .name = \"Note\"},\n"
                    "    {4, \"User\", 1, NULL, 0},\n"
                    "};\n"
                    "void f(bg_registry *r) { (void)bg_registry_add(r, "
                    "&all[0]); }\n",
                    &o));
    CHECK_INT(o.decls, ==, 2);
    CHECK_INT(o.regs, ==, 1);
}

int main(void)
{
    RUN(test_dart_baseline_one_declared_and_registered);
    RUN(test_dart_line_comment_annotation_ignored);
    RUN(test_dart_doc_comment_annotation_ignored);
    RUN(test_dart_block_comment_on_one_line_ignored);
    RUN(test_dart_block_comment_over_lines_ignored_and_lines_kept);
    RUN(test_dart_commented_out_registration_ignored);
    RUN(test_dart_annotation_inside_strings_ignored);
    RUN(test_c_comments_ignored);
    RUN(test_dart_escaped_quotes_keep_the_string_open);
    RUN(test_dart_unclosed_annotation_at_end_of_file);
    RUN(test_hive_range_at_its_edge);
    RUN(test_bad_lock_and_policy_files);
    RUN(test_manifest_and_c_array_declarations);
    RUN(test_yaml_numbers_end_at_the_buffer);
    RUN(test_yaml_typeid_not_a_number_is_a_parse_finding);
    return CHECK_DONE();
}
