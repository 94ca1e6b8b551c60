/*
 * The store handle: the options bg_store_open refuses, a path that is not
 * a directory, trailing slashes, the progress hook, a schema lock that
 * cannot be read, and the moved-adapter finding of the schema lock.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "testutil.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "boxguard/migrate.h"
#include "boxguard/validate.h"

#include "alloc_int.h"
#include "box_int.h"
#include "handle_int.h"

static void test_open_refuses_bad_options(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    CHECK_ERR(bg_store_open(NULL, &o, &s), BG_EINVALID);
    CHECK_ERR(bg_store_open("", &o, &s), BG_EINVALID);
    char longdir[BG_PATH_MAX];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    CHECK_ERR(bg_store_open(longdir, &o, &s), BG_EINVALID);
    bg_store_opts g = tu_opts(sim, BG_DURABILITY_GROUP);
    g.group_size = 0;
    CHECK_ERR(bg_store_open("s", &g, &s), BG_EINVALID);
    bg_store_opts half = tu_opts(sim, BG_DURABILITY_FULL);
    tu_alloc a = {0};
    half.alloc = (bg_allocator){tu_malloc, NULL, tu_free, &a};
    CHECK_ERR(bg_store_open("s", &half, &s), BG_EINVALID);
    half.alloc = (bg_allocator){tu_malloc, tu_realloc, NULL, &a};
    CHECK_ERR(bg_store_open("s", &half, &s), BG_EINVALID);
    half.alloc = (bg_allocator){NULL, tu_realloc, tu_free, &a};
    CHECK_ERR(bg_store_open("s", &half, &s), BG_EINVALID);
    /* Nothing was made by any of them. */
    uint8_t *f;
    size_t n;
    CHECK_OK(bg_sim_write_file(sim, "probe", (const uint8_t *)"x", 1));
    CHECK_ERR(bg_sim_read_file(sim, "s/store.lock", &f, &n), BG_ENOTFOUND);
    /* The directory's length at its edge: the longest that leaves room
     * for every name below it, and one more. */
    size_t edge = BG_PATH_MAX - BG__NAME_MAX - 2;
    memset(longdir, 'd', edge + 1);
    longdir[edge + 1] = '\0';
    CHECK_ERR(bg_store_open(longdir, &o, &s), BG_EINVALID);
    longdir[edge] = '\0';
    CHECK_OK(bg_store_open(longdir, &o, &s));
    bg_box *b;
    CHECK_OK(bg_box_open(s, "b", BG_BOX_CREATE | BG_BOX_ENCRYPT, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    /* Without options: the real disk, no create. */
    CHECK_ERR(bg_store_open("/nonexistent/boxguard/store", NULL, &s),
              BG_ENOTFOUND);
    bg_validation v;
    CHECK_OK(bg_validate("/nonexistent/boxguard/store", NULL, &v));
    CHECK_INT(v.status, ==, BG_BLOCKED);
    bg_sim_free(sim);
}

static void test_path_that_is_a_file_and_trailing_slashes(void)
{
    bg_sim *sim = bg_sim_new(2);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    CHECK_OK(bg_sim_write_file(sim, "f", (const uint8_t *)"x", 1));
    char detail[256];
    o.detail = detail;
    o.detail_len = sizeof detail;
    CHECK_ERR(bg_store_open("f", &o, &s), BG_EINVALID);
    CHECK_CONTAINS(detail, "is not a directory");
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    CHECK_OK(tu_put(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(bg_store_open("s///", &o, &s));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK(tu_has(b, "k", "1"));
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

typedef struct seen {
    int calls;
    uint64_t last_done, last_total;
} seen;

static void on_progress(void *ctx, const char *what, uint64_t done,
                        uint64_t total)
{
    seen *x = ctx;
    (void)what;
    x->calls++;
    x->last_done = done;
    x->last_total = total;
}

static void test_progress_hook(void)
{
    bg_sim *sim = bg_sim_new(3);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "b", BG_BOX_CREATE, &s, &b));
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        CHECK_OK(tu_put(b, k, "{\"v\":1}"));
    }
    CHECK_OK(bg_store_close(s));
    seen x = {0};
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.progress = on_progress;
    o.progress_ctx = &x;
    CHECK_OK(bg_store_open("s", &o, &s));
    bg_box_report rep;
    CHECK_OK(bg_box_verify(s, "b", &rep));
    CHECK_INT(x.calls, >=, 1);
    CHECK_INT(x.last_done, ==, x.last_total); /* it ends at the end */
    CHECK_INT(x.last_total, ==, rep.file_size);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

static void test_unreadable_schema_lock(void)
{
    bg_sim *sim = bg_sim_new(4);
    bg_store *s;
    bg_box *meta;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
    CHECK_OK(bg__box_put_internal(meta, "schema_lock", "{\"adapters\":7}", 14));
    CHECK_OK(bg_store_close(s));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    char detail[256];
    o.detail = detail;
    o.detail_len = sizeof detail;
    CHECK_ERR(bg_store_open("s", &o, &s), BG_ECORRUPT);
    CHECK_CONTAINS(detail, "the schema lock in meta.box is unreadable");
    bg_sim_free(sim);
}

/* A schema version that is not a whole number from 1 to 2^32-1 is an
 * unreadable one, never taken for some other version. */
static void test_unreadable_schema_version(void)
{
    const char *bad[] = {"{\"version\":0}",
                         "{\"version\":1.5}",
                         "{\"version\":4294967296}",
                         "{\"version\":\"2\"}",
                         "{}",
                         "[2]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        bg_sim *sim = bg_sim_new(4);
        bg_store *s;
        bg_box *meta;
        CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
        CHECK_OK(bg_box_open(s, BG__META_BOX, BG_BOX_CREATE, &meta));
        CHECK_OK(bg__box_put_internal(meta, "schema_version", bad[i],
                                      strlen(bad[i])));
        bg_migrate_status st;
        CHECK_ERR(bg_migrate_get_status(s, &st), BG_ECORRUPT);
        CHECK_CONTAINS(bg_store_detail(s), "schema version in meta.box is "
                                           "unreadable");
        CHECK_OK(bg_store_close(s));
        bg_sim_free(sim);
    }
}

/* Files in the store's directory that are not boxes are not listed; a
 * leftover temporary file is removed by a writable open, anything else is
 * left as it was. A listing stops when its callback says so. */
static int count_boxes(void *arg, const char *name)
{
    (void)name;
    return ++*(int *)arg == 2; /* stop after the second */
}

static void test_foreign_files_in_the_store(void)
{
    bg_sim *sim = bg_sim_new(5);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open_box(sim, "a", BG_BOX_CREATE, &s, &b));
    CHECK_OK(bg_box_open(s, "b", BG_BOX_CREATE, &b));
    CHECK_OK(bg_box_open(s, "c", BG_BOX_CREATE, &b));
    CHECK_OK(bg_store_close(s));
    char longbox[2 + BG_BOX_NAME_MAX + 1 + 5]; /* a name of 65 */
    memset(longbox, 'a', sizeof longbox);
    memcpy(longbox, "s/", 2);
    memcpy(longbox + sizeof longbox - 5, ".box", 5);
    const char *kept[] = {"s/abc",     "s/.box",      "s/x.bo",
                          "s/a b.box", "s/notes.txt", longbox};
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        CHECK_OK(bg_sim_write_file(sim, kept[i], (const uint8_t *)"x", 1));
    CHECK_OK(bg_sim_write_file(sim, "s/a.box.tmp", (const uint8_t *)"x", 1));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    int n = 0;
    CHECK_OK(bg_store_list_boxes(s, count_boxes, &n));
    CHECK_INT(n, ==, 2);
    CHECK_OK(bg_store_close(s));
    uint8_t *p;
    size_t len;
    CHECK_ERR(bg_sim_read_file(sim, "s/a.box.tmp", &p, &len), BG_ENOTFOUND);
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        CHECK_OK(bg_sim_read_file(sim, kept[i], &p, &len));
        CHECK(len == 1 && p[0] == 'x');
        free(p);
    }
    bg_sim_free(sim);
}

