/* lrgd info FILE: hyper-parameters, tensors and metadata of a model file. */
#include "cli.h"
#include "commands.h"
#include "lrgd/gguf.h"
#include "model/model_impl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char help_info[] =
    "usage: lrgd info FILE [options]\n"
    "\n"
    "Print a model's hyper-parameters, every tensor (name, type, shape, offset,\n"
    "bytes) and, for GGUF, every metadata key. FILE is a GGUF file or a llama2.c\n"
    "checkpoint. The model is fully checked (as 'generate' would load it): a file\n"
    "lrgd cannot use is an error (exit 2).\n"
    "\n"
    "options:\n"
    "  --raw         GGUF only: list metadata and tensors without checking that\n"
    "                they form a llama model (any architecture)\n"
    "  --arrays N    show the first N elements of array values (default 8)\n" CLI_COMMON_HELP;

/* ---- values as text and JSON -------------------------------------------- */

/* Copy s into buf, replacing bytes that are not valid UTF-8 (or are control
 * characters, in text mode) so that the output stays readable and JSON valid. */
static const char *clean(const char *s, uint64_t len, char *buf, size_t cap, int text)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    uint64_t i = 0;
    while (i < len && o + 8 < cap) {
        unsigned c = p[i];
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = n > 0 && i + (uint64_t)n <= len;
        for (int k = 1; ok && k < n; k++) ok = (p[i + k] & 0xc0) == 0x80;
        if (!ok) { buf[o++] = '?'; i++; continue; }
        if (n == 1 && text && (c < 0x20 || c == 0x7f)) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else if (n == 1 && c == 0) {
            buf[o++] = '?'; /* an embedded NUL would end the C string */
        } else {
            memcpy(buf + o, p + i, (size_t)n);
            o += (size_t)n;
        }
        i += (uint64_t)n;
    }
    if (i < len) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o] = 0;
    return buf;
}

static void text_scalar(const lrgd_gguf_val *v)
{
    int64_t i;
    uint64_t u;
    double f;
    const char *s;
    uint64_t len;
    char buf[256];
    switch (lrgd_gguf_val_type(v)) {
    case LRGD_GGUF_U64: lrgd_gguf_val_u64(v, &u); printf("%" PRIu64, u); break;
    case LRGD_GGUF_F32: case LRGD_GGUF_F64: lrgd_gguf_val_float(v, &f); printf("%.9g", f); break;
    case LRGD_GGUF_BOOL: lrgd_gguf_val_int(v, &i); printf("%s", i ? "true" : "false"); break;
    case LRGD_GGUF_STRING: lrgd_gguf_val_str(v, &s, &len); printf("\"%s\"", clean(s, len, buf, 96, 1)); break;
    default: lrgd_gguf_val_int(v, &i); printf("%" PRId64, i); break;
    }
}

static void text_value(const lrgd_gguf_val *v, int64_t show, int depth)
{
    if (lrgd_gguf_val_type(v) != LRGD_GGUF_ARRAY) { text_scalar(v); return; }
    lrgd_gguf_type et = lrgd_gguf_arr_type(v);
    uint64_t n = lrgd_gguf_arr_len(v);
    printf("array[%s] x %" PRIu64 ": [", lrgd_gguf_type_name(et), n);
    char buf[256];
    for (uint64_t k = 0; k < n && (int64_t)k < show; k++) {
        if (k) printf(", ");
        if (et == LRGD_GGUF_STRING) {
            uint64_t len;
            const char *s = lrgd_gguf_arr_str(v, k, &len);
            printf("\"%s\"", clean(s, len, buf, 64, 1));
        } else if (et == LRGD_GGUF_ARRAY) {
            text_value(lrgd_gguf_arr_arr(v, k), depth < 1 ? show : 0, depth + 1);
        } else if (et == LRGD_GGUF_F32 || et == LRGD_GGUF_F64) {
            double f;
            lrgd_gguf_arr_float(v, k, &f);
            printf("%.9g", f);
        } else if (et == LRGD_GGUF_U64) {
            uint64_t u;
            lrgd_gguf_arr_u64(v, k, &u);
            printf("%" PRIu64, u);
        } else {
            int64_t i;
            lrgd_gguf_arr_int(v, k, &i);
            printf("%" PRId64, i);
        }
    }
    printf("%s]", (int64_t)n > show ? (show > 0 ? ", ..." : "...") : "");
}

