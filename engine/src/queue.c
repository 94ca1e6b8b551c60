/*
 * The pending-ops queue (see queue.h). Each op is one record of the
 * pending_ops box, keyed "<lane><id:16 hex>.<idempotency hash:16 hex>" so
 * that the index is rebuilt from keys alone, holding an envelope
 *   {"idem":...,"lane":N,"at":MS,"attempts":N[,"err":...],"op":PAYLOAD}
 * with the payload last and byte for byte. The box runs with an external
 * index: per lane a ring of (id, offset, length) in id order, and a hash
 * set of idempotency keys; nothing else of an op is held in memory.
 *
 * Moves between pending_ops and failed_ops write the destination first and
 * delete the source second; an op found in both after a crash is settled
 * on open: the same id in both means a move to failed_ops that did not
 * finish (the pending copy goes); a pending op whose envelope says
 * "retry_of": <failed id> means a retry that did not finish (the failed
 * copy goes). A new enqueue under the key of a failed op is neither: both
 * stay.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "boxguard/queue.h"
#include "boxguard/record.h"
#include "json_int.h"
#include "lease_log_int.h"
#include "meta_int.h"
#include "queue_int.h"
#include "record_int.h"
#include "alloc_int.h"
#include "box_int.h"
#include "bytes_int.h"
#include "handle_int.h"

#define LOCK_KEY "queue_lock"

/* 16 bytes per pending op: offsets up to 1 TiB, frames up to 8 MiB (a
 * queue payload is at most BG_RECORD_MAX_BYTES). */
typedef struct qent {
    uint64_t id; /* 0: acked out of order, skipped */
    uint64_t off : 40;
    uint64_t flen : 23;
    uint64_t leased : 1;
} qent;

typedef struct ring {
    qent *v;
    size_t cap, head, n; /* entries v[(head + i) % cap], i < n */
    size_t dead;         /* entries with id 0 */
} ring;

/* 8 bytes per pending op: the upper half of the idempotency hash (also
 * its probe position) and the low half of the op's id. A match is checked
 * against the op's key and envelope on disk, so the halves only need to be
 * nearly unique. Ids are rebuilt from their low half relative to the next
 * id: an op that stays pending while 2^32 later ops come and go is past
 * that window (see queue.h). */
typedef struct islot {
    uint32_t hi; /* 0: empty; odd: an op's; SLOT_MOVED: see below */
    uint32_t id_lo;
} islot;

/* The set grows without rehashing it in one op: a table twice the size
 * takes the new entries, and each add moves SET_STEP slots of the old one
 * into it, leaving SLOT_MOVED where an op was (a delete there too) so
 * that the old table's probe runs stay whole: it never gains a used slot,
 * so its probes still end at an empty one. Lookups and deletes look in
 * both until the old one is emptied. SET_STEP is enough to empty it long
 * before the new table is full (3/4 of the old table's size in adds
 * against 1/SET_STEP of it). */
#define SLOT_MOVED 2u
#define SET_STEP   8

typedef bg__lease lease;

struct bg_queue {
    bg_store *s;
    bg_queue_opts o;
    bg_box *pending, *failed;
    ring lanes[2];
    islot *set;
    size_t setcap, setn; /* setn: the ops in both tables */
    islot *oset;         /* the table being moved into set, or NULL */
    size_t ocap, omoved; /* its size; the slots below omoved are moved */
    lease *leases;       /* held leases (some may have run out) */
    size_t nleases, capleases;
    uint64_t *lease_h; /* each lease's idempotency hash: its op's key, so an
                          ack need not read the frame again */
    size_t caplease_h;
    uint32_t *lix; /* the leases by op id (see lix_slot) */
    size_t lixcap;
    bg__lease_log log; /* the same leases, for the next process */
    uint64_t next_id;
    int64_t oldest_ms;
    uint64_t live_bytes; /* frames of pending ops: compaction's measure */
    char *ebuf;          /* envelopes are built here (ENV_KEEP bytes) */
    int from_checkpoint; /* the index was loaded from pending_ops.index */
    int open_done;       /* opened: a close writes the checkpoint */
};

void bg_queue_opts_init(bg_queue_opts *o)
{
    o->max_attempts = 5;
    o->retention_ms = 30LL * 24 * 3600 * 1000;
    o->lease_ms = 30 * 1000;
    o->lock_stale_ms = 2 * 60 * 1000;
}

/* ---- rings ----------------------------------------------------------------
 */

static qent *ring_at(ring *r, size_t i)
{
    return &r->v[(r->head + i) & (r->cap - 1)];
}

static bg_err ring_push(bg_queue *q, ring *r, qent e)
{
    if (r->n == r->cap) {
        /* Twice the room in place (a large block is remapped, not
         * copied), then the shorter side of the wrap moved: the entries
         * before the head go after the old end, or those from the head on
         * go to the new end. */
        size_t old = r->cap, cap = old ? old * 2 : 64;
        qent *v = bg__handle_realloc(q->s, r->v, cap * sizeof *v);
        if (!v)
            return BG_ENOMEM;
        if (r->head <= old / 2) {
            memcpy(v + old, v, r->head * sizeof *v);
        } else {
            memcpy(v + old + r->head, v + r->head, (old - r->head) * sizeof *v);
            r->head += old;
        }
        r->v = v;
        r->cap = cap;
    }
    *ring_at(r, r->n) = e;
    r->n++;
    return 0;
}

static void ring_trim(ring *r)
{
    while (r->n && ring_at(r, 0)->id == 0) {
        r->head = (r->head + 1) & (r->cap - 1);
        r->n--;
        r->dead--;
    }
}

/* The entry of id (ids are increasing along a ring), or NULL. */
static qent *ring_find(ring *r, uint64_t id)
{
    if (!r->n)
        return NULL;
    if (ring_at(r, 0)->id == id)
        return ring_at(r, 0); /* the usual case: the head */
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        /* dead entries keep their place: search by the neighbours */
        size_t m = mid;
        while (m < hi && ring_at(r, m)->id == 0)
            m++;
        if (m == hi) {
            hi = mid;
            continue;
        }
        uint64_t v = ring_at(r, m)->id;
        if (v == id)
            return ring_at(r, m);
        if (v < id)
            lo = m + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void ring_free(bg_queue *q, ring *r)
{
    bg__handle_free(q->s, r->v);
    memset(r, 0, sizeof *r);
}

/* ---- the idempotency set ---------------------------------------------- */

static uint64_t idem_hash(const char *idem, size_t n)
{
    uint64_t h = XXH3_64bits(idem, n);
    return h ? h : 1;
}

static uint32_t slot_hi(uint64_t h)
{
    return (uint32_t)(h >> 32) | 1;
}

/* Where a probe for hi starts in a table of mask + 1 slots. Bit 0 of hi
 * is always set (it marks a slot in use), so it takes no part: with it,
 * only odd slots would start a run, and a probe that finds nothing would
 * pass 2.6 slots on average in a table of a million ops instead of 2.3. */
static size_t slot_home(uint32_t hi, size_t mask)
{
    return (size_t)(hi >> 1) & mask;
}

/* Start loading the set slot where a probe for hash h begins: in a table
 * of a million ops it is a cache miss (about 0.25 us here), which the
 * record check done meanwhile hides. The address is formed as an integer
 * (with no table yet it points nowhere, which a prefetch allows) and
 * used unconditionally: GCC drops a prefetch behind a branch. */
static void set_prefetch(const bg_queue *q, uint64_t h)
{
#if defined(__GNUC__)
    uintptr_t at = (uintptr_t)q->set +
                   sizeof *q->set * slot_home(slot_hi(h), q->setcap - 1);
    __builtin_prefetch((const void *)at);
#else
    (void)q;
    (void)h;
#endif
}

static void set_put(islot *v, size_t cap, islot e)
{
    size_t j = slot_home(e.hi, cap - 1);
    while (v[j].hi)
        j = (j + 1) & (cap - 1);
    v[j] = e;
}

/* Move up to n slots of the old table into the new one. */
static void set_step(bg_queue *q, size_t n)
{
    if (!q->oset)
        return;
    size_t end = q->omoved + n < q->ocap ? q->omoved + n : q->ocap;
    for (size_t i = q->omoved; i < end; i++) {
        if (q->oset[i].hi & 1) {
            set_put(q->set, q->setcap, q->oset[i]);
            q->oset[i].hi = SLOT_MOVED; /* empty ones stay empty */
        }
    }
    q->omoved = end;
    if (end == q->ocap) {
        bg__handle_free(q->s, q->oset);
        q->oset = NULL;
        q->ocap = q->omoved = 0;
    }
}

static bg_err set_grow(bg_queue *q)
{
    set_step(q, SIZE_MAX); /* never two moves at once */
    size_t cap = q->setcap ? q->setcap * 2 : 64;
    islot *v = bg__alloc_zeroed(&q->s->alloc, cap * sizeof *v);
    if (!v)
        return BG_ENOMEM;
    bg__alloc_advise_table(v, cap * sizeof *v);
    q->oset = q->set;
    q->ocap = q->setcap;
    q->omoved = 0;
    if (!q->oset)
        q->ocap = 0;
    q->set = v;
    q->setcap = cap;
    return 0;
}

static bg_err set_add(bg_queue *q, uint64_t h, uint64_t id)
{
    if ((q->setn + 1) * 4 > q->setcap * 3)
        BG_TRY(set_grow(q));
    set_put(q->set, q->setcap, (islot){slot_hi(h), (uint32_t)id});
    q->setn++;
    if (q->oset)
        set_step(q, SET_STEP);
    return 0;
}

static void set_del(bg_queue *q, uint64_t id, uint64_t h)
{
    if (!q->setcap)
        return;
    uint32_t hi = slot_hi(h);
    size_t mask = q->setcap - 1, i = slot_home(hi, mask);
    while (q->set[i].hi &&
           !(q->set[i].hi == hi && q->set[i].id_lo == (uint32_t)id))
        i = (i + 1) & mask;
    if (!q->set[i].hi) {
        /* Not moved yet: marked, so that the old runs stay whole. */
        size_t om = q->ocap - 1, k = slot_home(hi, om);
        while (q->oset && q->oset[k].hi &&
               !(q->oset[k].hi == hi && q->oset[k].id_lo == (uint32_t)id))
            k = (k + 1) & om;
        if (q->oset && q->oset[k].hi) {
            q->oset[k].hi = SLOT_MOVED;
            q->setn--;
        }
        return;
    }
    q->setn--;
    for (size_t j = (i + 1) & mask; q->set[j].hi; j = (j + 1) & mask) {
        size_t home = slot_home(q->set[j].hi, mask);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            q->set[i] = q->set[j];
            i = j;
        }
    }
    q->set[i].hi = 0;
}

static void set_clear(bg_queue *q)
{
    bg__handle_free(q->s, q->set);
    bg__handle_free(q->s, q->oset);
    q->set = q->oset = NULL;
    q->setcap = q->setn = q->ocap = q->omoved = 0;
}

/* The full id of a pending op from its low half. */
static uint64_t slot_id(const bg_queue *q, uint32_t lo)
{
    uint64_t top = q->next_id - 1;
    return top - (uint32_t)((uint32_t)top - lo);
}

/* ---- envelopes ----------------------------------------------------------- */

typedef struct env {
    bg_store *s; /* whose allocator holds idem and err */
    char *idem;
    int lane;
    uint64_t retry_of;
    int64_t at, failed_at;
    uint32_t attempts;
    char *err;
    const char *op; /* into the text */
    size_t op_len;
} env;

