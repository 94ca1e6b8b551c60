/*
 * The box file format, for box.c and for the tests and fuzzers that craft
 * or damage box files. All integers are little-endian.
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

#endif
