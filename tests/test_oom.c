/*
 * Allocation failure in the code that allocates from the C library rather
 * than a store's allocator: migration plans, adapter registries, the
 * typeId scanner, and stores opened without an allocator. This program is
 * linked with malloc, calloc, realloc and strdup wrapped (-Wl,--wrap), so
 * every allocation of the engine's objects in it can be failed in turn.
 * Each call then succeeds with the whole answer or says BG_ENOMEM; no
 * partial answer, no crash, and (under ASan) no leak.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boxguard/migrate.h"
#include "boxguard/typeids.h"
#include "boxguard/registry.h"
#include "boxguard/validate.h"
#include "check.h"
#include "migrate_fixture.h"
#include "tempdir.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static long allocs, fail_at; /* fail allocation number fail_at; 0: none */

static int fails(void)
{
    return fail_at && ++allocs == fail_at;
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    return fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m);
void *__wrap_calloc(size_t n, size_t m)
{
    return fails() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
    return fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s);
char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Run work with allocation 1, 2, ... failing until it makes fewer
 * allocations than the one set to fail. work returns 0, BG_ENOMEM, or
 * something else (reported as a failure of the test). */
#define EVERY_ALLOCATION(label, work)                                          \
    do {                                                                       \
        long n_;                                                               \
        for (n_ = 1;; n_++) {                                                  \
            allocs = 0;                                                        \
            fail_at = n_;                                                      \
            bg_err e_ = (work);                                                \
            fail_at = 0;                                                       \
            if (e_ && e_ != BG_ENOMEM)                                         \
                fprintf(stderr, "%s, allocation %ld: %s\n", label, n_,         \
                        bg_err_name(e_));                                      \
            CHECK(!e_ || e_ == BG_ENOMEM);                                     \
            if (!e_ && allocs < n_)                                            \
                break;                                                         \
        }                                                                      \
        printf("  %s: %ld allocations failed in turn\n", label, n_ - 1);       \
        CHECK_INT(n_, >, 3);                                                   \
    } while (0)

/* ---- plans ----------------------------------------------------------- */

static bg_err parse_plan(const char *json)
{
    bg_plan *p;
    char detail[256];
    bg_err err = bg_plan_parse(json, strlen(json), &p, detail, sizeof detail);
    if (!err) {
        if (bg_plan_count(p) != 1)
            err = BG_EINVALID;
        bg_plan_free(p);
    }
    return err;
}

static void test_plans(void)
{
    EVERY_ALLOCATION("plan of every op", parse_plan(MF_EVERY_OP));
    EVERY_ALLOCATION("plan with adapters", parse_plan(MF_PLAN));
}

/* ---- registries ------------------------------------------------------ */

static const char manifest[] =
    "{\"adapters\":[{\"typeId\":3,\"name\":\"User\",\"version\":2,\"fields\":"
    "[{\"name\":\"id\",\"type\":\"integer\",\"required\":true},"
    "{\"name\":\"tags\",\"type\":\"array\"}]},"
    "{\"typeId\":9,\"name\":\"Note\",\"version\":1,\"fields\":[]}]}";

static bg_err registry_round_trip(void)
{
    bg_registry *r = bg_registry_new(), *back = bg_registry_new();
    bg_err err = r && back ? bg_registry_add_json(r, manifest, strlen(manifest))
                           : BG_ENOMEM;
    char *txt = err ? NULL : bg_registry_to_json(r);
    if (!err && !txt)
        err = BG_ENOMEM;
    if (!err)
        err = bg_registry_add_json(back, txt, strlen(txt));
    if (!err && bg_registry_count(back) != 2)
        err = BG_EINVALID;
    char why[160];
    const char *rec = "{\"id\":1,\"tags\":[]}";
    if (!err)
        err = bg_registry_check(back, 3, rec, strlen(rec), why, sizeof why);
    free(txt);
    bg_registry_free(r);
    bg_registry_free(back);
    return err;
}

static void test_registries(void)
{
    EVERY_ALLOCATION("registry", registry_round_trip());
}

/* ---- the typeId scanner --------------------------------------------- */

static const char dart[] =
    "@HiveType(typeId: 1)\nclass User {}\n"
    "@HiveType(typeId: 1)\nclass Other {}\n"
    "@HiveType(typeId: 300)\nclass Far {}\n"
    "void main() { Hive.registerAdapter(UserAdapter()); }\n";
static const char yaml[] = "nextTypeId: 2\ntypes:\n  Item:\n    typeId: 5\n";
static const char cfile[] = "#define BG_TYPE_NOTE 7\n"
                            "bg_adapter note = {.type_id = 7, .name = "
                            "\"Note\"};\n";
static const char policy[] = "{\"ranges\":[{\"domain\":\"core\",\"paths\":"
                             "[\"lib/\"],\"min\":0,\"max\":99}]}";
static const char lock[] =
    "{\"typeids\":[{\"ns\":\"hive\",\"typeId\":1,\"name\":\"Renamed\"},"
    "{\"ns\":\"hive\",\"typeId\":4,\"name\":\"User\"}]}";

