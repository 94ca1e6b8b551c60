/*
 * The static typeId / adapter-registration scanner (see typeids.h). A small
 * lexer shared by C and Dart turns source into tokens (comments dropped,
 * strings kept whole, line numbers kept); declarations and registrations
 * are recognised as short token patterns. JSON manifests and lock files go
 * through cJSON; hive_ce's schema YAML is read line by line, since only its
 * `types:` map of `Name: typeId: N` is needed.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc_int.h"
#include "json_int.h"
#include "pubspec_int.h"
#include "boxguard/typeids.h"

enum { NS_BG, NS_HIVE };
static const char *const ns_names[] = {"boxguard", "hive"};

enum { D_ANNOT, D_ADAPTER, D_GEN, D_YAML, D_MANIFEST, D_C };

typedef struct decl {
    int ns, kind;
    uint32_t tid;
    char *name;    /* the type's name */
    char *adapter; /* Dart adapter class, or C identifier */
    char *file;
    unsigned line;
    int array;      /* C: one element of an array of adapters */
    char *sym;      /* Dart: the constant the typeId names, or NULL */
    int unresolved; /* sym named no constant (yet): tid means nothing */
    int pkg;        /* index of its Dart package, -1: none */
} decl;

typedef struct reg {
    int ns;
    char *adapter; /* NULL: registers every generated adapter */
    char *file;
    unsigned line;
    int registrar; /* in hive_ce's generated hive_registrar.g.dart */
    int pkg;
} reg;

/* A Dart integer constant: `static const int NAME = V;` in class scope,
 * or a top-level `const NAME = V;`; V a literal or another constant. */
typedef struct cnst {
    char *scope; /* the class, "" at top level */
    char *name;
    uint32_t v;
    char *alias; /* V names another constant: its dotted name */
    char *file;
    int pkg;
} cnst;

/* A Dart package of the tree: the directory of its pubspec.yaml. */
typedef struct pkg {
    char *dir; /* "" or ending in '/' */
    bg__pubspec spec;
} pkg;

typedef struct lockent {
    int ns;
    uint32_t tid;
    char *name;
    char *pkg; /* the Dart package it was declared in, or NULL */
} lockent;

typedef struct range {
    char *domain;
    char **paths;
    size_t npaths;
    uint32_t min, max;
} range;

typedef struct finding {
    bg_typeids_finding pub;
    char *file;
    char *msg;
} finding;

struct bg_typeids {
    decl *d;
    size_t nd, capd;
    reg *r;
    size_t nr, capr;
    lockent *l;
    size_t nl;
    range *rg;
    size_t nrg;
    finding *f;
    size_t nf, capf;
    bg_typeids_finding *out;
    int nomem;
    char why[512]; /* what stopped the last scan that failed */
    /* hive_ce schema: nextTypeId per file */
    struct {
        char *file;
        unsigned line;
        uint32_t next;
    } yaml_next[16];
    size_t nyaml;
    /* C: adapters built at run time (`bg_adapter a = {0};`), by file:
     * registering them is neither a declaration nor a finding. */
    struct {
        char *file, *ident;
    } * dyn;
    size_t ndyn;
    cnst *c;
    size_t nc, capc;
    pkg *pk; /* pubspec.yaml files */
    size_t npk, cappk;
    pkg *lk; /* pubspec.lock files */
    size_t nlk, caplk;
    /* Filled by the check: which packages are one app (see shared()). */
    uint64_t *share;
};

static char *dup_n(bg_typeids *t, const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) {
        t->nomem = 1;
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *dup_s(bg_typeids *t, const char *s)
{
    return dup_n(t, s, strlen(s));
}

bg_typeids *bg_typeids_new(void)
{
    return calloc(1, sizeof(bg_typeids));
}

static void clear_findings(bg_typeids *t)
{
    for (size_t i = 0; i < t->nf; i++) {
        free(t->f[i].file);
        free(t->f[i].msg);
    }
    t->nf = 0;
}

void bg_typeids_free(bg_typeids *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nd; i++) {
        free(t->d[i].name);
        free(t->d[i].adapter);
        free(t->d[i].file);
        free(t->d[i].sym);
    }
    for (size_t i = 0; i < t->nc; i++) {
        free(t->c[i].scope);
        free(t->c[i].name);
        free(t->c[i].alias);
        free(t->c[i].file);
    }
    free(t->c);
    for (size_t i = 0; i < t->npk; i++) {
        free(t->pk[i].dir);
        bg__pubspec_free(&t->pk[i].spec);
    }
    free(t->pk);
    for (size_t i = 0; i < t->nlk; i++) {
        free(t->lk[i].dir);
        bg__pubspec_free(&t->lk[i].spec);
    }
    free(t->lk);
    free(t->share);
    for (size_t i = 0; i < t->nr; i++) {
        free(t->r[i].adapter);
        free(t->r[i].file);
    }
    for (size_t i = 0; i < t->nl; i++) {
        free(t->l[i].name);
        free(t->l[i].pkg);
    }
    for (size_t i = 0; i < t->nrg; i++) {
        free(t->rg[i].domain);
        for (size_t j = 0; j < t->rg[i].npaths; j++)
            free(t->rg[i].paths[j]);
        free(t->rg[i].paths);
    }
    for (size_t i = 0; i < t->nyaml; i++)
        free(t->yaml_next[i].file);
    for (size_t i = 0; i < t->ndyn; i++) {
        free(t->dyn[i].file);
        free(t->dyn[i].ident);
    }
    free(t->dyn);
    clear_findings(t);
    free(t->d);
    free(t->r);
    free(t->l);
    free(t->rg);
    free(t->f);
    free(t->out);
    free(t);
}

static void add_decl(bg_typeids *t, int ns, int kind, uint32_t tid,
                     const char *name, size_t nlen, const char *adapter,
                     const char *file, unsigned line, int array)
{
    if (bg__alloc_grow(NULL, &t->d, t->nd, &t->capd, sizeof *t->d, 32)) {
        t->nomem = 1;
        return;
    }
    decl *d = &t->d[t->nd];
    d->ns = ns;
    d->kind = kind;
    d->tid = tid;
    d->line = line;
    d->array = array;
    d->sym = NULL;
    d->unresolved = 0;
    d->pkg = -1;
    d->name = dup_n(t, name, nlen);
    d->adapter = dup_s(t, adapter);
    d->file = dup_s(t, file);
    if (d->name && d->adapter && d->file)
        t->nd++;
    else {
        free(d->name);
        free(d->adapter);
        free(d->file);
    }
}

static void add_reg(bg_typeids *t, int ns, const char *adapter, size_t alen,
                    const char *file, unsigned line)
{
    if (bg__alloc_grow(NULL, &t->r, t->nr, &t->capr, sizeof *t->r, 32)) {
        t->nomem = 1;
        return;
    }
    reg *r = &t->r[t->nr];
    r->ns = ns;
    r->line = line;
    r->registrar = 0;
    r->pkg = -1;
    r->adapter = adapter ? dup_n(t, adapter, alen) : NULL;
    r->file = dup_s(t, file);
    if (r->file && (r->adapter || !adapter))
        t->nr++;
    else {
        free(r->adapter);
        free(r->file);
    }
}

