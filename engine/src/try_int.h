/*
 * The guard macros every module uses: return early on error, so that the
 * success path reads straight down.
 */
#ifndef BOXGUARD_TRY_INT_H
#define BOXGUARD_TRY_INT_H

#include "boxguard/err.h"

/* Return the error of expr, if any. */
#define BG_TRY(expr)                                                           \
    do {                                                                       \
        bg_err bg__e = (expr);                                                 \
        if (bg__e < 0)                                                         \
            return bg__e;                                                      \
    } while (0)

/* In functions with an `err` variable and an `out:` label. */
#define BG_TRY_OUT(expr)                                                       \
    do {                                                                       \
        err = (expr);                                                          \
        if (err < 0)                                                           \
            goto out;                                                          \
    } while (0)

#define BG_ENSURE(cond, code)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            return (code);                                                     \
    } while (0)

#endif
