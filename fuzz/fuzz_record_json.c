/*
 * Target Functions: bg_record_validate, bg_record_check_key, bg_box_put,
 * bg_box_get.
 *
 * The input is a JSON candidate. Properties: validation never crashes and
 * agrees with cJSON on well-formedness within the bounds; every proper
 * prefix of an accepted object or array is refused; an accepted value
 * stored in a box reads back byte-identical, after a reopen too; a refused
 * value changes nothing on disk.
 */
#include <cjson/cJSON.h>

#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const char *json = (const char *)data;
    char why[160];
    bg_err err = bg_record_validate(json, size, why, sizeof why);
    FUZZ_ASSERT(err == 0 || err == BG_EINVALID);
    FUZZ_ASSERT(err == 0 || why[0]);
    if (err == 0) {
        /* Whatever we accept, cJSON parses as one whole value. */
        const char *end = NULL;
        cJSON *doc = cJSON_ParseWithLengthOpts(json, size, &end, 0);
        FUZZ_ASSERT(doc);
        int container = cJSON_IsObject(doc) || cJSON_IsArray(doc);
        cJSON_Delete(doc);
        /* A truncated object or array is never taken for a whole one: every
         * proper prefix that ends before the closing bracket is refused. */
        size_t last = size;
        while (last > 0 && strchr(" \t\r\n", json[last - 1]))
            last--;
        for (size_t n = 0; container && size <= 4096 && n + 1 < last; n++) {
            bg_err e = bg_record_validate(json, n, why, sizeof why);
            FUZZ_ASSERT_MSG(e == BG_EINVALID, "prefix of %zu bytes accepted",
                            n);
        }
    }
    bg_sim *sim = bg_sim_new(1);
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    bg_store *s;
    bg_box *b;
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_open(s, "b", BG_BOX_CREATE, &b) == 0);
    uint64_t changes = bg_sim_get_stats(sim).changes;
    bg_err perr = bg_box_put(b, "k", 1, 0, json, size);
    FUZZ_ASSERT(perr == err);
    if (err) {
        FUZZ_ASSERT(bg_sim_get_stats(sim).changes == changes);
    }
    FUZZ_ASSERT(bg_store_close(s) == 0);
    FUZZ_ASSERT(bg_store_open("s", &o, &s) == 0);
    FUZZ_ASSERT(bg_box_open(s, "b", 0, &b) == 0);
    uint32_t t;
    char *v;
    size_t n;
    bg_err gerr = bg_box_get(b, "k", 1, &t, &v, &n);
    if (err) {
        FUZZ_ASSERT(gerr == BG_ENOTFOUND);
    } else {
        FUZZ_ASSERT(gerr == 0 && t == 0 && n == size && !memcmp(v, json, n));
        bg_store_free(s, v);
    }
    FUZZ_ASSERT(bg_store_close(s) == 0);
    bg_sim_free(sim);
    return 0;
}