__attribute__((format(printf, 5, 6))) static void
add_finding(bg_typeids *t, const char *code, const char *file, unsigned line,
            const char *fmt, ...)
{
    if (bg__alloc_grow(NULL, &t->f, t->nf, &t->capf, sizeof *t->f, 32)) {
        t->nomem = 1;
        return;
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    finding *f = &t->f[t->nf];
    f->file = dup_s(t, file);
    f->msg = dup_s(t, msg);
    if (!f->file || !f->msg) {
        free(f->file);
        free(f->msg);
        return;
    }
    f->pub.code = code;
    f->pub.file = f->file;
    f->pub.line = line;
    f->pub.message = f->msg;
    t->nf++;
}

/* ---- the lexer ----------------------------------------------------------- */

enum { T_ID, T_NUM, T_STR, T_PUNCT };

typedef struct tok {
    int kind;
    const char *s; /* STR: the content between the quotes */
    size_t n;
    unsigned line;
} tok;

typedef struct toks {
    tok *v;
    size_t n, cap;
} toks;

static int push(toks *ts, int kind, const char *s, size_t n, unsigned line)
{
    if (bg__alloc_grow(NULL, &ts->v, ts->n, &ts->cap, sizeof *ts->v, 256))
        return -1;
    ts->v[ts->n++] = (tok){kind, s, n, line};
    return 0;
}

static int is_id0(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '$';
}

static int is_id(char c)
{
    return is_id0(c) || (c >= '0' && c <= '9');
}

static int lex(const char *s, size_t len, toks *ts)
{
    unsigned line = 1;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '\n') {
            line++;
            i++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' ||
                   c == '\v') {
            i++;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '/') {
            while (i < len && s[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
            i += 2;
            while (i < len &&
                   !(s[i] == '*' && i + 1 < len && s[i + 1] == '/')) {
                if (s[i] == '\n')
                    line++;
                i++;
            }
            i += 2;
        } else if (c == '"' || c == '\'') {
            unsigned at = line;
            int triple = i + 2 < len && s[i + 1] == c && s[i + 2] == c;
            size_t q = triple ? 3 : 1;
            size_t start = i + q, j = start;
            while (j < len) {
                if (s[j] == '\\') {
                    j += 2;
                    continue;
                }
                if (s[j] == '\n') {
                    line++;
                    if (!triple)
                        break; /* unterminated: stop at the line's end */
                }
                if (s[j] == c && (!triple || (j + 2 < len && s[j + 1] == c &&
                                              s[j + 2] == c)))
                    break;
                j++;
            }
            if (j > len)
                j = len;
            if (push(ts, T_STR, s + start, j - start, at))
                return -1;
            i = j + q;
        } else if (c >= '0' && c <= '9') {
            size_t j = i;
            while (j < len && (is_id(s[j]) || s[j] == '.'))
                j++;
            if (push(ts, T_NUM, s + i, j - i, line))
                return -1;
            i = j;
        } else if (is_id0(c)) {
            size_t j = i;
            while (j < len && is_id(s[j]))
                j++;
            if (push(ts, T_ID, s + i, j - i, line))
                return -1;
            i = j;
        } else {
            if (push(ts, T_PUNCT, s + i, 1, line))
                return -1;
            i++;
        }
    }
    return 0;
}

static int is(const toks *ts, size_t i, int kind, const char *text)
{
    if (i >= ts->n || ts->v[i].kind != kind)
        return 0;
    return !text || (ts->v[i].n == strlen(text) &&
                     !memcmp(ts->v[i].s, text, ts->v[i].n));
}

#define ID(i, x) is(ts, (i), T_ID, (x))
#define P(i, x)  is(ts, (i), T_PUNCT, (x))

/* A decimal or hex integer literal (C suffixes allowed) within uint32. */
static int num_value(const tok *k, uint32_t *out)
{
    char buf[32];
    if (k->kind != T_NUM || k->n >= sizeof buf)
        return -1;
    memcpy(buf, k->s, k->n);
    buf[k->n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 0);
    while (*end == 'u' || *end == 'U' || *end == 'l' || *end == 'L')
        end++;
    if (errno || *end || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Index of the token closing the bracket at i, or ts->n. */
static size_t match(const toks *ts, size_t i)
{
    char open = ts->v[i].s[0];
    char close = open == '('   ? ')'
                 : open == '[' ? ']'
                 : open == '{' ? '}'
                               : '>';
    int depth = 0;
    for (size_t j = i; j < ts->n; j++) {
        if (ts->v[j].kind != T_PUNCT)
            continue;
        if (ts->v[j].s[0] == open)
            depth++;
        else if (ts->v[j].s[0] == close && --depth == 0)
            return j;
    }
    return ts->n;
}

/* ---- C ------------------------------------------------------------------ */

/* One initializer {..} of a bg_adapter at [a, b]: typeId and name when
 * both are literals. */
static int c_group(const toks *ts, size_t a, size_t b, uint32_t *tid,
                   const tok **name)
{
    int have_tid = 0, have_name = 0, item = 0, depth = 0;
    for (size_t i = a + 1; i < b; i++) {
        if (P(i, "{") || P(i, "(") || P(i, "[")) {
            depth++;
            continue;
        }
        if (P(i, "}") || P(i, ")") || P(i, "]")) {
            depth--;
            continue;
        }
        if (depth)
            continue;
        if (P(i, ",")) {
            item++;
            continue;
        }
        if (P(i, ".") && i + 3 < b && P(i + 2, "=")) {
            if (ID(i + 1, "type_id"))
                have_tid = !num_value(&ts->v[i + 3], tid);
            else if (ID(i + 1, "name") && ts->v[i + 3].kind == T_STR)
                *name = &ts->v[i + 3], have_name = 1;
            i += 3;
            continue;
        }
        if (item == 0 && ts->v[i].kind == T_NUM &&
            (i + 1 == b || P(i + 1, ",")))
            have_tid = !num_value(&ts->v[i], tid);
        else if (item == 1 && ts->v[i].kind == T_STR &&
                 (i + 1 == b || P(i + 1, ",")))
            *name = &ts->v[i], have_name = 1;
    }
    return have_tid && have_name;
}

static void add_dyn(bg_typeids *t, const char *file, const char *ident)
{
    void *p = realloc(t->dyn, (t->ndyn + 1) * sizeof *t->dyn);
    if (!p) {
        t->nomem = 1;
        return;
    }
    t->dyn = p;
    t->dyn[t->ndyn].file = dup_s(t, file);
    t->dyn[t->ndyn].ident = dup_s(t, ident);
    t->ndyn++;
}

static int is_dyn(const bg_typeids *t, const reg *r)
{
    for (size_t i = 0; i < t->ndyn; i++)
        if (t->dyn[i].file && t->dyn[i].ident &&
            !strcmp(t->dyn[i].file, r->file) &&
            !strcmp(t->dyn[i].ident, r->adapter))
            return 1;
    return 0;
}

static void scan_c(bg_typeids *t, const char *file, const toks *ts)
{
    for (size_t i = 0; i + 3 < ts->n; i++) {
        if (ID(i, "bg_adapter") && ts->v[i + 1].kind == T_ID) {
            size_t j = i + 2;
            int array = P(j, "[");
            if (array)
                j = match(ts, j) + 1;
            char ident[128];
            snprintf(ident, sizeof ident, "%.*s", (int)ts->v[i + 1].n,
                     ts->v[i + 1].s);
            if (!P(j, "=") || !P(j + 1, "{")) {
                if (P(j, "=") || P(j, ";"))
                    add_dyn(t, file, ident);
                continue;
            }
            size_t end = match(ts, j + 1);
            if (!array) {
                uint32_t tid;
                const tok *name;
                if (c_group(ts, j + 1, end, &tid, &name))
                    add_decl(t, NS_BG, D_C, tid, name->s, name->n, ident, file,
                             ts->v[i].line, 0);
                else
                    add_dyn(t, file, ident);
            } else {
                for (size_t k = j + 2; k < end; k++) {
                    if (!P(k, "{"))
                        continue;
                    size_t e = match(ts, k);
                    uint32_t tid;
                    const tok *name;
                    if (c_group(ts, k, e, &tid, &name))
                        add_decl(t, NS_BG, D_C, tid, name->s, name->n, ident,
                                 file, ts->v[k].line, 1);
                    k = e;
                }
            }
            i = end;
        } else if (ID(i, "bg_registry_add") && P(i + 1, "(")) {
            size_t end = match(ts, i + 1);
            for (size_t k = i + 2; k + 1 < end; k++) {
                /* Only `&name` or `&name[i]`: a member or a pointer is an
                 * adapter made at run time. */
                if (P(k, ",") && P(k + 1, "&") && k + 2 < end &&
                    ts->v[k + 2].kind == T_ID &&
                    (P(k + 3, ")") || P(k + 3, "["))) {
                    add_reg(t, NS_BG, ts->v[k + 2].s, ts->v[k + 2].n, file,
                            ts->v[k + 2].line);
                    break;
                }
            }
        }
    }
}

/* ---- Dart --------------------------------------------------------------- */

/* A dotted name (a, A.b, p.A.b) at token k, before end: its text in buf
 * and the index past it; 0 when none stands there. */
static size_t read_sym(const toks *ts, size_t k, size_t end, char *buf,
                       size_t cap)
{
    size_t len = 0;
    while (k < end && ts->v[k].kind == T_ID) {
        if (len + ts->v[k].n + 2 > cap)
            return 0;
        memcpy(buf + len, ts->v[k].s, ts->v[k].n);
        len += ts->v[k].n;
        buf[len] = '\0';
        k++;
        if (!(k + 1 < end && P(k, ".") && ts->v[k + 1].kind == T_ID))
            return k;
        buf[len++] = '.';
        k++;
    }
    return 0;
}

/* The last declaration added takes sym as its typeId, to be resolved by
 * the check once every file is scanned. */
static void set_sym(bg_typeids *t, size_t before, const char *sym)
{
    if (t->nd == before)
        return;
    decl *d = &t->d[t->nd - 1];
    d->sym = dup_s(t, sym);
    d->unresolved = 1;
}

static void add_const(bg_typeids *t, const tok *scope, const tok *name,
                      uint32_t v, const char *alias, const char *file)
{
    if (bg__alloc_grow(NULL, &t->c, t->nc, &t->capc, sizeof *t->c, 32)) {
        t->nomem = 1;
        return;
    }
    cnst *c = &t->c[t->nc];
    c->scope = scope ? dup_n(t, scope->s, scope->n) : dup_s(t, "");
    c->name = dup_n(t, name->s, name->n);
    c->v = v;
    c->alias = alias ? dup_s(t, alias) : NULL;
    c->file = dup_s(t, file);
    c->pkg = -1;
    if (c->scope && c->name && c->file && (c->alias || !alias)) {
        t->nc++;
    } else {
        free(c->scope);
        free(c->name);
        free(c->alias);
        free(c->file);
    }
}

/* Integer constants: `static const [int] A = V, B = W;` directly in a
 * class, mixin, extension or enum body (static final too), and top-level
 * `const [int] A = V;`. V is a literal or a dotted name. */
static void scan_dart_consts(bg_typeids *t, const char *file, const toks *ts)
{
    struct {
        const tok *name;
        size_t depth;
    } scope[32];
    size_t nscope = 0, depth = 0;
    for (size_t i = 0; i < ts->n; i++) {
        if (P(i, "{")) {
            depth++;
            continue;
        }
        if (P(i, "}")) {
            if (depth)
                depth--;
            while (nscope && scope[nscope - 1].depth > depth)
                nscope--;
            continue;
        }
        if ((ID(i, "class") || ID(i, "mixin") || ID(i, "extension") ||
             ID(i, "enum")) &&
            i + 1 < ts->n && ts->v[i + 1].kind == T_ID) {
            size_t k = i + 2;
            while (k < ts->n && !P(k, "{") && !P(k, ";"))
                k++;
            if (P(k, "{") && nscope < 32) {
                scope[nscope].name = &ts->v[i + 1];
                scope[nscope].depth = depth + 1;
                nscope++;
            }
            continue;
        }
        int in_class = nscope && scope[nscope - 1].depth == depth;
        size_t k = i;
        if (in_class && ID(k, "static"))
            k++;
        else if (in_class || depth)
            continue; /* an instance field, or inside a function */
        if (!(ID(k, "const") || (in_class && ID(k, "final"))))
            continue;
        k++;
        if (ID(k, "int"))
            k++;
        while (k + 2 < ts->n && ts->v[k].kind == T_ID && P(k + 1, "=")) {
            uint32_t v;
            char alias[256];
            size_t next;
            if (!num_value(&ts->v[k + 2], &v)) {
                next = k + 3;
                add_const(t, in_class ? scope[nscope - 1].name : NULL,
                          &ts->v[k], v, NULL, file);
            } else if ((next = read_sym(ts, k + 2, ts->n, alias,
                                        sizeof alias)) != 0) {
                add_const(t, in_class ? scope[nscope - 1].name : NULL,
                          &ts->v[k], 0, alias, file);
            } else {
                break;
            }
            if (!P(next, ","))
                break;
            k = next + 1;
        }
        i = k > i ? k - 1 : i;
    }
}

static void scan_dart(bg_typeids *t, const char *file, const toks *ts,
                      int generated)
{
    for (size_t i = 0; i + 2 < ts->n; i++) {
        if (P(i, "@") && ID(i + 1, "HiveType") && P(i + 2, "(")) {
            size_t end = match(ts, i + 2);
            uint32_t tid = 0;
            int have = 0;
            char sym[256] = "";
            const tok *aname = NULL;
            /* The value must stand before the closing parenthesis; in a
             * file being edited the annotation may not be closed at all
             * (end == ts->n), and then no token lies past the last. */
            for (size_t k = i + 3; k + 2 < end; k++) {
                if (ID(k, "typeId") && P(k + 1, ":")) {
                    have = !num_value(&ts->v[k + 2], &tid);
                    size_t e =
                        have ? 0 : read_sym(ts, k + 2, end, sym, sizeof sym);
                    if (!e || !(e == end || P(e, ",")))
                        sym[0] = '\0';
                }
                if (ID(k, "adapterName") && P(k + 1, ":") &&
                    ts->v[k + 2].kind == T_STR)
                    aname = &ts->v[k + 2];
            }
            /* Skip further annotations and modifiers to the class. */
            size_t k = end + 1;
            while (k < ts->n) {
                if (P(k, "@")) {
                    k += 2;
                    while (P(k, ".") && k + 1 < ts->n)
                        k += 2;
                    if (P(k, "("))
                        k = match(ts, k) + 1;
                } else if (ID(k, "abstract") || ID(k, "final") ||
                           ID(k, "sealed") || ID(k, "base") ||
                           ID(k, "interface") || ID(k, "mixin")) {
                    k++;
                } else {
                    break;
                }
            }
            if (!have && !sym[0]) {
                add_finding(t, "parse", file, ts->v[i].line,
                            "@HiveType whose typeId is neither a number nor "
                            "a constant");
            } else if ((ID(k, "class") || ID(k, "enum")) && k + 1 < ts->n &&
                       ts->v[k + 1].kind == T_ID) {
                char adapter[160];
                if (aname)
                    snprintf(adapter, sizeof adapter, "%.*s", (int)aname->n,
                             aname->s);
                else
                    snprintf(adapter, sizeof adapter, "%.*sAdapter",
                             (int)ts->v[k + 1].n, ts->v[k + 1].s);
                size_t before = t->nd;
                add_decl(t, NS_HIVE, D_ANNOT, tid, ts->v[k + 1].s,
                         ts->v[k + 1].n, adapter, file, ts->v[i].line, 0);
                if (!have)
                    set_sym(t, before, sym);
            }
            i = end;
        } else if (ID(i, "class") && ts->v[i + 1].kind == T_ID &&
                   ID(i + 2, "extends") && ID(i + 3, "TypeAdapter") &&
                   P(i + 4, "<") && i + 5 < ts->n &&
                   ts->v[i + 5].kind == T_ID) {
            size_t k = i + 6;
            while (k < ts->n && !P(k, "{"))
                k++;
            if (k >= ts->n)
                break;
            size_t end = match(ts, k);
            for (size_t m = k; m + 2 < end; m++) {
                /* final int typeId = V;  or  int get typeId => V;  V a
                 * literal or a constant, then the statement's end. */
                if (!ID(m, "typeId") || !P(m + 1, "="))
                    continue;
                size_t v = P(m + 2, ">") ? m + 3 : m + 2;
                uint32_t tid = 0;
                char sym[256] = "";
                int lit = v < end && !num_value(&ts->v[v], &tid);
                size_t e = lit ? v + 1 : read_sym(ts, v, end, sym, sizeof sym);
                if (!e || !P(e, ";"))
                    continue;
                char adapter[160];
                snprintf(adapter, sizeof adapter, "%.*s", (int)ts->v[i + 1].n,
                         ts->v[i + 1].s);
                size_t before = t->nd;
                add_decl(t, NS_HIVE, generated ? D_GEN : D_ADAPTER, tid,
                         ts->v[i + 5].s, ts->v[i + 5].n, adapter, file,
                         ts->v[m].line, 0);
                if (!lit)
                    set_sym(t, before, sym);
                break;
            }
            i = end;
        } else if (ID(i, "registerAdapter")) {
            size_t k = i + 1;
            if (P(k, "<"))
                k = match(ts, k) + 1;
            if (!P(k, "("))
                continue;
            k++;
            if (ID(k, "new") || ID(k, "const"))
                k++;
            if (k < ts->n && ts->v[k].kind == T_ID)
                add_reg(t, NS_HIVE, ts->v[k].s, ts->v[k].n, file,
                        ts->v[k].line);
        } else if (ID(i, "registerAdapters") && P(i + 1, "(")) {
            add_reg(t, NS_HIVE, NULL, 0, file, ts->v[i].line);
        }
    }
}

/* ---- hive_ce schema YAML ------------------------------------------------- */

/* A decimal value within uint32 in p[0, n) (the rest of a line, which is
 * not NUL-terminated: the file's last line ends where the buffer does),
 * spaces around it and a trailing comment allowed. */
static int yaml_uint(const char *p, size_t n, uint32_t *out)
{
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    uint64_t v = 0;
    size_t digits = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
        v = v * 10 + (uint64_t)(p[i] - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    while (i < n && p[i] == ' ')
        i++;
    if (!digits || (i < n && p[i] != '#'))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void scan_yaml(bg_typeids *t, const char *file, const char *s,
                      size_t len)
{
    unsigned line = 0;
    int in_types = 0;
    char cur[128] = "";
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && s[e] != '\n')
            e++;
        line++;
        size_t ind = 0;
        while (i + ind < e && s[i + ind] == ' ')
            ind++;
        const char *p = s + i + ind;
        size_t n = e - i - ind;
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
            n--;
        if (n && p[0] != '#') {
            if (ind == 0) {
                in_types = n == 6 && !memcmp(p, "types:", 6);
                uint32_t next;
                if (n > 11 && !memcmp(p, "nextTypeId:", 11)) {
                    if (yaml_uint(p + 11, n - 11, &next))
                        add_finding(t, "parse", file, line,
                                    "nextTypeId in the hive_ce schema is not "
                                    "a number");
                    else if (t->nyaml < 16) {
                        t->yaml_next[t->nyaml].file = dup_s(t, file);
                        t->yaml_next[t->nyaml].line = line;
                        t->yaml_next[t->nyaml].next = next;
                        t->nyaml++;
                    }
                }
            } else if (in_types && ind == 2 && p[n - 1] == ':') {
                snprintf(cur, sizeof cur, "%.*s", (int)(n - 1), p);
            } else if (in_types && ind == 4 && cur[0] && n > 7 &&
                       !memcmp(p, "typeId:", 7)) {
                uint32_t v;
                char adapter[160];
                snprintf(adapter, sizeof adapter, "%sAdapter", cur);
                if (!yaml_uint(p + 7, n - 7, &v))
                    add_decl(t, NS_HIVE, D_YAML, v, cur, strlen(cur), adapter,
                             file, line, 0);
                else
                    add_finding(t, "parse", file, line,
                                "typeId in the hive_ce schema is not a number");
            }
        }
        i = e + 1;
    }
}

/* ---- JSON manifests ----------------------------------------------------- */

static void scan_manifest(bg_typeids *t, const char *file, const char *s,
                          size_t len)
{
    cJSON *doc;
    if (bg__json_parse(s, len, &doc) == BG_ENOMEM) {
        t->nomem = 1;
        return;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "adapters");
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(doc);
        return; /* some other JSON file */
    }
    /* Line of the k-th "typeId" member, for the report. */
    const char *at = s;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(it, "typeId");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const char *hit = NULL;
        for (const char *q = at; q + 8 <= s + len; q++)
            if (!memcmp(q, "\"typeId\"", 8)) {
                hit = q;
                break;
            }
        unsigned line = 1;
        for (const char *q = s; hit && q < hit; q++)
            line += *q == '\n';
        if (hit)
            at = hit + 8;
        if (!cJSON_IsNumber(tid) || !cJSON_IsString(name) ||
            tid->valuedouble < 0 || tid->valuedouble > UINT32_MAX) {
            add_finding(t, "parse", file, line,
                        "manifest entry without an integer typeId and a name");
            continue;
        }
        char ident[160];
        snprintf(ident, sizeof ident, "%s", name->valuestring);
        add_decl(t, NS_BG, D_MANIFEST, (uint32_t)tid->valuedouble,
                 name->valuestring, strlen(name->valuestring), ident, file,
                 line, 0);
    }
    cJSON_Delete(doc);
}

/* ---- files -------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* hive_ce's generated registrar: what its registerAdapter calls name is
 * what `registerAdapters()` registers; its own definitions of
 * registerAdapters() register nothing. */
static void mark_registrar(bg_typeids *t, size_t from)
{
    size_t keep = from;
    for (size_t i = from; i < t->nr; i++) {
        if (!t->r[i].adapter) {
            free(t->r[i].file);
            continue;
        }
        t->r[keep] = t->r[i];
        t->r[keep++].registrar = 1;
    }
    t->nr = keep;
}

/* A pubspec.yaml (or .lock) at path, its directory the first dirlen
 * bytes. */
static void add_pkg(bg_typeids *t, const char *path, size_t dirlen,
                    const char *text, size_t len, int lock)
{
    pkg **v = lock ? &t->lk : &t->pk;
    size_t *n = lock ? &t->nlk : &t->npk, *cap = lock ? &t->caplk : &t->cappk;
    if (bg__alloc_grow(NULL, v, *n, cap, sizeof **v, 8)) {
        t->nomem = 1;
        return;
    }
    pkg *p = &(*v)[*n];
    p->dir = dup_n(t, path, dirlen);
    if (!p->dir)
        return;
    if ((lock ? bg__publock_parse : bg__pubspec_parse)(text, len, &p->spec)) {
        free(p->dir);
        t->nomem = 1;
        return;
    }
    (*n)++;
}

bg_err bg_typeids_scan_text(bg_typeids *t, const char *path, const char *text,
                            size_t len)
{
    BG__JSON_SCOPE(NULL);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int c = ends_with(path, ".c") || ends_with(path, ".h");
    int dart = ends_with(path, ".dart");
    if (c || dart) {
        toks ts = {0};
        if (lex(text, len, &ts)) {
            free(ts.v);
            return BG_ENOMEM;
        }
        if (c) {
            scan_c(t, path, &ts);
        } else {
            size_t before = t->nr;
            scan_dart_consts(t, path, &ts);
            scan_dart(t, path, &ts, ends_with(path, ".g.dart"));
            if (!strcmp(base, "hive_registrar.g.dart"))
                mark_registrar(t, before);
        }
        free(ts.v);
    } else if (!strcmp(base, "pubspec.yaml") || !strcmp(base, "pubspec.lock")) {
        add_pkg(t, path, (size_t)(base - path), text, len,
                !strcmp(base, "pubspec.lock"));
    } else if (!strcmp(base, "hive_adapters.g.yaml")) {
        scan_yaml(t, path, text, len);
    } else if (ends_with(path, ".json")) {
        scan_manifest(t, path, text, len);
    }
    return t->nomem ? BG_ENOMEM : 0;
}

/* Files past this size are refused, never read in part: a check that
 * skipped the rest of a file would pass on what it did not see. */
#define SCAN_FILE_MAX (64u << 20)

__attribute__((format(printf, 3, 4))) static bg_err
scan_fail(bg_typeids *t, bg_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
    return err;
}

static bg_err scan_file(bg_typeids *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? BG_ENOTFOUND
                               : scan_fail(t, BG_EIO, "cannot open '%s': %s",
                                           path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    bg_err err = 0;
    while (buf && !err) {
        if (n == cap) {
            if (cap >= SCAN_FILE_MAX) {
                if (fgetc(f) == EOF)
                    break; /* exactly SCAN_FILE_MAX bytes: all read */
                err = scan_fail(t, BG_EINVALID,
                                "'%s' is larger than %u MiB: not scanned, "
                                "so not checked",
                                path, SCAN_FILE_MAX >> 20);
                break;
            }
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (!got)
            break;
    }
    if (!err && ferror(f))
        err = scan_fail(t, BG_EIO, "cannot read '%s'", path);
    fclose(f);
    if (!buf)
        return BG_ENOMEM;
    if (!err)
        err = bg_typeids_scan_text(t, path, buf, n);
    free(buf);
    return err;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directories from the top of a scan down to the current one: a
 * symlink back to one of them is a cycle, not more source. */
typedef struct ancestors {
    dev_t dev[64];
    ino_t ino[64];
    size_t n;
} ancestors;

static bg_err scan_tree(bg_typeids *t, const char *path, ancestors *up)
{
    struct stat st, ls;
    if (stat(path, &st) != 0) {
        int e = errno;
        /* A dangling link inside the tree points at no source. */
        if (e == ENOENT && up->n && !lstat(path, &ls) && S_ISLNK(ls.st_mode))
            return 0;
        return e == ENOENT ? BG_ENOTFOUND
                           : scan_fail(t, BG_EIO, "cannot stat '%s': %s", path,
                                       strerror(e));
    }
    if (!S_ISDIR(st.st_mode)) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (ends_with(path, ".c") || ends_with(path, ".h") ||
            ends_with(path, ".dart") || ends_with(path, ".json") ||
            !strcmp(base, "hive_adapters.g.yaml") ||
            !strcmp(base, "pubspec.yaml") || !strcmp(base, "pubspec.lock"))
            return scan_file(t, path);
        return 0;
    }
    for (size_t i = 0; i < up->n; i++)
        if (up->dev[i] == st.st_dev && up->ino[i] == st.st_ino)
            return 0; /* a link back up the tree: already being scanned */
    if (up->n == sizeof up->dev / sizeof *up->dev) /* refuse, not skip */
        return scan_fail(t, BG_EIO, "'%s' is deeper than %zu directories", path,
                         sizeof up->dev / sizeof *up->dev);
    up->dev[up->n] = st.st_dev;
    up->ino[up->n] = st.st_ino;
    up->n++;
    DIR *d = opendir(path);
    if (!d) {
        up->n--;
        return scan_fail(t, BG_EIO, "cannot open directory '%s': %s", path,
                         strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    bg_err err = 0;
    /* readdir says "no more" and "cannot read" alike, but for errno. */
    while ((errno = 0, e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || !strcmp(nm, "build") || !strcmp(nm, "node_modules"))
            continue;
        if ((err = bg__alloc_grow(NULL, &names, n, &cap, sizeof *names, 32)))
            break;
        if (!(names[n] = strdup(nm))) {
            err = BG_ENOMEM;
            break;
        }
        n++;
    }
    if (!err && !e && errno)
        err = scan_fail(t, BG_EIO, "cannot read directory '%s': %s", path,
                        strerror(errno));
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_cstr);
    for (size_t i = 0; i < n; i++) {
        if (!err) {
            size_t len = strlen(path) + strlen(names[i]) + 2;
            char *child = malloc(len);
            if (!child) {
                err = BG_ENOMEM;
            } else {
                snprintf(child, len, "%s%s%s", path,
                         ends_with(path, "/") ? "" : "/", names[i]);
                err = scan_tree(t, child, up);
                free(child);
            }
        }
        free(names[i]);
    }
    free(names);
    up->n--;
    return err;
}

const char *bg_typeids_detail(const bg_typeids *t)
{
    return t->why;
}

bg_err bg_typeids_scan_path(bg_typeids *t, const char *path)
{
    ancestors up = {.n = 0};
    t->why[0] = '\0';
    return scan_tree(t, path, &up);
}

/* ---- lock and policy ---------------------------------------------------- */

static int ns_of(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, ns_names[i]))
            return i;
    return -1;
}

bg_err bg_typeids_load_lock(bg_typeids *t, const char *json, size_t len,
                            char *why, size_t whylen)
{
    BG__JSON_SCOPE(NULL);
    cJSON *doc;
    if (bg__json_parse(json, len, &doc) == BG_ENOMEM) {
        snprintf(why, whylen, "out of memory reading the lock file");
        return BG_ENOMEM;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "typeids");
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(doc);
        snprintf(why, whylen, "lock file needs {\"typeids\": [...]}");
        return BG_EINVALID;
    }
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    lockent *l = calloc(n ? n : 1, sizeof *l);
    if (!l) {
        cJSON_Delete(doc);
        return BG_ENOMEM;
    }
    const cJSON *it;
    bg_err err = 0;
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(it, "ns");
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(it, "typeId");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(it, "package");
        if (!cJSON_IsString(ns) || ns_of(ns->valuestring) < 0 ||
            !cJSON_IsNumber(tid) || tid->valuedouble < 0 ||
            tid->valuedouble > UINT32_MAX || !cJSON_IsString(name) ||
            (pk && !cJSON_IsString(pk))) {
            snprintf(why, whylen,
                     "lock entry %zu needs \"ns\" (boxguard or hive), "
                     "\"typeId\" and \"name\" (and \"package\" a string)",
                     k);
            err = BG_EINVALID;
            break;
        }
        l[k].ns = ns_of(ns->valuestring);
        l[k].tid = (uint32_t)tid->valuedouble;
        l[k].name = strdup(name->valuestring);
        l[k].pkg = pk ? strdup(pk->valuestring) : NULL;
        if (!l[k].name || (pk && !l[k].pkg)) {
            free(l[k].name);
            free(l[k].pkg);
            err = BG_ENOMEM;
            break;
        }
        k++;
    }
    cJSON_Delete(doc);
    if (err) {
        for (size_t i = 0; i < k; i++) {
            free(l[i].name);
            free(l[i].pkg);
        }
        free(l);
        return err;
    }
    for (size_t i = 0; i < t->nl; i++) {
        free(t->l[i].name);
        free(t->l[i].pkg);
    }
    free(t->l);
    t->l = l;
    t->nl = k;
    return 0;
}

