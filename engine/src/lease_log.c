/*
 * The lease log (see lease_log_int.h): fixed records, appended without a
 * sync, rewritten in place when most of them are spent.
 */
#include <string.h>
#include <xxhash.h>

#include "bytes_int.h"
#include "lease_log_int.h"

static const uint8_t lease_magic[4] = {'B', 'G', 'L', '1'};

void bg__lease_encode(const bg__lease *l, uint8_t out[BG__LEASE_REC])
{
    memcpy(out, lease_magic, 4);
    put32(out + 4, l->attempts);
    put64(out + 8, l->id);
    put64(out + 16, (uint64_t)l->at);
    put64(out + 24, (uint64_t)l->until);
    put64(out + 32, XXH3_64bits(out, 32));
}

bg_err bg__lease_decode(const uint8_t in[BG__LEASE_REC], bg__lease *l)
{
    if (memcmp(in, lease_magic, 4) || get64(in + 32) != XXH3_64bits(in, 32))
        return BG_ECORRUPT;
    l->attempts = get32(in + 4);
    l->id = get64(in + 8);
    l->at = (int64_t)get64(in + 16);
    l->until = (int64_t)get64(in + 24);
    return l->id ? 0 : BG_ECORRUPT; /* ids start at 1 */
}

static void lease_path(bg_store *s, char *path)
{
    bg__handle_path(s, path, BG_PATH_MAX, BG__LEASE_FILE);
}

bg_err bg__lease_log_read(bg_store *s, bg__lease_fn fn, void *arg,
                          uint64_t *records, int *tail)
{
    *records = 0;
    *tail = 0;
    char path[BG_PATH_MAX];
    lease_path(s, path);
    bg_file *f;
    bg_err err = bg__vfs_open(s, path, BG_OPEN_READ, &f);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_FAIL_IF(err, s, err, "cannot open the lease log '%s'", path);
    enum { PER_READ = 256 };
    uint8_t *buf = bg__handle_malloc(s, PER_READ * BG__LEASE_REC);
    if (!buf) {
        bg__vfs_close(s, f);
        return bg__handle_fail(s, BG_ENOMEM, "out of memory");
    }
    int stop = 0;
    for (uint64_t off = 0; !stop;) {
        size_t got;
        err = bg__vfs_read(s, f, off, buf, PER_READ * BG__LEASE_REC, &got);
        if (err || !got)
            break;
        size_t whole = got / BG__LEASE_REC;
        for (size_t i = 0; i < whole && !stop; i++) {
            bg__lease l;
            if (!bg__lease_decode(buf + i * BG__LEASE_REC, &l))
                stop = fn(arg, &l);
        }
        *records += whole;
        off += whole * BG__LEASE_REC;
        if (got % BG__LEASE_REC) {
            *tail = 1; /* a partial record is the end */
            break;
        }
    }
    bg__handle_free(s, buf);
    bg__vfs_close(s, f);
    BG_FAIL_IF(err, s, err, "cannot read the lease log '%s'", path);
    return 0;
}

static bg_err log_open(bg_store *s, bg__lease_log *lg)
{
    if (lg->f)
        return 0;
    char path[BG_PATH_MAX];
    lease_path(s, path);
    /* Not synced, nor is its directory entry: a log lost to a power cut
     * is leases lost, which at-least-once delivery allows. */
    bg_err err = bg__vfs_open(s, path, BG_OPEN_CREATE, &lg->f);
    BG_FAIL_IF(err, s, err, "cannot open the lease log '%s'", path);
    return 0;
}

bg_err bg__lease_log_append(bg_store *s, bg__lease_log *lg, const bg__lease *l)
{
    BG_TRY(log_open(s, lg));
    uint8_t rec[BG__LEASE_REC];
    bg__lease_encode(l, rec);
    bg_err err = bg__vfs_write(s, lg->f, lg->end, rec, sizeof rec);
    BG_FAIL_IF(err, s, err, "cannot write the lease of op %llu",
               (unsigned long long)l->id);
    lg->end += sizeof rec;
    lg->appended++;
    return 0;
}

bg_err bg__lease_log_rewrite(bg_store *s, bg__lease_log *lg, const bg__lease *v,
                             size_t n)
{
    if (!lg->f && !n) {
        int yes;
        BG_TRY(bg__handle_has(s, BG__LEASE_FILE, &yes));
        if (!yes) {
            lg->end = lg->appended = 0;
            return 0;
        }
    }
    BG_TRY(log_open(s, lg));
    uint8_t *buf = NULL;
    if (n) {
        buf = bg__handle_malloc(s, n * BG__LEASE_REC);
        if (!buf)
            return bg__handle_fail(s, BG_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            bg__lease_encode(&v[i], buf + i * BG__LEASE_REC);
    }
    bg_err err = bg__vfs_truncate(s, lg->f, 0);
    if (!err && n)
        err = bg__vfs_write(s, lg->f, 0, buf, n * BG__LEASE_REC);
    bg__handle_free(s, buf);
    /* After a failure the content is unknown: append after whatever is
     * there (a partial record reads as the end; the next rewrite fixes). */
    lg->end = err ? lg->end : n * BG__LEASE_REC;
    lg->appended = 0;
    BG_FAIL_IF(err, s, err, "cannot rewrite the lease log");
    return 0;
}

void bg__lease_log_close(bg_store *s, bg__lease_log *lg)
{
    if (lg->f)
        bg__vfs_close(s, lg->f);
    lg->f = NULL;
}
