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
                lrgd_status st = lrgd_fail(LRGD_E_WRITE, "%s: write failed: %s", path, strerror(errno));
                lrgd_afile_abort(&af);
                return st;
            }
            used = 0;
        }
    }
    return lrgd_afile_commit(&af);
}

int cmd_generate(int argc, char **argv)
{
    cli_common com;
    cli_common_init(&com);
    const char *model_path = NULL, *prompt_text = NULL, *prompt_file = NULL, *logits_path = NULL;
    long long n_new = 64, eos = -1;
    double temp = 0.0, top_p = 1.0;
    int ids_only = 0;
    const cli_opt opts[] = {
        CLI_O_STR("model", &model_path, "a model file"),
        CLI_O_STR("prompt", &prompt_text, "token ids"),
        CLI_O_STR("prompt-file", &prompt_file, "a file"),
        CLI_O_LLONG("n", &n_new, 0, 1 << 24),
        CLI_O_DOUBLE("temp", &temp, 0.0, 1e6),
        CLI_O_DOUBLE("top-p", &top_p, 0.0, 1.0),
        CLI_O_LLONG("eos", &eos, -1, INT_MAX),
        CLI_O_FLAG("ids", &ids_only),
        CLI_O_STR("logits", &logits_path, "a file"),
        CLI_O_END};
    int rc = cli_parse(CMD, help_generate, argc, argv, opts, &com);
    if (rc != CLI_CONTINUE) return rc;
    if (top_p <= 0.0) return cli_usage(CMD, "--top-p: expected a number in (0, 1], got '%g'", top_p);
    if (!model_path) return cli_usage(CMD, "--model FILE is required");
    if (prompt_text && prompt_file) return cli_usage(CMD, "give --prompt or --prompt-file, not both");
    if (ids_only && com.json) return cli_usage(CMD, "give --ids or --json, not both");
    if ((rc = cli_common_apply(CMD, &com)) != 0) return rc;

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
    if (fflush(stdout) != 0 && rc == CLI_OK) rc = cli_fail(CMD, lrgd_fail(LRGD_E_WRITE, "stdout: write failed"));
    lrgd_state_free(s);
    lrgd_free(lg);
    free(out);
    free(prompt);
    lrgd_model_free(m);
    return rc;
}
