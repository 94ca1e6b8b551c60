/*
 * Encryption at rest: the store's data keys and their rotation.
 *
 * A box created with BG_BOX_ENCRYPT seals every value with libsodium's
 * XChaCha20-Poly1305 under the store's data key; the additional data binds
 * the box id, sequence number, kind, typeId and key, so a frame cannot be
 * edited, swapped, replayed or moved into another box without failing
 * authentication. Record keys stay in clear (authenticated, not secret).
 *
 * Data keys are 32 random bytes in <store>/keys/<generation>.key (mode
 * 0600), a stand-in for a platform keystore; each box header names the key
 * it is sealed with by a 4-byte key id. Key material lives in guarded,
 * zeroed-on-free memory (sodium_malloc) while the store is open.
 *
 * A box whose key the store does not have, or none of whose frames
 * authenticate, fails with BG_EAUTH and nothing on disk is changed: a wrong
 * key never truncates, recovers or rewrites anything.
 */
#ifndef BOXGUARD_REKEY_H
#define BOXGUARD_REKEY_H

#include "boxguard/err.h"
#include "boxguard/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_rekey_report {
    unsigned boxes;        /* encrypted boxes now under the new key */
    unsigned resealed;     /* of which this call rewrote */
    unsigned keys_removed; /* old keys destroyed */
    uint32_t key_id;       /* the key every box is sealed with now */
} bg_rekey_report;

/* Rotate the store's data key: a new key (written and synced before any
 * box uses it), every sealed box resealed under it (written beside,
 * renamed in) and verified, and only then the old keys destroyed
 * (overwritten, synced, unlinked). Every open box handle is closed first.
 * A rotation cut short by a crash or an error leaves every box readable
 * under a key the store still has; running it again finishes it (it
 * reuses a new key no box uses yet). A finished rotation is recorded in
 * the audit log (key_rotation).
 * Returns 0 and *rep, or BG_ESTATE (read-only store; a box still sealed
 * with an old key after resealing), BG_ECORRUPT (a box does not verify
 * after resealing: old keys are kept), BG_EAUTH (a box is sealed with a
 * key the store does not have), BG_EIO, BG_ENOSPACE, BG_ENOMEM. */
BG_MUST_CHECK bg_err bg_rekey_run(bg_store *store, bg_rekey_report *rep);

#ifdef __cplusplus
}
#endif
#endif
