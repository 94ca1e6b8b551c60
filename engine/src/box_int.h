/*
 * The box layer as the modules above it see it: the file format (also for
 * the tests and fuzzers that craft or damage box files), the store's own
 * boxes, the table of open boxes, boxes with an external index (the
 * queue), staged boxes (migrations), and the writes of a box's owner. All
 * integers are little-endian.
 *
 * Header (48 bytes):
 *    0  magic "BGBOX\r\n\x1a"     8
 *    8  format version (1)        2
 *   10  flags (bit 0: values sealed) 2
 *   12  key id (sealed; else 0)   4   names the data key in keys/
 *   16  box id (random)          16
 *   32  sequence floor            8   next sequence is at least this
 *   40  XXH3-64 of bytes 0..39    8
 *
 * Frame (56 bytes + key + value):
 *    0  magic "BGXF"              4
 *    4  frame length              4   56 + key length + value length
 *    8  kind (1 put, 2 delete)    1
 *    9  flags (bit 0: a frame of a batch that continues)  1
 *   10  key length (1..1024)      2
 *   12  typeId                    4
 *   16  sequence                  8   strictly increasing in the file
 *   24  offset of this frame      8
 *   32  offset where its sync group began   8
 *   40  value length              4
 *   44  reserved, 0               4
 *   48  key, then value; in a sealed box the value is nonce (24),
 *       ciphertext, tag (16), and a delete carries nonce and tag
 *  end-8 XXH3-64 of everything before it   8
 *
 * The group offset is what tells a torn tail from corruption: a sync makes
 * everything before it durable, so damage followed by a frame whose group
 * began after the damage is damage to durable data.
 */
#ifndef BOXGUARD_BOX_INT_H
#define BOXGUARD_BOX_INT_H

#include <stdint.h>

#define BG__BOX_HDR_SIZE   48
#define BG__FRAME_HDR      48
#define BG__FRAME_OVERHEAD 56
#define BG__FRAME_MAGIC    0x46584742u /* "BGXF" */
#define BG__BOX_VERSION    1
#define BG__KIND_PUT       1
#define BG__KIND_DEL       2
#define BG__FLAG_BATCH     1
#define BG__VALUE_MAX      (16u << 20)
#define BG__BOX_SEALED     1
#define BG__SEAL_BYTES     40 /* XChaCha20-Poly1305 nonce + tag */

extern const uint8_t bg__box_magic[8];

/* Encode a frame at dst (room for BG__FRAME_OVERHEAD + klen + vlen bytes);
 * returns its length. */
uint32_t bg__box_encode_frame(uint8_t *dst, int kind, int flags,
                              const void *key, uint16_t klen, uint32_t type,
                              uint64_t seq, uint64_t off, uint64_t goff,
                              const void *value, uint32_t vlen);

/* Encode a header at dst (BG__BOX_HDR_SIZE bytes). */
void bg__box_encode_header(uint8_t *dst, const uint8_t id[16], uint16_t flags,
                           uint32_t key_id, uint64_t seq_floor);

/* ---- the box layer, for the modules above it --------------------------- */

#include "boxguard/box.h"
#include "handle_int.h"

/* The store's own boxes. Public writes to them are refused (BG_EINVALID);
 * the modules that own them write through the bg__box_*_own calls. */
#define BG__META_BOX    "meta"        /* schema version, lock, settings */
#define BG__AUDIT_BOX   "audit"       /* what the engine did to the store */
#define BG__PENDING_BOX "pending_ops" /* the queue */
#define BG__FAILED_BOX  "failed_ops"  /* the queue's dead letters */

/* Whether name is one of the store's own boxes. */
int bg__box_is_reserved(const char *name);

/* The table of open boxes of a store (opening a box adds it, closing
 * removes it). */
BG_MUST_CHECK bg_err bg__box_table_add(bg_store *s, bg_box *b);
void bg__box_table_remove(bg_store *s, bg_box *b);
bg_box *bg__box_table_find(bg_store *s, const char *name);

/* A frame as a scan hands it to an external index (bg__box_open_ext). */
typedef struct bg__frame_info {
    const char *key;
    uint16_t klen;
    int del;
    uint32_t type;
    uint64_t seq, off;
    uint32_t flen;
} bg__frame_info;

/* fi == NULL: forget everything (the scan starts over). */
typedef bg_err (*bg__box_ext_fn)(void *arg, const bg__frame_info *fi);

/* Boxes with an external index (the queue keeps its own, smaller one):
 * frames go to fn on open and rescan; writes do not touch the box's index
 * and are not validated again (the owner built them from validated
 * parts); values are read by offset. */
BG_MUST_CHECK bg_err bg__box_open_ext(bg_store *s, const char *name, int flags,
                                      bg__box_ext_fn fn, void *arg,
                                      bg_box **out);

/* Where a scan of a box with an external index may resume: the owner's
 * index already holds every frame of [header, end), `frames` of them, the
 * last at last_off with sequence last_seq (end is the header's end when
 * there are none), in a file whose header had this id and sequence floor
 * (a compaction or a recovery writes a new floor). */
typedef struct bg__box_resume {
    uint8_t id[16];
    uint64_t seq_floor, end, last_off, last_seq, frames;
} bg__box_resume;

