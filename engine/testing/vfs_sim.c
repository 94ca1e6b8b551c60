/*
 * The simulated disk (see sim.h for the model). Small and plain on purpose:
 * linear searches over a few dozen entries, whole-file buffers. It exists to
 * be obviously right, so that crash-point enumeration and the stateful
 * fuzzers can trust what it says survives a power loss.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"
#include "boxguard/sim.h"

#define SECTOR 512

enum { OP_WRITE, OP_TRUNC };
enum { DOP_CREATE, DOP_UNLINK, DOP_RENAME, DOP_MKDIR, DOP_RMDIR };

typedef struct sim_buf {
    uint8_t *p;
    size_t len, cap;
} sim_buf;

typedef struct sim_op {
    int kind;
    uint64_t off; /* write offset, or the new size of a truncate */
    size_t len;
    uint8_t *data;
} sim_op;

typedef struct sim_node {
    int is_dir;
    sim_buf dur; /* what is on the platter */
    sim_buf cur; /* what reads see */
    sim_op *ops; /* unsynced operations, oldest first */
    size_t nops, capops;
    int lock_ex, lock_sh;
} sim_node;

typedef struct sim_ent {
    char *path;
    size_t node;
} sim_ent;

typedef struct sim_ns {
    sim_ent *e;
    size_t n, cap;
} sim_ns;

typedef struct sim_dop {
    int kind;
    char *a, *b; /* path; rename: from, to */
    size_t node;
} sim_dop;

struct bg_file {
    bg_sim *sim;
    size_t node;
    uint64_t gen;
    int writable;
    int lock; /* 0 none, 1 exclusive, 2 shared */
};

struct bg_sim {
    bg_vfs vfs;
    uint64_t rng;
    sim_node *nodes;
    size_t nnodes, capnodes;
    sim_ns cur, dur;
    sim_dop *dops;
    size_t ndops, capdops;
    uint64_t gen;
    int frozen;
    uint64_t fail_at;
    bg_err fail_err;
    uint64_t crash_after;
    uint64_t fail_alloc_at; /* this allocation fails (1-based); 0: none */
    bg_sim_stats stats;
};

/* splitmix64: tiny, good enough for choosing crash outcomes. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return n ? rng_next(s) % n : 0;
}

/* ---- allocation --------------------------------------------------------
 * The disk's own memory, counted, so that a test can fail any allocation
 * of it in turn (bg_sim_fail_alloc_at). */

static void *sim_malloc(bg_sim *s, size_t n)
{
    if (++s->stats.allocs == s->fail_alloc_at)
        return NULL;
    return malloc(n ? n : 1);
}

static void *sim_realloc(bg_sim *s, void *p, size_t n)
{
    if (++s->stats.allocs == s->fail_alloc_at)
        return NULL;
    return realloc(p, n ? n : 1);
}

static void sim_free(bg_sim *s, void *p)
{
    (void)s;
    free(p);
}

static char *sim_strdup(bg_sim *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *p = sim_malloc(s, n);
    if (p)
        memcpy(p, str, n);
    return p;
}

static int sim_grow(bg_sim *s, void *arrp, size_t n, size_t *cap, size_t elem,
                    size_t min)
{
    if (n < *cap)
        return 0;
    if (++s->stats.allocs == s->fail_alloc_at)
        return -1;
    return bg__alloc_grow(NULL, arrp, n, cap, elem, min) ? -1 : 0;
}

/* ---- buffers ---------------------------------------------------------- */

static int buf_reserve(bg_sim *s, sim_buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = sim_realloc(s, b->p, cap);
    if (!p)
        return -1;
    /* Bytes past the end stay as they were (a truncate frees blocks, it
     * does not clear them: bg_sim_find_bytes looks there too); new ones
     * start as zeros. */
    memset(p + b->cap, 0, cap - b->cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_resize(bg_sim *s, sim_buf *b, size_t len)
{
    if (buf_reserve(s, b, len))
        return -1;
    if (len > b->len)
        memset(b->p + b->len, 0, len - b->len);
    b->len = len;
    return 0;
}

static int buf_write(bg_sim *s, sim_buf *b, uint64_t off, const uint8_t *data,
                     size_t len)
{
    size_t end = (size_t)off + len;
    if (end > b->len && buf_resize(s, b, end))
        return -1;
    if (len)
        memcpy(b->p + off, data, len);
    return 0;
}

static int buf_copy(bg_sim *s, sim_buf *dst, const sim_buf *src)
{
    if (buf_reserve(s, dst, src->len))
        return -1;
    if (src->len)
        memcpy(dst->p, src->p, src->len);
    dst->len = src->len;
    return 0;
}

/* ---- namespace -------------------------------------------------------- */

static sim_ent *ns_find(sim_ns *ns, const char *path)
{
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->e[i].path, path))
            return &ns->e[i];
    return NULL;
}

