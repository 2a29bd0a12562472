#!/usr/bin/env node
// llama.cpp's next-token distribution at every position of a token sequence, as float32 LE
// (n x vocab, row i = after token i). Token ids are fed directly, never tokenized.
//
// What is written: log-softmax values, i.e. raw logits minus each position's logsumexp.
// node-llama-cpp 3.21.1 does not expose raw logits: its native sampleToken() reads
// llama_get_logits_ith() but hands back only the full-vocabulary softmax (computed in float32
// from the raw logits). We re-normalize those probabilities in double and take the log, so
// compare lrgd's logits after log-softmax. |d log_softmax| <= 2 max |d logit|, and a
// wrong per-position constant is the only thing it cannot see (no Llama logit path adds one).
import fs from "node:fs";
import { parseArgs, parseTokenIds, die, atomicWrite, loadModel, createContext, kvTypesFromLogs, ggmlTypeName } from "./common.mjs";

const usage = `usage: node logits.mjs --model M.gguf (--tokens "1 2 3" | --tokens-file F) --out OUT.f32
       [--threads N] [--kv f32|f16] [--mode batch|step] [--json SUMMARY.json]
  --mode batch  all tokens in one llama_decode (prompt-processing path; default)
  --mode step   one token per llama_decode (KV-cache decoding path)
`;
const o = parseArgs({
    model: { required: true }, tokens: {}, "tokens-file": {}, out: { required: true },
    threads: { int: true, min: 1, default: 1 }, kv: { choices: ["f32", "f16"], default: "f32" },
    mode: { choices: ["batch", "step"], default: "batch" }, json: {},
}, usage);

if ((o.tokens === undefined) === (o["tokens-file"] === undefined)) die(`give exactly one of --tokens, --tokens-file\n${usage}`);
let ids;
if (o.tokens !== undefined) ids = parseTokenIds(o.tokens, "--tokens");
else {
    let text;
    try { text = fs.readFileSync(o["tokens-file"], "utf8"); } catch (e) { die(`${o["tokens-file"]}: ${e.message}`); }
    ids = parseTokenIds(text, o["tokens-file"]);
}
if (ids.length === 0) die("no token ids given");

const { llama, model, logs } = await loadModel(o.model);
// The vocabulary size is the token embedding's row count (ggml ne[1]).
const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
if (!embd || embd.dimensions.length !== 2) die(`${o.model}: no 2-D token_embd.weight tensor`, 1);
const vocab = Number(embd.dimensions[1]);
for (const [i, t] of ids.entries()) if (!(t < vocab)) die(`token ${i}: id ${t} is outside the vocabulary (${vocab})`);
if (ids.length > model.trainContextSize)
    process.stderr.write(`note: ${ids.length} tokens > n_ctx_train ${model.trainContextSize}\n`);

const n = ids.length;
// node-llama-cpp keeps one cell free per sequence and otherwise "context-shifts" (drops the oldest
// tokens) before the last token, silently changing its logits; n + 1 cells avoid that, and the
// check after evaluation proves no shift happened.
const ctx = await createContext(model, {
    contextSize: n + 1, batchSize: o.mode === "batch" ? n : 1, threads: o.threads, kv: o.kv,
});
const seq = ctx.getSequence();
const want = { generateNext: { probabilities: true } };

const results = new Array(n);
if (o.mode === "batch") {
    const r = await seq.controlledEvaluate(ids.map((t) => [t, want]));
    for (let i = 0; i < n; i++) results[i] = r[i];
} else {
    for (let i = 0; i < n; i++) results[i] = (await seq.controlledEvaluate([[ids[i], want]]))[0];
}

const kept = seq.contextTokens;
if (kept.length !== n || kept.some((t, i) => t !== ids[i]))
    die(`node-llama-cpp shifted the context (${kept.length} of ${n} tokens kept); logits would be wrong`, 1);

const out = new Float32Array(n * vocab);
let minLogp = 0, zeros = 0;
for (let i = 0; i < n; i++) {
    const p = results[i]?.next?.probabilities;
    if (!p || p.size !== vocab) die(`position ${i}: expected ${vocab} probabilities, got ${p ? p.size : "none"}`, 1);
    let sum = 0;
    for (const v of p.values()) sum += v;
    const lsum = Math.log(sum);
    const row = out.subarray(i * vocab, (i + 1) * vocab);
    row.fill(NaN);
    for (const [tok, v] of p) {
        if (!(tok >= 0 && tok < vocab)) die(`position ${i}: token id ${tok} outside the vocabulary`, 1);
        if (v === 0) zeros++;
        row[tok] = Math.log(v) - lsum;  // -Infinity where float32 softmax underflowed
        if (row[tok] < minLogp) minLogp = row[tok];
    }
    for (let j = 0; j < vocab; j++) if (Number.isNaN(row[j])) die(`position ${i}: no probability for token ${j}`, 1);
}
// llama.cpp's log lines reach JS asynchronously; by now the context creation lines are in.
await new Promise((r) => setTimeout(r, 10));
const kvLog = kvTypesFromLogs(logs);
if (!kvLog) die("could not find llama.cpp's KV cache log line; KV type unknown", 1);
atomicWrite(o.out, Buffer.from(out.buffer, out.byteOffset, out.byteLength));

const summary = {
    model: o.model, n_tokens: n, n_vocab: vocab, mode: o.mode, threads: ctx.currentThreads,
    kv_cache_requested: { k: ggmlTypeName(ctx.kvCacheKeyType), v: ggmlTypeName(ctx.kvCacheValueType) },
    kv_cache_llama_cpp_log: kvLog, flash_attention: ctx.flashAttention,
    values: "log_softmax", min_log_softmax: minLogp, underflowed_probabilities: zeros, out: o.out,
    node_llama_cpp: "3.21.1",
};
process.stdout.write(`llama.cpp logits: ${n} positions x ${vocab}, mode ${o.mode}, threads ${summary.threads}, ` +
    `KV cache K=${kvLog.k} V=${kvLog.v} (llama.cpp log), values=log_softmax, min ${minLogp.toFixed(3)}, ` +
    `underflowed ${zeros} -> ${o.out}\n`);
if (o.json) atomicWrite(o.json, JSON.stringify(summary, null, 2) + "\n");
await ctx.dispose();
await model.dispose();
await llama.dispose();