static const char manifest_json[] =
    "{\"adapters\":[{\"typeId\":12,\"name\":\"Invoice\",\"version\":1,"
    "\"fields\":[]}]}";

static size_t want_findings = (size_t)-1;
static char want_lock[4096];

static bg_err typeids_scan(void)
{
    char why[160];
    bg_typeids *t = bg_typeids_new();
    bg_err err = t ? 0 : BG_ENOMEM;
    if (!err)
        err =
            bg_typeids_load_policy(t, policy, strlen(policy), why, sizeof why);
    if (!err)
        err = bg_typeids_load_lock(t, lock, strlen(lock), why, sizeof why);
    if (!err)
        err = bg_typeids_scan_text(t, "lib/m.dart", dart, strlen(dart));
    if (!err)
        err = bg_typeids_scan_text(t, "lib/hive_adapters.g.yaml", yaml,
                                   strlen(yaml));
    if (!err)
        err = bg_typeids_scan_text(t, "src/note.c", cfile, strlen(cfile));
    if (!err)
        err = bg_typeids_scan_text(t, "adapters/invoice.json", manifest_json,
                                   strlen(manifest_json));
    const bg_typeids_finding *f;
    size_t n = 0;
    if (!err)
        err = bg_typeids_check(t, &f, &n);
    /* The whole answer or none: never fewer findings. */
    if (!err && want_findings != (size_t)-1 && n != want_findings)
        err = BG_EINVALID;
    if (!err)
        want_findings = n;
    char *l = err ? NULL : bg_typeids_lock_json(t);
    if (!err && !l)
        err = BG_ENOMEM;
    /* The lock is the whole lock or none. */
    if (!err && want_lock[0] && strcmp(l, want_lock))
        err = BG_EINVALID;
    if (!err && !want_lock[0])
        snprintf(want_lock, sizeof want_lock, "%s", l);
    free(l);
    bg_typeids_free(t);
    return err;
}

static char tree[600];

static bg_err typeids_tree(void)
{
    bg_typeids *t = bg_typeids_new();
    bg_err err = t ? bg_typeids_scan_path(t, tree) : BG_ENOMEM;
    const bg_typeids_finding *f;
    size_t n = 0;
    if (!err)
        err = bg_typeids_check(t, &f, &n);
    size_t decls = 0, regs = 0;
    if (t)
        bg_typeids_counts(t, &decls, &regs);
    if (!err && (decls != 4 || regs != 1))
        err = BG_EINVALID;
    bg_typeids_free(t);
    return err;
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_typeids(void)
{
    CHECK_OK(typeids_scan());
    CHECK(want_findings > 2);
    EVERY_ALLOCATION("typeids scan", typeids_scan());
    char base[512];
    CHECK(tu_tempdir(base, sizeof base, "oom") == 0);
    snprintf(tree, sizeof tree, "%s/app", base);
    char lib[700];
    snprintf(lib, sizeof lib, "%s/lib", tree);
    CHECK(mkdir(tree, 0700) == 0 && mkdir(lib, 0700) == 0);
    put_file(lib, "m.dart", dart);
    put_file(lib, "hive_adapters.g.yaml", yaml);
    CHECK_OK(typeids_tree());
    EVERY_ALLOCATION("typeids tree", typeids_tree());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
}

/* ---- validation of a store opened without an allocator ------------- */

static bg_sim *vsim;
static bg_registry *vreg;
static bg_validation want_v;
static int have_want;

/* Validate, and say BG_EINVALID when the verdict differs from the one with
 * memory to spare: running out of memory is never a finding. */
static bg_err validate_store(void)
{
    bg_validate_opts o = {bg_sim_vfs(vsim), vreg, 2};
    bg_validation v;
    bg_err err = bg_validate("s", &o, &v);
    if (err)
        return err;
    if (!have_want) {
        want_v = v;
        have_want = 1;
        return 0;
    }
    if (v.status != want_v.status || v.nfindings != want_v.nfindings ||
        v.stored_version != want_v.stored_version)
        return BG_EINVALID;
    for (size_t i = 0; i < v.nfindings; i++)
        if (strcmp(v.findings[i].code, want_v.findings[i].code))
            return BG_EINVALID;
    return 0;
}

static void test_validate(void)
{
    vsim = bg_sim_new(3);
    CHECK_OK(mf_setup(vsim, 4, 1));
    CHECK_OK(mf_registry(MF_ADAPTERS_V2, &vreg));
    CHECK_OK(validate_store());
    CHECK(want_v.nfindings >= 1); /* the code is ahead of the store */
    EVERY_ALLOCATION("validate", validate_store());
    bg_registry_free(vreg);
    bg_sim_free(vsim);
}

int main(void)
{
    RUN(test_plans);
    RUN(test_registries);
    RUN(test_typeids);
    RUN(test_validate);
    return CHECK_DONE();
}
