/* The smallest program against the installed library: load a model, print
 * its configuration, and decode a few tokens greedily from BOS.
 *
 *   cc hello.c $(pkg-config --cflags --libs lrgd) -o hello
 *   ./hello stories260K.bin [n_tokens]
 *
 * Every lrgd call returns a status; lrgd_last_error() says what went wrong. */
#include <lrgd/lrgd.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [n_tokens]\n", argv[0]);
        return 2;
    }
    int n_new = argc > 2 ? atoi(argv[2]) : 16;
    if (n_new < 0 || n_new > 4096) n_new = 16;

    lrgd_model *m = NULL;
    lrgd_status st = lrgd_model_load(argv[1], &m);
    if (st != LRGD_OK) {
        fprintf(stderr, "%s\n", lrgd_last_error());
        return lrgd_exit_code(st);
    }
    const lrgd_config *c = lrgd_model_config(m);
    printf("lrgd %s\n", lrgd_version());
    printf("model %s\n", argv[1]);
    printf("dim %d\nhidden_dim %d\nn_layers %d\nn_heads %d\nn_kv_heads %d\nvocab_size %d\nseq_len %d\n", c->dim,
           c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
    printf("rope %s\nattention %s\ntied %d\n", c->rope_type == LRGD_ROPE_NEOX ? "neox" : "norm",
           c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax", c->tied);

    int bos = 1, *out = malloc(sizeof(int) * (size_t)(n_new > 0 ? n_new : 1)), n_out = 0;
    if (!out) return 1;
    st = lrgd_generate(m, &bos, 1, n_new, NULL, -1, out, &n_out); /* NULL sampler: greedy */
    if (st != LRGD_OK) {
        fprintf(stderr, "%s\n", lrgd_last_error());
        free(out);
        lrgd_model_free(m);
        return lrgd_exit_code(st);
    }
    printf("greedy");
    for (int i = 0; i < n_out; i++) printf(" %d", out[i]);
    printf("\n");
    free(out);
    lrgd_model_free(m);
    return 0;
}