bg_err bg_typeids_load_policy(bg_typeids *t, const char *json, size_t len,
                              char *why, size_t whylen)
{
    BG__JSON_SCOPE(NULL);
    cJSON *doc;
    if (bg__json_parse(json, len, &doc) == BG_ENOMEM) {
        snprintf(why, whylen, "out of memory reading the policy file");
        return BG_ENOMEM;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "ranges");
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(doc);
        snprintf(why, whylen, "policy file needs {\"ranges\": [...]}");
        return BG_EINVALID;
    }
    const cJSON *it;
    size_t k = 0;
    bg_err err = 0;
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *dom = cJSON_GetObjectItemCaseSensitive(it, "domain");
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(it, "paths");
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(it, "min");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(it, "max");
        if (!cJSON_IsString(dom) || !cJSON_IsArray(paths) ||
            !cJSON_IsNumber(mn) || !cJSON_IsNumber(mx) || mn->valuedouble < 0 ||
            mx->valuedouble > UINT32_MAX || mn->valuedouble > mx->valuedouble) {
            snprintf(why, whylen,
                     "policy range %zu needs \"domain\", \"paths\" (array), "
                     "\"min\" <= \"max\"",
                     k);
            err = BG_EINVALID;
            break;
        }
        range *p = realloc(t->rg, (t->nrg + 1) * sizeof *p);
        if (!p) {
            err = BG_ENOMEM;
            break;
        }
        t->rg = p;
        range *r = &t->rg[t->nrg];
        memset(r, 0, sizeof *r);
        r->domain = strdup(dom->valuestring);
        r->min = (uint32_t)mn->valuedouble;
        r->max = (uint32_t)mx->valuedouble;
        int n = cJSON_GetArraySize(paths);
        r->paths = calloc(n ? (size_t)n : 1, sizeof *r->paths);
        if (!r->domain || !r->paths) {
            free(r->domain);
            free(r->paths);
            err = BG_ENOMEM;
            break;
        }
        t->nrg++;
        const cJSON *pp;
        cJSON_ArrayForEach(pp, paths)
        {
            if (!cJSON_IsString(pp))
                continue;
            /* A path that cannot be kept would leave its files out of the
             * range check: fail rather than check less. */
            if (!(r->paths[r->npaths] = strdup(pp->valuestring))) {
                err = BG_ENOMEM;
                break;
            }
            r->npaths++;
        }
        if (err)
            break;
        k++;
    }
    cJSON_Delete(doc);
    return err;
}