static void json_value(lrgd_json *j, const lrgd_gguf_val *v, int64_t show)
{
    int64_t i;
    uint64_t u, len;
    double f;
    const char *s;
    char buf[4096];
    lrgd_gguf_type t = lrgd_gguf_val_type(v);
    switch (t) {
    case LRGD_GGUF_U64:
        lrgd_gguf_val_u64(v, &u);
        if (u > (uint64_t)INT64_MAX) lrgd_json_num(j, (double)u);
        else lrgd_json_int(j, (long long)u);
        return;
    case LRGD_GGUF_F32: case LRGD_GGUF_F64: lrgd_gguf_val_float(v, &f); lrgd_json_num(j, f); return;
    case LRGD_GGUF_BOOL: lrgd_gguf_val_int(v, &i); lrgd_json_bool(j, (int)i); return;
    case LRGD_GGUF_STRING: lrgd_gguf_val_str(v, &s, &len); lrgd_json_str(j, clean(s, len, buf, sizeof buf, 0)); return;
    case LRGD_GGUF_ARRAY: break;
    default: lrgd_gguf_val_int(v, &i); lrgd_json_int(j, i); return;
    }
    lrgd_gguf_type et = lrgd_gguf_arr_type(v);
    uint64_t n = lrgd_gguf_arr_len(v);
    lrgd_json_obj_begin(j);
    lrgd_json_kstr(j, "elem_type", lrgd_gguf_type_name(et));
    lrgd_json_kint(j, "count", (long long)n);
    lrgd_json_key(j, "first");
    lrgd_json_arr_begin(j);
    for (uint64_t k = 0; k < n && (int64_t)k < show; k++) {
        if (et == LRGD_GGUF_STRING) {
            const char *es = lrgd_gguf_arr_str(v, k, &len);
            lrgd_json_str(j, clean(es, len, buf, sizeof buf, 0));
        } else if (et == LRGD_GGUF_ARRAY) {
            json_value(j, lrgd_gguf_arr_arr(v, k), show);
        } else if (et == LRGD_GGUF_F32 || et == LRGD_GGUF_F64) {
            lrgd_gguf_arr_float(v, k, &f);
            lrgd_json_num(j, f);
        } else if (et == LRGD_GGUF_U64) {
            lrgd_gguf_arr_u64(v, k, &u);
            if (u > (uint64_t)INT64_MAX) lrgd_json_num(j, (double)u);
            else lrgd_json_int(j, (long long)u);
        } else {
            lrgd_gguf_arr_int(v, k, &i);
            lrgd_json_int(j, i);
        }
    }
    lrgd_json_arr_end(j);
    lrgd_json_obj_end(j);
}

/* ---- tensors ----------------------------------------------------------------- */

typedef struct tinfo {
    char name[LRGD_GGUF_MAX_NAME + 8];
    lrgd_dtype type;
    int n_dims;
    uint64_t ne[4];
    uint64_t offset;
    size_t bytes;
} tinfo;

