#!/usr/bin/env node
// The llama.cpp half of bench/run.sh: for every forward row of an `lrgd bench --keep-models`
// JSON (model x dtype x threads), run bench.mjs on the same GGUF file with the same thread count,
// prompt length, decode length and repetitions, then print lrgd/llama.cpp ratios and write one
// merged JSON (atomically). Plain node: node-llama-cpp is loaded only by bench.mjs, one child
// process per row, so each row gets a fresh llama.cpp with nothing left over from the last.
//
// usage: node compare-bench.mjs --lrgd LRGD.json --out MERGED.json [--kv f32|f16] [--flash off|auto|on]
//        [--meta META.json] [--work DIR] [--timeout S]
//   --meta     a JSON object merged into the output's top level (run.sh: command line, uptime)
//   --timeout  seconds one file may take (default 600): ggml spins at its thread barriers, and on an
//              overloaded machine a 2-thread run can take minutes; past it the row is an error
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";

const here = path.dirname(new URL(import.meta.url).pathname);
const usage = "usage: node compare-bench.mjs --lrgd LRGD.json --out MERGED.json [--kv f32|f16] [--flash off|auto|on] [--meta META.json] [--work DIR] [--timeout S]\n";
function die(msg, code = 2) { process.stderr.write(`compare-bench.mjs: ${msg}\n`); process.exit(code); }

const o = { kv: "f32", flash: "off", timeout: "600" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") { process.stdout.write(usage); process.exit(0); }
    if (!["--lrgd", "--out", "--kv", "--flash", "--meta", "--work", "--timeout"].includes(a)) die(`unknown argument '${a}'\n${usage}`);
    if (i + 1 >= argv.length) die(`option ${a} needs a value`);
    o[a.slice(2)] = argv[++i];
}
if (!o.lrgd || !o.out) die(`--lrgd and --out are required\n${usage}`);
if (!["f32", "f16"].includes(o.kv)) die(`--kv: '${o.kv}' is not f32 or f16`);
if (!["off", "auto", "on"].includes(o.flash)) die(`--flash: '${o.flash}' is not off, auto or on`);
if (!/^[0-9]+$/.test(o.timeout) || +o.timeout < 1) die(`--timeout: '${o.timeout}' is not a whole number of seconds >= 1`);

let lrgd, meta = {};
try { lrgd = JSON.parse(fs.readFileSync(o.lrgd, "utf8")); } catch (e) { die(`${o.lrgd}: ${e.message}`, 1); }
if (o.meta) try { meta = JSON.parse(fs.readFileSync(o.meta, "utf8")); } catch (e) { die(`${o.meta}: ${e.message}`, 1); }
const rows = lrgd.forward?.results ?? [];
if (!rows.length) die(`${o.lrgd}: no forward results`, 1);
const work = o.work ?? fs.mkdtempSync(path.join(os.tmpdir(), "lrgd-peer-"));
const reps = lrgd.forward.reps ?? 3;

