/* Item text (titles) attached to a dataset, for text prompts. */
#include "rec/rec.h"

#include <stdlib.h>
#include <string.h>

/* Split [p, le) at tabs into up to cap fields; returns the field count. */
static int split_tabs(const char *p, const char *le, const char **f, size_t *fl, int cap)
{
    int k = 0;
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(le - p));
        const char *fe = tab ? tab : le;
        if (k < cap) { f[k] = p; fl[k] = (size_t)(fe - p); }
        k++;
        if (!tab) break;
        p = tab + 1;
    }
    return k;
}

static int name_is(const char *f, size_t len, const char *want)
{
    const char *colon = memchr(f, ':', len);
    size_t n = colon ? (size_t)(colon - f) : len;
    return n == strlen(want) && memcmp(f, want, n) == 0;
}

#define MAX_FIELDS 256

lrgd_status lrgd_dataset_parse_item_text(lrgd_dataset *ds, const char *buf, size_t len, const char *name)
{
    lrgd_status st = LRGD_OK;
    const char *p = buf, *end = buf + len;
    const char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int64_t line = 0, *off = NULL, *seen_line = NULL;
    char *tb = NULL;
    size_t tlen = 0, tcap = 0;
    int c_id = 0, c_text = 1, c_brand = -1, n_fields = 2, header = 0, n_text = 0;

    if (!name) name = "<buffer>";
    if (len == 0) return lrgd_fail(LRGD_E_FORMAT, "%s: empty file (expected item text rows)", name);
    if (memchr(buf, 0, len)) return lrgd_fail(LRGD_E_FORMAT, "%s: NUL byte in a text file", name);
    off = malloc((size_t)ds->n_items * sizeof *off);
    seen_line = calloc((size_t)ds->n_items, sizeof *seen_line);
    if (!off || !seen_line) goto oom;
    memset(off, 0xff, (size_t)ds->n_items * sizeof *off);

    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *le = eol;
        if (le > p && le[-1] == '\r') le--;
        const char *b = p;
        while (b < le && (*b == ' ' || *b == '\t')) b++;
        if (b == le) {
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: empty line (expected 'item_id<TAB>text')", name, (long long)line);
            goto done;
        }
        int k = split_tabs(p, le, f, fl, MAX_FIELDS);
        if (line == 1 && name_is(f[0], fl[0], "item_id")) {
            if (k > MAX_FIELDS) {
                st = lrgd_fail(LRGD_E_UNSUPPORTED, "%s:1: more than %d header fields", name, MAX_FIELDS);
                goto done;
            }
            header = 1;
            c_text = -1;
            int c_kw = -1;
            for (int i = 0; i < k; i++) {
                if (name_is(f[i], fl[i], "title") && c_text < 0) c_text = i;
                else if (name_is(f[i], fl[i], "keywords") && c_kw < 0) c_kw = i;
                else if (name_is(f[i], fl[i], "brand") && c_brand < 0) c_brand = i;
            }
            if (c_text < 0) c_text = c_kw;
            if (c_text < 0) {
                st = lrgd_fail(LRGD_E_FORMAT, "%s:1: header has no title or keywords field", name);
                goto done;
            }
            n_fields = k;
            p = eol < end ? eol + 1 : end;
            continue;
        }
        if (k != n_fields) {
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: expected %d tab-separated fields%s, got %d", name, (long long)line,
                           n_fields, header ? " (as in the header)" : " (item_id<TAB>title)", k);
            goto done;
        }
        int it = lrgd_dataset_find_item(ds, f[c_id], fl[c_id]);
        if (it < 0) {
            char q[48];
            size_t n = fl[c_id] < 40 ? fl[c_id] : 40;
            for (size_t i = 0; i < n; i++) q[i] = (unsigned char)f[c_id][i] < 32 ? '?' : f[c_id][i];
            q[n] = 0;
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: item id '%s' is not in the dataset", name, (long long)line, q);
            goto done;
        }
        if (seen_line[it]) {
            st = lrgd_fail(LRGD_E_FORMAT, "%s:%lld: item '%s' listed twice (first on line %lld)", name, (long long)line,
                           lrgd_dataset_item_name(ds, it), (long long)seen_line[it]);
            goto done;
        }
        seen_line[it] = line;
        /* text = title, or "title (brand)" when the brand adds something. */
        const char *t = f[c_text];
        size_t tl = fl[c_text], bl = 0;
        const char *br = NULL;
        if (c_brand >= 0 && fl[c_brand] > 0) {
            br = f[c_brand];
            bl = fl[c_brand];
            if (tl >= bl && memmem(t, tl, br, bl)) br = NULL;
        }
        size_t need = tl + (br ? bl + 3 : 0) + 1;
        if (tcap - tlen < need) {
            size_t nc = tcap ? tcap : 1 << 16;
            while (nc - tlen < need) nc *= 2;
            char *nb = realloc(tb, nc);
            if (!nb) goto oom;
            tb = nb;
            tcap = nc;
        }
        off[it] = (int64_t)tlen;
        memcpy(tb + tlen, t, tl);
        tlen += tl;
        if (br) {
            tb[tlen++] = ' ';
            tb[tlen++] = '(';
            memcpy(tb + tlen, br, bl);
            tlen += bl;
            tb[tlen++] = ')';
        }
        tb[tlen++] = 0;
        n_text++;
        p = eol < end ? eol + 1 : end;
    }
    if (n_text == 0) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: no item rows%s", name, header ? " after the header" : "");
        goto done;
    }
    free(ds->text_buf);
    free(ds->text_off);
    ds->text_buf = tb; tb = NULL;
    ds->text_off = off; off = NULL;
    ds->n_text = n_text;
    goto done;
oom:
    st = lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", name);
done:
    free(off);
    free(seen_line);
    free(tb);
    return st;
}

lrgd_status lrgd_dataset_load_item_text(lrgd_dataset *ds, const char *path)
{
    lrgd_mapped m;
    LRGD_TRY(lrgd_map_file(path, &m));
    lrgd_status st = lrgd_dataset_parse_item_text(ds, (const char *)m.data, m.size, path);
    lrgd_unmap_file(&m);
    return st;
}

const char *lrgd_dataset_item_text(const lrgd_dataset *ds, int i)
{
    if (!ds->text_off || i < 0 || i >= ds->n_items || ds->text_off[i] < 0) return NULL;
    return ds->text_buf + ds->text_off[i];
}

int lrgd_dataset_n_item_text(const lrgd_dataset *ds) { return ds->n_text; }
