/* Interaction datasets: the Amazon sequence format and RecBole .inter files,
 * parsed in one pass over the file buffer into a dense CSR. */
#include "rec/rec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------------- */

/* Growable int32 / int64 / double arrays (amortized doubling, no per-token malloc). */
#define DEFINE_VEC(NAME, T)                                                              \
    typedef struct { T *v; size_t n, cap; } NAME;                                        \
    static int NAME##_push(NAME *a, T x)                                                 \
    {                                                                                    \
        if (a->n == a->cap) {                                                            \
            size_t nc = a->cap ? a->cap * 2 : 4096;                                      \
            T *p = realloc(a->v, nc * sizeof(T));                                        \
            if (!p) return -1;                                                           \
            a->v = p;                                                                    \
            a->cap = nc;                                                                 \
        }                                                                                \
        a->v[a->n++] = x;                                                                \
        return 0;                                                                        \
    }
DEFINE_VEC(vec_i32, int32_t)
DEFINE_VEC(vec_i64, int64_t)
DEFINE_VEC(vec_f64, double)

/* Quote a token for an error message: at most 40 bytes, control bytes as '?'. */
static const char *quote(const char *s, size_t len, char *buf, size_t cap)
{
    size_t n = len < 40 ? len : 40, k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[k++] = (c < 32 || c == 127) ? '?' : (char)c;
    }
    if (n < len && k + 4 < cap) { buf[k++] = '.'; buf[k++] = '.'; buf[k++] = '.'; }
    buf[k] = 0;
    return buf;
}

static lrgd_dataset *dataset_new(const char *name)
{
    lrgd_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->source = strdup(name ? name : "");
    if (!ds->source) { free(ds); return NULL; }
    return ds;
}

void lrgd_dataset_free(lrgd_dataset *ds)
{
    if (!ds) return;
    free(ds->source);
    free(ds->offsets);
    free(ds->items);
    free(ds->user_ext);
    free(ds->item_ext);
    rec_names_free(&ds->user_names);
    rec_names_free(&ds->item_names);
    rec_intmap_free(&ds->user_imap);
    rec_intmap_free(&ds->item_imap);
    rec_strmap_free(&ds->user_smap);
    rec_strmap_free(&ds->item_smap);
    free(ds->text_buf);
    free(ds->text_off);
    free(ds);
}

/* Fill the statistics that depend only on the CSR. */
static lrgd_status finish_stats(lrgd_dataset *ds)
{
    lrgd_data_stats *st = &ds->stats;
    st->n_users = ds->n_users;
    st->n_items = ds->n_items;
    st->n_interactions = ds->n_inter;
    st->min_len = ds->n_users ? 0x7fffffff : 0;
    st->max_len = 0;
    st->n_short = 0;
    st->n_repeats = 0;
    int32_t *last = malloc((size_t)(ds->n_items ? ds->n_items : 1) * sizeof *last);
    if (!last) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    memset(last, 0xff, (size_t)ds->n_items * sizeof *last);
    for (int u = 0; u < ds->n_users; u++) {
        int64_t a = ds->offsets[u], b = ds->offsets[u + 1];
        int len = (int)(b - a);
        if (len < st->min_len) st->min_len = len;
        if (len > st->max_len) st->max_len = len;
        if (len < 3) st->n_short++;
        for (int64_t k = a; k < b; k++) {
            int32_t it = ds->items[k];
            if (last[it] == u) st->n_repeats++;
            last[it] = u;
        }
    }
    free(last);
    return LRGD_OK;
}