/* The tensors of a model read from a llama2.c file, named as GGUF names them. */
static int llama2c_tensors(const lrgd_model *m, tinfo **out)
{
    const lrgd_config *c = &m->cfg;
    int cap = 3 + 9 * c->n_layers, n = 0;
    tinfo *t = calloc((size_t)cap, sizeof *t);
    if (!t) return -1;
    const unsigned char *base = m->file.data;
#define MAT(nm, w)                                                                                   \
    do {                                                                                             \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                            \
        t[n].type = (w).type; t[n].n_dims = 2; t[n].ne[0] = (uint64_t)(w).cols; t[n].ne[1] = (uint64_t)(w).rows; \
        t[n].offset = (uint64_t)((const unsigned char *)(w).data - base);                           \
        t[n].bytes = lrgd_dtype_row_bytes((w).type, (size_t)(w).cols) * (size_t)(w).rows; n++;        \
    } while (0)
#define VEC(nm, p)                                                                                   \
    do {                                                                                             \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                            \
        t[n].type = LRGD_F32; t[n].n_dims = 1; t[n].ne[0] = (uint64_t)c->dim;                        \
        t[n].offset = (uint64_t)((const unsigned char *)(p) - base); t[n].bytes = (size_t)c->dim * 4; n++; \
    } while (0)
    char nm[64];
    MAT("token_embd.weight", m->tok_embd);
    for (int l = 0; l < c->n_layers; l++) {
        const lrgd_layer *L = &m->layers[l];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l); VEC(nm, L->attn_norm);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l); MAT(nm, L->wq);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l); MAT(nm, L->wk);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l); MAT(nm, L->wv);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l); MAT(nm, L->wo);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l); VEC(nm, L->ffn_norm);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l); MAT(nm, L->w1);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l); MAT(nm, L->w2);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l); MAT(nm, L->w3);
    }
    VEC("output_norm.weight", m->out_norm);
    if (!c->tied) MAT("output.weight", m->output);
#undef MAT
#undef VEC
    *out = t;
    return n;
}

static int gguf_tensors(const lrgd_gguf *g, tinfo **out)
{
    int64_t n = lrgd_gguf_n_tensors(g);
    tinfo *t = calloc((size_t)n + 1, sizeof *t);
    if (!t) return -1;
    for (int64_t i = 0; i < n; i++) {
        const lrgd_gguf_tensor *s = lrgd_gguf_tensor_at(g, i);
        char buf[LRGD_GGUF_MAX_NAME + 8];
        snprintf(t[i].name, sizeof t[i].name, "%s", clean(s->name, strlen(s->name), buf, sizeof buf, 0));
        t[i].type = s->type;
        t[i].n_dims = s->n_dims;
        memcpy(t[i].ne, s->ne, sizeof t[i].ne);
        t[i].offset = s->file_offset;
        t[i].bytes = s->bytes;
    }
    *out = t;
    return (int)n;
}

static void shape(char *buf, size_t cap, const tinfo *t)
{
    int w = snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims; d++) w += snprintf(buf + w, cap - (size_t)w, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    snprintf(buf + w, cap - (size_t)w, "]");
}

/* ---- output --------------------------------------------------------------------- */

