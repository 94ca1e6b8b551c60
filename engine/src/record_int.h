/*
 * Records, for the modules inside the engine: the check with the store's
 * allocator, and the parse for those that go on to look inside a value.
 */
#ifndef BOXGUARD_RECORD_INT_H
#define BOXGUARD_RECORD_INT_H

#include <cjson/cJSON.h>

#include "boxguard/store.h"
#include "boxguard/record.h"

/* bg_record_validate, allocating (only for values with many member
 * names) through a. */
BG_MUST_CHECK bg_err bg__record_check(const char *json, size_t len,
                                      const bg_allocator *a, char *why,
                                      size_t whylen);

/* bg__record_check; on 0 and when out is not NULL, *out is the document as
 * cJSON parses it (the caller deletes it), or BG_ENOMEM. */
BG_MUST_CHECK bg_err bg__record_parse(const char *json, size_t len,
                                      const bg_allocator *a, char *why,
                                      size_t whylen, cJSON **out);

#endif