/* Decimal names and the integer maps for integer-keyed datasets. */
static lrgd_status build_int_names(rec_names *names, rec_intmap *map, const int64_t *ext, int n)
{
    LRGD_TRY(rec_intmap_init(map, (size_t)n));
    for (int i = 0; i < n; i++) {
        char tmp[32];
        int w = snprintf(tmp, sizeof tmp, "%lld", (long long)ext[i]);
        LRGD_TRY(rec_names_push(names, tmp, (size_t)w));
        if (rec_intmap_put(map, ext[i], i) == -2) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    return LRGD_OK;
}

/* ---- Amazon sequence format ------------------------------------------------- */

typedef struct { int64_t ext; int32_t tmp; } ext_pair;

static int cmp_ext_pair(const void *a, const void *b)
{
    const ext_pair *x = a, *y = b;
    return (x->ext > y->ext) - (x->ext < y->ext);
}

static lrgd_status id_error(const char *name, int64_t line, int field, const char *what, const char *tok,
                            size_t len, int64_t code)
{
    char q[64];
    quote(tok, len, q, sizeof q);
    if (code == -2)
        return lrgd_fail(LRGD_E_FORMAT, "%s:%lld: field %d: %s id '%s' is negative (expected an integer >= 0)",
                         name, (long long)line, field, what, q);
    if (code == -3)
        return lrgd_fail(LRGD_E_FORMAT, "%s:%lld: field %d: %s id '%s' is too large (expected < 10^18)", name,
                         (long long)line, field, what, q);
    return lrgd_fail(LRGD_E_FORMAT, "%s:%lld: field %d: expected a non-negative integer %s id, got '%s'", name,
                     (long long)line, field, what, q);
}

static lrgd_status parse_amazon(lrgd_dataset *ds, const char *buf, size_t len, const char *name)
{
    lrgd_status st = LRGD_OK;
    vec_i64 offs = {0}, uext = {0}, iext = {0}, uline = {0};
    vec_i32 items = {0};
    rec_intmap umap = {0}, imap = {0};
    ext_pair *pairs = NULL;
    int32_t *remap = NULL;
    const char *p = buf, *end = buf + len;
    int64_t line = 0;

    if (len == 0) { st = lrgd_fail(LRGD_E_FORMAT, "%s: empty file (expected one line per user)", name); goto done; }
    /* The counts only size the first allocations; growth handles the rest. */
    if ((st = rec_intmap_init(&umap, 1024)) != LRGD_OK) goto done;
    if ((st = rec_intmap_init(&imap, 1024)) != LRGD_OK) goto done;
    if (vec_i64_push(&offs, 0)) goto oom;

    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *le = eol;
        if (le > p && le[-1] == '\r') le--;
        const char *q = p;
        int field = 0;
        int64_t user_ext = -1;
        size_t n_before = items.n;
        while (q < le) {
            while (q < le && (*q == ' ' || *q == '\t')) q++;
            if (q == le) break;
            const char *t = q;
            while (q < le && *q != ' ' && *q != '\t') q++;
            field++;
            int64_t v = rec_parse_id(t, (size_t)(q - t));
            if (v < 0) {
                st = id_error(name, line, field, field == 1 ? "user" : "item", t, (size_t)(q - t), v);
                goto done;
            }
            if (field == 1) {
                user_ext = v;
                continue;
            }
            int32_t id = rec_intmap_put(&imap, v, (int32_t)iext.n);
            if (id == -2) goto oom;
            if (id == -1) {
                if (iext.n >= 0x7fffffff) { st = lrgd_fail(LRGD_E_UNSUPPORTED, "%s:%lld: more than 2^31-1 items", name, (long long)line); goto done; }
                id = (int32_t)iext.n;
                if (vec_i64_push(&iext, v)) goto oom;
            }
            if (vec_i32_push(&items, id)) goto oom;
        }
        if (field == 0) {
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: empty line (expected 'user_id item_id ...')", name, (long long)line);
            goto done;
        }
        ds->stats.n_lines++;
        int32_t prev = rec_intmap_put(&umap, user_ext, (int32_t)uline.n);
        if (prev == -2) goto oom;
        if (prev >= 0) {
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: duplicate user %lld (first on line %lld)", name, (long long)line,
                           (long long)user_ext, (long long)uline.v[prev]);
            goto done;
        }
        if (vec_i64_push(&uline, line)) goto oom;
        if (items.n == n_before) {
            ds->stats.skipped_no_items++;
        } else {
            if (uext.n >= 0x7fffffff) { st = lrgd_fail(LRGD_E_UNSUPPORTED, "%s:%lld: more than 2^31-1 users", name, (long long)line); goto done; }
            if (vec_i64_push(&uext, user_ext) || vec_i64_push(&offs, (int64_t)items.n)) goto oom;
        }
        p = eol < end ? eol + 1 : end;
    }
    if (uext.n == 0) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: no user has any interactions (%lld lines read)", name, (long long)line);
        goto done;
    }

    /* Items in ascending external id order: the Amazon item k becomes k-1. */
    pairs = malloc(iext.n * sizeof *pairs);
    remap = malloc(iext.n * sizeof *remap);
    if (!pairs || !remap) goto oom;
    for (size_t i = 0; i < iext.n; i++) pairs[i] = (ext_pair){iext.v[i], (int32_t)i};
    qsort(pairs, iext.n, sizeof *pairs, cmp_ext_pair);
    for (size_t i = 0; i < iext.n; i++) {
        remap[pairs[i].tmp] = (int32_t)i;
        iext.v[i] = pairs[i].ext;
    }
    for (size_t k = 0; k < items.n; k++) items.v[k] = remap[items.v[k]];

    ds->fmt = LRGD_DATA_AMAZON;
    ds->by_int = 1;
    ds->n_users = (int)uext.n;
    ds->n_items = (int)iext.n;
    ds->n_inter = (int64_t)items.n;
    ds->offsets = offs.v; offs.v = NULL;
    ds->items = items.v; items.v = NULL;
    ds->user_ext = uext.v; uext.v = NULL;
    ds->item_ext = iext.v; iext.v = NULL;
    if ((st = build_int_names(&ds->user_names, &ds->user_imap, ds->user_ext, ds->n_users)) != LRGD_OK) goto done;
    if ((st = build_int_names(&ds->item_names, &ds->item_imap, ds->item_ext, ds->n_items)) != LRGD_OK) goto done;
    goto done;