static int ns_set(bg_sim *s, sim_ns *ns, const char *path, size_t node)
{
    sim_ent *e = ns_find(ns, path);
    if (e) {
        e->node = node;
        return 0;
    }
    if (sim_grow(s, &ns->e, ns->n, &ns->cap, sizeof *ns->e, 16))
        return -1;
    char *copy = sim_strdup(s, path);
    if (!copy)
        return -1;
    ns->e[ns->n].path = copy;
    ns->e[ns->n].node = node;
    ns->n++;
    return 0;
}

static void ns_del(bg_sim *s, sim_ns *ns, const char *path)
{
    sim_ent *e = ns_find(ns, path);
    if (!e)
        return;
    sim_free(s, e->path);
    *e = ns->e[--ns->n];
}

static void ns_clear(bg_sim *s, sim_ns *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        sim_free(s, ns->e[i].path);
    ns->n = 0;
}

static int ns_copy(bg_sim *s, sim_ns *dst, const sim_ns *src)
{
    ns_clear(s, dst);
    for (size_t i = 0; i < src->n; i++)
        if (ns_set(s, dst, src->e[i].path, src->e[i].node))
            return -1;
    return 0;
}

/* The directory part of path: "a/b" -> "a", "a" -> "" (the root). */
static void parent_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

static int is_dir_path(bg_sim *s, sim_ns *ns, const char *path)
{
    if (!path[0])
        return 1; /* the root */
    sim_ent *e = ns_find(ns, path);
    return e && s->nodes[e->node].is_dir;
}

/* ---- nodes and directory operations ----------------------------------- */

static int node_new(bg_sim *s, int is_dir, size_t *out)
{
    if (sim_grow(s, &s->nodes, s->nnodes, &s->capnodes, sizeof *s->nodes, 16))
        return -1;
    memset(&s->nodes[s->nnodes], 0, sizeof s->nodes[0]);
    s->nodes[s->nnodes].is_dir = is_dir;
    *out = s->nnodes++;
    return 0;
}

static void node_clear_ops(bg_sim *s, sim_node *n)
{
    for (size_t i = 0; i < n->nops; i++)
        sim_free(s, n->ops[i].data);
    n->nops = 0;
}

static int node_push_op(bg_sim *s, sim_node *n, int kind, uint64_t off,
                        const uint8_t *data, size_t len)
{
    if (sim_grow(s, &n->ops, n->nops, &n->capops, sizeof *n->ops, 8))
        return -1;
    sim_op *op = &n->ops[n->nops];
    op->kind = kind;
    op->off = off;
    op->len = len;
    op->data = NULL;
    if (len) {
        op->data = sim_malloc(s, len);
        if (!op->data)
            return -1;
        memcpy(op->data, data, len);
    }
    n->nops++;
    return 0;
}

/* Take back the last node_push_op (its operation failed). */
static void node_pop_op(bg_sim *s, sim_node *n)
{
    sim_free(s, n->ops[--n->nops].data);
}

static int dop_push(bg_sim *s, int kind, const char *a, const char *b,
                    size_t node)
{
    if (sim_grow(s, &s->dops, s->ndops, &s->capdops, sizeof *s->dops, 16))
        return -1;
    sim_dop *d = &s->dops[s->ndops];
    d->kind = kind;
    d->node = node;
    d->a = sim_strdup(s, a);
    d->b = b ? sim_strdup(s, b) : NULL;
    if (!d->a || (b && !d->b)) {
        sim_free(s, d->a);
        sim_free(s, d->b);
        return -1;
    }
    s->ndops++;
    return 0;
}

