/*
 * Target Functions: the queue's index checkpoint (pending_ops.index):
 * ck_load and its checks in queue.c, the resume of the box scan
 * (bg__box_open_ext_from in box.c), and the scan of the log after it.
 *
 * A store holds six pending ops in both lanes, one acked out of turn and
 * one nacked; its close wrote the checkpoint. The input is the checkpoint
 * the next open finds: raw bytes (first byte odd), or the real one with
 * bytes changed as the input says, then either left with its checksum
 * (which no longer verifies, as after damage) or given a new valid one
 * (first byte & 2: a checkpoint whose checksum holds but whose content may
 * not). First byte & 8: the open reads it entry by entry, as where the
 * in-memory layout is not the file's. Properties: the queue opens; a
 * checkpoint whose checksum does not hold is never used, and draining the
 * queue then gives exactly what a full scan of the log gives; one whose
 * checksum holds either is refused (and the drain is exact again) or is
 * used without any memory error, every op handed out being one that was
 * enqueued.
 */
#include <xxhash.h>

#include "fuzz_helpers.h"
#include "lease_log_int.h"
#include "queue_int.h"

#define NOPS    6
#define CK_PATH "s/" BG__QUEUE_INDEX

static bg_err qopen(bg_sim *sim, bg_store **s, bg_queue **q, int portable)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    FUZZ_ASSERT(bg_store_open("s", &o, s) == 0);
    bg__queue_portable_checkpoint(*s, portable);
    bg_err err = bg_queue_open(*s, NULL, q);
    if (err)
        (void)bg_store_close(*s);
    return err;
}

static bg_sim *build(void)
{
    bg_sim *sim = bg_sim_new(7);
    FUZZ_ASSERT(sim);
    bg_store *s;
    bg_queue *q;
    FUZZ_ASSERT(qopen(sim, &s, &q, 0) == 0);
    uint64_t ids[NOPS];
    for (int i = 0; i < NOPS; i++) {
        char idem[8], body[32];
        snprintf(idem, sizeof idem, "k%d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        FUZZ_ASSERT(bg_queue_enqueue(q,
                                     i & 1 ? BG_LANE_EMERGENCY : BG_LANE_NORMAL,
                                     idem, body, strlen(body), &ids[i]) == 0);
    }
    int failed;
    FUZZ_ASSERT(bg_queue_ack(q, ids[2]) == 0);
    FUZZ_ASSERT(bg_queue_nack(q, ids[4], "e", &failed) == 0);
    FUZZ_ASSERT(bg_queue_close(q) == 0);
    FUZZ_ASSERT(bg_store_close(s) == 0);
    return sim;
}

/* Drain the queue: "idem attempts payload;" per op, in lease order. 0, or
 * -1 when the queue does not open. from: whether the checkpoint was used. */
static int drain(bg_sim *sim, char *out, size_t cap, int *from, int portable)
{
    bg_store *s;
    bg_queue *q;
    out[0] = '\0';
    if (qopen(sim, &s, &q, portable))
        return -1;
    *from = bg__queue_from_checkpoint(q);
    bg_queue_op op;
    while (bg_queue_lease(q, &op) == 0) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s %u %.*s;", op.idem,
                 (unsigned)op.attempts, (int)op.payload_len, op.payload);
        bg_err err = bg_queue_ack(q, op.id);
        bg_queue_op_clear(&op);
        if (err)
            break;
    }
    (void)bg_queue_close(q);
    (void)bg_store_close(s);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size || size > 4096)
        return 0;
    static char truth[1024];
    static int have_truth;
    int from = 0;
    if (!have_truth) { /* a full scan: an empty checkpoint never verifies */
        bg_sim *t = build();
        FUZZ_ASSERT(bg_sim_write_file(t, CK_PATH, (const uint8_t *)"", 0) == 0);
        FUZZ_ASSERT(drain(t, truth, sizeof truth, &from, 0) == 0 && !from);
        bg_sim_free(t);
        have_truth = 1;
    }
    bg_sim *sim = build();
    uint8_t *ck;
    size_t len;
    FUZZ_ASSERT(bg_sim_read_file(sim, CK_PATH, &ck, &len) == 0 && len > 8);
    int summed;
    uint8_t *in;
    size_t n;
    if (data[0] & 1) {
        in = malloc(size);
        FUZZ_ASSERT(in);
        memcpy(in, data + 1, size - 1);
        n = size - 1;

    } else {
        in = ck;
        ck = NULL;
        n = len;
        for (size_t i = 1; i + 2 <= size; i += 3) { /* (offset, xor) */
            size_t at = ((size_t)data[i] | (size_t)data[i + 1] << 8) % n;
            uint8_t x = i + 2 < size ? data[i + 2] : 1;
            in[at] ^= x ? x : 1;
        }
        if (data[0] & 4 && n > 9)
            n -= 1 + data[0] % 8; /* cut short */
        if (data[0] & 2 && n > 8) {
            uint64_t h = XXH3_64bits(in, n - 8);
            for (int i = 0; i < 8; i++)
                in[n - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
        }
    }
    /* Whether its checksum holds, whatever the edits came to. */
    uint64_t sum = 0;
    for (int i = 0; i < 8 && n > 8; i++)
        sum |= (uint64_t)in[n - 8 + (size_t)i] << (8 * i);
    summed = n > 8 && XXH3_64bits(in, n - 8) == sum;
    FUZZ_ASSERT(bg_sim_write_file(sim, CK_PATH, in, n) == 0);
    free(in);
    free(ck);
    static char got[1024];
    FUZZ_ASSERT_MSG(drain(sim, got, sizeof got, &from, data[0] & 8) == 0,
                    "the queue does not open");
    FUZZ_ASSERT_MSG(summed || !from, "a checkpoint that does not verify used");
    if (!from)
        FUZZ_ASSERT_MSG(!strcmp(got, truth), "drained '%s', a full scan '%s'",
                        got, truth);
    /* each op handed out is one that was enqueued */
    for (const char *p = got; *p; p = strchr(p, ';') + 1) {
        int k = -1;
        FUZZ_ASSERT(sscanf(p, "k%d", &k) == 1 && k >= 0 && k < NOPS);
        char body[32];
        snprintf(body, sizeof body, "{\"n\":%d};", k);
        const char *end = strchr(p, ';');
        FUZZ_ASSERT(end &&
                    !strncmp(end - strlen(body) + 1, body, strlen(body)));
    }
    bg_sim_free(sim);
    return 0;
}
