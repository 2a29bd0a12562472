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

#define OPT_TYPE 2001
#define OPT_NAME 2002
#define OPT_ROPE_NORM 2003

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"type", required_argument, 0, OPT_TYPE}, {"name", required_argument, 0, OPT_NAME},
        {"rope-norm", no_argument, 0, OPT_ROPE_NORM}, CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    cli_common cc;
    cli_common_init(&cc);
    lrgd_dtype type = LRGD_F32;
    const char *name = NULL;
    unsigned flags = 0;
    int c, r;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == CLI_OPT_HELP) { fputs(help_convert, stdout); return CLI_OK; }
        if ((r = cli_common_opt("convert", c, optarg, &cc)) != 0) { if (r < 0) return CLI_USAGE; continue; }
        switch (c) {
        case OPT_TYPE:
            if (!strcmp(optarg, "f32") || !strcmp(optarg, "F32")) type = LRGD_F32;
            else if (!strcmp(optarg, "f16") || !strcmp(optarg, "F16")) type = LRGD_F16;
            else if (!strcmp(optarg, "q8_0") || !strcmp(optarg, "Q8_0")) type = LRGD_Q8_0;
            else return cli_usage("convert", "--type: expected f32, f16 or q8_0, got '%s'", optarg);
            break;
        case OPT_NAME:
            if (!*optarg) return cli_usage("convert", "--name: expected a non-empty name");
            name = optarg;
            break;
        case OPT_ROPE_NORM: flags |= LRGD_SAVE_ROPE_NORM; break;
        default: return cli_usage("convert", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2) return cli_usage("convert", "expected IN and OUT.gguf, got %d file argument(s)", argc - optind);
    if ((r = cli_common_apply("convert", &cc)) != 0) return r;
    const char *in = argv[optind], *out = argv[optind + 1];

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
