/*
 * cJSON inside the engine: its allocations go through the store's
 * allocator, and a failed one is never mistaken for a text that is not
 * JSON or for a document that is complete.
 *
 * cJSON allocates through one global pair of hooks. boxguard's forward to
 * the allocator of the store whose call runs on this thread, and count the
 * allocations that fail. (The hooks are global: an application that sets
 * its own after boxguard's first call takes them back for every library
 * in the process, and boxguard's documents are then allocated by them.)
 */
#ifndef BOXGUARD_JSON_INT_H
#define BOXGUARD_JSON_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "boxguard/store.h"

typedef struct bg__json_scope {
    const bg_allocator *alloc;
    unsigned long failures; /* the count of failed allocations at its start */
    int depth;              /* scopes open on this thread, itself included */
} bg__json_scope;

/* From here to the end of the enclosing block, cJSON allocates through a
 * (NULL: the C library). Every public call that may build or parse JSON
 * for a store opens one at its top, so that a document made in the call
 * is freed by it too: no cJSON document outlives the call that made it. */
#define BG__JSON_SCOPE(a)                                                      \
    bg__json_scope bg__json_outer                                              \
        __attribute__((cleanup(bg__json_end), unused)) = bg__json_begin(a)

bg__json_scope bg__json_begin(const bg_allocator *a);
void bg__json_end(const bg__json_scope *outer);

/* cJSON_ParseWithLength: 0 and *out, BG_EINVALID when the text is not
 * JSON, BG_ENOMEM when cJSON ran out of memory reading it. */
BG_MUST_CHECK bg_err bg__json_parse(const char *txt, size_t len, cJSON **out);

/* Set obj's member name to item (adding or replacing it), or, when item
 * is NULL or cannot be attached, delete item and return -1. cJSON leaves
 * an item it could not attach to its caller. */
int bg__json_put(cJSON *obj, const char *name, cJSON *item);

/* Append item to array arr, or delete it and return -1. */
int bg__json_push(cJSON *arr, cJSON *item);

/* Whether a cJSON allocation failed in the current scope: a document
 * built or a value converted since may be missing a part. */
int bg__json_failed(void);

/* The document printed without spaces (free with cJSON_free), or NULL when
 * printing runs out of memory or when any cJSON allocation failed earlier
 * in the current scope: a document built then may lack a member whose
 * addition failed, and is not written. */
char *bg__json_print(const cJSON *doc);

/* The string member name of object doc, or NULL (missing, not a string). */
const char *bg__json_str(const cJSON *doc, const char *name);

#endif