static void env_clear(env *e)
{
    if (e->s) {
        bg__handle_free(e->s, e->idem);
        bg__handle_free(e->s, e->err);
    }
    memset(e, 0, sizeof *e);
}

/* A NUL-terminated copy of p[0, n) from the store's allocator. */
static char *qdup(bg_store *s, const char *p, size_t n)
{
    char *d = bg__handle_malloc(s, n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* A JSON number as a value of the type it fills, held in range first: a
 * cast of a double out of range is undefined behaviour, and an envelope is
 * text from disk. */
static double clamp_range(double d, double lo, double hi)
{
    return d < lo ? lo : d > hi ? hi : d;
}

static int64_t clamp_i64(double d)
{
    return (int64_t)clamp_range(d, -9.2e18, 9.2e18);
}

/* Parse any envelope (the metadata through cJSON); the payload stays a
 * span of text. Returns 0, BG_ECORRUPT (not an envelope) or BG_ENOMEM. */
static bg_err env_parse_any(bg_store *s, const char *text, size_t len, env *e)
{
    memset(e, 0, sizeof *e);
    e->s = s;
    const char *mark = NULL;
    for (size_t i = 0; i + 6 <= len; i++)
        if (!memcmp(text + i, ",\"op\":", 6)) {
            mark = text + i;
            break;
        }
    if (!mark || len < 1 || text[len - 1] != '}')
        return BG_ECORRUPT;
    e->op = mark + 6;
    e->op_len = (size_t)(text + len - 1 - e->op);
    /* The metadata alone: everything before ",\"op\":", closed. */
    size_t mlen = (size_t)(mark - text);
    char *meta = bg__handle_malloc(s, mlen + 2);
    if (!meta)
        return BG_ENOMEM;
    memcpy(meta, text, mlen);
    meta[mlen] = '}';
    meta[mlen + 1] = '\0';
    cJSON *doc;
    bg_err perr = bg__json_parse(meta, mlen + 1, &doc);
    bg__handle_free(s, meta);
    if (perr == BG_ENOMEM)
        return perr;
    const cJSON *idem = cJSON_GetObjectItemCaseSensitive(doc, "idem");
    const cJSON *lane = cJSON_GetObjectItemCaseSensitive(doc, "lane");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(doc, "at");
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(doc, "attempts");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "err");
    const cJSON *fat = cJSON_GetObjectItemCaseSensitive(doc, "failed_at");
    const cJSON *rof = cJSON_GetObjectItemCaseSensitive(doc, "retry_of");
    bg_err rc = 0;
    if (!cJSON_IsString(idem) || !cJSON_IsNumber(lane) || !cJSON_IsNumber(at) ||
        !cJSON_IsNumber(att)) {
        rc = BG_ECORRUPT;
    } else {
        e->idem = qdup(s, idem->valuestring, strlen(idem->valuestring));
        e->lane = lane->valueint ? 1 : 0;
        e->at = clamp_i64(at->valuedouble);
        e->attempts = (uint32_t)clamp_range(att->valuedouble, 0, UINT32_MAX);
        e->failed_at = cJSON_IsNumber(fat) ? clamp_i64(fat->valuedouble) : 0;
        e->retry_of = cJSON_IsNumber(rof)
                          ? (uint64_t)clamp_range(rof->valuedouble, 0, 1.8e19)
                          : 0;
        if (cJSON_IsString(err))
            e->err = qdup(s, err->valuestring, strlen(err->valuestring));
        if (!e->idem || (cJSON_IsString(err) && !e->err))
            rc = BG_ENOMEM;
    }
    cJSON_Delete(doc);
    if (rc)
        env_clear(e);
    return rc;
}

/* ---- reading an envelope ------------------------------------------------
 *
 * Envelopes as env_build writes them are read by a scan of their fixed
 * layout: strings with no escapes and no control bytes, integers of at
 * most 15 digits (exact as doubles, so env_parse_any reads the same
 * values). Any other text is left to env_parse_any, which decides.
 * fuzz_queue_env holds the two to the same answers.
 */

typedef struct escan {
    const char *p, *end;
} escan;

static int scan_lit(escan *c, const char *w, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n))
        return 0;
    c->p += n;
    return 1;
}

/* An integer, '-' allowed when neg; 1 with *v, or 0. */
static int scan_int(escan *c, int neg, int64_t *v)
{
    int minus = neg && c->p < c->end && *c->p == '-';
    c->p += minus;
    const char *start = c->p;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        x = x * 10 + (uint64_t)(*c->p++ - '0');
    size_t nd = (size_t)(c->p - start);
    if (nd == 0 || nd > 15 || (nd > 1 && *start == '0'))
        return 0;
    *v = minus ? -(int64_t)x : (int64_t)x;
    return 1;
}

/* A string's bytes after its opening quote, up to the closing one: 1 with
 * the span, 0 when it holds an escape or a control byte. */
static int scan_str(escan *c, const char **p, size_t *n)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\\' || ch < 0x20)
            return 0;
        c->p++;
    }
    if (c->p == c->end)
        return 0;
    *p = start;
    *n = (size_t)(c->p++ - start);
    return 1;
}

/* 1: parsed into *e; 0: not of env_build's plain layout; -1: out of
 * memory. */
static int env_parse_plain(bg_store *s, const char *text, size_t len, env *e)
{
    memset(e, 0, sizeof *e);
    e->s = s;
    if (!len || text[len - 1] != '}')
        return 0;
    escan c = {text, text + len - 1};
    const char *idem, *err = NULL;
    size_t ilen, elen = 0;
    int64_t lane, at, att, fat = 0, rof = 0;
    if (!scan_lit(&c, "{\"idem\":\"", 9) || !scan_str(&c, &idem, &ilen) ||
        !scan_lit(&c, ",\"lane\":", 8) || !scan_int(&c, 0, &lane) ||
        !scan_lit(&c, ",\"at\":", 6) || !scan_int(&c, 1, &at) ||
        !scan_lit(&c, ",\"attempts\":", 12) || !scan_int(&c, 0, &att))
        return 0;
    if (scan_lit(&c, ",\"err\":\"", 8) && !scan_str(&c, &err, &elen))
        return 0;
    if (scan_lit(&c, ",\"failed_at\":", 13) && !scan_int(&c, 1, &fat))
        return 0;
    if (scan_lit(&c, ",\"retry_of\":", 12) && !scan_int(&c, 0, &rof))
        return 0;
    if (!scan_lit(&c, ",\"op\":", 6))
        return 0;
    e->op = c.p;
    e->op_len = (size_t)(c.end - c.p);
    e->lane = lane ? 1 : 0;
    e->at = at;
    e->attempts = att > UINT32_MAX ? UINT32_MAX : (uint32_t)att;
    e->failed_at = fat;
    e->retry_of = (uint64_t)rof;
    e->idem = qdup(s, idem, ilen);
    e->err = err ? qdup(s, err, elen) : NULL;
    if (!e->idem || (err && !e->err)) {
        env_clear(e);
        return -1;
    }
    return 1;
}

/* Parse an envelope; the payload stays a span of text. Returns 0,
 * BG_ECORRUPT (not an envelope) or BG_ENOMEM. */