/* ---- the checks --------------------------------------------------------- */

static int same_name(const decl *a, const decl *b)
{
    return !strcmp(a->name, b->name);
}

static const char *kind_word(int kind)
{
    switch (kind) {
    case D_ANNOT:
        return "@HiveType";
    case D_ADAPTER:
        return "adapter class";
    case D_GEN:
        return "generated adapter";
    case D_YAML:
        return "hive schema";
    case D_MANIFEST:
        return "manifest";
    default:
        return "bg_adapter";
    }
}

static int cmp_finding(const void *a, const void *b)
{
    const finding *x = a, *y = b;
    int c = strcmp(x->pub.file, y->pub.file);
    if (c)
        return c;
    if (x->pub.line != y->pub.line)
        return x->pub.line < y->pub.line ? -1 : 1;
    c = strcmp(x->pub.code, y->pub.code);
    return c ? c : strcmp(x->pub.message, y->pub.message);
}

/* ---- Dart packages: which code is one app ---------------------------- */

static int find_pkg(const bg_typeids *t, const char *name)
{
    for (size_t i = 0; i < t->npk; i++)
        if (t->pk[i].spec.name[0] && !strcmp(t->pk[i].spec.name, name))
            return (int)i;
    return -1;
}

/* The package of a file: the deepest pubspec.yaml directory above it
 * whose pubspec names a package (pub refuses one without a name). Two
 * packages of one name are one (a dependency names it and means both):
 * the first of that name stands for them. */
