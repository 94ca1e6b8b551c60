/*
 * What the typeId check needs of a Dart package (pubspec.c): from
 * pubspec.yaml its name and the names of its dependencies (with the
 * constraint of each), from pubspec.lock the version of each package it
 * resolved. Both are read line by line: only these keys matter, and a
 * YAML library would bring a dependency for a few lines of structure.
 */
#ifndef BOXGUARD_PUBSPEC_INT_H
#define BOXGUARD_PUBSPEC_INT_H

#include <stddef.h>

#define BG__PUB_NAME_MAX 128

typedef struct bg__pub_dep {
    char name[BG__PUB_NAME_MAX];
    char constraint[64]; /* "^2.10.0", ">=2.9.0 <3.0.0", "" (path, sdk) */
} bg__pub_dep;

typedef struct bg__pubspec {
    char name[BG__PUB_NAME_MAX];
    bg__pub_dep *deps; /* dependencies, dev_ and overrides, in order */
    size_t ndeps;
} bg__pubspec;

/* Parse pubspec.yaml text (len bytes, not NUL-terminated). Returns 0, or
 * -1 when out of memory (*out then holds nothing to free). */
int bg__pubspec_parse(const char *s, size_t len, bg__pubspec *out);
/* Parse pubspec.lock text: every package and its version ("" when the
 * entry has none); deps[i].constraint holds the version. */
int bg__publock_parse(const char *s, size_t len, bg__pubspec *out);
void bg__pubspec_free(bg__pubspec *p);

/* The dependency called name, or NULL. */
const bg__pub_dep *bg__pubspec_dep(const bg__pubspec *p, const char *name);

/* Whether a version, or the lowest version a constraint admits ("^2.10.0",
 * ">=2.10.0 <3.0.0", "2.11.1", quotes allowed), is at least
 * major.minor. Returns 1, 0, or -1 when no version can be read ("any", a
 * path). */
int bg__pub_version_at_least(const char *v, unsigned major, unsigned minor);

#endif