const peer = [], ratios = [];
for (const [i, r] of rows.entries()) {
    if (!r.file) die(`${o.lrgd}: row ${i} names no file (run lrgd bench with --keep-models)`, 1);
    const out = path.join(work, `peer-${i}.json`);
    const args = [path.join(here, "bench.mjs"), "--model", r.file, "--threads", String(r.threads), "--pp", String(r.pp_tokens),
        "--tg", String(r.tg_tokens), "--reps", String(reps), "--kv", o.kv, "--flash", o.flash, "--json", out];
    process.stderr.write(`compare-bench: llama.cpp ${r.model} ${r.dtype} threads ${r.threads}\n`);
    const load_before = os.loadavg();
    const p = spawnSync(process.execPath, args, {
        stdio: ["ignore", "ignore", "inherit"], timeout: 1000 * +o.timeout, killSignal: "SIGKILL",
        env: { ...process.env, UV_THREADPOOL_SIZE: "1" },  // so bench.mjs does not re-spawn itself: the timeout kills llama.cpp
    });
    const why = p.error?.code === "ETIMEDOUT" ? `timed out after ${o.timeout} s` : `exit ${p.status}`;
    let res = null;
    if (p.status === 0) try { res = JSON.parse(fs.readFileSync(out, "utf8")); } catch { res = null; }
    const entry = { model: r.model, dtype: r.dtype, threads: r.threads, file: r.file, load_before };
    if (!res) {
        process.stderr.write(`compare-bench: llama.cpp failed on ${r.file} (${why})\n`);
        peer.push({ ...entry, error: `bench.mjs ${why}` });
        ratios.push({ model: r.model, dtype: r.dtype, threads: r.threads, pp_tokens: r.pp_tokens, tg_tokens: r.tg_tokens,
            lrgd_pp_tok_s: r.pp_tok_s, lrgd_tg_tok_s: r.tg_tok_s, llamacpp_pp_tok_s: null, llamacpp_tg_tok_s: null,
            pp_ratio: null, tg_ratio: null, pp_ratio_best: null, tg_ratio_best: null });
        continue;
    }
    peer.push({ ...entry, result: res });
    ratios.push({
        model: r.model, dtype: r.dtype, threads: r.threads, pp_tokens: r.pp_tokens, tg_tokens: r.tg_tokens,
        lrgd_pp_tok_s: r.pp_tok_s, lrgd_tg_tok_s: r.tg_tok_s,
        llamacpp_pp_tok_s: res.pp.tokens_per_s, llamacpp_tg_tok_s: res.tg.tokens_per_s,
        pp_ratio: r.pp_tok_s / res.pp.tokens_per_s, tg_ratio: r.tg_tok_s / res.tg.tokens_per_s,
        pp_ratio_best: r.pp_best_tok_s / res.pp.best_tokens_per_s, tg_ratio_best: r.tg_best_tok_s / res.tg.best_tokens_per_s,
        llamacpp_kv: res.kv_cache, llamacpp_flash: res.flash_attention,
    });
}

const f1 = (x, w) => (x == null ? "-" : x.toFixed(1)).padStart(w);
const f2 = (x, w) => (x == null ? "-" : x.toFixed(2)).padStart(w);
let t = `\nlrgd / llama.cpp (node-llama-cpp 3.21.1, KV ${o.kv}, flash attention ${o.flash}), same GGUF files, ` +
    `tokens/s from the mean of ${reps} reps\n`;
t += `${"model".padEnd(24)} ${"dtype".padEnd(5)} ${"thr".padStart(3)} ${"pp".padStart(5)} ${"lrgd pp".padStart(10)} ` +
    `${"llama pp".padStart(10)} ${"pp ratio".padStart(8)} ${"lrgd tg".padStart(10)} ${"llama tg".padStart(10)} ${"tg ratio".padStart(8)}\n`;
for (const r of ratios)
    t += `${r.model.padEnd(24)} ${r.dtype.padEnd(5)} ${String(r.threads).padStart(3)} ${String(r.pp_tokens).padStart(5)} ` +
        `${f1(r.lrgd_pp_tok_s, 10)} ${f1(r.llamacpp_pp_tok_s, 10)} ${f2(r.pp_ratio, 8)} ` +
        `${f1(r.lrgd_tg_tok_s, 10)} ${f1(r.llamacpp_tg_tok_s, 10)} ${f2(r.tg_ratio, 8)}\n`;
process.stdout.write(t);

const merged = {
    ...meta, lrgd, peer: { name: "llama.cpp", via: "node-llama-cpp 3.21.1 (prebuilt CPU), bench/llamacpp/bench.mjs", kv: o.kv, flash: o.flash, reps },
    llamacpp: peer, ratios, loadavg_end: os.loadavg(),
};
const tmp = `${o.out}.tmp.${process.pid}`;
const fd = fs.openSync(tmp, "w");
try { fs.writeSync(fd, JSON.stringify(merged, null, 2) + "\n"); fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
fs.renameSync(tmp, o.out);
if (!o.work) fs.rmSync(work, { recursive: true, force: true });
process.exit(ratios.some((r) => r.pp_ratio == null) ? 1 : 0);