/* Whether path is below dir ("dir/..."). */
static int is_below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return path && !strncmp(path, dir, n) && path[n] == '/';
}

/* Move the entries below from to below to (a directory's rename). Every
 * new name is made before any is changed: out of memory, nothing moves. */
static int ns_move_below(bg_sim *s, sim_ns *ns, const char *from,
                         const char *to)
{
    size_t n = strlen(from), k = 0;
    char **names = sim_malloc(s, (ns->n + 1) * sizeof *names);
    if (!names)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < ns->n && !rc; i++) {
        names[i] = NULL;
        if (!is_below(ns->e[i].path, from))
            continue;
        char p[1024];
        if (snprintf(p, sizeof p, "%s%s", to, ns->e[i].path + n) >=
                (int)sizeof p ||
            !(names[i] = sim_strdup(s, p)))
            rc = -1;
        k = i + 1;
    }
    for (size_t i = 0; i < ns->n && i < k; i++) {
        if (!names[i])
            continue;
        if (rc) {
            sim_free(s, names[i]);
        } else {
            sim_free(s, ns->e[i].path);
            ns->e[i].path = names[i];
        }
    }
    sim_free(s, names);
    return rc;
}

static int dop_apply(bg_sim *s, sim_ns *ns, const sim_dop *d)
{
    switch (d->kind) {
    case DOP_CREATE:
    case DOP_MKDIR:
        return ns_set(s, ns, d->a, d->node);
    case DOP_UNLINK:
    case DOP_RMDIR:
        ns_del(s, ns, d->a);
        return 0;
    case DOP_RENAME:
        ns_del(s, ns, d->a);
        if (s->nodes[d->node].is_dir && ns_move_below(s, ns, d->a, d->b))
            return -1;
        return ns_set(s, ns, d->b, d->node);
    }
    return 0;
}

static void dop_free(bg_sim *s, sim_dop *d)
{
    sim_free(s, d->a);
    sim_free(s, d->b);
}

/* Take back the last dop_push (its operation failed). */
static void dop_pop(bg_sim *s)
{
    dop_free(s, &s->dops[--s->ndops]);
}

/* ---- operation accounting --------------------------------------------- */

static bg_err sim_begin(bg_sim *s)
{
    if (s->frozen)
        return BG_EIO;
    s->stats.ops++;
    if (s->fail_at && s->stats.ops == s->fail_at)
        return s->fail_err;
    return 0;
}

static void sim_changed(bg_sim *s)
{
    s->stats.changes++;
    if (s->crash_after && s->stats.changes == s->crash_after)
        s->frozen = 1;
}

static bg_sim *sim_of(const bg_vfs *vfs)
{
    return (bg_sim *)vfs->ctx;
}

static bg_err file_check(bg_file *f, sim_node **out)
{
    if (f->gen != f->sim->gen)
        return BG_EIO; /* handle from before a crash */
    *out = &f->sim->nodes[f->node];
    return 0;
}

/* ---- the vfs ---------------------------------------------------------- */

static bg_err sim_open(const bg_vfs *vfs, const char *path, int flags,
                       bg_file **out)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    sim_ent *e = ns_find(&s->cur, path);
    size_t node;
    int created = 0;
    if (e) {
        if ((flags & BG_OPEN_CREATE) && (flags & BG_OPEN_EXCL))
            return BG_EEXISTS;
        if (s->nodes[e->node].is_dir)
            return BG_EINVALID;
        node = e->node;
    } else {
        if (!(flags & BG_OPEN_CREATE))
            return BG_ENOTFOUND;
        char dir[1024];
        parent_of(path, dir, sizeof dir);
        if (!is_dir_path(s, &s->cur, dir))
            return BG_ENOTFOUND;
    }
    /* Everything that can run out of memory first, so that a failure
     * leaves the disk as it was (an unused node is never seen). */
    bg_file *f = sim_malloc(s, sizeof *f);
    if (!f)
        return BG_ENOMEM;
    if (!e) {
        if (node_new(s, 0, &node) ||
            dop_push(s, DOP_CREATE, path, NULL, node)) {
            sim_free(s, f);
            return BG_ENOMEM;
        }
        if (ns_set(s, &s->cur, path, node)) {
            dop_pop(s);
            sim_free(s, f);
            return BG_ENOMEM;
        }
        created = 1;
    }
    f->sim = s;
    f->node = node;
    f->gen = s->gen;
    f->writable = (flags & (BG_OPEN_WRITE | BG_OPEN_CREATE)) != 0;
    f->lock = 0;
    *out = f;
    if (created)
        sim_changed(s);
    return 0;
}

