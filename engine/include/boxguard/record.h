/*
 * Records: JSON documents tagged with a typeId. This module checks that a
 * value is JSON exactly as RFC 8259 defines it, within the bounds that
 * make it safe to store.
 *
 * Limits (documented in the README):
 *   BG_RECORD_MAX_BYTES   size of one JSON value in bytes;
 *   BG_RECORD_MAX_DEPTH   nesting of arrays and objects;
 *   BG_KEY_MAX            length of a record key in bytes.
 */
#ifndef BOXGUARD_RECORD_H
#define BOXGUARD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "boxguard/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BG_RECORD_MAX_BYTES (4u << 20)
#define BG_RECORD_MAX_DEPTH 64
#define BG_KEY_MAX          1024

/* Check that json[0..len) is exactly one JSON value (RFC 8259) within the
 * limits: valid UTF-8 throughout, no NUL byte, no duplicate member name in
 * any object (names compared once unescaped), nothing but whitespace after
 * the value. Returns 0, or
 * BG_EINVALID with a reason (and the byte offset where it applies) written
 * to why (always NUL-terminated when whylen > 0), or BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_record_validate(const char *json, size_t len, char *why,
                                        size_t whylen);

/* Check a record key: 1..BG_KEY_MAX bytes of valid UTF-8 without NUL.
 * Returns 0 or BG_EINVALID with the reason in why. */
BG_MUST_CHECK bg_err bg_record_check_key(const void *key, size_t len, char *why,
                                         size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
