/* lrgd generate: decode token ids from a model (greedy or sampled), and
 * optionally dump the logits of every prompt position. */
#include "cli.h"
#include "commands.h"
#include "model/model_impl.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char help_generate[] =
    "usage: lrgd generate --model FILE [options]\n"
    "\n"
    "Decode tokens after a prompt of token ids (there is no text tokenizer:\n"
    "input and output are ids). Greedy by default: argmax, lowest id on ties.\n"
    "\n"
    "  --model FILE        GGUF or llama2.c checkpoint (required)\n"
    "  --prompt \"1 5 7\"    prompt token ids, separated by spaces or commas\n"
    "                      (default: the model's BOS id, or 1 if it has none)\n"
    "  --prompt-file F     read the prompt ids from F (whitespace separated)\n"
    "  --n N               tokens to generate (default 64; 0: only the prompt)\n"
    "  --temp T            sampling temperature (default 0: greedy)\n"
    "  --top-p P           nucleus sampling mass in (0, 1] (default 1: off)\n"
    "  --eos ID            stop after generating ID (default -1: never stop early)\n"
    "  --ids               print only the generated ids, space-separated on one line\n"
    "  --logits OUT.f32    write the logits of every prompt position: n_prompt x vocab\n"
    "                      float32 little-endian, row-major (written atomically)\n" CLI_COMMON_HELP
    "\n"
    "The same --seed gives the same sampled tokens. Exit status: 0 ok, 2 bad\n"
    "options or input (e.g. a token id outside the vocabulary), 1 runtime failure.\n";

#define CMD "generate"

enum { OPT_MODEL = 1, OPT_PROMPT, OPT_PROMPT_FILE, OPT_N, OPT_TEMP, OPT_TOP_P, OPT_EOS, OPT_IDS, OPT_LOGITS };

/* Parse ids separated by whitespace or commas. `what` names the source in messages. */
static int parse_ids(const char *text, const char *what, int **out, int *n_out)
{
    int cap = 64, n = 0, line = 1;
    int *ids = malloc(sizeof(int) * (size_t)cap);
    if (!ids) { fprintf(stderr, "lrgd " CMD ": out of memory\n"); return CLI_RUNTIME; }
    const char *p = text;
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ',')) line += *p++ == '\n';
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno == ERANGE || v < 0 || v > INT_MAX ||
            (*end && !isspace((unsigned char)*end) && *end != ',')) {
            int len = 0;
            while (p[len] && !isspace((unsigned char)p[len]) && p[len] != ',' && len < 40) len++;
            fprintf(stderr, "lrgd " CMD ": %s: line %d, token %d: expected a token id (integer >= 0), got '%.*s'\n",
                    what, line, n + 1, len, p);
            free(ids);
            return CLI_USAGE;
        }
        if (n == cap) {
            int *ni = cap < (1 << 26) ? realloc(ids, sizeof(int) * (size_t)cap * 2) : NULL;
            if (!ni) { free(ids); fprintf(stderr, "lrgd " CMD ": %s: too many ids\n", what); return CLI_USAGE; }
            ids = ni;
            cap *= 2;
        }
        ids[n++] = (int)v;
        p = end;
    }
    if (n == 0) {
        free(ids);
        fprintf(stderr, "lrgd " CMD ": %s: no token ids\n", what);
        return CLI_USAGE;
    }
    *out = ids;
    *n_out = n;
    return CLI_OK;
}

/* n x vocab float32 little-endian, through a temp file renamed on success. */
static lrgd_status write_logits(const char *path, const float *lg, size_t count)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    unsigned char buf[4096];
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &lg[i], 4);
        for (int b = 0; b < 4; b++) buf[used++] = (unsigned char)(u >> (8 * b));
        if (used == sizeof buf || i + 1 == count) {
            if (fwrite(buf, 1, used, af.f) != used) {
                lrgd_afile_abort(&af);
                return lrgd_fail(LRGD_E_IO, "%s: write failed", path);
            }
            used = 0;
        }
    }
    return lrgd_afile_commit(&af);
}