oom:
    st = lrgd_fail(LRGD_E_NOMEM, "%s: out of memory while parsing", name);
done:
    free(offs.v); free(uext.v); free(iext.v); free(uline.v); free(items.v);
    rec_intmap_free(&umap); rec_intmap_free(&imap);
    free(pairs); free(remap);
    return st;
}

/* ---- RecBole atomic .inter -------------------------------------------------- */

/* Field name without its ":type" suffix equals want? */
static int field_is(const char *f, size_t len, const char *want)
{
    const char *colon = memchr(f, ':', len);
    size_t n = colon ? (size_t)(colon - f) : len;
    return n == strlen(want) && memcmp(f, want, n) == 0;
}

typedef struct { double ts; int64_t row; int32_t item; } ts_row;

static int cmp_ts_row(const void *a, const void *b)
{
    const ts_row *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row); /* stable: file order on ties */
}

/* Intern a token as a user/item: returns the id or a negative on OOM. */
static int32_t intern(rec_names *names, rec_strmap *map, vec_i64 *ext, const char *t, size_t len)
{
    uint64_t h = rec_hash_bytes(t, len);
    int32_t id = rec_strmap_get(map, names, t, len, h);
    if (id >= 0) return id;
    if (names->n >= 0x7fffffff) return -3;
    id = (int32_t)names->n;
    if (rec_names_push(names, t, len) != LRGD_OK) return -2;
    if (rec_strmap_add(map, names, id, h) != LRGD_OK) return -2;
    int64_t v = rec_parse_id(t, len);
    if (vec_i64_push(ext, v >= 0 ? v : -1)) return -2;
    return id;
}

