/* lrgd convert IN OUT.gguf: llama2.c checkpoint (or GGUF) to GGUF. */
#include "cli.h"
#include "commands.h"
#include "lrgd/gguf.h"
#include "model/model_impl.h"

#include <string.h>

const char help_convert[] =
    "usage: lrgd convert IN OUT.gguf [options]\n"
    "\n"
    "Write the model IN (a llama2.c checkpoint or a GGUF file) as a GGUF v3 file\n"
    "that llama.cpp loads (architecture 'llama'). OUT is written atomically.\n"
    "A llama2.c checkpoint carries no tokenizer: the GGUF gets a synthesized\n"
    "vocabulary (<unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then\n"
    "placeholder pieces <tok_N>), so token ids keep their meaning but text does not.\n"
    "A GGUF input keeps its tokenizer.* and general.* keys.\n"
    "\n"
    "options:\n"
    "  --type T      weight type of the matrices: f32 (default), f16 or q8_0;\n"
    "                norms stay f32; with q8_0 a matrix whose rows are not a\n"
    "                multiple of 32 long is written as f16\n"
    "  --name NAME   general.name (default: the source's, else 'lrgd')\n"
    "  --rope-norm   a NeoX-RoPE model: write it in the adjacent-pair RoPE form\n"
    "                llama.cpp computes (wq/wk rows permuted within each head;\n"
    "                attention scores unchanged). Without it llama.cpp loads such a\n"
    "                file but applies the wrong RoPE.\n" CLI_COMMON_HELP;

int cmd_convert(int argc, char **argv)
{
    cli_common cc;
    cli_common_init(&cc);
    const char *type_name = NULL, *name = NULL;
    lrgd_dtype type = LRGD_F32;
    int rope_norm = 0, first, r;
    const cli_opt opts[] = {
        CLI_O_STR("type", &type_name, "f32, f16 or q8_0"),
        CLI_O_STR("name", &name, "a non-empty name"),
        CLI_O_FLAG("rope-norm", &rope_norm),
        CLI_O_END};
    if ((r = cli_parse_args("convert", help_convert, argc, argv, opts, &cc, &first)) != CLI_CONTINUE) return r;
    if (type_name) { /* either case, as llama.cpp's tools write the names */
        if (!strcmp(type_name, "f32") || !strcmp(type_name, "F32")) type = LRGD_F32;
        else if (!strcmp(type_name, "f16") || !strcmp(type_name, "F16")) type = LRGD_F16;
        else if (!strcmp(type_name, "q8_0") || !strcmp(type_name, "Q8_0")) type = LRGD_Q8_0;
        else return cli_usage("convert", "--type: expected f32, f16 or q8_0, got '%s'", type_name);
    }
    unsigned flags = rope_norm ? LRGD_SAVE_ROPE_NORM : 0;
    if (argc - first != 2) return cli_usage("convert", "expected IN and OUT.gguf, got %d file argument(s)", argc - first);
    if ((r = cli_common_apply("convert", &cc)) != 0) return r;
    const char *in = argv[first], *out = argv[first + 1];

    double t0 = lrgd_now();
    lrgd_model *m;
    lrgd_status st = lrgd_model_load(in, &m);
    if (st != LRGD_OK) return cli_fail("convert", st);
    if (m->cfg.rope_type == LRGD_ROPE_NEOX && !(flags & LRGD_SAVE_ROPE_NORM) && !cc.quiet)
        fprintf(stderr, "lrgd convert: note: %s uses NeoX RoPE; llama.cpp will apply adjacent-pair RoPE to this file "
                        "(use --rope-norm for a file llama.cpp computes correctly)\n", in);
    st = lrgd_model_save_gguf_ex(m, out, type, name, flags);
    if (st != LRGD_OK) {
        lrgd_model_free(m);
        return cli_fail("convert", st);
    }
    const lrgd_config *cf = &m->cfg;
    /* Read back what was written: a file lrgd cannot load again is a bug, not a result. */
    lrgd_model *back;
    st = lrgd_model_load(out, &back);
    if (st != LRGD_OK) {
        lrgd_model_free(m);
        lrgd_fail_wrap(LRGD_E_RUNTIME, "the written file does not load back");
        return cli_fail("convert", LRGD_E_RUNTIME);
    }
    size_t bytes = back->file.size;
    double secs = lrgd_now() - t0;
    if (cc.json) {
        lrgd_json j;
        lrgd_json_init(&j, stdout, 1);
        lrgd_json_obj_begin(&j);
        lrgd_json_key(&j, "run");
        lrgd_json_obj_begin(&j);
        cli_json_run_info(&j, &cc);
        lrgd_json_obj_end(&j);
        lrgd_json_kstr(&j, "input", in);
        lrgd_json_kstr(&j, "output", out);
        lrgd_json_kstr(&j, "type", lrgd_dtype_name(type));
        lrgd_json_kint(&j, "bytes", (long long)bytes);
        lrgd_json_kint(&j, "n_layers", cf->n_layers);
        lrgd_json_kint(&j, "dim", cf->dim);
        lrgd_json_kint(&j, "vocab_size", cf->vocab_size);
        lrgd_json_knum(&j, "seconds", secs);
        lrgd_json_obj_end(&j);
    } else if (!cc.quiet) {
        fprintf(stderr, "lrgd convert: %s -> %s (%s, %zu bytes, %d layers, dim %d, vocab %d) in %.2f s\n", in, out,
                lrgd_dtype_name(type), bytes, cf->n_layers, cf->dim, cf->vocab_size, secs);
    }
    lrgd_model_free(back);
    lrgd_model_free(m);
    return CLI_OK;
}