static int pkg_of(const bg_typeids *t, const char *file)
{
    int best = -1;
    size_t blen = 0;
    for (size_t i = 0; i < t->npk; i++) {
        size_t n = strlen(t->pk[i].dir);
        if (t->pk[i].spec.name[0] && !strncmp(file, t->pk[i].dir, n) &&
            (best < 0 || n > blen)) {
            best = (int)i;
            blen = n;
        }
    }
    return best < 0 ? -1 : find_pkg(t, t->pk[best].spec.name);
}

#define SHARE_MAX 2048 /* packages; past it, every package is one app */

static size_t words(size_t n)
{
    return (n + 63) / 64;
}

/* Packages a and b are one app when one package of the tree depends on
 * both, directly or not (itself included): an app and its path or
 * workspace packages, never two apps beside each other. Files outside
 * every package belong to every app. */
static int shared(const bg_typeids *t, int a, int b)
{
    if (a < 0 || b < 0 || a == b || !t->share)
        return 1;
    return (t->share[(size_t)a * words(t->npk) + (size_t)b / 64] >>
            ((size_t)b % 64)) &
           1;
}

static void compute_share(bg_typeids *t)
{
    free(t->share);
    t->share = NULL;
    size_t n = t->npk, w = words(n);
    if (n < 2 || n > SHARE_MAX)
        return;
    uint64_t *reach = calloc(n * w, sizeof *reach);
    int *stack = malloc(n * sizeof *stack);
    t->share = calloc(n * w, sizeof *t->share);
    if (!reach || !stack || !t->share) {
        free(t->share);
        t->share = NULL;
        t->nomem = 1;
        free(reach);
        free(stack);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        uint64_t *rr = reach + r * w;
        size_t top = 0;
        if (!t->pk[r].spec.name[0])
            continue; /* not a package */
        rr[r / 64] |= 1ull << (r % 64);
        stack[top++] = (int)r;
        while (top) {
            const char *name = t->pk[stack[--top]].spec.name;
            for (size_t same = 0; same < n; same++) {
                const pkg *p = &t->pk[same];
                if (strcmp(p->spec.name, name))
                    continue; /* every package of the name: its deps */
                for (size_t d = 0; d < p->spec.ndeps; d++) {
                    int q = find_pkg(t, p->spec.deps[d].name);
                    if (q >= 0 && !(rr[q / 64] >> (q % 64) & 1)) {
                        rr[q / 64] |= 1ull << (q % 64);
                        stack[top++] = q;
                    }
                }
            }
        }
    }
    for (size_t r = 0; r < n; r++)
        for (size_t a = 0; a < n; a++)
            if (reach[r * w + a / 64] >> (a % 64) & 1)
                for (size_t k = 0; k < w; k++)
                    t->share[a * w + k] |= reach[r * w + k];
    free(reach);
    free(stack);
}

