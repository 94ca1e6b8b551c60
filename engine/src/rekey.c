/*
 * Key rotation: a new data key, every sealed box resealed under it and
 * verified, and only then the old keys destroyed. A rotation cut short
 * (a crash, an error) leaves every box readable under a key the store
 * still has, and the next rotation picks up where it stopped; a finished
 * one is recorded in the audit log. Above the box layer, which it drives,
 * and the meta module, which keeps the audit box; the key files are
 * keys.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "box_int.h"
#include "boxguard/rekey.h"
#include "json_int.h"
#include "keys_int.h"
#include "meta_int.h"

/* The rotation in the audit log, durably. */
static bg_err audit_rotation(bg_store *s, const bg_rekey_report *rep)
{
    int64_t now = bg__handle_now_ms(s);
    cJSON *rec = cJSON_CreateObject();
    if (!rec)
        return BG_ENOMEM;
    char id[16];
    snprintf(id, sizeof id, "%08" PRIx32, rep->key_id);
    cJSON_AddStringToObject(rec, "event", "key_rotation");
    cJSON_AddNumberToObject(rec, "at", (double)now);
    cJSON_AddStringToObject(rec, "key_id", id);
    cJSON_AddNumberToObject(rec, "boxes", rep->boxes);
    cJSON_AddNumberToObject(rec, "resealed", rep->resealed);
    cJSON_AddNumberToObject(rec, "keys_removed", rep->keys_removed);
    uint8_t r[4];
    bg__vfs_random(s, r, sizeof r);
    char key[48];
    snprintf(key, sizeof key, "%016" PRIx64 "-%02x%02x%02x%02x-rekey",
             (uint64_t)now, r[0], r[1], r[2], r[3]);
    bg_err err = bg__meta_audit(s, key, rec);
    cJSON_Delete(rec);
    BG_FAIL_IF(err, s, err,
               "the key was rotated, but its audit record could not be "
               "written");
    return 0;
}

bg_err bg_rekey_run(bg_store *s, bg_rekey_report *rep)
{
    BG__JSON_SCOPE(&s->alloc);
    memset(rep, 0, sizeof *rep);
    BG_FAIL_IF(s->read_only, s, BG_ESTATE, "store opened read-only");
    BG_TRY(bg__keys_load(s));
    /* Every box is reopened below from its file. */
    while (s->nboxes)
        BG_TRY(bg__box_close(s->boxes[s->nboxes - 1]));
    bg__box_list ns;
    bg_err err = bg__box_list_names(s, &ns);
    if (err)
        goto out;

    /* A new key, unless an interrupted rotation left one no box uses. */
    const bg__key *cur = bg__keys_current(s);
    int cur_used = 0, any_sealed = 0;
    for (size_t i = 0; i < ns.n; i++) {
        bg_box *b;
        BG_TRY_OUT(bg_box_open(s, ns.v[i], 0, &b));
        uint32_t id = bg__box_key_id(b);
        any_sealed |= id != 0;
        cur_used |= cur && id == cur->id;
        BG_TRY_OUT(bg__box_close(b));
    }
    if (!cur || (cur_used && s->nkeys == 1) || (!any_sealed && s->nkeys == 1))
        BG_TRY_OUT(bg__keys_create(s, &cur));
    uint32_t cur_id = cur->id;

    for (size_t i = 0; i < ns.n; i++) {
        bg_box *b;
        BG_TRY_OUT(bg_box_open(s, ns.v[i], 0, &b));
        uint32_t id = bg__box_key_id(b);
        if (id) {
            rep->boxes++;
            if (id != cur_id) {
                BG_TRY_OUT(bg__box_reseal(b, bg__keys_find(s, cur_id)));
                rep->resealed++;
            }
        }
        BG_TRY_OUT(bg__box_close(b));
        bg__handle_progress(s, "rekey", i + 1, ns.n);
    }
    /* Every sealed box must now verify under the new key before an old
     * key goes. */
    for (size_t i = 0; i < ns.n; i++) {
        bg_box_report r;
        BG_TRY_OUT(bg_box_verify(s, ns.v[i], &r));
        if (r.status != BG_BOX_CLEAN) {
            err = bg__handle_fail(s, BG_ECORRUPT,
                                  "box '%s' does not verify after re-sealing; "
                                  "old keys kept",
                                  ns.v[i]);
            goto out;
        }
        bg_box *b;
        BG_TRY_OUT(bg_box_open(s, ns.v[i], 0, &b));
        uint32_t id = bg__box_key_id(b);
        BG_TRY_OUT(bg__box_close(b));
        if (id && id != cur_id) {
            err = bg__handle_fail(s, BG_ESTATE,
                                  "box '%s' is still sealed with an old key",
                                  ns.v[i]);
            goto out;
        }
    }
    while (s->nkeys > 1) {
        uint32_t old = s->keys[0].id == cur_id ? s->keys[1].id : s->keys[0].id;
        BG_TRY_OUT(bg__keys_destroy(s, old));
        rep->keys_removed++;
    }
    rep->key_id = cur_id;
    err = audit_rotation(s, rep);
out:
    bg__box_list_free(s, &ns);
    return err;
}