static lrgd_status parse_recbole(lrgd_dataset *ds, const char *buf, size_t len, const char *name)
{
    lrgd_status st = LRGD_OK;
    vec_i32 ru = {0}, ri = {0};
    vec_f64 rts = {0};
    vec_i64 uext = {0}, iext = {0};
    int64_t *offs = NULL, *fill = NULL;
    int32_t *items = NULL;
    ts_row *tmp = NULL;
    const char *p = buf, *end = buf + len;
    int64_t line = 0;
    int n_fields = 0, c_user = -1, c_item = -1, c_ts = -1;

    if (len == 0) return lrgd_fail(LRGD_E_FORMAT, "%s: empty file (expected a RecBole header line)", name);
    if (memchr(buf, 0, len)) {
        const char *z = memchr(buf, 0, len);
        int64_t l = 1;
        for (const char *c = buf; c < z; c++) l += *c == '\n';
        return lrgd_fail(LRGD_E_FORMAT, "%s:%lld: NUL byte in a text file", name, (long long)l);
    }
    if ((st = rec_strmap_init(&ds->user_smap, 1024)) != LRGD_OK) return st;
    if ((st = rec_strmap_init(&ds->item_smap, 1024)) != LRGD_OK) return st;

    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *le = eol;
        if (le > p && le[-1] == '\r') le--;
        const char *blank = p;
        while (blank < le && (*blank == ' ' || *blank == '\t')) blank++;
        if (blank == le) {
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: empty line (expected %s)", name, (long long)line,
                           line == 1 ? "a header of name:type fields" : "a tab-separated interaction row");
            goto done;
        }
        if (line == 1) {
            const char *f = p;
            for (;;) {
                const char *tab = memchr(f, '\t', (size_t)(le - f));
                const char *fe = tab ? tab : le;
                size_t fl = (size_t)(fe - f);
                int *slot = field_is(f, fl, "user_id") ? &c_user
                          : field_is(f, fl, "item_id") ? &c_item
                          : field_is(f, fl, "timestamp") ? &c_ts : NULL;
                if (slot) {
                    if (*slot >= 0) {
                        char q[64];
                        st = lrgd_fail(LRGD_E_FORMAT, "%s:1: header names field '%s' twice", name, quote(f, fl, q, sizeof q));
                        goto done;
                    }
                    *slot = n_fields;
                }
                n_fields++;
                if (!tab) break;
                f = tab + 1;
            }
            if (c_user < 0 || c_item < 0) {
                st = lrgd_fail(LRGD_E_FORMAT, "%s:1: header lacks %s (expected tab-separated fields such as "
                               "user_id:token item_id:token timestamp:float)", name, c_user < 0 ? "user_id" : "item_id");
                goto done;
            }
        } else {
            const char *f = p, *fu = NULL, *fi = NULL, *ft = NULL;
            size_t lu = 0, li = 0, lt = 0;
            int k = 0;
            for (;;) {
                const char *tab = memchr(f, '\t', (size_t)(le - f));
                const char *fe = tab ? tab : le;
                if (k == c_user) { fu = f; lu = (size_t)(fe - f); }
                if (k == c_item) { fi = f; li = (size_t)(fe - f); }
                if (k == c_ts) { ft = f; lt = (size_t)(fe - f); }
                k++;
                if (!tab) break;
                f = tab + 1;
            }
            if (k != n_fields) {
                st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: expected %d tab-separated fields (as in the header), got %d",
                               name, (long long)line, n_fields, k);
                goto done;
            }
            if (lu == 0 || li == 0) {
                st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: empty %s", name, (long long)line, lu == 0 ? "user_id" : "item_id");
                goto done;
            }
            double ts = 0;
            if (c_ts >= 0) {
                char tb[64], q[64];
                char *te;
                if (lt == 0 || lt >= sizeof tb) goto bad_ts;
                memcpy(tb, ft, lt);
                tb[lt] = 0;
                errno = 0;
                ts = strtod(tb, &te);
                if (*te || !isfinite(ts)) {
                bad_ts:
                    st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: expected a finite number for timestamp, got '%s'", name,
                                   (long long)line, quote(ft, lt, q, sizeof q));
                    goto done;
                }
            }
            int32_t u = intern(&ds->user_names, &ds->user_smap, &uext, fu, lu);
            int32_t it = intern(&ds->item_names, &ds->item_smap, &iext, fi, li);
            if (u == -3 || it == -3) { st = lrgd_fail(LRGD_E_UNSUPPORTED, "%s:%lld: more than 2^31-1 ids", name, (long long)line); goto done; }
            if (u < 0 || it < 0) goto oom;
            if (vec_i32_push(&ru, u) || vec_i32_push(&ri, it) || vec_f64_push(&rts, ts)) goto oom;
            ds->stats.n_lines++;
        }
        p = eol < end ? eol + 1 : end;
    }
    if (ru.n == 0) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: no interactions after the header (%lld lines read)", name, (long long)line);
        goto done;
    }

    /* Group rows by user (counting sort keeps file order), then sort each
     * user's rows by timestamp, ties in file order. */
    int nu = (int)ds->user_names.n;
    offs = calloc((size_t)nu + 1, sizeof *offs);
    fill = malloc(((size_t)nu + 1) * sizeof *fill);
    items = malloc(ru.n * sizeof *items);
    tmp = malloc(ru.n * sizeof *tmp);
    if (!offs || !fill || !items || !tmp) goto oom;
    for (size_t r = 0; r < ru.n; r++) offs[ru.v[r] + 1]++;
    for (int u = 0; u < nu; u++) offs[u + 1] += offs[u];
    memcpy(fill, offs, ((size_t)nu + 1) * sizeof *fill);
    for (size_t r = 0; r < ru.n; r++) tmp[fill[ru.v[r]]++] = (ts_row){rts.v[r], (int64_t)r, ri.v[r]};
    for (int u = 0; u < nu; u++) {
        size_t a = (size_t)offs[u], b = (size_t)offs[u + 1];
        if (c_ts >= 0) qsort(tmp + a, b - a, sizeof *tmp, cmp_ts_row);
        for (size_t k = a; k < b; k++) items[k] = tmp[k].item;
    }

    ds->fmt = LRGD_DATA_RECBOLE;
    ds->by_int = 0;
    ds->n_users = nu;
    ds->n_items = (int)ds->item_names.n;
    ds->n_inter = (int64_t)ru.n;
    ds->offsets = offs; offs = NULL;
    ds->items = items; items = NULL;
    ds->user_ext = uext.v; uext.v = NULL;
    ds->item_ext = iext.v; iext.v = NULL;
    goto done;
