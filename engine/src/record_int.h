/*
 * Records, for the modules that go on to look inside a value: the parse
 * that validation does, kept instead of thrown away.
 */
#ifndef BOXGUARD_RECORD_INT_H
#define BOXGUARD_RECORD_INT_H

#include <cjson/cJSON.h>

#include "boxguard/record.h"

/* bg_record_validate; on 0 and when out is not NULL, *out is the parsed
 * document (the caller deletes it). */
BG_MUST_CHECK bg_err bg__record_parse(const char *json, size_t len, char *why,
                                      size_t whylen, cJSON **out);

#endif
