/*
 * Target Functions: bg__lease_decode, bg__lease_log_read (through
 * bg_queue_open), the loading of leases into the queue's index, and the
 * rewrite of the log on open.
 *
 * A store holds four pending ops (one nacked once). The input is the lease
 * log the next open finds: either raw bytes (first byte odd), or records
 * described by the input and encoded with valid checksums, some then
 * damaged by a flipped byte, the file maybe cut mid-record. The harness
 * knows which records are sound and computes, as the model, which ops a
 * lease still holds: a sound record naming a pending op with its attempts
 * and enqueue time whose end is later than now. Properties: the queue
 * opens; it counts exactly those leases; leasing everything hands out
 * exactly the other pending ops, each once; the log is rewritten to whole
 * records, each sound and naming a held op or one just leased.
 */
#include "fuzz_helpers.h"
#include "lease_log_int.h"

#define BASE_MS 1795348800000LL
#define NOPS    4

static void qopen(bg_sim *sim, bg_store **s, bg_queue **q)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    FUZZ_ASSERT(bg_store_open("s", &o, s) == 0);
    bg_err err = bg_queue_open(*s, NULL, q);
    FUZZ_ASSERT_MSG(err == 0, "queue open: %s (%s)", bg_err_name(err),
                    bg_store_detail(*s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    tu_now = BASE_MS;
    bg_sim *sim = bg_sim_new(size);
    FUZZ_ASSERT(sim);
    bg_store *s;
    bg_queue *q;
    qopen(sim, &s, &q);
    uint64_t ids[NOPS];
    for (int i = 0; i < NOPS; i++) {
        char idem[8], body[32];
        snprintf(idem, sizeof idem, "k%d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        FUZZ_ASSERT(bg_queue_enqueue(q, BG_LANE_NORMAL, idem, body,
                                     strlen(body), &ids[i]) == 0);
    }
    int failed;
    bg_queue_op op;
    FUZZ_ASSERT(bg_queue_nack(q, ids[2], "e", &failed) == 0 && !failed);
    bg_queue_close(q);
    (void)bg_store_close(s);
    uint32_t attempts[NOPS] = {0, 0, 1, 0};

    /* The log the next open finds, and the model of what it holds. */
    int held[NOPS] = {0};
    size_t cap = size / 9 * BG__LEASE_REC + size + 1, len = 0;
    uint8_t *log = malloc(cap);
    FUZZ_ASSERT(log);
    if (data[0] & 1) {
        memcpy(log, data + 1, size - 1);
        len = size - 1;
        for (size_t i = 0; i + BG__LEASE_REC <= len; i += BG__LEASE_REC) {
            bg__lease l;
            if (bg__lease_decode(log + i, &l) == 0)
                for (int k = 0; k < NOPS; k++)
                    held[k] |= l.id == ids[k] && l.attempts == attempts[k] &&
                               l.at == BASE_MS && l.until > BASE_MS;
        }
    } else {
        size_t n = 0;
        bg__lease *recs = malloc((size / 9 + 1) * sizeof *recs);
        int *sound = malloc((size / 9 + 1) * sizeof *sound);
        FUZZ_ASSERT(recs && sound);
        for (size_t i = 1; i + 9 <= size; i += 9, n++) {
            const uint8_t *d = data + i;
            bg__lease l = {1 + d[1] % (NOPS + 2), BASE_MS + (d[2] & 1),
                           BASE_MS + (int8_t)d[3] * 1000 + (int8_t)d[4],
                           d[5] % 3u};
            recs[n] = l;
            bg__lease_encode(&l, log + len);
            sound[n] = !(d[0] & 1);
            if (!sound[n])
                log[len + d[6] % BG__LEASE_REC] ^= (uint8_t)(1 | d[7]);
            len += BG__LEASE_REC;
        }
        if (data[0] & 2 && len)
            len -= 1 + data[0] % (BG__LEASE_REC - 1); /* cut mid-record */
        for (size_t r = 0; r < len / BG__LEASE_REC; r++)
            for (int k = 0; k < NOPS && sound[r]; k++)
                held[k] |= recs[r].id == ids[k] &&
                           recs[r].attempts == attempts[k] &&
                           recs[r].at == BASE_MS && recs[r].until > BASE_MS;
        free(recs);
        free(sound);
    }
    FUZZ_ASSERT(bg_sim_write_file(sim, "s/" BG__LEASE_FILE, log, len) == 0);
    free(log);

    qopen(sim, &s, &q);
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    uint64_t want = 0;
    for (int k = 0; k < NOPS; k++)
        want += (uint64_t)held[k];
    FUZZ_ASSERT_MSG(st.leased == want, "%llu leases counted, %llu held",
                    (unsigned long long)st.leased, (unsigned long long)want);
    int got[NOPS] = {0};
    while (bg_queue_lease(q, &op) == 0) {
        int k = atoi(op.idem + 1);
        FUZZ_ASSERT(k >= 0 && k < NOPS && op.id == ids[k]);
        FUZZ_ASSERT_MSG(!held[k], "op %d is held, yet handed out", k);
        FUZZ_ASSERT_MSG(!got[k], "op %d handed out twice", k);
        got[k] = 1;
        bg_queue_op_clear(&op);
    }
    for (int k = 0; k < NOPS; k++)
        FUZZ_ASSERT_MSG(held[k] || got[k], "op %d hidden", k);
    bg_queue_close(q);
    (void)bg_store_close(s);

    uint8_t *after;
    size_t alen;
    FUZZ_ASSERT(bg_sim_read_file(sim, "s/" BG__LEASE_FILE, &after, &alen) == 0);
    FUZZ_ASSERT_MSG(alen % BG__LEASE_REC == 0, "log of %zu bytes", alen);
    for (size_t i = 0; i < alen; i += BG__LEASE_REC) {
        bg__lease l;
        FUZZ_ASSERT_MSG(bg__lease_decode(after + i, &l) == 0,
                        "record at %zu does not verify after the rewrite", i);
        int k = (int)l.id - 1;
        FUZZ_ASSERT(k >= 0 && k < NOPS && l.id == ids[k]);
        FUZZ_ASSERT_MSG(held[k] || got[k], "record of op %d", k);
    }
    free(after);
    bg_sim_free(sim);
    return 0;
}