static void sim_close(const bg_vfs *vfs, bg_file *f)
{
    (void)vfs;
    if (!f)
        return;
    if (f->gen == f->sim->gen && f->lock) {
        sim_node *n = &f->sim->nodes[f->node];
        if (f->lock == 1)
            n->lock_ex = 0;
        else
            n->lock_sh--;
    }
    sim_free(f->sim, f);
}

static bg_err sim_read(const bg_vfs *vfs, bg_file *f, uint64_t off, void *buf,
                       size_t len, size_t *got)
{
    bg_sim *s = sim_of(vfs);
    sim_node *n;
    bg_err err = sim_begin(s);
    if (err || (err = file_check(f, &n)))
        return err;
    size_t avail = off < n->cur.len ? n->cur.len - (size_t)off : 0;
    size_t take = len < avail ? len : avail;
    if (take)
        memcpy(buf, n->cur.p + off, take);
    *got = take;
    return 0;
}

static bg_err sim_write(const bg_vfs *vfs, bg_file *f, uint64_t off,
                        const void *buf, size_t len)
{
    bg_sim *s = sim_of(vfs);
    sim_node *n;
    bg_err err = sim_begin(s);
    if (err || (err = file_check(f, &n)))
        return err;
    if (!f->writable)
        return BG_EINVALID;
    if (node_push_op(s, n, OP_WRITE, off, buf, len))
        return BG_ENOMEM;
    if (buf_write(s, &n->cur, off, buf, len)) {
        node_pop_op(s, n);
        return BG_ENOMEM;
    }
    sim_changed(s);
    return 0;
}

static bg_err sim_sync(const bg_vfs *vfs, bg_file *f)
{
    bg_sim *s = sim_of(vfs);
    sim_node *n;
    bg_err err = sim_begin(s);
    if (err || (err = file_check(f, &n)))
        return err;
    if (buf_copy(s, &n->dur, &n->cur))
        return BG_ENOMEM;
    node_clear_ops(s, n);
    sim_changed(s);
    return 0;
}

static bg_err sim_truncate(const bg_vfs *vfs, bg_file *f, uint64_t size)
{
    bg_sim *s = sim_of(vfs);
    sim_node *n;
    bg_err err = sim_begin(s);
    if (err || (err = file_check(f, &n)))
        return err;
    if (!f->writable)
        return BG_EINVALID;
    if (node_push_op(s, n, OP_TRUNC, size, NULL, 0))
        return BG_ENOMEM;
    if (buf_resize(s, &n->cur, (size_t)size)) {
        node_pop_op(s, n);
        return BG_ENOMEM;
    }
    sim_changed(s);
    return 0;
}

static bg_err sim_size(const bg_vfs *vfs, bg_file *f, uint64_t *size)
{
    bg_sim *s = sim_of(vfs);
    sim_node *n;
    bg_err err = sim_begin(s);
    if (err || (err = file_check(f, &n)))
        return err;
    *size = n->cur.len;
    return 0;
}

static bg_err sim_lock(const bg_vfs *vfs, bg_file *f, int exclusive)
{
    bg_sim *s = sim_of(vfs);
    sim_node *n;
    bg_err err = sim_begin(s);
    if (err || (err = file_check(f, &n)))
        return err;
    if (f->lock)
        return 0;
    if (n->lock_ex || (exclusive && n->lock_sh))
        return BG_ELOCKED;
    if (exclusive) {
        n->lock_ex = 1;
        f->lock = 1;
    } else {
        n->lock_sh++;
        f->lock = 2;
    }
    return 0;
}

