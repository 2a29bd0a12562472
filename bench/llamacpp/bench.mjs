#!/usr/bin/env node
// llama.cpp peer benchmark (node-llama-cpp 3.21.1, prebuilt CPU build), shaped like llama-bench:
//   pp: one batch of --pp tokens into an empty KV cache, logits for the last token only;
//   tg: --tg single-token decodes from an empty KV cache, each producing logits.
// Tokens are a fixed pseudo-random sequence (no sampling, no tokenizer). One warm-up run of each,
// then --reps timed runs; tokens/s is tokens / mean seconds, and "best" is tokens / fastest run.
//
// Calls go straight to the native addon's batch API (initBatch/addToBatch/decodeBatch on the
// context's AddonContext), skipping node-llama-cpp's JS batch scheduler so the time is as close to
// llama_decode as node allows. Each decode still pays one libuv thread-pool hop (tens of us),
// which matters only for tiny models' tg; `--api public` measures the public API instead.
import os from "node:os";
import { parseArgs, die, atomicWrite, loadModel, createContext, kvTypesFromLogs, machineInfo } from "./common.mjs";

const usage = `usage: node bench.mjs --model M.gguf --threads N [--pp 512] [--tg 128] [--reps 5]
       [--kv f16|f32] [--flash auto|on|off] [--api addon|public] [--json OUT.json]
  defaults follow llama.cpp's own: KV cache f16, flash attention auto
`;
const o = parseArgs({
    model: { required: true }, threads: { int: true, min: 1, required: true },
    pp: { int: true, min: 1, default: 512 }, tg: { int: true, min: 1, default: 128 },
    reps: { int: true, min: 1, default: 5 }, kv: { choices: ["f16", "f32"], default: "f16" },
    flash: { choices: ["auto", "on", "off"], default: "auto" }, api: { choices: ["addon", "public"], default: "addon" },
    json: {},
}, usage);

const { llama, model, logs } = await loadModel(o.model);
const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
if (!embd) die(`${o.model}: no token_embd.weight tensor`, 1);
const vocab = Number(embd.dimensions[1]);

const flash = o.flash === "auto" ? "auto" : o.flash === "on";
const ctx = await createContext(model, {
    contextSize: Math.max(o.pp, o.tg) + 1, batchSize: o.pp, threads: o.threads, kv: o.kv, flash,
});
const addon = ctx._ctx;  // internal in 3.21.1 (pinned): the native llama_context wrapper
if (!addon || typeof addon.decodeBatch !== "function") die("node-llama-cpp internals changed: no AddonContext", 1);
const seq = ctx.getSequence();
const seqId = 0;

// Fixed token sequence: a 32-bit LCG, ids in [0, vocab).
function tokens(n, seed) {
    const t = new Uint32Array(n);
    let s = seed >>> 0;
    for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; t[i] = s % vocab; }
    return t;
}
const ppTokens = tokens(o.pp, 1), tgTokens = tokens(o.tg, 2);

async function clear() {
    if (o.api === "public") await seq.clearHistory();
    else addon.disposeSequence(seqId);
}

// Each run returns [wall seconds, CPU seconds of the whole process]: on a loaded machine the
// CPU time of a 1-thread run is close to what an idle machine's wall clock would show.
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

async function runPP() {
    await clear();
    const c0 = cpuNow();
    const t0 = process.hrtime.bigint();
    if (o.api === "public") await seq.evaluateWithoutGeneratingNewTokens(Array.from(ppTokens));
    else {
        addon.initBatch(o.pp);
        addon.addToBatch(seqId, 0, ppTokens, Uint32Array.of(o.pp - 1));
        await addon.decodeBatch();
    }
    return [Number(process.hrtime.bigint() - t0) / 1e9, cpuNow() - c0];
}

async function runTG(n = o.tg) {
    await clear();
    const one = new Uint32Array(1), idx = Uint32Array.of(0);
    const c0 = cpuNow();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
        if (o.api === "public") await seq.controlledEvaluate([[tgTokens[i], { generateNext: { token: true } }]]);
        else {
            one[0] = tgTokens[i];
            addon.initBatch(1);
            addon.addToBatch(seqId, i, one, idx);
            await addon.decodeBatch();
        }
    }
    return [Number(process.hrtime.bigint() - t0) / 1e9, cpuNow() - c0];
}

function stats(runs, n) {
    const times = runs.map((r) => r[0]), cpu = runs.map((r) => r[1]);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const sd = Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, times.length - 1));
    const best = Math.min(...times);  // on a shared machine the fastest run is the least disturbed
    return { tokens: n, reps: times.length, mean_s: mean, sd_s: sd, tokens_per_s: n / mean, best_tokens_per_s: n / best, runs_s: times,
        cpu_s: cpu, best_tokens_per_cpu_s: n / Math.min(...cpu) };
}

await runPP(); await runTG(Math.min(o.tg, 16));  // warm-up
const pp = [], tg = [];
for (let r = 0; r < o.reps; r++) pp.push(await runPP());
for (let r = 0; r < o.reps; r++) tg.push(await runTG());
await clear();
await new Promise((r) => setTimeout(r, 10));  // llama.cpp log lines arrive asynchronously

const kvLog = kvTypesFromLogs(logs);
// "auto" is resolved after the "flash_attn = auto" line: "Flash Attention enabled|disabled".
const fa = logs.map((l) => /Flash Attention (enabled|disabled)|flash_attn\s*=\s*(enabled|disabled)/.exec(l)).filter(Boolean).pop();
const res = {
    peer: "llama.cpp", via: `node-llama-cpp 3.21.1 (prebuilt CPU, ${o.api} API)`, model: o.model,
    model_type: model.typeDescription, n_vocab: vocab, threads: addon.getThreads(),
    kv_cache: kvLog, flash_attention: fa ? fa[1] ?? fa[2] : null,
    pp: stats(pp, o.pp), tg: stats(tg, o.tg),
    machine: { ...machineInfo(llama), cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, loadavg: os.loadavg() },
    date: new Date().toISOString(),
};
const f = (x) => x.toFixed(1).padStart(10);
process.stdout.write(`llama.cpp ${o.model} threads=${res.threads} kv=${kvLog ? kvLog.k : "?"} fa=${res.flash_attention} api=${o.api}\n` +
    ["pp", "tg"].map((k) => `  ${k}${o[k]}: ${f(res[k].tokens_per_s)} tok/s mean (${(res[k].mean_s * 1e3).toFixed(2)} ms +- ` +
        `${(res[k].sd_s * 1e3).toFixed(2)}, ${o.reps} reps), best ${res[k].best_tokens_per_s.toFixed(1)} tok/s\n`).join(""));
if (o.json) atomicWrite(o.json, JSON.stringify(res, null, 2) + "\n");
await ctx.dispose();
await model.dispose();
await llama.dispose();