/* A name the lock knows on one typeId registered by the code on another:
 * the open refuses it, naming the move. */
static void test_moved_adapter_is_refused(void)
{
    bg_sim *sim = bg_sim_new(5);
    const char *v1 = "{\"adapters\":[{\"typeId\":3,\"name\":\"User\"}]}";
    const char *v2 = "{\"adapters\":[{\"typeId\":4,\"name\":\"User\"}]}";
    bg_registry *r1 = bg_registry_new(), *r2 = bg_registry_new();
    CHECK_OK(bg_registry_add_json(r1, v1, strlen(v1)));
    CHECK_OK(bg_registry_add_json(r2, v2, strlen(v2)));
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r1;
    bg_store *s;
    CHECK_OK(bg_store_open("s", &o, &s));
    CHECK_OK(bg_store_close(s));
    char detail[256];
    o.registry = r2;
    o.detail = detail;
    o.detail_len = sizeof detail;
    CHECK_ERR(bg_store_open("s", &o, &s), BG_ESCHEMA);
    CHECK_CONTAINS(detail, "adapter 'User' moved from typeId 3 to typeId 4");
    CHECK_CONTAINS(detail, "(1 finding against the schema lock");
    bg_registry_free(r1);
    bg_registry_free(r2);
    bg_sim_free(sim);
}