static bg_err sim_rename(const bg_vfs *vfs, const char *from, const char *to)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    char d1[1024], d2[1024];
    parent_of(from, d1, sizeof d1);
    parent_of(to, d2, sizeof d2);
    if (strcmp(d1, d2))
        return BG_EINVALID; /* boxguard only renames within a directory */
    sim_ent *e = ns_find(&s->cur, from);
    if (!e)
        return BG_ENOTFOUND;
    size_t node = e->node;
    sim_ent *t = ns_find(&s->cur, to);
    if (t && s->nodes[t->node].is_dir)
        return BG_EINVALID;
    if (s->nodes[node].is_dir) {
        /* A directory moves with everything below it. Its entries must be
         * durable first (boxguard syncs a directory before it renames it),
         * so that the rename carries them whole through a crash. */
        if (t)
            return BG_EEXISTS;
        for (size_t i = 0; i < s->ndops; i++)
            if (is_below(s->dops[i].a, from) || is_below(s->dops[i].b, from))
                return BG_EINVALID;
    }
    if (dop_push(s, DOP_RENAME, from, to, node))
        return BG_ENOMEM;
    if (ns_set(s, &s->cur, to, node)) {
        dop_pop(s);
        return BG_ENOMEM;
    }
    if (s->nodes[node].is_dir && ns_move_below(s, &s->cur, from, to)) {
        ns_del(s, &s->cur, to); /* to did not exist: a directory's rename */
        dop_pop(s);
        return BG_ENOMEM;
    }
    ns_del(s, &s->cur, from);
    sim_changed(s);
    return 0;
}

static bg_err sim_unlink(const bg_vfs *vfs, const char *path)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    sim_ent *e = ns_find(&s->cur, path);
    if (!e)
        return BG_ENOTFOUND;
    if (s->nodes[e->node].is_dir)
        return BG_EINVALID;
    size_t node = e->node;
    if (dop_push(s, DOP_UNLINK, path, NULL, node))
        return BG_ENOMEM;
    ns_del(s, &s->cur, path);
    sim_changed(s);
    return 0;
}

static bg_err sim_mkdir(const bg_vfs *vfs, const char *path)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    if (!path[0] || ns_find(&s->cur, path))
        return BG_EEXISTS;
    char dir[1024];
    parent_of(path, dir, sizeof dir);
    if (!is_dir_path(s, &s->cur, dir))
        return BG_ENOTFOUND;
    size_t node;
    if (node_new(s, 1, &node) || dop_push(s, DOP_MKDIR, path, NULL, node))
        return BG_ENOMEM;
    if (ns_set(s, &s->cur, path, node)) {
        dop_pop(s);
        return BG_ENOMEM;
    }
    sim_changed(s);
    return 0;
}

/* Whether path names an entry directly below dir. */
static int is_child(const char *path, const char *dir)
{
    char p[1024];
    parent_of(path, p, sizeof p);
    return !strcmp(p, dir);
}

static bg_err sim_rmdir(const bg_vfs *vfs, const char *path)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    sim_ent *e = ns_find(&s->cur, path);
    if (!path[0] || !e)
        return BG_ENOTFOUND;
    if (!s->nodes[e->node].is_dir)
        return BG_EINVALID;
    for (size_t i = 0; i < s->cur.n; i++)
        if (is_child(s->cur.e[i].path, path))
            return BG_EEXISTS;
    /* The removals of its entries must be durable first (sync_dir of the
     * directory), as a journaling file system orders them: otherwise a
     * crash could keep the rmdir and lose them, leaving entries below a
     * directory that is gone. boxguard always syncs first. */
    for (size_t i = 0; i < s->ndops; i++)
        if (is_child(s->dops[i].a, path))
            return BG_EINVALID;
    size_t node = e->node;
    if (dop_push(s, DOP_RMDIR, path, NULL, node))
        return BG_ENOMEM;
    ns_del(s, &s->cur, path);
    sim_changed(s);
    return 0;
}