/* The Hive flavour of a package: its own dependency on hive or hive_ce,
 * else that of a package that depends on it. */
typedef struct flavour {
    uint32_t max;
    int flutter; /* hive_ce_flutter: 200 and 201 are its adapters' */
    char what[160];
} flavour;

static const pkg *lock_for(const bg_typeids *t, const char *dir)
{
    const pkg *best = NULL;
    for (size_t i = 0; i < t->nlk; i++) {
        size_t n = strlen(t->lk[i].dir);
        if (!strncmp(dir, t->lk[i].dir, n) && (!best || n > strlen(best->dir)))
            best = &t->lk[i];
    }
    return best;
}

static int own_flavour(const bg_typeids *t, int p, flavour *f)
{
    const bg__pubspec *sp = &t->pk[p].spec;
    const pkg *lk = lock_for(t, t->pk[p].dir);
    const bg__pub_dep *ce = bg__pubspec_dep(sp, "hive_ce");
    if (ce) {
        const bg__pub_dep *lv =
            lk ? bg__pubspec_dep(&lk->spec, "hive_ce") : NULL;
        const char *v =
            lv && lv->constraint[0] ? lv->constraint : ce->constraint;
        int at = bg__pub_version_at_least(v, 2, 10);
        f->max = at == 1 ? 65439 : 223;
        f->flutter = bg__pubspec_dep(sp, "hive_ce_flutter") ||
                     (lk && bg__pubspec_dep(&lk->spec, "hive_ce_flutter"));
        if (at == 1)
            snprintf(f->what, sizeof f->what, "hive_ce %s's 0..65439", v);
        else if (at == 0)
            snprintf(f->what, sizeof f->what,
                     "hive_ce %s's 0..223 (2.10.0 raised it to 65439)", v);
        else
            snprintf(f->what, sizeof f->what,
                     "0..223 (hive_ce's version is not in pubspec.lock; "
                     "from 2.10.0 it is 0..65439)");
        return 1;
    }
    if (bg__pubspec_dep(sp, "hive")) {
        f->max = 223;
        f->flutter = 0;
        snprintf(f->what, sizeof f->what,
                 "Hive's 0..223 (224..255 are Hive's own)");
        return 1;
    }
    return 0;
}

static void flavour_of(const bg_typeids *t, int p, flavour *f)
{
    f->max = 223;
    f->flutter = 0;
    snprintf(f->what, sizeof f->what,
             "Hive's 0..223 (224..255 are Hive's own)");
    if (p < 0 || own_flavour(t, p, f))
        return;
    for (size_t r = 0; r < t->npk; r++)
        if ((int)r != p && shared(t, (int)r, p) && own_flavour(t, (int)r, f))
            return;
}

/* ---- typeIds named by constants ---------------------------------------- */

typedef struct resolved {
    int found; /* 0 none, 1 one value, 2 two different values */
    uint32_t v, other;
    const cnst *at, *other_at;
} resolved;

static void resolve_sym(const bg_typeids *t, const char *sym, int pkgi,
                        const char *file, int depth, resolved *out)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", sym);
    const char *parts[8];
    size_t np = 0;
    for (char *q = buf; np < 8;) {
        parts[np++] = q;
        char *dot = strchr(q, '.');
        if (!dot)
            break;
        *dot = '\0';
        q = dot + 1;
    }
    const char *name = parts[np - 1], *scope = np >= 2 ? parts[np - 2] : NULL;
    /* A.b names the constant b of class A (p.A.b: through an import
     * prefix); b and p.b a top-level b, or b of the same file's class. */
    for (int pass = 0; pass < 2 && !out->found; pass++) {
        for (size_t i = 0; i < t->nc; i++) {
            const cnst *c = &t->c[i];
            if (strcmp(c->name, name) || !shared(t, c->pkg, pkgi))
                continue;
            int ok = pass == 0
                         ? scope && !strcmp(c->scope, scope)
                         : np <= 2 && (!c->scope[0] ||
                                       (np == 1 && !strcmp(c->file, file)));
            if (!ok)
                continue;
            uint32_t v = c->v;
            if (c->alias) {
                resolved in = {0};
                if (depth < 8)
                    resolve_sym(t, c->alias, c->pkg, c->file, depth + 1, &in);
                if (in.found != 1) {
                    if (in.found == 2)
                        *out = in;
                    continue;
                }
                v = in.v;
            }
            if (!out->found) {
                out->found = 1;
                out->v = v;
                out->at = c;
            } else if (out->found == 1 && v != out->v) {
                out->found = 2;
                out->other = v;
                out->other_at = c;
            }
        }
    }
}