/* The allocation helpers: a zero-byte request is one byte (never NULL for
 * success), through the hook or the C library; growth that would overflow
 * is BG_ENOMEM and leaves the array as it was. */
static size_t asked;
static void *count_malloc(void *ctx, size_t n)
{
    (void)ctx;
    asked = n;
    return malloc(n);
}
static void *count_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    asked = n;
    return realloc(p, n);
}
static void count_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void test_allocation_helpers(void)
{
    bg_allocator hook = {count_malloc, count_realloc, count_free, NULL};
    const bg_allocator *as[] = {NULL, &(bg_allocator){0}, &hook};
    for (int i = 0; i < 3; i++) {
        asked = 0;
        void *p = bg__alloc_malloc(as[i], 0);
        CHECK(p != NULL);
        CHECK_INT(asked, ==, i == 2 ? 1 : 0);
        p = bg__alloc_realloc(as[i], p, 0);
        CHECK(p != NULL);
        bg__alloc_free(as[i], p);
        bg__alloc_free(as[i], NULL);
    }
    char *arr = NULL;
    size_t cap = 0;
    CHECK_OK(bg__alloc_grow(&hook, &arr, 0, &cap, 1, 4));
    CHECK_INT(cap, ==, 4);
    CHECK_OK(bg__alloc_grow(&hook, &arr, 3, &cap, 1, 4)); /* room already */
    CHECK_INT(cap, ==, 4);
    CHECK_OK(bg__alloc_grow(&hook, &arr, 4, &cap, 1, 4));
    CHECK_INT(cap, ==, 8);
    char *before = arr;
    size_t big = SIZE_MAX / 2 + 1;
    CHECK_ERR(bg__alloc_grow(&hook, &arr, big, &big, 1, 4), BG_ENOMEM);
    size_t huge = 8;
    CHECK_ERR(bg__alloc_grow(&hook, &arr, 8, &huge, SIZE_MAX / 8, 4),
              BG_ENOMEM);
    CHECK(arr == before);
    CHECK_INT(huge, ==, 8);
    bg__alloc_free(&hook, arr);
}

#if defined(__linux__)
/* The mapping of /proc/self/smaps that holds address at: its bounds and
 * its flags ("" when none holds it). */