static bg_err env_parse(bg_store *s, const char *text, size_t len, env *e)
{
    int r = env_parse_plain(s, text, len, e);
    if (r > 0)
        return 0;
    if (r < 0)
        return BG_ENOMEM;
    return env_parse_any(s, text, len, e);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int bg__queue_env_agree(bg_store *s, const char *text, size_t len)
{
    env p, g;
    int r = env_parse_plain(s, text, len, &p);
    if (r <= 0)
        return r == 0 ? 0 : -2;
    bg_err err = env_parse_any(s, text, len, &g);
    int same = !err && same_str(p.idem, g.idem) && p.lane == g.lane &&
               p.at == g.at && p.attempts == g.attempts &&
               same_str(p.err, g.err) && p.failed_at == g.failed_at &&
               p.retry_of == g.retry_of && p.op == g.op && p.op_len == g.op_len;
    env_clear(&p);
    if (!err)
        env_clear(&g);
    return err == BG_ENOMEM ? -2 : same ? 1 : -1;
}

/* What a walk over records does when one would not parse (perr): skip a
 * record that is not an op (0), stop on anything else with *err set (1). */
static int skip_or_stop(bg_err perr, bg_err *err)
{
    if (perr == BG_ECORRUPT)
        return 0;
    *err = perr;
    return 1;
}

/* ---- building an envelope -------------------------------------------------
 *
 * {"idem":S,"lane":N,"at":N,"attempts":N[,"err":S][,"failed_at":N]
 * [,"retry_of":N],"op":PAYLOAD}, written byte by byte: the strings escaped
 * as any JSON printer does ('"', '\\', \b \f \n \r \t, other bytes
 * below 0x20 as \u00XX, the rest as they are; the text is UTF-8 already).
 */

static char *put_raw(char *o, const char *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

static char *put_u64(char *o, uint64_t v)
{
    char t[20];
    size_t k = 0;
    do {
        t[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        *o++ = t[--k];
    return o;
}

static char *put_i64(char *o, int64_t v)
{
    if (v >= 0)
        return put_u64(o, (uint64_t)v);
    *o++ = '-';
    return put_u64(o, 0 - (uint64_t)v);
}

/* The most bytes put_str writes for n bytes of text. */
#define ESCAPED_MAX(n) (6 * (n) + 2)

static char *put_str(char *o, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        const char *esc = NULL;
        switch (ch) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            *o++ = esc[0];
            *o++ = esc[1];
        } else if (ch < 0x20) {
            o = put_raw(o, "\\u00", 4);
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o++ = '"';
    return o;
}

/* Envelopes up to this size are built in the queue's own buffer. */
#define ENV_KEEP (64u << 10)

typedef struct env_in {
    const char *idem;
    int lane;
    int64_t at;
    uint32_t attempts;
    const char *err; /* NULL: none */
    int64_t failed_at;
    uint64_t retry_of;
    const char *op;
    size_t op_len;
} env_in;

/* Build an envelope into the queue's buffer (or, when larger than
 * ENV_KEEP, a buffer of its own: env_release gives either back). Returns
 * the text with *len, or NULL when out of memory. */
static char *env_build(bg_queue *q, const env_in *in, size_t *len)
{
    size_t ilen = strlen(in->idem), elen = in->err ? strlen(in->err) : 0;
    size_t cap = ESCAPED_MAX(ilen) + ESCAPED_MAX(elen) + in->op_len + 160;
    char *out;
    if (cap > ENV_KEEP) {
        out = bg__handle_malloc(q->s, cap);
    } else {
        if (!q->ebuf && !(q->ebuf = bg__handle_malloc(q->s, ENV_KEEP)))
            return NULL;
        out = q->ebuf;
    }
    if (!out)
        return NULL;
    char *o = put_raw(out, "{\"idem\":", 8);
    o = put_str(o, in->idem, ilen);
    o = put_raw(o, ",\"lane\":", 8);
    *o++ = in->lane ? '1' : '0';
    o = put_raw(o, ",\"at\":", 6);
    o = put_i64(o, in->at);
    o = put_raw(o, ",\"attempts\":", 12);
    o = put_u64(o, in->attempts);
    if (in->err) {
        o = put_raw(o, ",\"err\":", 7);
        o = put_str(o, in->err, elen);
    }
    if (in->failed_at) {
        o = put_raw(o, ",\"failed_at\":", 13);
        o = put_i64(o, in->failed_at);
    }
    if (in->retry_of) {
        o = put_raw(o, ",\"retry_of\":", 12);
        o = put_u64(o, in->retry_of);
    }
    o = put_raw(o, ",\"op\":", 6);
    o = put_raw(o, in->op, in->op_len);
    *o++ = '}';
    *len = (size_t)(o - out);
    return out;
}

static void env_release(bg_queue *q, char *text)
{
    if (text != q->ebuf)
        bg__handle_free(q->s, text);
}

static void id_key(uint64_t id, char key[17])
{
    snprintf(key, 17, "%016" PRIx64, id);
}

#define QKEY_LEN 34

/* v as 16 lowercase hex digits (what "%016" PRIx64 writes, without
 * snprintf's cost on a path taken per op). */
static void put_hex16(char *out, uint64_t v)
{
    static const char digit[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = digit[v & 15];
}

static void qkey(int lane, uint64_t id, uint64_t h, char key[QKEY_LEN + 1])
{
    key[0] = lane ? 'e' : 'n';
    put_hex16(key + 1, id);
    key[17] = '.';
    put_hex16(key + 18, h);
    key[QKEY_LEN] = '\0';
}

static int hex16(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* A failed_ops key: the op id in 16 hex digits. */
static int key_id(const char *key, size_t klen, uint64_t *id)
{
    if (klen != 16 || hex16(key, id) || !*id)
        return -1;
    return 0;
}

static int parse_qkey(const char *key, size_t klen, int *lane, uint64_t *id,
                      uint64_t *h)
{
    if (klen != QKEY_LEN || (key[0] != 'n' && key[0] != 'e') ||
        key[17] != '.' || hex16(key + 1, id) || !*id || hex16(key + 18, h))
        return -1;
    *lane = key[0] == 'e';
    return 0;
}

/* ---- the index
 * --------------------------------------------------------------- */

/* Frames of pending_ops as the box scan hands them over, in file order:
 * the keys alone rebuild the index. */
static bg_err index_frame(void *arg, const bg__frame_info *fi)
{
    bg_queue *q = arg;
    if (!fi) {
        q->live_bytes = 0;
        for (int l = 0; l < 2; l++)
            ring_free(q, &q->lanes[l]);
        set_clear(q);
        return 0;
    }
    int lane;
    uint64_t id, h;
    if (fi->klen == 17 && fi->key[0] == '~' && !fi->del &&
        !hex16(fi->key + 1, &id)) {
        /* The id floor a compaction leaves: ids never go back. */
        if (id > q->next_id)
            q->next_id = id;
        return 0;
    }
    if (parse_qkey(fi->key, fi->klen, &lane, &id, &h))
        return 0; /* not an op record */
    if (id >= q->next_id)
        q->next_id = id + 1;
    ring *r = &q->lanes[lane];
    /* A new op has the highest id of its lane: no search for it. The last
     * entry says so only while it is live: a dead one (acked out of turn,
     * while the ops before it were leased) no longer holds its id. */
    const qent *last = r->n ? ring_at(r, r->n - 1) : NULL;
    qent *e = last && last->id && last->id < id ? NULL : ring_find(r, id);
    if (e && e->id) {
        if (fi->del) {
            q->live_bytes -= e->flen;
            e->id = 0;
            r->dead++;
            ring_trim(r);
            set_del(q, id, h);
        } else {
            q->live_bytes += fi->flen - (uint64_t)e->flen;
            e->off = fi->off; /* a rewrite (nack): same place in line */
            e->flen = fi->flen;
        }
        return 0;
    }
    if (fi->del)
        return 0;
    BG_FAIL_IF(
        fi->off >= (1ull << 40) || fi->flen >= (1u << 23), q->s, BG_ECORRUPT,
        "box '" BG__PENDING_BOX "': op %" PRIu64 " is past the queue's limits",
        id);
    qent n = {id, fi->off, fi->flen, 0};
    BG_TRY(ring_push(q, r, n));
    q->live_bytes += fi->flen;
    return set_add(q, h, id);
}

static bg_err read_env(bg_queue *q, const qent *e, char **text, env *en)
{
    size_t len;
    BG_TRY(bg__box_read_at(q->pending, e->off, e->flen, text, &len));
    bg_err err = env_parse(q->s, *text, len, en);
    if (err) {
        bg__handle_free(q->s, *text);
        *text = NULL;
        return bg__handle_fail(q->s, err,
                               "box '" BG__PENDING_BOX "': op %" PRIu64
                               " is not a queue record",
                               e->id);
    }
    return 0;
}

/* After a scan: the oldest op's age, from the heads of the lanes. */
static bg_err index_finish(bg_queue *q)
{
    q->oldest_ms = 0;
    for (int l = 0; l < 2; l++) {
        ring *r = &q->lanes[l];
        ring_trim(r);
        if (!r->n)
            continue;
        char *text;
        env en;
        BG_TRY(read_env(q, ring_at(r, 0), &text, &en));
        if (!q->oldest_ms || en.at < q->oldest_ms)
            q->oldest_ms = en.at;
        env_clear(&en);
        bg__handle_free(q->s, text);
    }
    return 0;
}

static bg_err leases_load(bg_queue *q);
static void leases_clear(bg_queue *q);

bg_err bg_queue_rebuild(bg_queue *q)
{
    BG__JSON_SCOPE(&q->s->alloc);
    for (int l = 0; l < 2; l++)
        ring_free(q, &q->lanes[l]);
    set_clear(q);
    leases_clear(q);
    BG_TRY(bg__box_rescan(q->pending));
    BG_TRY(index_finish(q));
    return leases_load(q);
}

/* ---- the index checkpoint ------------------------------------------------
 *
 * pending_ops.index holds the index as it was when the queue last closed or
 * compacted, with the point of the log it covers, so that an open loads it
 * and scans only the frames after that point:
 *
 *   0   "BGQI", u32 version (2: the set's slots as slot_home places them)
 *   8   the box id (16 bytes), then u64 each: the header's sequence floor,
 *       the log's end, the last frame's offset and sequence, the frames,
 *       next_id, live_bytes, entries per lane (2), dead entries per lane
 *       (2), set slots, set entries
 *   128 the entries of lane 0 then lane 1, 16 bytes each: id, then
 *       offset | frame length << 40 | leased << 63 (as it was when
 *       written: a reader clears it, the lease log says what is leased)
 *       the set's slots, 8 bytes each: hi, id_lo (u32 each)
 *   end XXH3-64 of every byte before it
 *
 * It is written after the log is synced up to the end it names, and is
 * taken only when it verifies, is consistent in itself, and the log still
 * holds its last frame at the same place under the same header (id and
 * sequence floor: a compaction or recovery writes a new floor). The log
 * is append-only between those, so the frames it covers are then the very
 * ones it describes. Anything else, and the log is scanned in full. */

#define CK_MAGIC   "BGQI"
#define CK_VERSION 2
#define CK_HEAD    128

/* The u64 fields of the head from byte 24, in order. */
enum {
    CK_FLOOR,
    CK_END,
    CK_LAST_OFF,
    CK_LAST_SEQ,
    CK_FRAMES,
    CK_NEXT_ID,
    CK_LIVE,
    CK_N0, /* + lane */
    CK_N1,
    CK_DEAD0, /* + lane */
    CK_DEAD1,
    CK_SETCAP,
    CK_SETN,
    CK_FIELDS
};

static void ck_path(bg_store *s, char *path)
{
    bg__handle_path(s, path, BG_PATH_MAX, BG__QUEUE_INDEX);
}

static size_t ck_size(uint64_t n0, uint64_t n1, uint64_t setcap)
{
    return CK_HEAD + 16 * (size_t)(n0 + n1) + 8 * (size_t)setcap + 8;
}

/* The in-memory entries and slots are written and read as they are when
 * their layout is the file's (little-endian, off in the low 40 bits of the
 * second word): one write per piece, one read into the arrays. Elsewhere
 * (or when a test asks, bg__queue_portable_checkpoint) they are converted
 * in place after reading and before writing. */
static int ck_native(void)
{
    static const uint8_t want[24] = {1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
                                     0, 3, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0};
    struct {
        qent e;
        islot sl;
    } t;
    memset(&t, 0, sizeof t);
    t.e.id = 1;
    t.e.off = 2;
    t.e.flen = 3;
    t.sl.hi = 4;
    t.sl.id_lo = 5;
    return sizeof t == 24 && !memcmp(&t, want, 24);
}

static void ck_entry_out(const qent *e, uint8_t *p)
{
    put64(p, e->id);
    put64(p + 8, (uint64_t)e->off | (uint64_t)e->flen << 40 |
                     (uint64_t)e->leased << 63);
}

/* Entries read as they are carry the leased bit of their writer. Four at
 * a time: one instruction each, a reopen pays about two per entry. */
static void clear_leased(qent *v, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v[i].leased = 0;
        v[i + 1].leased = 0;
        v[i + 2].leased = 0;
        v[i + 3].leased = 0;
    }
    for (; i < n; i++)
        v[i].leased = 0;
}

static qent ck_entry_in(const uint8_t *p)
{
    uint64_t w = get64(p + 8);
    return (qent){get64(p), w & ((1ull << 40) - 1), (w >> 40) & 0x7fffff, 0};
}

typedef struct ck_out {
    bg_store *s;
    bg_file *f;
    uint64_t pos;
    XXH3_state_t *h;
    uint8_t buf[4096];
    size_t used;
    bg_err err;
} ck_out;

static void ck_put(ck_out *o, const void *p, size_t n)
{
    if (o->err)
        return;
    XXH3_64bits_update(o->h, p, n);
    if (o->used + n > sizeof o->buf || n > sizeof o->buf) {
        if (o->used)
            o->err = bg__vfs_write(o->s, o->f, o->pos, o->buf, o->used);
        o->pos += o->used;
        o->used = 0;
    }
    if (o->err)
        return;
    if (n > sizeof o->buf) {
        o->err = bg__vfs_write(o->s, o->f, o->pos, p, n);
        o->pos += n;
        return;
    }
    memcpy(o->buf + o->used, p, n);
    o->used += n;
}

static void ck_put_lane(ck_out *o, ring *r, int native)
{
    if (!r->n)
        return;
    if (native) { /* the ring in at most two pieces */
        size_t first = r->cap - r->head < r->n ? r->cap - r->head : r->n;
        ck_put(o, r->v + r->head, first * sizeof *r->v);
        ck_put(o, r->v, (r->n - first) * sizeof *r->v);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        uint8_t e[16];
        ck_entry_out(ring_at(r, i), e);
        ck_put(o, e, 16);
    }
}

/* Write the checkpoint of the index as it is now, once the log is synced
 * to the end it names, and sync it. A failure leaves a file that does not
 * verify (or, when not even opened, an older one that still describes a
 * prefix of the log): the next open scans more, nothing else. It is
 * reported. A box that is damaged or stopped after an error gets no
 * checkpoint. */
static bg_err ck_write(bg_queue *q)
{
    bg__box_resume rp;
    if (q->s->read_only)
        return 0;
    set_step(q, SIZE_MAX); /* one table to write */
    BG_TRY(bg_box_sync(q->pending));
    if (bg__box_resume_point(q->pending, &rp))
        return 0;
    ck_out *o = bg__handle_malloc(q->s, sizeof *o);
    XXH3_state_t *h = XXH3_createState();
    if (!o || !h) {
        bg__handle_free(q->s, o);
        XXH3_freeState(h);
        return BG_ENOMEM;
    }
    memset(o, 0, sizeof *o);
    o->s = q->s;
    o->h = h;
    XXH3_64bits_reset(h);
    uint8_t head[CK_HEAD];
    memcpy(head, CK_MAGIC, 4);
    put32(head + 4, CK_VERSION);
    memcpy(head + 8, rp.id, 16);
    uint64_t hv[CK_FIELDS] = {[CK_FLOOR] = rp.seq_floor,
                              [CK_END] = rp.end,
                              [CK_LAST_OFF] = rp.last_off,
                              [CK_LAST_SEQ] = rp.last_seq,
                              [CK_FRAMES] = rp.frames,
                              [CK_NEXT_ID] = q->next_id,
                              [CK_LIVE] = q->live_bytes,
                              [CK_N0] = q->lanes[0].n,
                              [CK_N1] = q->lanes[1].n,
                              [CK_DEAD0] = q->lanes[0].dead,
                              [CK_DEAD1] = q->lanes[1].dead,
                              [CK_SETCAP] = q->setcap,
                              [CK_SETN] = q->setn};
    for (size_t i = 0; i < CK_FIELDS; i++)
        put64(head + 24 + 8 * i, hv[i]);
    char path[BG_PATH_MAX];
    ck_path(q->s, path);
    /* Synced, and a new file's entry too, so that an open after a power
     * loss also finds it. */
    bg_err err = bg__vfs_stat(q->s, path, NULL);
    int made = err == BG_ENOTFOUND;
    err = made ? 0 : err;
    if (!err)
        err = bg__vfs_open(q->s, path, BG_OPEN_CREATE, &o->f);
    if (!err) {
        err = bg__vfs_truncate(q->s, o->f, 0);
        int native = ck_native() && !q->s->ck_portable;
        o->err = err;
        ck_put(o, head, CK_HEAD);
        for (int l = 0; l < 2; l++)
            ck_put_lane(o, &q->lanes[l], native);
        for (size_t i = 0; i < q->setcap && native; i += 512)
            ck_put(o, q->set + i,
                   (q->setcap - i < 512 ? q->setcap - i : 512) *
                       sizeof *q->set);
        for (size_t i = 0; i < q->setcap && !native; i++) {
            uint8_t sl[8];
            put32(sl, q->set[i].hi);
            put32(sl + 4, q->set[i].id_lo);
            ck_put(o, sl, 8);
        }
        uint8_t sum[8];
        put64(sum, XXH3_64bits_digest(h));
        ck_put(o, sum, 8);
        if (!o->err && o->used)
            o->err = bg__vfs_write(q->s, o->f, o->pos, o->buf, o->used);
        err = o->err;
        if (!err)
            err = bg__vfs_sync(q->s, o->f);
        bg__vfs_close(q->s, o->f);
    }
    if (!err && made)
        err = bg__vfs_sync_dir(q->s, q->s->dir);
    bg__handle_free(q->s, o);
    XXH3_freeState(h);
    BG_FAIL_IF(err, q->s, err,
               "cannot write the queue's index checkpoint '%s' (the next "
               "open scans the log instead)",
               path);
    return 0;
}

static uint64_t pow2_at_least(uint64_t n)
{
    uint64_t c = 64;
    while (c < n)
        c *= 2;
    return c;
}

/* Check one lane's entries as loaded: dead ones counted, live ids rising
 * and below next_id, frames inside the covered log. Returns the live
 * count, or UINT64_MAX when something is off. */
static uint64_t ck_lane_ok(const ring *r, uint64_t next_id, uint64_t end)
{
    uint64_t live = 0, last = 0, dead = 0;
    for (size_t i = 0; i < r->n; i++) {
        const qent *e = &r->v[i];
        if (!e->id) {
            dead++;
            if (i == 0)
                return UINT64_MAX; /* a trimmed ring starts live */
            continue;
        }
        if (e->id <= last || e->id >= next_id || e->flen < BG__FRAME_OVERHEAD ||
            e->off < BG__BOX_HDR_SIZE || e->off + e->flen > end)
            return UINT64_MAX;
        last = e->id;
        live++;
    }
    return dead == r->dead ? live : UINT64_MAX;
}

/* Read n bytes at *pos into p, hashing them. */
static bg_err ck_read(bg_store *s, bg_file *f, uint64_t *pos, void *p, size_t n,
                      XXH3_state_t *h)
{
    size_t got = 0;
    BG_TRY(bg__vfs_read(s, f, *pos, p, n, &got));
    if (got != n)
        return BG_ECORRUPT;
    XXH3_64bits_update(h, p, n);
    *pos += n;
    return 0;
}

/* Load the checkpoint into the (empty) index and say where the scan may
 * resume (*have); none when there is no file or it does not verify or
 * hold together. A file that cannot be read is an error: the disk is
 * failing, and the message says that removing it makes the open scan
 * the log instead. */
static bg_err ck_load(bg_queue *q, bg__box_resume *rp, uint64_t *next_id,
                      int *have)
{
    *have = 0;
    char path[BG_PATH_MAX];
    ck_path(q->s, path);
    bg_file *f;
    bg_err err = bg__vfs_open(q->s, path, BG_OPEN_READ, &f);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_FAIL_IF(err, q->s, err,
               "cannot open the queue's index checkpoint '%s' (removing it "
               "makes the open scan the log)",
               path);
    XXH3_state_t *hs = XXH3_createState();
    uint64_t size = 0, pos = 0;
    uint8_t b[CK_HEAD];
    uint64_t h[CK_FIELDS] = {0};
    int ok = 0;
    err = hs ? bg__vfs_size(q->s, f, &size) : BG_ENOMEM;
    if (hs)
        XXH3_64bits_reset(hs);
    if (!err && size >= CK_HEAD + 8) {
        err = ck_read(q->s, f, &pos, b, CK_HEAD, hs);
        for (size_t i = 0; i < CK_FIELDS && !err; i++)
            h[i] = get64(b + 24 + 8 * i);
        ok = !err && !memcmp(b, CK_MAGIC, 4) && get32(b + 4) == CK_VERSION &&
             h[CK_N0] < (1ull << 32) && h[CK_N1] < (1ull << 32) &&
             h[CK_SETCAP] < (1ull << 33) &&
             size == ck_size(h[CK_N0], h[CK_N1], h[CK_SETCAP]) &&
             h[CK_DEAD0] <= h[CK_N0] && h[CK_DEAD1] <= h[CK_N1] &&
             h[CK_SETN] <= h[CK_SETCAP];
    }
    int native = ck_native() && !q->s->ck_portable;
    for (int l = 0; l < 2 && ok && !err; l++) {
        ring *r = &q->lanes[l];
        size_t n = (size_t)h[CK_N0 + l];
        r->cap = (size_t)pow2_at_least(n);
        r->v = bg__handle_malloc(q->s, r->cap * sizeof *r->v);
        if (!r->v) {
            err = BG_ENOMEM;
            break;
        }
        r->head = 0;
        r->n = n;
        r->dead = (size_t)h[CK_DEAD0 + l];
        err = ck_read(q->s, f, &pos, r->v, n * sizeof *r->v, hs);
        for (size_t i = 0; i < n && !native && !err; i++)
            r->v[i] = ck_entry_in((const uint8_t *)&r->v[i]);
        if (native && !err)
            clear_leased(r->v, n); /* the lease log's to say */
    }
    if (ok && !err && h[CK_SETCAP]) {
        q->set = bg__handle_malloc(q->s, (size_t)h[CK_SETCAP] * sizeof *q->set);
        q->setcap = (size_t)h[CK_SETCAP];
        if (q->set)
            bg__alloc_advise_table(q->set, q->setcap * sizeof *q->set);
        err = q->set ? ck_read(q->s, f, &pos, q->set,
                               q->setcap * sizeof *q->set, hs)
                     : BG_ENOMEM;
        for (size_t i = 0; i < q->setcap && !native && !err; i++) {
            const uint8_t *p = (const uint8_t *)&q->set[i];
            q->set[i] = (islot){get32(p), get32(p + 4)};
        }
    }
    uint8_t sum[8];
    uint64_t digest = hs ? XXH3_64bits_digest(hs) : 0; /* of all before it */
    if (ok && !err)
        err = ck_read(q->s, f, &pos, sum, 8, hs);
    bg__vfs_close(q->s, f);
    /* A read cut short is a checkpoint that does not verify; any other
     * read error is the disk's. */
    if (err == BG_ECORRUPT)
        err = 0, ok = 0;
    if (ok && !err)
        ok = get64(sum) == digest;
    XXH3_freeState(hs);
    uint64_t live = 0;
    for (int l = 0; l < 2 && ok && !err; l++) {
        uint64_t v = ck_lane_ok(&q->lanes[l], h[CK_NEXT_ID], h[CK_END]);
        ok = v != UINT64_MAX;
        live += ok ? v : 0;
    }
    if (ok && !err) {
        uint64_t used = 0;
        for (size_t i = 0; i < q->setcap; i++)
            used += q->set[i].hi != 0;
        uint64_t setcap = h[CK_SETCAP], setn = h[CK_SETN];
        ok = used == setn && setn == live &&
             (setcap ? (setcap & (setcap - 1)) == 0 && setcap >= 64 &&
                           setn * 4 <= setcap * 3
                     : setn == 0);
    }
    if (ok && !err) {
        q->setn = (size_t)h[CK_SETN];
        *next_id = h[CK_NEXT_ID];
        q->live_bytes = h[CK_LIVE];
        memcpy(rp->id, b + 8, 16);
        rp->seq_floor = h[CK_FLOOR];
        rp->end = h[CK_END];
        rp->last_off = h[CK_LAST_OFF];
        rp->last_seq = h[CK_LAST_SEQ];
        rp->frames = h[CK_FRAMES];
        *have = 1;
        return 0;
    }
    /* back to an empty index */
    for (int l = 0; l < 2; l++)
        ring_free(q, &q->lanes[l]);
    set_clear(q);
    q->live_bytes = 0;
    BG_FAIL_IF(err && err != BG_ENOMEM, q->s, err,
               "cannot read the queue's index checkpoint '%s' (removing it "
               "makes the open scan the log)",
               path);
    return err;
}

int bg__queue_from_checkpoint(const bg_queue *q)
{
    return q->from_checkpoint;
}

void bg__queue_portable_checkpoint(bg_store *s, int on)
{
    s->ck_portable = on;
}

/* ---- open and close --------------------------------------------------------
 */

static qent *find_any(bg_queue *q, uint64_t id, int *lane)
{
    for (int l = 0; l < 2; l++) {
        qent *e = ring_find(&q->lanes[l], id);
        if (e && e->id) {
            if (lane)
                *lane = l;
            return e;
        }
    }
    return NULL;
}

static inline bg_err find_idem_in(bg_queue *q, const islot *v, size_t cap,
                                  const char *idem, uint32_t hi, uint64_t *id)
{
    if (!cap)
        return 0;
    size_t mask = cap - 1;
    for (size_t i = slot_home(hi, mask); v[i].hi; i = (i + 1) & mask) {
        if (v[i].hi != hi)
            continue;
        /* Half a hash and half an id: compare the key itself. */
        uint64_t cand = slot_id(q, v[i].id_lo);
        qent *e = find_any(q, cand, NULL);
        if (!e)
            continue;
        char *text;
        env en;
        BG_TRY(read_env(q, e, &text, &en));
        int same = !strcmp(en.idem, idem);
        env_clear(&en);
        bg__handle_free(q->s, text);
        if (same) {
            *id = cand;
            return 0;
        }
    }
    return 0;
}

/* The pending op with idempotency key idem (of hash h), or 0: in the set,
 * then in the table it is moving out of, while a move is under way. */
static bg_err find_idem(bg_queue *q, const char *idem, uint64_t h, uint64_t *id)
{
    *id = 0;
    uint32_t hi = slot_hi(h);
    bg_err err = find_idem_in(q, q->set, q->setcap, idem, hi, id);
    if (err || *id || !q->oset)
        return err;
    return find_idem_in(q, q->oset, q->ocap, idem, hi, id);
}

/* ---- leases --------------------------------------------------------------
 *
 * Held in memory (q->leases) and in the lease log, which the next process
 * reads on open: a lease counts while its op is pending with the attempts
 * and enqueue time the record names, and its time has not run out.
 */

/* The leases are found by op id through q->lix, an open-addressed table
 * of indices into q->leases (index + 1; 0: empty), at most half full. */
static size_t lix_home(const bg_queue *q, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (q->lixcap - 1);
}

/* The slot that holds id, or the empty slot where it would go. */
static size_t lix_slot(const bg_queue *q, uint64_t id)
{
    size_t mask = q->lixcap - 1, i = lix_home(q, id);
    while (q->lix[i] && q->leases[q->lix[i] - 1].id != id)
        i = (i + 1) & mask;
    return i;
}

static lease *find_lease(bg_queue *q, uint64_t id)
{
    if (!q->lixcap)
        return NULL;
    uint32_t k = q->lix[lix_slot(q, id)];
    return k ? &q->leases[k - 1] : NULL;
}

/* The table made anew with cap slots for the leases held. */
static bg_err lix_rebuild(bg_queue *q, size_t cap)
{
    uint32_t *v = bg__handle_malloc(q->s, cap * sizeof *v);
    if (!v)
        return BG_ENOMEM;
    memset(v, 0, cap * sizeof *v);
    bg__handle_free(q->s, q->lix);
    q->lix = v;
    q->lixcap = cap;
    for (size_t k = 0; k < q->nleases; k++)
        q->lix[lix_slot(q, q->leases[k].id)] = (uint32_t)(k + 1);
    return 0;
}

/* Empty slot i, moving later entries of its run back (no tombstones). */
static void lix_clear_at(bg_queue *q, size_t i)
{
    size_t mask = q->lixcap - 1;
    for (size_t j = (i + 1) & mask; q->lix[j]; j = (j + 1) & mask) {
        size_t home = lix_home(q, q->leases[q->lix[j] - 1].id);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            q->lix[i] = q->lix[j];
            i = j;
        }
    }
    q->lix[i] = 0;
}

/* Room for one more lease (the arrays and the table). */
static bg_err lease_room(bg_queue *q)
{
    BG_TRY(bg__handle_grow(q->s, &q->leases, q->nleases, &q->capleases,
                           sizeof *q->leases, 8));
    BG_TRY(bg__handle_grow(q->s, &q->lease_h, q->nleases, &q->caplease_h,
                           sizeof *q->lease_h, 8));
    if ((q->nleases + 1) * 2 > q->lixcap)
        return lix_rebuild(q, q->lixcap ? q->lixcap * 2 : 16);
    return 0;
}

/* Append a lease (lease_room first) with its op's idempotency hash. */
static void lease_push(bg_queue *q, const lease *l, uint64_t h)
{
    q->lease_h[q->nleases] = h;
    q->leases[q->nleases] = *l;
    q->lix[lix_slot(q, l->id)] = (uint32_t)(q->nleases + 1);
    q->nleases++;
}

/* Drop lease i: the last one takes its place. */
static void lease_drop(bg_queue *q, size_t i)
{
    size_t last = q->nleases - 1;
    lix_clear_at(q, lix_slot(q, q->leases[i].id));
    if (i != last) {
        q->lix[lix_slot(q, q->leases[last].id)] = (uint32_t)(i + 1);
        q->leases[i] = q->leases[last];
        q->lease_h[i] = q->lease_h[last];
    }
    q->nleases = last;
}

static void leases_clear(bg_queue *q)
{
    q->nleases = 0;
    if (q->lix)
        memset(q->lix, 0, q->lixcap * sizeof *q->lix);
}

static void end_lease(bg_queue *q, qent *e)
{
    if (!e->leased)
        return;
    e->leased = 0;
    lease *l = find_lease(q, e->id);
    if (l)
        lease_drop(q, (size_t)(l - q->leases));
}

typedef struct load_ctx {
    bg_queue *q;
    int64_t now;
    bg_err err;
} load_ctx;

static int load_one(void *arg, const bg__lease *l)
{
    load_ctx *c = arg;
    bg_queue *q = c->q;
    qent *e = l->until > c->now ? find_any(q, l->id, NULL) : NULL;
    if (!e)
        return 0; /* run out, or its op acked or moved */
    lease *held = e->leased ? find_lease(q, l->id) : NULL;
    if (held) { /* leased again after it ran out: the later end holds */
        if (held->attempts == l->attempts && held->at == l->at &&
            l->until > held->until)
            held->until = l->until;
        return 0;
    }
    char *text;
    env en;
    if ((c->err = read_env(q, e, &text, &en)))
        return 1;
    int same = en.attempts == l->attempts && en.at == l->at;
    uint64_t h = idem_hash(en.idem, strlen(en.idem));
    env_clear(&en);
    bg__handle_free(q->s, text);
    if (!same)
        return 0; /* a nack since: that delivery is over */
    if ((c->err = lease_room(q)))
        return 1;
    lease_push(q, l, h);
    e->leased = 1;
    return 0;
}

/* Read the lease log into the index; on a writable store, rewrite it with
 * the leases that still count when it holds anything else. */
static bg_err leases_load(bg_queue *q)
{
    load_ctx c = {q, bg__handle_now_ms(q->s), 0};
    uint64_t records;
    int tail;
    BG_TRY(bg__lease_log_read(q->s, load_one, &c, &records, &tail));
    BG_TRY(c.err);
    if (q->s->read_only)
        return 0;
    if (records == q->nleases && !tail) {
        q->log.end = records * BG__LEASE_REC;
        q->log.appended = records;
        return 0;
    }
    return bg__lease_log_rewrite(q->s, &q->log, q->leases, q->nleases);
}

/* When most records of the log are spent, drop the leases that ran out
 * and rewrite it: the log stays within a few times the leases held. */
static bg_err leases_tidy(bg_queue *q, int64_t now)
{
    if (q->log.appended <= 1024 || q->log.appended <= 4 * (uint64_t)q->nleases)
        return 0;
    for (size_t i = 0; i < q->nleases;) {
        if (q->leases[i].until > now) {
            i++;
            continue;
        }
        qent *e = find_any(q, q->leases[i].id, NULL);
        if (e)
            e->leased = 0;
        lease_drop(q, i);
    }
    return bg__lease_log_rewrite(q->s, &q->log, q->leases, q->nleases);
}

/* Write the failed op under key (16 bytes) in failed_ops. */
static bg_err put_failed(bg_queue *q, const char *key, const char *rec,
                         size_t len)
{
    bg_write w = {0, key, 16, 0, rec, len};
    return bg__box_write_own(q->failed, &w, 1);
}

static bg_err del_pending(bg_queue *q, uint64_t id);

typedef struct settle_ctx {
    bg_queue *q;
    uint64_t *drop_failed;
    size_t n, cap;
    bg_err err;
} settle_ctx;

static int settle_one(void *arg, const bg_record *r)
{
    settle_ctx *c = arg;
    uint64_t id;
    if (key_id(r->key, r->key_len, &id))
        return 0;
    if (id >= c->q->next_id)
        c->q->next_id = id + 1;
    env en;
    bg_err perr = env_parse(c->q->s, r->value, r->value_len, &en);
    if (perr)
        return skip_or_stop(perr, &c->err);
    uint64_t pend = 0;
    int retried = 0;
    if (!find_any(c->q, id, NULL) &&
        !(c->err = find_idem(c->q, en.idem, idem_hash(en.idem, strlen(en.idem)),
                             &pend)) &&
        pend) {
        char *text;
        env pe;
        qent *e = find_any(c->q, pend, NULL);
        if (e && !(c->err = read_env(c->q, e, &text, &pe))) {
            retried = pe.retry_of == id;
            env_clear(&pe);
            bg__handle_free(c->q->s, text);
        }
    }
    if (c->err) {
        /* fall through to the return */
    } else if (find_any(c->q, id, NULL)) {
        /* A move to failed_ops that did not finish: finish it. */
        c->err = del_pending(c->q, id);
    } else if (retried) {
        /* A retry that did not finish: the failed copy goes. */
        c->err = bg__handle_grow(c->q->s, &c->drop_failed, c->n, &c->cap,
                                 sizeof *c->drop_failed, 8);
        if (!c->err)
            c->drop_failed[c->n++] = id;
    }
    env_clear(&en);
    return c->err != 0;
}

/* Before a full scan of the log: the normal lane's ring and the
 * idempotency set sized for as many ops as the file holds at one op per
 * PRESIZE_BYTES (a small op's frame), so that the scan does not grow them
 * by doubling; past that they grow as usual. What it sets aside is at most
 * a tenth of the file's size. */
#define PRESIZE_BYTES 256

static bg_err presize(bg_queue *q)
{
    char path[BG_PATH_MAX];
    bg__handle_path(q->s, path, sizeof path, BG__PENDING_BOX ".box");
    bg_file *f;
    uint64_t size = 0;
    bg_err err = bg__vfs_open(q->s, path, BG_OPEN_READ, &f);
    if (err == BG_ENOTFOUND)
        return 0; /* a new queue */
    BG_TRY(err);
    err = bg__vfs_size(q->s, f, &size);
    bg__vfs_close(q->s, f);
    BG_TRY(err);
    uint64_t n = size / PRESIZE_BYTES;
    if (n <= 64)
        return 0;
    ring *r = &q->lanes[0];
    r->cap = (size_t)pow2_at_least(n);
    r->v = bg__handle_malloc(q->s, r->cap * sizeof *r->v);
    q->setcap = (size_t)pow2_at_least(n + n / 3 + 1);
    q->set = bg__alloc_zeroed(&q->s->alloc, q->setcap * sizeof *q->set);
    if (!r->v || !q->set)
        return BG_ENOMEM; /* the close frees either */
    bg__alloc_advise_table(q->set, q->setcap * sizeof *q->set);
    return 0;
}

bg_err bg_queue_open(bg_store *s, const bg_queue_opts *o, bg_queue **out)
{
    BG__JSON_SCOPE(&s->alloc);
    bg_queue *q = bg__handle_malloc(s, sizeof *q);
    if (!q)
        return BG_ENOMEM;
    memset(q, 0, sizeof *q);
    q->s = s;
    if (o)
        q->o = *o;
    else
        bg_queue_opts_init(&q->o);
    q->next_id = 1;
    int flags = s->read_only ? 0 : BG_BOX_CREATE;
    bg__box_resume rp;
    int have = 0;
    uint64_t ck_next = 0;
    bg_err err = ck_load(q, &rp, &ck_next, &have);
    if (!err && !have)
        err = presize(q);
    if (!err)
        err = bg__box_open_ext_from(s, BG__PENDING_BOX, flags, index_frame, q,
                                    have ? &rp : NULL, &q->from_checkpoint,
                                    &q->pending);
    /* The tail's ids were counted from 1 up: the checkpoint's go first. */
    if (!err && q->from_checkpoint && ck_next > q->next_id)
        q->next_id = ck_next;
    if (!err) {
        bg__box_keep_zeroed(q->pending, BG__QUEUE_ZERO_MIN, BG__QUEUE_ZERO_MAX);
        err = index_finish(q);
        if (err && err != BG_ENOMEM && q->from_checkpoint) {
            /* A checkpoint whose checksum holds but whose heads are not
             * the frames it says: scan the log after all. */
            q->from_checkpoint = 0;
            q->next_id = 1;
            err = bg__box_rescan(q->pending);
            if (!err)
                err = index_finish(q);
        }
    }
    if (!err)
        err = bg_box_open(s, BG__FAILED_BOX, flags, &q->failed);
    if (!err && !s->read_only) {
        settle_ctx c = {.q = q};
        err = bg_box_iterate(q->failed, settle_one, &c);
        if (!err)
            err = c.err;
        for (size_t i = 0; i < c.n && !err; i++) {
            char key[17];
            id_key(c.drop_failed[i], key);
            err = bg__box_del_own(q->failed, key, 16);
        }
        bg__handle_free(q->s, c.drop_failed);
    }
    if (!err)
        err = leases_load(q);
    if (err) {
        bg_queue_close(q);
        return err;
    }
    q->open_done = 1;
    *out = q;
    return 0;
}

bg_err bg_queue_close(bg_queue *q)
{
    BG__JSON_SCOPE(q ? &q->s->alloc : NULL);
    if (!q)
        return 0;
    bg_err err = q->open_done ? ck_write(q) : 0;
    for (int l = 0; l < 2; l++)
        ring_free(q, &q->lanes[l]);
    set_clear(q);
    bg__handle_free(q->s, q->leases);
    bg__handle_free(q->s, q->lease_h);
    bg__handle_free(q->s, q->lix);
    bg__handle_free(q->s, q->ebuf);
    bg__lease_log_close(q->s, &q->log);
    /* The boxes belong to the store and close with it. */
    bg__handle_free(q->s, q);
    return err;
}

/* ---- operations ------------------------------------------------------------
 */

static bg_err enqueue(bg_queue *q, bg_lane lane, const char *idem,
                      const char *payload, size_t len, uint64_t retry_of,
                      uint64_t *id);

bg_err bg_queue_enqueue(bg_queue *q, bg_lane lane, const char *idem,
                        const char *payload, size_t len, uint64_t *id)
{
    BG__JSON_SCOPE(&q->s->alloc);
    return enqueue(q, lane, idem, payload, len, 0, id);
}

static bg_err enqueue(bg_queue *q, bg_lane lane, const char *idem,
                      const char *payload, size_t len, uint64_t retry_of,
                      uint64_t *id)
{
    char why[160];
    size_t ilen = idem ? strlen(idem) : 0;
    BG_FAIL_IF(bg_record_check_key(idem, ilen, why, sizeof why), q->s,
               BG_EINVALID, "idempotency key: %s", why);
    uint64_t dup, h = idem_hash(idem, ilen);
    set_prefetch(q, h); /* the record check hides the cache miss */
    bg_err verr = bg__record_check(payload, len, &q->s->alloc, why, sizeof why);
    BG_FAIL_IF(verr, q->s, verr, "op '%.80s': %s", idem, why);
    BG_TRY(find_idem(q, idem, h, &dup));
    if (dup) {
        *id = dup;
        return bg__handle_fail(q->s, BG_EEXISTS,
                               "op '%.80s' is already pending as %" PRIu64
                               "; not enqueued twice",
                               idem, dup);
    }
    int64_t now = bg__handle_now_ms(q->s);
    size_t elen;
    env_in in = {.idem = idem,
                 .lane = lane ? 1 : 0,
                 .at = now,
                 .retry_of = retry_of,
                 .op = payload,
                 .op_len = len};
    char *text = env_build(q, &in, &elen);
    if (!text)
        return BG_ENOMEM;
    uint64_t nid = q->next_id;
    char key[QKEY_LEN + 1];
    qkey(lane ? 1 : 0, nid, h, key);
    bg_write w = {0, key, QKEY_LEN, 0, text, elen};
    uint64_t off;
    uint32_t flen;
    bg_err err = bg__box_append_ext(q->pending, &w, 1, &off, &flen);
    env_release(q, text);
    if (err)
        return err;
    q->next_id++;
    BG_FAIL_IF(off >= (1ull << 40) || flen >= (1u << 23), q->s, BG_ENOSPACE,
               "box '" BG__PENDING_BOX "' is past the queue's limits "
               "(1 TiB); compact it");
    qent e = {nid, off, flen, 0};
    /* The op is durable; if memory runs out now, the index is rebuilt
     * from the box on the next open. */
    err = ring_push(q, &q->lanes[lane ? 1 : 0], e);
    if (!err)
        err = set_add(q, h, nid);
    q->live_bytes += flen;
    if (!q->oldest_ms)
        q->oldest_ms = now;
    *id = nid;
    return err;
}

static bg_err fill_op(bg_queue *q, const env *en, uint64_t id, int lane,
                      bg_queue_op *op)
{
    memset(op, 0, sizeof *op);
    op->id = id;
    op->lane = (bg_lane)lane;
    op->attempts = en->attempts;
    op->enqueued_ms = en->at;
    op->failed_ms = en->failed_at;
    op->store = q->s;
    op->idem = qdup(q->s, en->idem, strlen(en->idem));
    op->payload = qdup(q->s, en->op, en->op_len);
    op->last_error = en->err ? qdup(q->s, en->err, strlen(en->err)) : NULL;
    if (!op->idem || !op->payload || (en->err && !op->last_error)) {
        bg_queue_op_clear(op);
        return bg__handle_fail(q->s, BG_ENOMEM, "out of memory");
    }
    op->payload_len = en->op_len;
    return 0;
}

/* Compaction is due when most of the box is acked ops: over 1 MiB and over
 * three times the live frames. The cost is O(live), paid once per that
 * much churn, and never inside an ack: bg_queue_maintain pays it when the
 * app says it has time, and a lease that finds the queue empty pays it
 * when it is nearly free (no live frame to copy). */
#define COMPACT_MIN (1u << 20)

static int compact_due(const bg_queue *q)
{
    uint64_t end = bg__box_end(q->pending);
    return end > COMPACT_MIN && end > 3 * q->live_bytes;
}

bg_err bg_queue_lease(bg_queue *q, bg_queue_op *op)
{
    BG__JSON_SCOPE(&q->s->alloc);
    memset(op, 0, sizeof *op); /* clearable whatever the answer */
    BG_FAIL_IF(q->s->read_only, q->s, BG_ESTATE,
               "the store is open read-only: a lease is written to "
               "'" BG__LEASE_FILE "'");
    int64_t now = bg__handle_now_ms(q->s);
    for (int l = 1; l >= 0; l--) {
        ring *r = &q->lanes[l];
        ring_trim(r);
        for (size_t i = 0; i < r->n; i++) {
            qent *e = ring_at(r, i);
            if (!e->id)
                continue;
            if (e->leased) {
                lease *ls = find_lease(q, e->id);
                if (ls && ls->until > now)
                    continue;
                end_lease(q, e); /* expired: deliver again */
            }
            char *text;
            env en;
            BG_TRY(read_env(q, e, &text, &en));
            lease nl = {e->id, en.at, now + q->o.lease_ms, en.attempts};
            uint64_t h = idem_hash(en.idem, strlen(en.idem));
            set_prefetch(q, h); /* for the ack: the lease record's write
                                   hides the miss */
            bg_err err = fill_op(q, &en, e->id, l, op);
            env_clear(&en);
            bg__handle_free(q->s, text);
            if (!err)
                err = lease_room(q);
            /* The record first: a lease the next process cannot see is
             * not handed out. No sync (see lease_log_int.h). */
            if (!err)
                err = bg__lease_log_append(q->s, &q->log, &nl);
            if (err) {
                bg_queue_op_clear(op);
                return err;
            }
            lease_push(q, &nl, h);
            e->leased = 1;
            op->lease_until_ms = nl.until;
            /* The lease holds; a tidy that fails leaves the log longer
             * and is tried again at a later lease. */
            if (leases_tidy(q, now)) {
            }
            return 0;
        }
    }
    /* Nothing pending: a compaction that is due copies no frame now. The
     * answer stays "nothing to lease"; a compaction that fails leaves the
     * box as it was and is tried again later. */
    if (!q->live_bytes && compact_due(q) && bg_queue_compact(q)) {
    }
    return bg__handle_fail(q->s, BG_ENOTFOUND, "no op to lease");
}

/* Delete a pending op from the box and the index. Its key (lane, id and
 * idempotency hash) is read back from the frame: no payload is parsed. */
static bg_err del_pending(bg_queue *q, uint64_t id)
{
    int lane;
    qent *e = find_any(q, id, &lane);
    BG_FAIL_IF(!e, q->s, BG_ENOTFOUND, "op %" PRIu64 " is not pending", id);
    char key[64];
    size_t klen;
    int l2;
    uint64_t id2, h = 0;
    lease *held = e->leased ? find_lease(q, id) : NULL;
    if (held) { /* leased: its key is known */
        h = q->lease_h[held - q->leases];
        qkey(lane, id, h, key);
    } else {
        BG_TRY(bg__box_read_key_at(q->pending, e->off, key, sizeof key, &klen));
        BG_FAIL_IF(
            parse_qkey(key, klen, &l2, &id2, &h) || id2 != id, q->s,
            BG_ECORRUPT,
            "box '" BG__PENDING_BOX "': op %" PRIu64 " has a foreign key", id);
    }
    bg_write w = {1, key, QKEY_LEN, 0, NULL, 0};
    BG_TRY(bg__box_append_ext(q->pending, &w, 1, NULL, NULL));
    end_lease(q, e);
    q->live_bytes -= e->flen;
    e->id = 0;
    q->lanes[lane].dead++;
    ring_trim(&q->lanes[lane]);
    set_del(q, id, h);
    if (!q->lanes[0].n && !q->lanes[1].n)
        q->oldest_ms = 0;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = (*(qent *const *)a)->id, y = (*(qent *const *)b)->id;
    return x < y ? -1 : x > y;
}

bg_err bg_queue_compact(bg_queue *q)
{
    BG__JSON_SCOPE(&q->s->alloc);
    size_t n = 0;
    for (int l = 0; l < 2; l++)
        n += q->lanes[l].n - q->lanes[l].dead;
    qent **v = bg__handle_malloc(q->s, (n ? n : 1) * sizeof *v);
    uint64_t *offs = bg__handle_malloc(q->s, (n ? n : 1) * sizeof *offs);
    uint64_t *noffs = bg__handle_malloc(q->s, (n ? n : 1) * sizeof *noffs);
    uint32_t *flens = bg__handle_malloc(q->s, (n ? n : 1) * sizeof *flens);
    bg_err err = v && offs && noffs && flens ? 0 : BG_ENOMEM;
    if (!err) {
        size_t k = 0;
        for (int l = 0; l < 2; l++)
            for (size_t i = 0; i < q->lanes[l].n; i++)
                if (ring_at(&q->lanes[l], i)->id)
                    v[k++] = ring_at(&q->lanes[l], i);
        /* Id order: a scan of the new file rebuilds each lane in order (a
         * nack's rewrite sits later in the old file than younger ops). */
        qsort(v, n, sizeof *v, cmp_id);
        for (size_t i = 0; i < n; i++) {
            offs[i] = v[i]->off;
            flens[i] = v[i]->flen;
        }
        /* A marker with the next id: acked ops leave the box, their ids
         * are never handed out again. */
        char mark[18];
        snprintf(mark, sizeof mark, "~%016" PRIx64, q->next_id);
        bg_write trailer = {0, mark, 17, 0, "0", 1};
        int swapped = 0;
        err = bg__box_rewrite_ext(q->pending, offs, flens, n, noffs, &trailer,
                                  &swapped);
        for (size_t i = 0; i < n && swapped; i++)
            v[i]->off = noffs[i];
        if (swapped && !err)
            err = ck_write(q);
    }
    bg__handle_free(q->s, v);
    bg__handle_free(q->s, offs);
    bg__handle_free(q->s, noffs);
    bg__handle_free(q->s, flens);
    return err;
}

bg_err bg_queue_ack(bg_queue *q, uint64_t id)
{
    BG__JSON_SCOPE(&q->s->alloc);
    return del_pending(q, id);
}

bg_err bg_queue_maintain(bg_queue *q, int *compacted)
{
    *compacted = 0;
    BG_FAIL_IF(q->s->read_only, q->s, BG_ESTATE,
               "the store is open read-only: nothing to maintain");
    if (!compact_due(q))
        return 0;
    BG_TRY(bg_queue_compact(q));
    *compacted = 1;
    return 0;
}

bg_err bg_queue_nack(bg_queue *q, uint64_t id, const char *error, int *failed)
{
    BG__JSON_SCOPE(&q->s->alloc);
    *failed = 0;
    int lane;
    qent *e = find_any(q, id, &lane);
    BG_FAIL_IF(!e, q->s, BG_ENOTFOUND, "op %" PRIu64 " is not pending", id);
    char *text;
    env en;
    BG_TRY(read_env(q, e, &text, &en));
    uint32_t attempts = en.attempts + 1;
    char key[17];
    id_key(id, key);
    size_t elen;
    bg_err err = 0;
    int to_failed = attempts >= q->o.max_attempts;
    env_in in = {.idem = en.idem,
                 .lane = en.lane,
                 .at = en.at,
                 .attempts = attempts,
                 .err = error ? error : "",
                 .failed_at = to_failed ? bg__handle_now_ms(q->s) : 0,
                 .op = en.op,
                 .op_len = en.op_len};
    char *next = env_build(q, &in, &elen);
    if (!next) {
        err = BG_ENOMEM;
    } else if (to_failed) {
        /* Into failed_ops first, then out of pending_ops. */
        err = put_failed(q, key, next, elen);
        if (!err)
            err = del_pending(q, id);
        if (!err)
            *failed = 1;
    } else {
        char pkey[QKEY_LEN + 1];
        qkey(lane, id, idem_hash(en.idem, strlen(en.idem)), pkey);
        bg_write w = {0, pkey, QKEY_LEN, 0, next, elen};
        uint64_t off;
        uint32_t flen;
        err = bg__box_append_ext(q->pending, &w, 1, &off, &flen);
        if (!err) {
            q->live_bytes += flen - (uint64_t)e->flen;
            e->off = off;
            e->flen = flen;
            end_lease(q, e);
        }
    }
    if (next)
        env_release(q, next);
    env_clear(&en);
    bg__handle_free(q->s, text);
    return err;
}

/* A record of failed_ops: its key is an op id and its value an envelope.
 * Returns 0 with both (env_clear *en), BG_ECORRUPT for a record that is
 * not a failed op (skipped by the callers), or BG_ENOMEM (which stops
 * them: a check that ran out of memory must not pass for one that found
 * nothing). */
static bg_err failed_op(bg_store *s, const bg_record *r, env *en, uint64_t *id)
{
    if (key_id(r->key, r->key_len, id))
        return BG_ECORRUPT;
    return env_parse(s, r->value, r->value_len, en);
}

typedef struct find_failed_ctx {
    bg_store *s;
    const char *idem;
    uint64_t id;
    char *value;
    size_t len;
    bg_err err;
} find_failed_ctx;

static int find_failed(void *arg, const bg_record *r)
{
    find_failed_ctx *c = arg;
    env en;
    uint64_t id;
    bg_err perr = failed_op(c->s, r, &en, &id);
    if (perr)
        return skip_or_stop(perr, &c->err);
    int hit = !strcmp(en.idem, c->idem);
    env_clear(&en);
    if (!hit)
        return 0;
    c->id = id;
    c->value = qdup(c->s, r->value, r->value_len);
    if (!c->value)
        return skip_or_stop(BG_ENOMEM, &c->err);
    c->len = r->value_len;
    return 1;
}

bg_err bg_queue_retry(bg_queue *q, const char *idem, uint64_t *id)
{
    BG__JSON_SCOPE(&q->s->alloc);
    find_failed_ctx c = {.s = q->s, .idem = idem};
    BG_TRY(bg_box_iterate(q->failed, find_failed, &c));
    if (c.err)
        return c.err;
    BG_FAIL_IF(!c.value, q->s, BG_ENOTFOUND,
               "no failed op with idempotency key '%.80s'", idem);
    env en;
    bg_err err = env_parse(q->s, c.value, c.len, &en);
    if (!err) {
        /* Pending first (a new id), then out of failed_ops. */
        err = enqueue(q, BG_LANE_NORMAL, en.idem, en.op, en.op_len, c.id, id);
        if (!err) {
            char key[17];
            id_key(c.id, key);
            err = bg__box_del_own(q->failed, key, 16);
        }
        env_clear(&en);
    }
    bg__handle_free(q->s, c.value);
    return err;
}

typedef struct purge_ctx {
    bg_store *s;
    int64_t cutoff;
    uint64_t *ids;
    size_t n, cap;
    bg_err err;
} purge_ctx;

static int purge_one(void *arg, const bg_record *r)
{
    purge_ctx *c = arg;
    env en;
    uint64_t id;
    bg_err perr = failed_op(c->s, r, &en, &id);
    if (perr)
        return skip_or_stop(perr, &c->err);
    int old = en.failed_at && en.failed_at < c->cutoff;
    env_clear(&en);
    if (!old)
        return 0;
    bg_err gerr =
        bg__handle_grow(c->s, &c->ids, c->n, &c->cap, sizeof *c->ids, 16);
    if (gerr)
        return skip_or_stop(gerr, &c->err);
    c->ids[c->n++] = id;
    return 0;
}

bg_err bg_queue_purge(bg_queue *q, uint64_t *purged)
{
    BG__JSON_SCOPE(&q->s->alloc);
    *purged = 0;
    purge_ctx c = {.s = q->s,
                   .cutoff = bg__handle_now_ms(q->s) - q->o.retention_ms};
    bg_err err = bg_box_iterate(q->failed, purge_one, &c);
    if (!err)
        err = c.err;
    for (size_t i = 0; i < c.n && !err; i++) {
        char key[17];
        id_key(c.ids[i], key);
        err = bg__box_del_own(q->failed, key, 16);
        if (!err)
            (*purged)++;
    }
    bg__handle_free(q->s, c.ids);
    return err;
}

typedef struct list_ctx {
    bg_queue *q;
    bg_queue_op_fn fn;
    void *arg;
    bg_err err;
} list_ctx;

static int list_one(void *arg, const bg_record *r)
{
    list_ctx *c = arg;
    env en;
    uint64_t id;
    bg_err perr = failed_op(c->q->s, r, &en, &id);
    if (perr)
        return skip_or_stop(perr, &c->err);
    bg_queue_op op;
    c->err = fill_op(c->q, &en, id, en.lane, &op);
    env_clear(&en);
    if (c->err)
        return 1;
    int stop = c->fn(c->arg, &op);
    bg_queue_op_clear(&op);
    return stop;
}

bg_err bg_queue_list_failed(bg_queue *q, bg_queue_op_fn fn, void *arg)
{
    BG__JSON_SCOPE(&q->s->alloc);
    list_ctx c = {q, fn, arg, 0};
    BG_TRY(bg_box_iterate(q->failed, list_one, &c));
    return c.err;
}

void bg_queue_stats_of(const bg_queue *q, bg_queue_stats *st)
{
    memset(st, 0, sizeof *st);
    for (int l = 0; l < 2; l++)
        st->pending[l] = q->lanes[l].n - q->lanes[l].dead;
    int64_t now = bg__handle_now_ms(q->s);
    for (size_t i = 0; i < q->nleases; i++)
        st->leased += q->leases[i].until > now;
    bg_box_stats bs;
    bg_box_stats_of(q->failed, &bs);
    st->failed = bs.records;
    st->next_id = q->next_id;
    st->oldest_ms = q->oldest_ms;
    st->compact_due = compact_due(q);
}

bg_err bg_queue_head_of(bg_queue *q, bg_lane lane, bg_queue_head *h)
{
    BG__JSON_SCOPE(&q->s->alloc);
    memset(h, 0, sizeof *h);
    ring *r = &q->lanes[lane == BG_LANE_EMERGENCY];
    ring_trim(r);
    for (size_t i = 0; i < r->n; i++) {
        qent *e = ring_at(r, i);
        if (!e->id)
            continue;
        char *text;
        env en;
        BG_TRY(read_env(q, e, &text, &en));
        h->id = e->id;
        h->attempts = en.attempts;
        h->enqueued_ms = en.at;
        env_clear(&en);
        bg__handle_free(q->s, text);
        const lease *ls = e->leased ? find_lease(q, e->id) : NULL;
        if (ls && ls->until > bg__handle_now_ms(q->s))
            h->lease_until_ms = ls->until;
        return 0;
    }
    return BG_ENOTFOUND;
}

/* The census's own count of live keys, from the frames: a set of key
 * hashes (the top bit: an op's key), tombstones where one was deleted. */
typedef struct census_ctx {
    bg_queue *q;
    uint64_t *v;
    size_t cap, used; /* used: slots not empty, tombstones included */
    bg_queue_census *c;
} census_ctx;

#define CENSUS_GONE UINT64_MAX

static uint64_t *census_slot(census_ctx *x, uint64_t h, int insert)
{
    size_t m = x->cap - 1, i = (size_t)h & m;
    uint64_t *grave = NULL;
    for (;; i = (i + 1) & m) {
        if (x->v[i] == h)
            return &x->v[i];
        if (x->v[i] == CENSUS_GONE && !grave)
            grave = &x->v[i];
        if (!x->v[i])
            return insert ? (grave ? grave : &x->v[i]) : NULL;
    }
}

static bg_err census_frame(void *arg, const bg__frame_info *fi)
{
    census_ctx *x = arg;
    if (!fi)
        return 0;
    int lane;
    uint64_t id, h;
    int op = !parse_qkey(fi->key, fi->klen, &lane, &id, &h);
    if (!op && fi->klen == 17 && fi->key[0] == '~' && !hex16(fi->key + 1, &id))
        return 0; /* the id floor */
    uint64_t k = XXH3_64bits(fi->key, fi->klen) >> 1 | (uint64_t)op << 63;
    if (!k)
        k = 1;
    if (k == CENSUS_GONE)
        k--;
    if (2 * (x->used + 1) > x->cap) { /* grow (and drop the tombstones) */
        size_t cap = x->cap ? x->cap * 2 : 1024;
        uint64_t *old = x->v;
        size_t ocap = x->cap;
        x->v = bg__handle_malloc(x->q->s, cap * sizeof *x->v);
        if (!x->v) {
            x->v = old;
            return BG_ENOMEM;
        }
        memset(x->v, 0, cap * sizeof *x->v);
        x->cap = cap;
        x->used = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i] && old[i] != CENSUS_GONE) {
                *census_slot(x, old[i], 1) = old[i];
                x->used++;
            }
        bg__handle_free(x->q->s, old);
    }
    uint64_t *at = census_slot(x, k, !fi->del);
    uint64_t *count = op ? &x->c->stored : &x->c->foreign;
    if (fi->del) {
        if (at) {
            *at = CENSUS_GONE;
            (*count)--;
        }
    } else if (*at != k) {
        x->used += !*at;
        *at = k;
        (*count)++;
    }
    return 0;
}

bg_err bg_queue_census_of(bg_queue *q, bg_queue_census *c)
{
    memset(c, 0, sizeof *c);
    bg_queue_stats st;
    bg_queue_stats_of(q, &st);
    c->indexed = st.pending[0] + st.pending[1];
    census_ctx x = {q, NULL, 0, 0, c};
    bg_err err = bg__box_scan_with(q->pending, census_frame, &x);
    bg__handle_free(q->s, x.v);
    BG_TRY(err);
    /* A rebuild by the queue's own indexing, into a scratch queue: q's
     * index and leases stay as they are. */
    bg_queue *t = bg__handle_malloc(q->s, sizeof *t);
    if (!t)
        return BG_ENOMEM;
    memset(t, 0, sizeof *t);
    t->s = q->s;
    t->o = q->o;
    t->pending = q->pending;
    t->next_id = 1;
    err = bg__box_scan_with(q->pending, index_frame, t);
    for (int l = 0; l < 2; l++) {
        ring_trim(&t->lanes[l]);
        c->rebuilt += t->lanes[l].n - t->lanes[l].dead;
        ring_free(t, &t->lanes[l]);
    }
    set_clear(t);
    bg__handle_free(q->s, t);
    return err;
}

void bg_queue_op_clear(bg_queue_op *op)
{
    if (op->store) {
        bg__handle_free(op->store, op->idem);
        bg__handle_free(op->store, op->payload);
        bg__handle_free(op->store, op->last_error);
    }
    memset(op, 0, sizeof *op);
}

/* ---- the processing lock ---------------------------------------------------
 */

/* The lock record in meta: owner ("" when none, or unreadable) and since. */
static bg_err read_lock(bg_queue *q, bg_box *meta, char *owner, size_t cap,
                        int64_t *since)
{
    uint32_t t;
    char *v = NULL;
    size_t n;
    owner[0] = '\0';
    *since = 0;
    bg_err err = bg_box_get(meta, LOCK_KEY, strlen(LOCK_KEY), &t, &v, &n);
    if (err)
        return err == BG_ENOTFOUND ? 0 : err;
    cJSON *doc;
    err = bg__json_parse(v, n, &doc);
    bg__handle_free(q->s, v);
    if (err == BG_ENOMEM)
        return err;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, "owner");
    const cJSON *sn = cJSON_GetObjectItemCaseSensitive(doc, "since");
    if (cJSON_IsString(o) && cJSON_IsNumber(sn)) {
        snprintf(owner, cap, "%s", o->valuestring);
        *since = clamp_i64(sn->valuedouble);
    }
    cJSON_Delete(doc);
    return 0;
}

bg_err bg_queue_lock_info(bg_queue *q, char *owner, size_t cap,
                          int64_t *since_ms)
{
    BG__JSON_SCOPE(&q->s->alloc);
    owner[0] = '\0';
    *since_ms = 0;
    bg_box *meta;
    bg_err err = bg_box_open(q->s, BG__META_BOX, 0, &meta);
    if (err == BG_ENOTFOUND)
        return 0;
    BG_TRY(err);
    return read_lock(q, meta, owner, cap, since_ms);
}

bg_err bg_queue_lock(bg_queue *q, const char *owner, int *was_stale)
{
    BG__JSON_SCOPE(&q->s->alloc);
    *was_stale = 0;
    char why[160];
    BG_FAIL_IF(
        bg_record_check_key(owner, owner ? strlen(owner) : 0, why, sizeof why),
        q->s, BG_EINVALID, "lock owner: %s", why);
    bg_box *meta;
    BG_TRY(bg_box_open(q->s, BG__META_BOX, BG_BOX_CREATE, &meta));
    int64_t now = bg__handle_now_ms(q->s);
    char old_owner[256];
    int64_t since;
    bg_err err = read_lock(q, meta, old_owner, sizeof old_owner, &since);
    if (err)
        return err;
    if (old_owner[0] && strcmp(old_owner, owner)) {
        BG_FAIL_IF(now - since < q->o.lock_stale_ms, q->s, BG_ELOCKED,
                   "the queue is locked by '%s' since %" PRId64
                   " ms ago (stale after %" PRId64 " ms)",
                   old_owner, now - since, q->o.lock_stale_ms);
        /* Stale: take it over, and say so in the audit box. */
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "event", "stale_queue_lock_taken");
        cJSON_AddStringToObject(rec, "old_owner", old_owner);
        cJSON_AddNumberToObject(rec, "old_since", (double)since);
        cJSON_AddStringToObject(rec, "new_owner", owner);
        cJSON_AddNumberToObject(rec, "at", (double)now);
        uint8_t r[4];
        bg__vfs_random(q->s, r, sizeof r);
        char akey[48];
        snprintf(akey, sizeof akey,
                 "%016" PRIx64 "-%02x%02x%02x%02x-queue-lock", (uint64_t)now,
                 r[0], r[1], r[2], r[3]);
        err = rec ? bg__meta_audit(q->s, akey, rec) : BG_ENOMEM;
        cJSON_Delete(rec);
        if (err)
            return err;
        *was_stale = 1;
    }
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "owner", owner);
    cJSON_AddNumberToObject(rec, "since", (double)now);
    char *txt = bg__json_print(rec);
    cJSON_Delete(rec);
    if (!txt)
        return BG_ENOMEM;
    err = bg__box_put_internal(meta, LOCK_KEY, txt, strlen(txt));
    cJSON_free(txt);
    return err;
}