static bg_err sim_list(const bg_vfs *vfs, const char *dir, bg_vfs_list_fn fn,
                       void *arg)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    if (!is_dir_path(s, &s->cur, dir))
        return BG_ENOTFOUND;
    /* Collect first: the callback may change the namespace. */
    size_t n = 0;
    char **names = sim_malloc(s, (s->cur.n + 1) * sizeof *names);
    if (!names)
        return BG_ENOMEM;
    for (size_t i = 0; i < s->cur.n; i++) {
        char p[1024];
        parent_of(s->cur.e[i].path, p, sizeof p);
        if (strcmp(p, dir))
            continue;
        const char *base = s->cur.e[i].path + strlen(p) + (p[0] ? 1 : 0);
        if (!(names[n] = sim_strdup(s, base))) {
            err = BG_ENOMEM;
            break;
        }
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        if (!err && fn(arg, names[i]))
            err = 1;
        sim_free(s, names[i]);
    }
    sim_free(s, names);
    return err == 1 ? 0 : err;
}

static bg_err sim_sync_dir(const bg_vfs *vfs, const char *dir)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    if (!is_dir_path(s, &s->cur, dir))
        return BG_ENOTFOUND;
    /* The durable namespace with this directory's operations applied is
     * built aside, so that running out of memory changes nothing. */
    sim_ns next = {0};
    if (ns_copy(s, &next, &s->dur))
        goto nomem;
    char p[1024];
    for (size_t i = 0; i < s->ndops; i++) {
        parent_of(s->dops[i].a, p, sizeof p);
        if (!strcmp(p, dir) && dop_apply(s, &next, &s->dops[i]))
            goto nomem;
    }
    ns_clear(s, &s->dur);
    sim_free(s, s->dur.e);
    s->dur = next;
    size_t keep = 0;
    for (size_t i = 0; i < s->ndops; i++) {
        parent_of(s->dops[i].a, p, sizeof p);
        if (!strcmp(p, dir))
            dop_free(s, &s->dops[i]);
        else
            s->dops[keep++] = s->dops[i];
    }
    s->ndops = keep;
    sim_changed(s);
    return 0;
nomem:
    ns_clear(s, &next);
    sim_free(s, next.e);
    return BG_ENOMEM;
}

static bg_err sim_stat(const bg_vfs *vfs, const char *path, int *is_dir)
{
    bg_sim *s = sim_of(vfs);
    bg_err err = sim_begin(s);
    if (err)
        return err;
    if (!path[0]) {
        if (is_dir)
            *is_dir = 1;
        return 0;
    }
    sim_ent *e = ns_find(&s->cur, path);
    if (!e)
        return BG_ENOTFOUND;
    if (is_dir)
        *is_dir = s->nodes[e->node].is_dir;
    return 0;
}

static void sim_random(const bg_vfs *vfs, void *buf, size_t len)
{
    bg_sim *s = sim_of(vfs);
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)rng_next(&s->rng);
}

/* ---- power loss ------------------------------------------------------- */

static int apply_op(bg_sim *s, sim_buf *b, const sim_op *op)
{
    if (op->kind == OP_TRUNC)
        return buf_resize(s, b, (size_t)op->off);
    return buf_write(s, b, op->off, op->data, op->len);
}

/* Apply the chosen writes of ops[from, to) in a random order. */
static int apply_shuffled(bg_sim *s, sim_buf *b, sim_op *ops, size_t from,
                          size_t to, uint64_t *rng)
{
    size_t n = 0;
    size_t *pick = sim_malloc(s, (to - from + 1) * sizeof *pick);
    if (!pick)
        return -1;
    for (size_t i = from; i < to; i++)
        if (rng_next(rng) & 1)
            pick[n++] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(rng, i);
        size_t t = pick[i - 1];
        pick[i - 1] = pick[j];
        pick[j] = t;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = apply_op(s, b, &ops[pick[i]]);
    sim_free(s, pick);
    return rc;
}

static int apply_torn(bg_sim *s, sim_buf *b, const sim_op *op, uint64_t *rng)
{
    if (op->kind == OP_TRUNC)
        return (rng_next(rng) & 1) ? apply_op(s, b, op) : 0;
    uint64_t end = op->off + op->len;
    if ((rng_next(rng) & 1) && end > b->len && buf_resize(s, b, (size_t)end))
        return -1; /* the size reached disk, the data perhaps not */
    uint64_t pos = op->off;
    while (pos < end) {
        uint64_t next = (pos / SECTOR + 1) * SECTOR;
        if (next > end)
            next = end;
        size_t n = (size_t)(next - pos);
        uint8_t garbage[SECTOR];
        switch (rng_below(rng, 3)) {
        case 0: /* this sector never reached the disk */
            break;
        case 1:
            if (buf_write(s, b, pos, op->data + (pos - op->off), n))
                return -1;
            break;
        default:
            for (size_t i = 0; i < n; i++)
                garbage[i] = (uint8_t)rng_next(rng);
            if (buf_write(s, b, pos, garbage, n))
                return -1;
            break;
        }
        pos = next;
    }
    return 0;
}