static void tid_text(const decl *d, char *buf, size_t cap)
{
    if (d->unresolved)
        snprintf(buf, cap, "%s", d->sym);
    else
        snprintf(buf, cap, "%u", (unsigned)d->tid);
}

/* Registered by name in the same app; *all: an app's registerAdapters()
 * with no generated registrar to say what it registers; *via: the
 * registrar when one covers it. */
static int registered(const bg_typeids *t, const decl *d, int *all,
                      const reg **registrar, int *calls)
{
    int any_registrar = 0;
    for (size_t i = 0; i < t->nr; i++) {
        const reg *r = &t->r[i];
        if (r->ns != d->ns || !shared(t, r->pkg, d->pkg))
            continue;
        if (!r->adapter) {
            *calls = 1;
            continue;
        }
        if (r->registrar) {
            any_registrar = 1;
            if (!*registrar)
                *registrar = r;
        }
        if (!strcmp(r->adapter, d->adapter))
            return 1;
    }
    *all = *calls && !any_registrar;
    return 0;
}

static int declared_adapter(const bg_typeids *t, const reg *r)
{
    for (size_t i = 0; i < t->nd; i++)
        if (t->d[i].ns == r->ns && shared(t, t->d[i].pkg, r->pkg) &&
            !strcmp(t->d[i].adapter, r->adapter))
            return 1;
    return 0;
}

/* Before the checks: every declaration, registration and constant in its
 * package, which packages are one app, every named typeId resolved; an
 * unresolved one is reported once, at its first use. */
static void prepare(bg_typeids *t)
{
    for (size_t i = 0; i < t->nd; i++)
        t->d[i].pkg = pkg_of(t, t->d[i].file);
    for (size_t i = 0; i < t->nr; i++)
        t->r[i].pkg = pkg_of(t, t->r[i].file);
    for (size_t i = 0; i < t->nc; i++)
        t->c[i].pkg = pkg_of(t, t->c[i].file);
    compute_share(t);
    for (size_t i = 0; i < t->nd; i++) {
        decl *d = &t->d[i];
        if (!d->sym)
            continue;
        resolved r = {0};
        resolve_sym(t, d->sym, d->pkg, d->file, 0, &r);
        d->unresolved = r.found != 1;
        d->tid = r.found == 1 ? r.v : 0;
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = !(t->d[j].sym && !strcmp(t->d[j].sym, d->sym) &&
                      shared(t, t->d[j].pkg, d->pkg));
        if (!first || r.found == 1)
            continue;
        if (r.found == 2)
            add_finding(t, "unresolved", d->file, d->line,
                        "typeId %s of '%s' has two values: %u (%s) and %u "
                        "(%s)",
                        d->sym, d->name, (unsigned)r.v, r.at->file,
                        (unsigned)r.other, r.other_at->file);
        else
            add_finding(t, "unresolved", d->file, d->line,
                        "typeId %s of '%s' names no integer constant that "
                        "was scanned: add the file or package that defines "
                        "it to the scan",
                        d->sym, d->name);
    }
}

bg_err bg_typeids_check(bg_typeids *t, const bg_typeids_finding **out,
                        size_t *n)
{
    *out = NULL;
    *n = 0;
    /* Findings from parsing stay; earlier check results go. */
    size_t keep = 0;
    for (size_t i = 0; i < t->nf; i++) {
        if (!strcmp(t->f[i].pub.code, "parse"))
            t->f[keep++] = t->f[i];
        else {
            free(t->f[i].file);
            free(t->f[i].msg);
        }
    }
    t->nf = keep;
    prepare(t);

    for (size_t i = 0; i < t->nd; i++) {
        const decl *d = &t->d[i];
        char tid[256];
        tid_text(d, tid, sizeof tid);
        /* Two names on one typeId in one app: reported at the later
         * declaration. A typeId not resolved takes part in no check of
         * its value (it is reported once, above). */
        for (size_t j = 0; j < i && !d->unresolved; j++) {
            const decl *e = &t->d[j];
            if (e->ns != d->ns || e->tid != d->tid || same_name(d, e) ||
                e->unresolved || !shared(t, d->pkg, e->pkg))
                continue;
            int first = 1; /* report each name pair once */
            for (size_t k = 0; k < j && first; k++)
                first = !(t->d[k].ns == d->ns && t->d[k].tid == d->tid &&
                          !t->d[k].unresolved && same_name(&t->d[k], e) &&
                          shared(t, d->pkg, t->d[k].pkg));
            for (size_t k = j + 1; k < i && first; k++)
                first = !(t->d[k].ns == d->ns && same_name(&t->d[k], d) &&
                          !t->d[k].unresolved && t->d[k].tid == d->tid &&
                          shared(t, e->pkg, t->d[k].pkg));
            if (first)
                add_finding(t, "collision", d->file, d->line,
                            "typeId %u (%s) has two names: '%s' here and '%s' "
                            "at %s:%u",
                            (unsigned)d->tid, ns_names[d->ns], d->name, e->name,
                            e->file, e->line);
        }
        /* One name on two typeIds. */
        for (size_t j = 0; j < i && !d->unresolved; j++) {
            const decl *e = &t->d[j];
            if (e->ns != d->ns || e->tid == d->tid || !same_name(d, e) ||
                e->unresolved || !shared(t, d->pkg, e->pkg))
                continue;
            int gen = d->kind == D_GEN || e->kind == D_GEN;
            const decl *g = d->kind == D_GEN ? d : e;
            const decl *o = g == d ? e : d;
            if (gen)
                add_finding(t, "stale-generated", g->file, g->line,
                            "generated adapter %s has typeId %u but the %s "
                            "of '%s' at %s:%u says %u: regenerate it",
                            g->adapter, (unsigned)g->tid, kind_word(o->kind),
                            o->name, o->file, o->line, (unsigned)o->tid);
            else
                add_finding(t, "collision", d->file, d->line,
                            "'%s' (%s) has typeId %u here and %u at %s:%u",
                            d->name, ns_names[d->ns], (unsigned)d->tid,
                            (unsigned)e->tid, e->file, e->line);
            break;
        }
        /* Ranges: the package's (hive, or hive_ce by its version). */
        flavour fl;
        if (d->ns == NS_HIVE && !d->unresolved)
            flavour_of(t, d->pkg, &fl);
        if (d->ns == NS_HIVE && !d->unresolved && d->tid > fl.max)
            add_finding(t, "range", d->file, d->line,
                        "typeId %u of '%s' is outside %s", (unsigned)d->tid,
                        d->name, fl.what);
        if (d->ns == NS_HIVE && !d->unresolved && fl.flutter &&
            (d->tid == 200 || d->tid == 201))
            add_finding(t, "range", d->file, d->line,
                        "typeId %u of '%s' is hive_ce_flutter's %s, "
                        "registered by Hive.initFlutter(): pick another",
                        (unsigned)d->tid, d->name,
                        d->tid == 200 ? "ColorAdapter" : "TimeOfDayAdapter");
        if (d->ns == NS_BG && d->tid == 0)
            add_finding(t, "range", d->file, d->line,
                        "typeId 0 of '%s' is boxguard's built-in any-JSON "
                        "type; use 1 or more",
                        d->name);
        for (size_t r = 0; r < t->nrg; r++) {
            const range *rg = &t->rg[r];
            int in = 0;
            for (size_t p = 0; p < rg->npaths && !in; p++)
                in = strstr(d->file, rg->paths[p]) != NULL;
            if (in && !d->unresolved && (d->tid < rg->min || d->tid > rg->max))
                add_finding(t, "range", d->file, d->line,
                            "typeId %u of '%s' is outside domain '%s' "
                            "(%u..%u)",
                            (unsigned)d->tid, d->name, rg->domain,
                            (unsigned)rg->min, (unsigned)rg->max);
        }
        /* Declared but never registered. */
        if (d->kind == D_ANNOT || d->kind == D_ADAPTER || d->kind == D_C ||
            d->kind == D_YAML) {
            int all = 0, calls = 0;
            const reg *via = NULL;
            int gen = d->kind == D_ANNOT || d->kind == D_YAML;
            if (!registered(t, d, &all, &via, &calls) && !(all && gen)) {
                /* An annotation and its own adapter class or schema entry
                 * are one adapter: report it once. */
                int dup = 0;
                for (size_t j = 0; j < i && !dup; j++)
                    dup = t->d[j].ns == d->ns &&
                          !strcmp(t->d[j].adapter, d->adapter) &&
                          t->d[j].kind != D_GEN && t->d[j].kind != D_MANIFEST;
                if (!dup && gen && via && calls)
                    add_finding(t, "stale-registrar", d->file, d->line,
                                "%s '%s' (typeId %s) is declared but the "
                                "generated registrar %s does not register "
                                "%s: run build_runner",
                                kind_word(d->kind), d->name, tid, via->file,
                                d->adapter);
                else if (!dup)
                    add_finding(t, "unregistered", d->file, d->line,
                                "%s '%s' (typeId %s) is declared but %s is "
                                "never registered",
                                kind_word(d->kind), d->name, tid, d->adapter);
            }
        }
        /* The lock: a typeId reused, a name moved. */
        for (size_t k = 0; k < t->nl && !d->unresolved; k++) {
            const lockent *l = &t->l[k];
            int lp = l->pkg ? find_pkg(t, l->pkg) : -1;
            if (l->ns != d->ns || !shared(t, lp, d->pkg))
                continue; /* another app's entry */
            if (l->tid == d->tid && strcmp(l->name, d->name))
                add_finding(t, "reused", d->file, d->line,
                            "typeId %u was '%s' in the lock file; it now "
                            "names '%s' (old data would read as the wrong "
                            "type)",
                            (unsigned)d->tid, l->name, d->name);
            if (l->tid != d->tid && !strcmp(l->name, d->name))
                add_finding(t, "moved", d->file, d->line,
                            "'%s' was typeId %u in the lock file; it now has "
                            "%u (its stored records would be orphaned)",
                            d->name, (unsigned)l->tid, (unsigned)d->tid);
        }
    }
    for (size_t i = 0; i < t->nr; i++) {
        const reg *r = &t->r[i];
        if (r->adapter && !declared_adapter(t, r) && !is_dyn(t, r)) {
            if (r->registrar)
                add_finding(t, "stale-registrar", r->file, r->line,
                            "the generated registrar registers %s, which is "
                            "no longer declared: run build_runner",
                            r->adapter);
            else
                add_finding(t, "undeclared", r->file, r->line,
                            "%s is registered but no adapter of that name is "
                            "declared",
                            r->adapter);
        }
    }
    for (size_t i = 0; i < t->nyaml; i++) {
        uint32_t max = 0;
        int any = 0;
        for (size_t j = 0; j < t->nd; j++)
            if (t->d[j].kind == D_YAML &&
                !strcmp(t->d[j].file, t->yaml_next[i].file)) {
                any = 1;
                if (t->d[j].tid > max)
                    max = t->d[j].tid;
            }
        if (any && t->yaml_next[i].next <= max)
            add_finding(t, "collision", t->yaml_next[i].file,
                        t->yaml_next[i].line,
                        "nextTypeId %u is not above the highest typeId %u: "
                        "the next generated type would reuse an id",
                        (unsigned)t->yaml_next[i].next, (unsigned)max);
    }
    if (t->nf)
        qsort(t->f, t->nf, sizeof *t->f, cmp_finding);
    free(t->out);
    t->out = malloc((t->nf ? t->nf : 1) * sizeof *t->out);
    if (!t->out)
        t->nomem = 1;
    /* A finding that could not be recorded, now or while scanning, makes
     * the whole answer incomplete: a guardrail never passes on it. */
    if (t->nomem)
        return BG_ENOMEM;
    for (size_t i = 0; i < t->nf; i++)
        t->out[i] = t->f[i].pub;
    *out = t->out;
    *n = t->nf;
    return 0;
}

