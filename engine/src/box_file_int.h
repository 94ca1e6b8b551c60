/*
 * The box layer's own internals, shared by the files that make it up and by
 * no other module (the modules above boxes use box_int.h):
 * in layers of their own, each calling only those above it in this list:
 *   box_format.c  the byte layout of headers and frames, sealing, frames
 *                 written through a buffer, a file written beside and
 *                 renamed into place;
 *   box_index.c   the index of a box's live keys, and reading the frame or
 *                 value an entry points at;
 *   box_scan.c    reading a file through a window, and the scan that tells
 *                 a clean file from a torn tail from corruption;
 *   box_write.c   the writer: appends, group commit, rollback, compaction;
 *   box.c         box handles, reads, verify and recover, the table of
 *                 open boxes and the store's boxes.
 */
#ifndef BOXGUARD_BOX_FILE_INT_H
#define BOXGUARD_BOX_FILE_INT_H

#include <stdint.h>

#include "box_int.h"
#include "bytes_int.h"
#include "handle_int.h"
#include "keys_int.h"

#define BG__BOX_CHUNK     (1u << 20)  /* write and read buffers */
#define BG__BOX_WBUF_KEEP (64u << 10) /* an append buffer kept by its box */
#define BG__BOX_GATHER    (1u << 20)  /* GROUP mode: written early past this */

typedef struct frame_hdr {
    uint32_t flen;
    uint8_t kind, flags;
    uint16_t klen;
    uint32_t type;
    uint64_t seq, off, goff;
    uint32_t vlen;
} frame_hdr;
typedef struct box_hdr {
    uint8_t id[16];
    uint16_t flags;
    uint32_t key_id;
    uint64_t seq_floor;
} box_hdr;
/* Write a new file at tmp holding header + body produced by fill, sync it,
 * rename it to path and sync the directory. The file is either entirely
 * there under path or not at all. On success *fout is the open handle. */
typedef bg_err (*fill_fn)(void *arg, bg_file *f, uint64_t *end);
typedef struct ent {
    uint64_t hash;
    char *key; /* NULL: empty slot */
    uint64_t off;
    uint64_t seq;
    uint32_t flen;
    uint32_t type;
    uint16_t klen;
} ent;
struct bg_box {
    bg_store *s;
    char name[BG_BOX_NAME_MAX + 8]; /* staged boxes add a suffix */
    char path[BG_PATH_MAX];
    bg_file *f;
    uint8_t id[16];
    uint16_t hflags;
    uint32_t key_id;             /* sealed boxes: the key named in the header */
    const bg__key *key;          /* ... and the store's copy of it */
    uint64_t end;                /* where the next frame goes */
    uint64_t last_off, last_seq; /* the last frame (last_seq 0: none) */
    uint64_t seq_floor;          /* the header's */
    uint8_t *wbuf; /* the append buffer, kept between writes (at most
                      BG__BOX_WBUF_KEEP bytes) */
    size_t wcap;
    uint64_t alloc_end; /* the file's size: [end, alloc_end) is zeroed */
    uint32_t zero_min, zero_max; /* keep a zeroed region ahead of end, grown
                                    by end/4 within these (0: never) */
    uint64_t next_seq;
    uint64_t frames;
    uint64_t live_bytes;
    int group_open; /* frames written or gathered since the last sync */
    uint64_t group_off;
    unsigned group_count;
    /* GROUP mode: the frames gathered since the last write, which belong
     * at [end - gused, end) of the file. */
    uint8_t *gbuf;
    size_t gused, gcap;
    /* A group's sync on the store's thread failed with this, found while
     * another box wrote; returned by this box's next write, sync or close
     * (then 0, the box stopped). */
    bg_err sync_lost;
    int read_only, damaged, poisoned;
    int reserved; /* the store's own box: no public writes */
    /* External index (the queue): frames go to ext_fn, not to slots. */
    bg__box_ext_fn ext_fn;
    void *ext_arg;
    ent *slots;
    size_t cap, count;
    bg_box_report rep;
};
typedef struct reader {
    bg_store *s;
    bg_file *f;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t boff;
    size_t blen;
    bg_err err;
    /* Sealed boxes: every frame is authenticated as it is read. */
    int sealed;
    const bg__key *key;
    uint8_t id[16];
    uint8_t *plain; /* scratch for decryption */
    size_t plain_cap;
    int auth_failed;     /* the last rd_frame failed authentication only */
    uint64_t auth_count; /* frames that failed authentication */
    int json_only;       /* header lost: accept only plain JSON values */
} reader;
/* Called for each frame that a scan applies; p holds the whole frame. */
typedef bg_err (*apply_fn)(void *arg, const uint8_t *p, const frame_hdr *h);
typedef struct pend {
    uint64_t pos;
    uint64_t seq;
} pend;
typedef struct scan {
    reader *r;
    int salvage; /* apply every verifying frame, batches or not */
    apply_fn apply;
    void *arg;
    uint64_t max_seq;
    pend *pb; /* frames of a batch not yet committed */
    size_t npb, cappb;
    uint64_t start, start_seq; /* resume at start (0: at the header's end),
                                  after a frame of sequence start_seq */
    const char *what;          /* progress label */
    const char *name;          /* box name, for messages */
} scan;
/* Frames are encoded into a buffer and written in BG__BOX_CHUNK-sized pieces;
 * pos is where the next frame lands in the file. */