static int node_crash(bg_sim *s, sim_node *n, bg_crash_mode mode, uint64_t *rng)
{
    sim_buf b = {0};
    if (buf_copy(s, &b, &n->dur))
        return -1;
    int rc = 0;
    switch (mode) {
    case BG_CRASH_DROP:
        break;
    case BG_CRASH_PREFIX: {
        size_t k = (size_t)rng_below(rng, n->nops + 1);
        for (size_t i = 0; i < k && !rc; i++)
            rc = apply_op(s, &b, &n->ops[i]);
        break;
    }
    case BG_CRASH_SUBSET: {
        /* Writes between two truncates land in any order; a truncate
         * lands or not, in its place. */
        size_t seg = 0;
        for (size_t i = 0; i <= n->nops && !rc; i++) {
            if (i < n->nops && n->ops[i].kind == OP_WRITE)
                continue;
            rc = apply_shuffled(s, &b, n->ops, seg, i, rng);
            if (!rc && i < n->nops && (rng_next(rng) & 1))
                rc = apply_op(s, &b, &n->ops[i]);
            seg = i + 1;
        }
        break;
    }
    case BG_CRASH_TORN:
        for (size_t i = 0; i < n->nops && !rc; i++)
            rc = apply_torn(s, &b, &n->ops[i], rng);
        break;
    }
    if (!rc)
        rc = buf_copy(s, &n->dur, &b) || buf_copy(s, &n->cur, &b);
    sim_free(s, b.p);
    node_clear_ops(s, n);
    n->lock_ex = n->lock_sh = 0;
    return rc;
}

bg_err bg_sim_crash(bg_sim *s, bg_crash_mode mode, uint64_t seed)
{
    uint64_t rng = seed ^ 0xC0FFEE5EEDull;
    size_t k =
        mode == BG_CRASH_DROP ? 0 : (size_t)rng_below(&rng, s->ndops + 1);
    bg_err err = 0;
    for (size_t i = 0; i < s->ndops; i++) {
        if (i < k && !err && dop_apply(s, &s->dur, &s->dops[i]))
            err = BG_ENOMEM;
        dop_free(s, &s->dops[i]);
    }
    s->ndops = 0;
    if (!err && ns_copy(s, &s->cur, &s->dur))
        err = BG_ENOMEM;
    for (size_t i = 0; i < s->nnodes && !err; i++)
        if (node_crash(s, &s->nodes[i], mode, &rng))
            err = BG_ENOMEM;
    s->gen++;
    s->frozen = 0;
    s->crash_after = 0;
    s->fail_at = 0;
    return err;
}

/* ---- public ----------------------------------------------------------- */

bg_sim *bg_sim_new(uint64_t seed)
{
    bg_sim *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rng = seed;
    s->vfs = (bg_vfs){
        .ctx = s,
        .open = sim_open,
        .close = sim_close,
        .read = sim_read,
        .write = sim_write,
        .sync = sim_sync,
        .truncate = sim_truncate,
        .size = sim_size,
        .lock = sim_lock,
        .rename = sim_rename,
        .unlink = sim_unlink,
        .mkdir = sim_mkdir,
        .list = sim_list,
        .sync_dir = sim_sync_dir,
        .stat = sim_stat,
        .rmdir = sim_rmdir,
        .random = sim_random,
    };
    return s;
}

void bg_sim_free(bg_sim *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        node_clear_ops(s, &s->nodes[i]);
        sim_free(s, s->nodes[i].ops);
        sim_free(s, s->nodes[i].dur.p);
        sim_free(s, s->nodes[i].cur.p);
    }
    sim_free(s, s->nodes);
    ns_clear(s, &s->cur);
    ns_clear(s, &s->dur);
    sim_free(s, s->cur.e);
    sim_free(s, s->dur.e);
    for (size_t i = 0; i < s->ndops; i++)
        dop_free(s, &s->dops[i]);
    sim_free(s, s->dops);
    sim_free(s, s);
}