oom:
    st = lrgd_fail(LRGD_E_NOMEM, "%s: out of memory while parsing", name);
done:
    free(ru.v); free(ri.v); free(rts.v); free(uext.v); free(iext.v);
    free(offs); free(fill); free(items); free(tmp);
    return st;
}

/* ---- public ----------------------------------------------------------------- */

static lrgd_data_format sniff(const char *buf, size_t len)
{
    const char *eol = memchr(buf, '\n', len);
    size_t n = eol ? (size_t)(eol - buf) : len;
    if (memchr(buf, '\t', n) && memmem(buf, n, "user_id:", 8)) return LRGD_DATA_RECBOLE;
    return LRGD_DATA_AMAZON;
}

lrgd_status lrgd_dataset_parse(const char *buf, size_t len, const char *name, lrgd_data_format fmt,
                               lrgd_dataset **out)
{
    *out = NULL;
    if (!name) name = "<buffer>";
    if (!buf && len) return lrgd_fail(LRGD_E_INVALID, "%s: NULL buffer", name);
    if (fmt != LRGD_DATA_AUTO && fmt != LRGD_DATA_AMAZON && fmt != LRGD_DATA_RECBOLE)
        return lrgd_fail(LRGD_E_INVALID, "%s: unknown dataset format %d", name, (int)fmt);
    double t0 = lrgd_now();
    lrgd_dataset *ds = dataset_new(name);
    if (!ds) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (fmt == LRGD_DATA_AUTO) fmt = len ? sniff(buf, len) : LRGD_DATA_AMAZON;
    lrgd_status st = fmt == LRGD_DATA_RECBOLE ? parse_recbole(ds, buf, len, name) : parse_amazon(ds, buf, len, name);
    if (st == LRGD_OK) st = finish_stats(ds);
    if (st != LRGD_OK) { lrgd_dataset_free(ds); return st; }
    ds->stats.load_seconds = lrgd_now() - t0;
    *out = ds;
    return LRGD_OK;
}

lrgd_status lrgd_dataset_load(const char *path, lrgd_data_format fmt, lrgd_dataset **out)
{
    *out = NULL;
    double t0 = lrgd_now();
    lrgd_mapped m;
    LRGD_TRY(lrgd_map_file(path, &m));
    lrgd_status st = lrgd_dataset_parse((const char *)m.data, m.size, path, fmt, out);
    lrgd_unmap_file(&m);
    if (st == LRGD_OK) (*out)->stats.load_seconds = lrgd_now() - t0;
    return st;
}

