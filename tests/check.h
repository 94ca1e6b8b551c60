/*
 * A minimal test harness: assertion macros that print both operands and
 * return from the test on failure, and a runner that names each test.
 */
#ifndef BOXGUARD_CHECK_H
#define BOXGUARD_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/boxguard.h"

static int check_failed __attribute__((unused));

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            check_failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_INT(a, op, b)                                                    \
    do {                                                                       \
        long long check_a = (long long)(a), check_b = (long long)(b);          \
        if (!(check_a op check_b)) {                                           \
            fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: %lld vs %lld\n",   \
                    __FILE__, __LINE__, #a, #op, #b, check_a, check_b);        \
            check_failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

/* expr must return code (a bg_err); prints both names on mismatch. */
#define CHECK_ERR(expr, code)                                                  \
    do {                                                                       \
        bg_err check_e = (expr);                                               \
        if (check_e != (code)) {                                               \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__,  \
                    __LINE__, #expr, bg_err_name(check_e), bg_err_name(code)); \
            check_failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_OK(expr) CHECK_ERR(expr, 0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *check_a = (a), *check_b = (b);                             \
        if (!check_a || !check_b || strcmp(check_a, check_b)) {                \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" vs \"%s\"\n",      \
                    __FILE__, __LINE__, #a, #b, check_a ? check_a : "(null)",  \
                    check_b ? check_b : "(null)");                             \
            check_failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                            \
    do {                                                                       \
        const char *check_h = (hay), *check_n = (needle);                      \
        if (!check_h || !strstr(check_h, check_n)) {                           \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n",         \
                    __FILE__, __LINE__, check_h ? check_h : "(null)",          \
                    check_n);                                                  \
            check_failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

static int check_total __attribute__((unused)),
    check_bad __attribute__((unused));

#define RUN(test)                                                              \
    do {                                                                       \
        check_failed = 0;                                                      \
        test();                                                                \
        check_total++;                                                         \
        if (check_failed)                                                      \
            check_bad++;                                                       \
        printf("%s %s\n", check_failed ? "FAIL" : "ok  ", #test);              \
        fflush(stdout);                                                        \
    } while (0)

#define CHECK_DONE()                                                           \
    (printf("%d passed, %d failed\n", check_total - check_bad, check_bad),     \
     check_bad ? 1 : 0)

#endif