/* bg__box_open_ext, resuming the scan at from->end when the file still
 * matches from: its header's id and floor, and the frame at last_off
 * verifying with sequence last_seq and ending at end. Else the owner is
 * told to forget (fn(arg, NULL)) and gets every frame. *resumed says
 * which. */
BG_MUST_CHECK bg_err bg__box_open_ext_from(bg_store *s, const char *name,
                                           int flags, bg__box_ext_fn fn,
                                           void *arg,
                                           const bg__box_resume *from,
                                           int *resumed, bg_box **out);
/* The point a later open may resume from (see bg__box_resume); 0, or
 * BG_ESTATE when the box is damaged, poisoned or has writes not yet
 * synced. */
BG_MUST_CHECK bg_err bg__box_resume_point(const bg_box *b, bg__box_resume *r);
BG_MUST_CHECK bg_err bg__box_append_ext(bg_box *b, const bg_write *w, size_t n,
                                        uint64_t *offs, uint32_t *flens);
BG_MUST_CHECK bg_err bg__box_read_at(bg_box *b, uint64_t off, uint32_t flen,
                                     char **value, size_t *vlen);
BG_MUST_CHECK bg_err bg__box_rescan(bg_box *b);
/* Scan the frames of a box with an external index to fn instead, once,
 * leaving its owner's index as it was (a recount that owes it nothing). */
BG_MUST_CHECK bg_err bg__box_scan_with(bg_box *b, bg__box_ext_fn fn, void *arg);
/* Compact a box with an external index: write the frames at offs, in the
 * order given (their sequence numbers are renumbered to keep rising), then
 * trailer (a put written as is, may be NULL), to a new file, verified, and
 * swap it in like bg_box_compact.
 * *swapped tells whether the new file is the box now, and then new_offs
 * holds their new offsets: also when the final directory sync failed,
 * which is returned (the next durable write syncs the directory first). */
BG_MUST_CHECK bg_err bg__box_rewrite_ext(bg_box *b, const uint64_t *offs,
                                         const uint32_t *flens, size_t n,
                                         uint64_t *new_offs,
                                         const bg_write *trailer, int *swapped);
/* The end of the box file: where the next frame goes. */
uint64_t bg__box_end(const bg_box *b);
/* Keep a synced zeroed region ahead of the log's end when durability is
 * not off, grown by a quarter of the file within [min_step, max_step]
 * bytes (max_step 0: never, the default), so that a durable append
 * overwrites zeros instead of growing the file. */
void bg__box_keep_zeroed(bg_box *b, uint32_t min_step, uint32_t max_step);

/* The key of the frame at off (at most 64 bytes), unverified: for owners
 * that keep their index in keys. */
BG_MUST_CHECK bg_err bg__box_read_key_at(bg_box *b, uint64_t off, char *key,
                                         size_t cap, size_t *klen);

/* The store's box names, sorted. */
typedef struct bg__box_list {
    char (*v)[BG_BOX_NAME_MAX + 1];
    size_t n;
} bg__box_list;
BG_MUST_CHECK bg_err bg__box_list_names(bg_store *s, bg__box_list *out);
void bg__box_list_free(bg_store *s, bg__box_list *ns);

/* A box whose file is <name><suffix>.box, beside box name: migrations
 * write the new version of a box there and rename it into place. The
 * suffix holds a '.', so the store never lists it as a box. */
BG_MUST_CHECK bg_err bg__box_open_staged(bg_store *s, const char *name,
                                         const char *suffix, int flags,
                                         bg_box **out);
/* bg_box_iterate without the typeId check: a migration reads records its
 * target adapters may no longer know. */
BG_MUST_CHECK bg_err bg__box_iterate_raw(bg_box *b, bg_box_iter_fn fn,
                                         void *arg);
BG_MUST_CHECK bg_err bg__box_get_raw(bg_box *b, const void *key, size_t key_len,
                                     uint32_t *type, char **value,
                                     size_t *value_len);
/* fn(arg, typeId) for every live record of b (from the index). */
void bg__box_each_type(const bg_box *b, void (*fn)(void *, uint32_t),
                       void *arg);
/* bg_box_write_batch without validation: the caller checked every write
 * against the adapters it answers to. */
BG_MUST_CHECK bg_err bg__box_write_trusted(bg_box *b, const bg_write *w,
                                           size_t n);

/* Writes by the module that owns a box, reserved or not: bg_box_put,
 * bg_box_del and bg_box_write_batch without the reserved-box refusal.
 * bg__box_put_internal takes a key that is a C string. */
BG_MUST_CHECK bg_err bg__box_write_own(bg_box *b, const bg_write *w, size_t n);
BG_MUST_CHECK bg_err bg__box_del_own(bg_box *b, const void *key,
                                     size_t key_len);
BG_MUST_CHECK bg_err bg__box_put_internal(bg_box *b, const char *key,
                                          const char *value, size_t len);
bg_err bg__box_close(bg_box *b);
const char *bg__box_name(const bg_box *b);
BG_MUST_CHECK bg_err bg__box_check_name(const char *name);

/* For key rotation: rewrite box b sealed under key k with a new box id (a
 * compaction that reseals every live record); the key id b is sealed with
 * (0: not encrypted). */
BG_MUST_CHECK bg_err bg__box_reseal(bg_box *b, const bg__key *k);
uint32_t bg__box_key_id(const bg_box *b);

#endif