const bg_vfs *bg_sim_vfs(bg_sim *s)
{
    return &s->vfs;
}

bg_sim_stats bg_sim_get_stats(const bg_sim *s)
{
    return s->stats;
}

void bg_sim_fail_at(bg_sim *s, uint64_t n, bg_err err)
{
    s->fail_at = n;
    s->fail_err = err;
}

void bg_sim_fail_alloc_at(bg_sim *s, uint64_t n)
{
    s->fail_alloc_at = n;
}

void bg_sim_crash_after(bg_sim *s, uint64_t n)
{
    s->crash_after = n;
    if (n && s->stats.changes >= n)
        s->frozen = 1;
}

int bg_sim_frozen(const bg_sim *s)
{
    return s->frozen;
}

static int buf_has(const uint8_t *p, size_t len, const void *needle, size_t n)
{
    for (size_t i = 0; p && n && i + n <= len; i++)
        if (p[i] == *(const uint8_t *)needle && !memcmp(p + i, needle, n))
            return 1;
    return 0;
}

size_t bg_sim_find_bytes(const bg_sim *s, const void *needle, size_t n,
                         int unlinked_only)
{
    size_t found = 0;
    for (size_t i = 0; i < s->nnodes; i++) {
        const sim_node *nd = &s->nodes[i];
        if (nd->is_dir)
            continue;
        int named = 0;
        for (size_t j = 0; j < s->cur.n && !named; j++)
            named = s->cur.e[j].node == i;
        if (named && unlinked_only)
            continue;
        /* The whole capacity: what a truncate cut off is still there. */
        int has = buf_has(nd->cur.p, nd->cur.cap, needle, n) ||
                  buf_has(nd->dur.p, nd->dur.cap, needle, n);
        for (size_t k = 0; k < nd->nops && !has; k++)
            has = buf_has(nd->ops[k].data, nd->ops[k].len, needle, n);
        found += (size_t)has;
    }
    return found;
}

bg_err bg_sim_read_file(bg_sim *s, const char *path, uint8_t **buf, size_t *len)
{
    sim_ent *e = ns_find(&s->cur, path);
    if (!e || s->nodes[e->node].is_dir)
        return BG_ENOTFOUND;
    sim_buf *b = &s->nodes[e->node].cur;
    *buf = sim_malloc(s, b->len ? b->len : 1);
    if (!*buf)
        return BG_ENOMEM;
    if (b->len)
        memcpy(*buf, b->p, b->len);
    *len = b->len;
    return 0;
}

bg_err bg_sim_write_file(bg_sim *s, const char *path, const uint8_t *buf,
                         size_t len)
{
    char dir[1024];
    parent_of(path, dir, sizeof dir);
    if (!is_dir_path(s, &s->cur, dir))
        return BG_ENOTFOUND;
    sim_ent *e = ns_find(&s->cur, path);
    size_t node;
    if (e) {
        if (s->nodes[e->node].is_dir)
            return BG_EINVALID;
        node = e->node;
        node_clear_ops(s, &s->nodes[node]);
    } else if (node_new(s, 0, &node) || ns_set(s, &s->cur, path, node)) {
        return BG_ENOMEM;
    }
    sim_buf tmp = {(uint8_t *)buf, len, len};
    if (buf_copy(s, &s->nodes[node].cur, &tmp) ||
        buf_copy(s, &s->nodes[node].dur, &tmp) ||
        ns_set(s, &s->dur, path, node))
        return BG_ENOMEM;
    return 0;
}

bg_err bg_sim_mkdir(bg_sim *s, const char *path)
{
    if (!path[0] || ns_find(&s->cur, path))
        return BG_EEXISTS;
    char dir[1024];
    parent_of(path, dir, sizeof dir);
    if (!is_dir_path(s, &s->cur, dir))
        return BG_ENOTFOUND;
    size_t node;
    if (node_new(s, 1, &node) || ns_set(s, &s->cur, path, node) ||
        ns_set(s, &s->dur, path, node))
        return BG_ENOMEM;
    return 0;
}