lrgd_status lrgd_dataset_from_sequences(int n_users, const int64_t *offsets, const int32_t *items, int n_items,
                                        lrgd_dataset **out)
{
    *out = NULL;
    if (n_users <= 0 || n_items <= 0 || !offsets || !items)
        return lrgd_fail(LRGD_E_INVALID, "dataset from sequences: need n_users > 0, n_items > 0 and arrays");
    if (offsets[0] != 0) return lrgd_fail(LRGD_E_INVALID, "dataset from sequences: offsets[0] must be 0");
    for (int u = 0; u < n_users; u++)
        if (offsets[u + 1] <= offsets[u])
            return lrgd_fail(LRGD_E_INVALID, "dataset from sequences: user %d has no items", u);
    int64_t n = offsets[n_users];
    for (int64_t k = 0; k < n; k++)
        if (items[k] < 0 || items[k] >= n_items)
            return lrgd_fail(LRGD_E_INVALID, "dataset from sequences: item %d at %lld outside [0, %d)", (int)items[k],
                             (long long)k, n_items);
    double t0 = lrgd_now();
    lrgd_dataset *ds = dataset_new("");
    if (!ds) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_status st = LRGD_OK;
    ds->fmt = LRGD_DATA_AUTO;
    ds->by_int = 1;
    ds->n_users = n_users;
    ds->n_items = n_items;
    ds->n_inter = n;
    ds->offsets = malloc(((size_t)n_users + 1) * sizeof *ds->offsets);
    ds->items = malloc((size_t)n * sizeof *ds->items);
    ds->user_ext = malloc((size_t)n_users * sizeof *ds->user_ext);
    ds->item_ext = malloc((size_t)n_items * sizeof *ds->item_ext);
    if (!ds->offsets || !ds->items || !ds->user_ext || !ds->item_ext) {
        st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(ds->offsets, offsets, ((size_t)n_users + 1) * sizeof *offsets);
    memcpy(ds->items, items, (size_t)n * sizeof *items);
    for (int u = 0; u < n_users; u++) ds->user_ext[u] = u;
    for (int i = 0; i < n_items; i++) ds->item_ext[i] = i;
    ds->stats.n_lines = n_users;
    if ((st = build_int_names(&ds->user_names, &ds->user_imap, ds->user_ext, n_users)) != LRGD_OK) goto fail;
    if ((st = build_int_names(&ds->item_names, &ds->item_imap, ds->item_ext, n_items)) != LRGD_OK) goto fail;
    if ((st = finish_stats(ds)) != LRGD_OK) goto fail;
    ds->stats.load_seconds = lrgd_now() - t0;
    *out = ds;
    return LRGD_OK;
fail:
    lrgd_dataset_free(ds);
    return st;
}

int lrgd_dataset_n_users(const lrgd_dataset *ds) { return ds->n_users; }
int lrgd_dataset_n_items(const lrgd_dataset *ds) { return ds->n_items; }
int64_t lrgd_dataset_n_interactions(const lrgd_dataset *ds) { return ds->n_inter; }
const lrgd_data_stats *lrgd_dataset_stats(const lrgd_dataset *ds) { return &ds->stats; }
lrgd_data_format lrgd_dataset_format(const lrgd_dataset *ds) { return ds->fmt; }
const char *lrgd_dataset_source(const lrgd_dataset *ds) { return ds->source; }

void lrgd_dataset_user_items(const lrgd_dataset *ds, int u, const int32_t **items, int *len)
{
    if (u < 0 || u >= ds->n_users) { *items = NULL; *len = 0; return; }
    *items = ds->items + ds->offsets[u];
    *len = (int)(ds->offsets[u + 1] - ds->offsets[u]);
}

const int64_t *lrgd_dataset_offsets(const lrgd_dataset *ds) { return ds->offsets; }
const int32_t *lrgd_dataset_items(const lrgd_dataset *ds) { return ds->items; }

const char *lrgd_dataset_user_name(const lrgd_dataset *ds, int u)
{
    return u >= 0 && u < ds->n_users ? rec_name(&ds->user_names, u) : NULL;
}
const char *lrgd_dataset_item_name(const lrgd_dataset *ds, int i)
{
    return i >= 0 && i < ds->n_items ? rec_name(&ds->item_names, i) : NULL;
}
int64_t lrgd_dataset_user_ext(const lrgd_dataset *ds, int u) { return u >= 0 && u < ds->n_users ? ds->user_ext[u] : -1; }
int64_t lrgd_dataset_item_ext(const lrgd_dataset *ds, int i) { return i >= 0 && i < ds->n_items ? ds->item_ext[i] : -1; }

static int find(const lrgd_dataset *ds, const rec_intmap *im, const rec_strmap *sm, const rec_names *nm,
                const char *name, size_t len)
{
    if (!name) return -1;
    if (ds->by_int) {
        int64_t v = rec_parse_id(name, len);
        return v < 0 ? -1 : rec_intmap_get(im, v);
    }
    return rec_strmap_get(sm, nm, name, len, rec_hash_bytes(name, len));
}

int lrgd_dataset_find_item(const lrgd_dataset *ds, const char *name, size_t len)
{
    return find(ds, &ds->item_imap, &ds->item_smap, &ds->item_names, name, len);
}
int lrgd_dataset_find_user(const lrgd_dataset *ds, const char *name, size_t len)
{
    return find(ds, &ds->user_imap, &ds->user_smap, &ds->user_names, name, len);
}
