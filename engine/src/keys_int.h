/*
 * Data keys of a store (keys.c: their files), for the box layer (sealing)
 * and key rotation (rekey.c).
 */
#ifndef BOXGUARD_KEYS_INT_H
#define BOXGUARD_KEYS_INT_H

#include <stdint.h>

#include "handle_int.h"

#define BG__KEY_BYTES 32
#define BG__KEYS_DIR  "keys"

struct bg__key {
    uint32_t gen;     /* keys/<gen>.key; the highest is current */
    uint32_t id;      /* named in box headers */
    unsigned char *k; /* sodium_malloc'd BG__KEY_BYTES */
};

/* The key id of key material: 4 bytes of its BLAKE2b hash, never 0. */
uint32_t bg__key_id(const unsigned char *k);

/* Load keys/ once (no directory: no keys). */
BG_MUST_CHECK bg_err bg__keys_load(bg_store *s);
const bg__key *bg__keys_find(bg_store *s, uint32_t id);
/* The current key, or NULL when the store has none. */
const bg__key *bg__keys_current(bg_store *s);
/* Make a new key of the next generation, durably. */
BG_MUST_CHECK bg_err bg__keys_create(bg_store *s, const bg__key **out);
/* Make from's material (another store's key) the next generation of s,
 * durably: what s seals from then on, that store's key opens. */
BG_MUST_CHECK bg_err bg__keys_adopt(bg_store *s, const bg__key *from,
                                    const bg__key **out);
/* Overwrite, sync and unlink the key file, then forget the key. */
BG_MUST_CHECK bg_err bg__keys_destroy(bg_store *s, uint32_t id);
void bg__keys_free(bg_store *s);

#endif
