/*
 * Data key files: load, create, destroy. Key material is read straight into
 * sodium_malloc'd memory (guard pages, zeroed when freed) and never copied
 * elsewhere. A key file is written beside its final name, synced, renamed
 * and its directory synced before any box is sealed with it; it is
 * destroyed (overwritten with zeros, synced, unlinked, directory synced)
 * only once no box needs it.
 */
#define _POSIX_C_SOURCE 200809L
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxguard/rekey.h"
#include "json_int.h"
#include "keys_int.h"

uint32_t bg__key_id(const unsigned char *k)
{
    unsigned char h[16];
    crypto_generichash(h, sizeof h, k, BG__KEY_BYTES, NULL, 0);
    uint32_t id = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                  (uint32_t)h[3] << 24;
    return id ? id : 1;
}

static void keys_dir(bg_store *s, char *out, size_t cap)
{
    bg__handle_path(s, out, cap, BG__KEYS_DIR);
}

static void key_path(bg_store *s, uint32_t gen, const char *suffix, char *out,
                     size_t cap)
{
    char file[64];
    snprintf(file, sizeof file, "%s/%u.key%s", BG__KEYS_DIR, (unsigned)gen,
             suffix);
    bg__handle_path(s, out, cap, file);
}

/* Insert keeping generation order; takes ownership of k. */
static bg_err key_insert(bg_store *s, uint32_t gen, unsigned char *k)
{
    bg__key *p = bg__handle_realloc(s, s->keys, (s->nkeys + 1) * sizeof *p);
    if (!p) {
        sodium_free(k);
        return BG_ENOMEM;
    }
    s->keys = p;
    size_t at = s->nkeys;
    while (at > 0 && s->keys[at - 1].gen > gen)
        at--;
    memmove(&s->keys[at + 1], &s->keys[at], (s->nkeys - at) * sizeof *p);
    s->keys[at].gen = gen;
    s->keys[at].k = k;
    s->keys[at].id = bg__key_id(k);
    s->nkeys++;
    return 0;
}

typedef struct gens {
    uint32_t v[64];
    size_t n;
    int tmp; /* a leftover .tmp was seen */
} gens;

static int collect_gen(void *arg, const char *name)
{
    gens *g = arg;
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (end == name || v == 0 || v > UINT32_MAX)
        return 0;
    if (!strcmp(end, ".key.tmp"))
        g->tmp = 1;
    else if (!strcmp(end, ".key") && g->n < 64)
        g->v[g->n++] = (uint32_t)v;
    return 0;
}

bg_err bg__keys_load(bg_store *s)
{
    if (s->keys_loaded)
        return 0;
    BG_FAIL_IF(sodium_init() < 0, s, BG_EIO, "libsodium failed to initialise");
    char dir[BG_PATH_MAX];
    keys_dir(s, dir, sizeof dir);
    gens g = {.n = 0};
    bg_err err = bg__vfs_list(s, dir, collect_gen, &g);
    if (err == BG_ENOTFOUND) {
        s->keys_loaded = 1;
        return 0;
    }
    BG_FAIL_IF(err, s, err, "cannot list '%s'", dir);
    for (size_t i = 0; i < g.n; i++) {
        char path[BG_PATH_MAX];
        key_path(s, g.v[i], "", path, sizeof path);
        bg_file *f;
        err = bg__vfs_open(s, path, BG_OPEN_READ, &f);
        BG_FAIL_IF(err, s, err, "cannot open key file '%s'", path);
        unsigned char *k = sodium_malloc(BG__KEY_BYTES + 1);
        size_t got = 0;
        err = k ? bg__vfs_read(s, f, 0, k, BG__KEY_BYTES + 1, &got) : BG_ENOMEM;
        bg__vfs_close(s, f);
        if (!err && got != BG__KEY_BYTES) {
            /* Not a key: a file someone else put here. It is kept, and
             * named, but it seals and opens nothing. */
            sodium_free(k);
            continue;
        }
        if (err) {
            if (k)
                sodium_free(k);
            return bg__handle_fail(s, err, "cannot read key file '%s'", path);
        }
        BG_TRY(key_insert(s, g.v[i], k));
    }
    s->keys_loaded = 1;
    return 0;
}

const bg__key *bg__keys_find(bg_store *s, uint32_t id)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (s->keys[i].id == id)
            return &s->keys[i];
    return NULL;
}

const bg__key *bg__keys_current(bg_store *s)
{
    return s->nkeys ? &s->keys[s->nkeys - 1] : NULL;
}

/* Write key material (random when from is NULL) as the next generation. */
static bg_err key_new(bg_store *s, const unsigned char *from,
                      const bg__key **out)
{
    BG_TRY(bg__keys_load(s));
    BG_FAIL_IF(s->read_only, s, BG_ESTATE, "store opened read-only");
    char dir[BG_PATH_MAX], tmp[BG_PATH_MAX], path[BG_PATH_MAX];
    uint32_t gen = s->nkeys ? s->keys[s->nkeys - 1].gen + 1 : 1;
    keys_dir(s, dir, sizeof dir);
    key_path(s, gen, ".tmp", tmp, sizeof tmp);
    key_path(s, gen, "", path, sizeof path);
    bg_err err = bg__vfs_mkdir(s, dir);
    if (!err)
        err = bg__vfs_sync_dir(s, s->dir);
    else if (err == BG_EEXISTS)
        err = 0;
    BG_FAIL_IF(err, s, err, "cannot create '%s'", dir);
    unsigned char *k = sodium_malloc(BG__KEY_BYTES);
    if (!k)
        return BG_ENOMEM;
    if (from)
        memcpy(k, from, BG__KEY_BYTES);
    else
        bg__vfs_random(s, k, BG__KEY_BYTES);
    err = bg__handle_write_file(s, tmp, path, dir, k, BG__KEY_BYTES,
                                BG_OPEN_PRIVATE);
    if (err) {
        sodium_free(k);
        return bg__handle_fail(s, err, "cannot write key file '%s'", path);
    }
    BG_TRY(key_insert(s, gen, k));
    *out = bg__keys_current(s);
    return 0;
}

bg_err bg__keys_create(bg_store *s, const bg__key **out)
{
    return key_new(s, NULL, out);
}

bg_err bg__keys_adopt(bg_store *s, const bg__key *from, const bg__key **out)
{
    return key_new(s, from->k, out);
}

bg_err bg__keys_destroy(bg_store *s, uint32_t id)
{
    size_t i = 0;
    while (i < s->nkeys && s->keys[i].id != id)
        i++;
    if (i == s->nkeys)
        return BG_ENOTFOUND;
    char dir[BG_PATH_MAX], path[BG_PATH_MAX];
    keys_dir(s, dir, sizeof dir);
    key_path(s, s->keys[i].gen, "", path, sizeof path);
    bg_err err = bg__handle_shred(s, path, NULL);
    if (!err)
        err = bg__vfs_sync_dir(s, dir);
    BG_FAIL_IF(err, s, err, "cannot destroy key file '%s'", path);
    sodium_free(s->keys[i].k);
    memmove(&s->keys[i], &s->keys[i + 1], (s->nkeys - i - 1) * sizeof *s->keys);
    s->nkeys--;
    return 0;
}

void bg__keys_free(bg_store *s)
{
    for (size_t i = 0; i < s->nkeys; i++)
        sodium_free(s->keys[i].k);
    bg__handle_free(s, s->keys);
    s->keys = NULL;
    s->nkeys = 0;
}