int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, OPT_MODEL}, {"prompt", required_argument, 0, OPT_PROMPT},
        {"prompt-file", required_argument, 0, OPT_PROMPT_FILE}, {"n", required_argument, 0, OPT_N},
        {"temp", required_argument, 0, OPT_TEMP}, {"top-p", required_argument, 0, OPT_TOP_P},
        {"eos", required_argument, 0, OPT_EOS}, {"ids", no_argument, 0, OPT_IDS},
        {"logits", required_argument, 0, OPT_LOGITS}, CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    cli_common com;
    cli_common_init(&com);
    const char *model_path = NULL, *prompt_text = NULL, *prompt_file = NULL, *logits_path = NULL;
    long long n_new = 64, eos = -1;
    double temp = 0.0, top_p = 1.0;
    int ids_only = 0, opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = cli_common_opt(CMD, opt, optarg, &com);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        switch (opt) {
        case OPT_MODEL: model_path = optarg; break;
        case OPT_PROMPT: prompt_text = optarg; break;
        case OPT_PROMPT_FILE: prompt_file = optarg; break;
        case OPT_N: if (cli_int(CMD, "n", optarg, 0, 1 << 24, &n_new)) return CLI_USAGE; break;
        case OPT_TEMP: if (cli_float(CMD, "temp", optarg, 0.0, 1e6, &temp)) return CLI_USAGE; break;
        case OPT_TOP_P:
            if (cli_float(CMD, "top-p", optarg, 0.0, 1.0, &top_p)) return CLI_USAGE;
            if (top_p <= 0.0) return cli_usage(CMD, "--top-p: expected a number in (0, 1], got '%s'", optarg);
            break;
        case OPT_EOS: if (cli_int(CMD, "eos", optarg, -1, INT_MAX, &eos)) return CLI_USAGE; break;
        case OPT_IDS: ids_only = 1; break;
        case OPT_LOGITS: logits_path = optarg; break;
        case CLI_OPT_HELP: fputs(help_generate, stdout); return CLI_OK;
        case ':': return cli_usage(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
    if (!model_path) return cli_usage(CMD, "--model FILE is required");
    if (prompt_text && prompt_file) return cli_usage(CMD, "give --prompt or --prompt-file, not both");
    if (ids_only && com.json) return cli_usage(CMD, "give --ids or --json, not both");
    int rc = cli_common_apply(CMD, &com);
    if (rc) return rc;

    int *prompt = NULL, n_prompt = 0;
    if (prompt_text) {
        if ((rc = parse_ids(prompt_text, "--prompt", &prompt, &n_prompt))) return rc;
    } else if (prompt_file) {
        char *text = NULL;
        lrgd_status st = lrgd_read_file(prompt_file, &text, NULL);
        if (st != LRGD_OK) return cli_fail(CMD, st);
        rc = parse_ids(text, prompt_file, &prompt, &n_prompt);
        lrgd_free(text);
        if (rc) return rc;
    }

    lrgd_model *m = NULL;
    lrgd_status st = lrgd_model_load(model_path, &m);
    if (st != LRGD_OK) { free(prompt); return cli_fail(CMD, st); }
    const lrgd_config *c = lrgd_model_config(m);
    if (!prompt) {
        prompt = malloc(sizeof(int));
        if (!prompt) { lrgd_model_free(m); return cli_fail(CMD, lrgd_fail(LRGD_E_NOMEM, "out of memory")); }
        prompt[0] = m->rec.bos >= 0 ? m->rec.bos : 1;
        n_prompt = 1;
    }
    int *out = malloc(sizeof(int) * (size_t)(n_new > 0 ? n_new : 1)), n_out = 0;
    float *lg = NULL;
    lrgd_state *s = NULL;
    double t0 = lrgd_now(), t_prompt = 0;
    if (!out) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st == LRGD_OK && n_prompt > c->seq_len)
        st = lrgd_fail(LRGD_E_INVALID, "the prompt has %d ids, more than the model's context of %d", n_prompt, c->seq_len);
    if (st == LRGD_OK && logits_path) {
        size_t count;
        if (!lrgd_mul_ok((size_t)n_prompt, (size_t)c->vocab_size, &count) || !(lg = lrgd_alloc_n(count, sizeof(float))))
            st = lrgd_fail(LRGD_E_NOMEM, "no memory for %d x %d logits", n_prompt, c->vocab_size);
        if (st == LRGD_OK) st = lrgd_state_new(m, n_prompt, 0, &s);
        if (st == LRGD_OK) st = lrgd_eval(s, prompt, n_prompt, lg, 1);
        if (st == LRGD_OK) st = write_logits(logits_path, lg, count);
        t_prompt = lrgd_now() - t0;
    }
    double t1 = lrgd_now();
    if (st == LRGD_OK) {
        lrgd_sampler smp = {(float)temp, (float)top_p, com.seed};
        st = lrgd_generate(m, prompt, n_prompt, (int)n_new, &smp, (int)eos, out, &n_out);
    }
    double t_gen = lrgd_now() - t1;
    if (st != LRGD_OK) {
        rc = cli_fail(CMD, st);
    } else if (com.json) {
        lrgd_json j;
        lrgd_json_init(&j, stdout, 1);
        lrgd_json_obj_begin(&j);
        cli_json_run_info(&j, &com);
        lrgd_json_kstr(&j, "model", model_path);
        lrgd_json_knum(&j, "temperature", temp);
        lrgd_json_knum(&j, "top_p", top_p);
        lrgd_json_key(&j, "prompt");
        lrgd_json_arr_begin(&j);
        for (int i = 0; i < n_prompt; i++) lrgd_json_int(&j, prompt[i]);
        lrgd_json_arr_end(&j);
        lrgd_json_key(&j, "generated");
        lrgd_json_arr_begin(&j);
        for (int i = 0; i < n_out; i++) lrgd_json_int(&j, out[i]);
        lrgd_json_arr_end(&j);
        if (logits_path) lrgd_json_kstr(&j, "logits", logits_path);
        lrgd_json_knum(&j, "seconds", t_gen);
        lrgd_json_obj_end(&j);
        fputc('\n', stdout);
    } else {
        if (!ids_only) printf("generated %d tokens after a prompt of %d: ", n_out, n_prompt);
        for (int i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
        putchar('\n');
        if (!ids_only && !com.quiet) {
            if (logits_path) fprintf(stderr, "logits of %d positions written to %s (%.3f s)\n", n_prompt, logits_path, t_prompt);
            if (n_out > 0)
                fprintf(stderr, "%.3f s, %.1f tokens/s (prompt + generation)\n", t_gen, (n_prompt + n_out) / t_gen);
        }
    }
    if (fflush(stdout) != 0 && rc == CLI_OK) rc = cli_fail(CMD, lrgd_fail(LRGD_E_IO, "stdout: write failed"));
    lrgd_state_free(s);
    lrgd_free(lg);
    free(out);
    free(prompt);
    lrgd_model_free(m);
    return rc;
}