static void vma_of(uintptr_t at, uintptr_t *lo, uintptr_t *hi, char *flags,
                   size_t cap)
{
    flags[0] = 0;
    *lo = *hi = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return;
    char line[512];
    int here = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
            here = a <= at && at < b;
            if (here)
                *lo = a, *hi = b;
        } else if (here && !strncmp(line, "VmFlags:", 8)) {
            snprintf(flags, cap, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

/* A table advised for huge pages gets the advice on exactly the whole
 * 2 MiB pages inside it (start rounded up, end rounded down), and a table
 * under 4 MiB gets none. */
static void test_table_advice_covers_its_whole_huge_pages(void)
{
    const uintptr_t mib = (uintptr_t)1 << 20;
    uint8_t *m = mmap(NULL, 16 * mib, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    uintptr_t base = ((uintptr_t)m + 2 * mib - 1) & ~(2 * mib - 1);
    uintptr_t lo, hi;
    char fl[512];
    bg__alloc_advise_table((void *)base, 3 * mib);
    vma_of(base, &lo, &hi, fl, sizeof fl);
    CHECK(fl[0] && !strstr(fl, " hg")); /* under 4 MiB: no advice */
    bg__alloc_advise_table((void *)(base + 4096), 10 * mib);
    vma_of(base + 3 * mib, &lo, &hi, fl, sizeof fl);
    CHECK(strstr(fl, " hg") != NULL);
    CHECK_INT(lo, ==, base + 2 * mib);
    CHECK_INT(hi, ==, base + 10 * mib);
    vma_of(base + 10 * mib, &lo, &hi, fl, sizeof fl);
    CHECK(fl[0] && !strstr(fl, " hg"));
    vma_of(base + 2 * mib - 1, &lo, &hi, fl, sizeof fl);
    CHECK(fl[0] && !strstr(fl, " hg"));
    munmap(m, 16 * mib);
}
#endif

/* A durable store syncs its directory when it opens: the first durable
 * write after a reopen is one write and one sync, like every later one,
 * and with durability off the open syncs nothing. */
static void test_directory_synced_at_open(void)
{
    bg_sim *sim = bg_sim_new(21);
    bg_store *s;
    bg_box *b;
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "b", BG_BOX_CREATE, &b));
    CHECK_OK(bg_store_close(s));
    CHECK_OK(tu_open(sim, BG_DURABILITY_FULL, &s));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    uint64_t c0 = bg_sim_get_stats(sim).changes;
    CHECK_OK(bg_box_put(b, "k1", 2, 0, "1", 1));
    uint64_t c1 = bg_sim_get_stats(sim).changes;
    CHECK_OK(bg_box_put(b, "k2", 2, 0, "2", 1));
    uint64_t c2 = bg_sim_get_stats(sim).changes;
    CHECK_INT(c1 - c0, ==, 2); /* write, sync: no directory sync */
    CHECK_INT(c2 - c1, ==, 2);
    CHECK_OK(bg_store_close(s));
    /* Durability off: no directory sync at open either. */
    uint64_t before = bg_sim_get_stats(sim).changes;
    CHECK_OK(tu_open(sim, BG_DURABILITY_OFF, &s));
    CHECK_INT(bg_sim_get_stats(sim).changes, ==, before);
    CHECK_OK(bg_store_close(s));
    bg_sim_free(sim);
}

int main(void)
{
    RUN(test_open_refuses_bad_options);
    RUN(test_allocation_helpers);
    RUN(test_path_that_is_a_file_and_trailing_slashes);
    RUN(test_progress_hook);
    RUN(test_unreadable_schema_lock);
    RUN(test_unreadable_schema_version);
    RUN(test_foreign_files_in_the_store);
    RUN(test_moved_adapter_is_refused);
    RUN(test_directory_synced_at_open);
#if defined(__linux__)
    RUN(test_table_advice_covers_its_whole_huge_pages);
#endif
    return CHECK_DONE();
}