void bg_typeids_counts(const bg_typeids *t, size_t *decls, size_t *regs)
{
    *decls = t->nd;
    *regs = t->nr;
}

typedef struct lrow {
    int ns;
    uint32_t tid;
    const char *name;
    int removed;
    const char *pkg; /* NULL: none */
} lrow;

static int same_pkg(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static int cmp_lrow(const void *a, const void *b)
{
    const lrow *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns - y->ns;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    int c = strcmp(x->pkg ? x->pkg : "", y->pkg ? y->pkg : "");
    return c ? c : strcmp(x->name, y->name);
}

char *bg_typeids_lock_json(const bg_typeids *t)
{
    BG__JSON_SCOPE(NULL);
    lrow *rows = malloc((t->nd + t->nl + 1) * sizeof *rows);
    if (!rows)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < t->nd; i++) {
        const decl *d = &t->d[i];
        const char *pk =
            d->pkg >= 0 && (size_t)d->pkg < t->npk && t->pk[d->pkg].spec.name[0]
                ? t->pk[d->pkg].spec.name
                : NULL;
        int dup = d->unresolved; /* no typeId to lock */
        for (size_t j = 0; j < n && !dup; j++)
            dup = rows[j].ns == d->ns && rows[j].tid == d->tid &&
                  !strcmp(rows[j].name, d->name) && same_pkg(rows[j].pkg, pk);
        if (!dup)
            rows[n++] = (lrow){d->ns, d->tid, d->name, 0, pk};
    }
    size_t now = n;
    for (size_t i = 0; i < t->nl; i++) {
        const lockent *l = &t->l[i];
        int live = 0;
        for (size_t j = 0; j < now && !live; j++)
            live = rows[j].ns == l->ns && rows[j].tid == l->tid &&
                   !strcmp(rows[j].name, l->name) &&
                   same_pkg(rows[j].pkg, l->pkg);
        if (!live)
            rows[n++] = (lrow){l->ns, l->tid, l->name, 1, l->pkg};
    }
    qsort(rows, n, sizeof *rows, cmp_lrow);
    /* One entry per line, so that a change to the lock reads as a diff. */
    size_t cap = 64 + n * 160, len = 0;
    char *out = malloc(cap);
    if (!out) {
        free(rows);
        return NULL;
    }
    len += (size_t)snprintf(out + len, cap - len, "{\"typeids\": [\n");
    for (size_t i = 0; i < n; i++) {
        cJSON *name = cJSON_CreateString(rows[i].name);
        char *nm = name ? cJSON_PrintUnformatted(name) : NULL;
        cJSON *pkname = rows[i].pkg ? cJSON_CreateString(rows[i].pkg) : NULL;
        char *pn = pkname ? cJSON_PrintUnformatted(pkname) : NULL;
        if (rows[i].pkg && !pn) {
            cJSON_free(nm);
            nm = NULL;
        }
        size_t need = (nm ? strlen(nm) : 0) + (pn ? strlen(pn) : 0) + 112;
        if (len + need >= cap) {
            char *p = realloc(out, cap = (cap + need) * 2);
            if (!p) {
                free(out);
                out = NULL;
            } else {
                out = p;
            }
        }
        if (out && nm)
            len += (size_t)snprintf(
                out + len, cap - len,
                "  {\"ns\": \"%s\", \"typeId\": %u, \"name\": %s%s%s%s}%s\n",
                ns_names[rows[i].ns], (unsigned)rows[i].tid, nm,
                pn ? ", \"package\": " : "", pn ? pn : "",
                rows[i].removed ? ", \"removed\": true" : "",
                i + 1 < n ? "," : "");
        if (!nm) { /* an entry left out would be a lock that lies */
            free(out);
            out = NULL;
        }
        cJSON_free(nm);
        cJSON_Delete(name);
        cJSON_free(pn);
        cJSON_Delete(pkname);
        if (!out)
            break;
    }
    if (out)
        snprintf(out + len, cap - len, "]}\n");
    free(rows);
    return out;
}