bg_err bg_queue_unlock(bg_queue *q, const char *owner)
{
    BG__JSON_SCOPE(&q->s->alloc);
    bg_box *meta;
    BG_TRY(bg_box_open(q->s, BG__META_BOX, BG_BOX_CREATE, &meta));
    uint32_t t;
    char *v = NULL;
    size_t n;
    bg_err err = bg_box_get(meta, LOCK_KEY, strlen(LOCK_KEY), &t, &v, &n);
    BG_FAIL_IF(err == BG_ENOTFOUND, q->s, BG_ESTATE, "the queue is not locked");
    if (err)
        return err;
    cJSON *doc;
    err = bg__json_parse(v, n, &doc);
    bg__handle_free(q->s, v);
    if (err == BG_ENOMEM)
        return err;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, "owner");
    int mine = cJSON_IsString(o) && !strcmp(o->valuestring, owner);
    cJSON_Delete(doc);
    BG_FAIL_IF(!mine, q->s, BG_ESTATE, "the queue lock is not held by '%s'",
               owner);
    bg_write w = {1, LOCK_KEY, strlen(LOCK_KEY), 0, NULL, 0};
    return bg__box_append_ext(meta, &w, 1, NULL, NULL);
}

const char *bg__queue_check(bg_queue *q)
{
    static char msg[160];
    for (int l = 0; l < 2; l++) {
        ring *r = &q->lanes[l];
        size_t dead = 0;
        uint64_t last = 0;
        for (size_t i = 0; i < r->n; i++) {
            qent *e = ring_at(r, i);
            if (!e->id) {
                dead++;
                continue;
            }
            if (e->id <= last) {
                snprintf(msg, sizeof msg,
                         "lane %d not in id order at %zu: %llu after %llu", l,
                         i, (unsigned long long)e->id,
                         (unsigned long long)last);
                return msg;
            }
            last = e->id;
        }
        if (dead != r->dead) {
            snprintf(msg, sizeof msg, "lane %d dead %zu counted %zu", l, dead,
                     r->dead);
            return msg;
        }
    }
    /* The idempotency set: one slot per live op across both tables,
     * none left unmoved below omoved. */
    size_t live = 0, slots = 0;
    for (int l = 0; l < 2; l++)
        live += q->lanes[l].n - q->lanes[l].dead;
    for (size_t i = 0; i < q->setcap; i++)
        slots += q->set[i].hi & 1;
    for (size_t i = 0; i < q->ocap; i++) {
        if ((q->oset[i].hi & 1) && i < q->omoved) {
            snprintf(msg, sizeof msg, "old set slot %zu below %zu not moved", i,
                     q->omoved);
            return msg;
        }
        slots += q->oset[i].hi & 1;
    }
    if (slots != q->setn || q->setn != live) {
        snprintf(msg, sizeof msg,
                 "idempotency set holds %zu slots, counts %zu, for %zu live "
                 "ops",
                 slots, q->setn, live);
        return msg;
    }
    /* Every entry is found by a probe from its home: no empty slot lies
     * between them. */
    for (int t = 0; t < 2; t++) {
        const islot *v = t ? q->oset : q->set;
        size_t cap = t ? q->ocap : q->setcap;
        for (size_t i = 0; i < cap; i++) {
            if (!(v[i].hi & 1))
                continue;
            for (size_t j = slot_home(v[i].hi, cap - 1); j != i;
                 j = (j + 1) & (cap - 1)) {
                if (!v[j].hi) {
                    snprintf(msg, sizeof msg,
                             "%s set slot %zu is past an empty slot from its "
                             "home",
                             t ? "old" : "new", i);
                    return msg;
                }
            }
        }
    }
    size_t used = 0;
    for (size_t i = 0; i < q->lixcap; i++)
        used += q->lix[i] != 0;
    for (size_t k = 0; k < q->nleases; k++) {
        lease *l = find_lease(q, q->leases[k].id);
        int lane;
        qent *e = find_any(q, q->leases[k].id, &lane);
        if (l != &q->leases[k] || !e || !e->leased) {
            snprintf(msg, sizeof msg, "lease %zu of op %llu: %s", k,
                     (unsigned long long)q->leases[k].id,
                     l != &q->leases[k] ? "not found by its id"
                                        : "its op is not pending and leased");
            return msg;
        }
    }
    if (used != q->nleases) {
        snprintf(msg, sizeof msg, "lease table holds %zu of %zu leases", used,
                 q->nleases);
        return msg;
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < q->lanes[l].n; i++) {
            const qent *e = ring_at(&q->lanes[l], i);
            if (e->leased && !find_lease(q, e->id)) {
                snprintf(msg, sizeof msg,
                         "op %llu is marked leased and holds no lease",
                         (unsigned long long)e->id);
                return msg;
            }
        }
    }
    return NULL;
}

void bg__queue_set_state(const bg_queue *q, size_t *cap, size_t *ocap,
                         size_t *omoved)
{
    *cap = q->setcap;
    *ocap = q->oset ? q->ocap : 0;
    *omoved = q->omoved;
}