static void print_text(const char *path, const lrgd_model *m, const lrgd_gguf *g, const tinfo *t, int nt, int64_t show,
                       size_t file_size)
{
    printf("file: %s\n", path);
    if (g)
        printf("format: GGUF v%u, %zu bytes, alignment %zu, data section at offset %zu\n", lrgd_gguf_version(g), file_size,
               lrgd_gguf_alignment(g), lrgd_gguf_data_offset(g));
    else
        printf("format: llama2.c checkpoint (version 0), %zu bytes\n", file_size);
    if (m) {
        const lrgd_config *c = &m->cfg;
        printf("hyper-parameters:\n");
        printf("  dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, head_dim %d\n", c->dim, c->hidden_dim,
               c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim);
        printf("  vocab_size %d, seq_len %d, norm_eps %g, rope_base %g, rope %s, attention %s, output %s\n",
               c->vocab_size, c->seq_len, (double)c->norm_eps, (double)c->rope_base,
               c->rope_type == LRGD_ROPE_NEOX ? "neox" : "norm", c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax",
               c->tied ? "tied" : "untied");
        const lrgd_recvocab *r = &m->rec;
        if (r->n_items > 0)
            printf("recommendation vocabulary: %d special tokens (pad %d, bos %d, sep %d, ans %d, eos %d), %d items\n",
                   r->n_special, r->pad, r->bos, r->sep, r->ans, r->eos, r->n_items);
        size_t params = 0;
        for (int i = 0; i < nt; i++) {
            size_t e = 1;
            for (int d = 0; d < t[i].n_dims; d++) e *= (size_t)t[i].ne[d];
            params += e;
        }
        printf("  parameters %zu\n", params);
    }
    if (g) {
        printf("metadata (%" PRId64 " keys):\n", lrgd_gguf_n_kv(g));
        for (int64_t i = 0; i < lrgd_gguf_n_kv(g); i++) {
            char kb[128];
            const char *k = lrgd_gguf_key(g, i);
            const lrgd_gguf_val *v = lrgd_gguf_kv(g, i);
            printf("  %-40s %-7s ", clean(k, strlen(k), kb, sizeof kb, 1), lrgd_gguf_type_name(lrgd_gguf_val_type(v)));
            text_value(v, show, 0);
            printf("\n");
        }
    }
    printf("tensors (%d):\n", nt);
    printf("  %-28s %-5s %-16s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
    for (int i = 0; i < nt; i++) {
        char sh[96];
        shape(sh, sizeof sh, &t[i]);
        printf("  %-28s %-5s %-16s %12" PRIu64 " %12zu\n", t[i].name, lrgd_dtype_name(t[i].type), sh, t[i].offset,
               t[i].bytes);
    }
}

static void print_json(const char *path, const cli_common *cc, const lrgd_model *m, const lrgd_gguf *g, const tinfo *t,
                       int nt, int64_t show, size_t file_size)
{
    lrgd_json j;
    lrgd_json_init(&j, stdout, 1);
    lrgd_json_obj_begin(&j);
    lrgd_json_key(&j, "run");
    lrgd_json_obj_begin(&j);
    cli_json_run_info(&j, cc);
    lrgd_json_obj_end(&j);
    char pb[4096];
    lrgd_json_kstr(&j, "file", clean(path, strlen(path), pb, sizeof pb, 0));
    lrgd_json_kstr(&j, "format", g ? "gguf" : "llama2c");
    lrgd_json_kint(&j, "file_size", (long long)file_size);
    if (g) {
        lrgd_json_kint(&j, "gguf_version", lrgd_gguf_version(g));
        lrgd_json_kint(&j, "alignment", (long long)lrgd_gguf_alignment(g));
        lrgd_json_kint(&j, "data_offset", (long long)lrgd_gguf_data_offset(g));
    }
    if (m) {
        const lrgd_config *c = &m->cfg;
        lrgd_json_key(&j, "hparams");
        lrgd_json_obj_begin(&j);
        lrgd_json_kint(&j, "dim", c->dim);
        lrgd_json_kint(&j, "hidden_dim", c->hidden_dim);
        lrgd_json_kint(&j, "n_layers", c->n_layers);
        lrgd_json_kint(&j, "n_heads", c->n_heads);
        lrgd_json_kint(&j, "n_kv_heads", c->n_kv_heads);
        lrgd_json_kint(&j, "head_dim", c->head_dim);
        lrgd_json_kint(&j, "vocab_size", c->vocab_size);
        lrgd_json_kint(&j, "seq_len", c->seq_len);
        lrgd_json_knum(&j, "norm_eps", c->norm_eps);
        lrgd_json_knum(&j, "rope_base", c->rope_base);
        lrgd_json_kstr(&j, "rope_type", c->rope_type == LRGD_ROPE_NEOX ? "neox" : "norm");
        lrgd_json_kstr(&j, "attention", c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax");
        lrgd_json_key(&j, "tied");
        lrgd_json_bool(&j, c->tied);
        lrgd_json_obj_end(&j);
        const lrgd_recvocab *r = &m->rec;
        if (r->n_items > 0) {
            lrgd_json_key(&j, "rec_vocab");
            lrgd_json_obj_begin(&j);
            lrgd_json_kint(&j, "n_special", r->n_special);
            lrgd_json_kint(&j, "n_items", r->n_items);
            lrgd_json_kint(&j, "pad", r->pad);
            lrgd_json_kint(&j, "bos", r->bos);
            lrgd_json_kint(&j, "sep", r->sep);
            lrgd_json_kint(&j, "ans", r->ans);
            lrgd_json_kint(&j, "eos", r->eos);
            lrgd_json_obj_end(&j);
        }
    }
    if (g) {
        lrgd_json_key(&j, "metadata");
        lrgd_json_arr_begin(&j);
        for (int64_t i = 0; i < lrgd_gguf_n_kv(g); i++) {
            const char *k = lrgd_gguf_key(g, i);
            const lrgd_gguf_val *v = lrgd_gguf_kv(g, i);
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "key", clean(k, strlen(k), pb, sizeof pb, 0));
            lrgd_json_kstr(&j, "type", lrgd_gguf_type_name(lrgd_gguf_val_type(v)));
            lrgd_json_key(&j, "value");
            json_value(&j, v, show);
            lrgd_json_obj_end(&j);
        }
        lrgd_json_arr_end(&j);
    }
    lrgd_json_key(&j, "tensors");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < nt; i++) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "name", t[i].name);
        lrgd_json_kstr(&j, "type", lrgd_dtype_name(t[i].type));
        lrgd_json_key(&j, "shape");
        lrgd_json_arr_begin(&j);
        for (int d = 0; d < t[i].n_dims; d++) lrgd_json_int(&j, (long long)t[i].ne[d]);
        lrgd_json_arr_end(&j);
        lrgd_json_kint(&j, "offset", (long long)t[i].offset);
        lrgd_json_kint(&j, "bytes", (long long)t[i].bytes);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);
    lrgd_json_obj_end(&j);
}