typedef struct fwriter {
    bg_store *s;
    bg_file *f;
    uint8_t *buf;
    size_t cap, used;
    uint64_t pos;
} fwriter;

/* box_format.c: the format, sealing, frames through a buffer, files written
 * beside */
void bg__box_frame_finish(uint8_t *p, uint32_t flen);
int bg__box_frame_head(const uint8_t *p, uint64_t pos, int sealed,
                       frame_hdr *h);
void bg__box_frame_move(uint8_t *p, uint32_t flen, uint64_t off);
uint32_t bg__box_frame_start(uint8_t *p, int kind, int flags, const void *key,
                             uint16_t klen, uint32_t type, uint64_t seq,
                             uint64_t off, uint64_t goff, uint32_t vlen);
int bg__box_frame_sum_ok(const uint8_t *p, uint32_t flen);
int bg__box_header_parse(const uint8_t *p, box_hdr *h);
void bg__box_seal(bg_store *s, const bg__key *k, const uint8_t id[16],
                  uint64_t seq, int kind, uint32_t type, const void *key,
                  uint16_t klen, const void *plain, size_t plen, uint8_t *out);
int bg__box_unseal(const bg__key *k, const uint8_t id[16], const uint8_t *p,
                   const frame_hdr *h, uint8_t *out);
void bg__box_path(bg_store *s, const char *name, const char *suffix, char *out,
                  size_t cap);
bg_err bg__box_name_ok(bg_store *s, const char *name);
bg_err bg__box_write_beside(bg_store *s, const char *tmp, const char *path,
                            const uint8_t hdr[BG__BOX_HDR_SIZE], fill_fn fill,
                            void *arg, bg_file **fout, uint64_t *end);
void bg__box_fw_commit(fwriter *w, size_t len);
bg_err bg__box_fw_flush(fwriter *w);
void bg__box_fw_free(fwriter *w);
void bg__box_fw_init(fwriter *w, bg_store *s, bg_file *f, uint64_t pos);
bg_err bg__box_fw_reserve(fwriter *w, size_t len, size_t hint, uint8_t **out);

/* box_index.c: the index, and reading what it points at */
bg_err bg__box_frame_value(bg_box *b, uint8_t *p, uint64_t off, char **out,
                           size_t *len);
void bg__box_idx_del(bg_box *b, const void *key, size_t klen);
ent *bg__box_idx_find(bg_box *b, const void *key, size_t klen, uint64_t h);
bg_err bg__box_idx_set(bg_box *b, const void *key, uint16_t klen,
                       const frame_hdr *h);
bg_err bg__box_idx_sorted(bg_box *b, ent ***out);
uint64_t bg__box_key_hash(const void *key, size_t klen);
bg_err bg__box_read_frame(bg_box *b, const ent *e, uint8_t **out);
/* Read up to len bytes of b's log at off, the frames gathered in memory
 * included: *got < len only past the end. */
bg_err bg__box_pread_gathered(bg_box *b, uint64_t off, void *buf, size_t len,
                              size_t *got);
static inline bg_err bg__box_pread(bg_box *b, uint64_t off, void *buf,
                                   size_t len, size_t *got)
{
    if (off + len <= b->end - b->gused)
        return bg__vfs_read(b->s, b->f, off, buf, len, got);
    return bg__box_pread_gathered(b, off, buf, len, got);
}
bg_err bg__box_read_value(bg_box *b, const ent *e, char **out, size_t *len);
void bg__box_idx_clear(bg_box *b);

/* box_scan.c: reading through a window, the scan */
void bg__box_rd_free(reader *r);
/* 1 when a frame verifying with sequence seq is at off and ends at end. */
int bg__box_frame_at(reader *r, uint64_t off, uint64_t seq, uint64_t end);
bg_err bg__box_scan_file(scan *sc, bg_box_report *rep, box_hdr *hdr);
const uint8_t *bg__box_rd_get(reader *r, uint64_t off, size_t len);

/* box_write.c: the writer, compaction */
bg_err bg__box_check_writable(bg_box *b);
/* Before a box is closed: wait for its sync in flight, then write and
 * sync what has gathered or was written since the last sync (unless the
 * box stopped). */
bg_err bg__box_flush_close(bg_box *b);

#endif
