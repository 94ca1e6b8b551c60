/*
 * A fresh directory for tests that need the real disk: under $TMPDIR (or
 * /tmp), named bg_<tag>.<pid>.<n>, created 0700. Returns 0, or -1 with
 * errno set.
 */
#ifndef BOXGUARD_TEMPDIR_H
#define BOXGUARD_TEMPDIR_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int tu_tempdir(char *out, size_t cap, const char *tag)
{
    const char *root = getenv("TMPDIR");
    if (!root || !*root)
        root = "/tmp";
    for (unsigned n = 0; n < 1000; n++) {
        int len =
            snprintf(out, cap, "%s/bg_%s.%ld.%u", root, tag, (long)getpid(), n);
        if (len < 0 || (size_t)len >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (mkdir(out, 0700) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

#endif