int cmd_info(int argc, char **argv)
{
    cli_common cc;
    cli_common_init(&cc);
    int raw = 0, first, r;
    long long show = 8;
    const cli_opt opts[] = {
        CLI_O_FLAG("raw", &raw),
        CLI_O_LLONG("arrays", &show, 0, 1LL << 30),
        CLI_O_END};
    if ((r = cli_parse_args("info", help_info, argc, argv, opts, &cc, &first)) != CLI_CONTINUE) return r;
    if (first != argc - 1)
        return cli_usage("info", first >= argc ? "expected a model FILE" : "expected exactly one FILE");
    if ((r = cli_common_apply("info", &cc)) != 0) return r;
    const char *path = argv[first];

    lrgd_model *m = NULL;
    lrgd_gguf *graw = NULL;
    lrgd_status st;
    if (raw) {
        st = lrgd_gguf_open(path, &graw);
    } else {
        st = lrgd_model_load(path, &m);
    }
    if (st != LRGD_OK) return cli_fail("info", st);
    const lrgd_gguf *g = raw ? graw : m->gguf;
    tinfo *t = NULL;
    int nt = g ? gguf_tensors(g, &t) : llama2c_tensors(m, &t);
    if (nt < 0) {
        lrgd_model_free(m);
        lrgd_gguf_free(graw);
        return cli_fail("info", lrgd_fail(LRGD_E_NOMEM, "out of memory"));
    }
    size_t fsize = g ? lrgd_gguf_file_size(g) : m->file.size;
    if (cc.json) print_json(path, &cc, m, g, t, nt, show, fsize);
    else print_text(path, m, g, t, nt, show, fsize);
    free(t);
    lrgd_model_free(m);
    lrgd_gguf_free(graw);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "lrgd info: cannot write to stdout\n");
        return CLI_RUNTIME;
    }
    return CLI_OK;
}
