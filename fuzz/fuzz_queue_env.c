/*
 * Target Functions: the two readers of a queue envelope in queue.c:
 * env_parse_plain (the scan of the layout env_build writes, taken on every
 * lease, ack of an unleased op, nack and reopen) and env_parse_any (the
 * general parse through cJSON, which decides every other text), through
 * bg__queue_env_agree.
 *
 * The input is the envelope's text. Property: whenever the scan takes a
 * text, the general parse takes it too and reads the same idempotency key,
 * lane, times, attempts, error, retry link and payload span. The seeds are
 * envelopes of every shape env_build writes and near misses of each
 * (escapes, whitespace, long numbers, signs, fields out of order).
 */
#include "fuzz_helpers.h"
#include "queue_int.h"

static bg_store *store(void)
{
    static bg_store *s;
    if (!s) {
        bg_sim *sim = bg_sim_new(1);
        FUZZ_ASSERT(sim);
        bg_store_opts o = tu_opts(sim, BG_DURABILITY_OFF);
        FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int r = bg__queue_env_agree(store(), (const char *)data, size);
    FUZZ_ASSERT_MSG(r != -1,
                    "the envelope scan and the general parse differ "
                    "on %zu bytes",
                    size);
    FUZZ_ASSERT(r != -2); /* the store's allocator does not fail here */
    return 0;
}
