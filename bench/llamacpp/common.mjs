// Shared plumbing for the llama.cpp reference scripts (node-llama-cpp 3.21.1, prebuilt CPU
// binaries). Test/benchmark tooling only: lrgd never loads any of this at run time.
import fs from "node:fs";
import { spawnSync } from "node:child_process";

// Never build llama.cpp from source and never download anything: the prebuilt linux-x64 CPU
// binaries ship inside @node-llama-cpp/linux-x64. Set before node-llama-cpp reads its config.
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
process.env.NODE_LLAMA_CPP_GPU = "false";
// node-llama-cpp runs each llama_decode on a libuv pool thread. With the default pool (4 threads)
// successive decodes start from different threads, and 2-thread single-token decoding on this
// 2-core machine measured ~15 ms/token instead of ~0.15 ms. One pool thread makes every decode
// start from the same thread, as in a C program. The pool may already be up by the time this
// module runs, so re-run the script with the variable set.
if (process.env.UV_THREADPOOL_SIZE !== "1") {
    const r = spawnSync(process.execPath, process.argv.slice(1), {
        stdio: "inherit", env: { ...process.env, UV_THREADPOOL_SIZE: "1" },
    });
    process.exit(r.status ?? 1);
}

const { getLlama, LlamaLogLevel, GgmlType } = await import("node-llama-cpp");

export function die(msg, code = 2) {
    process.stderr.write(`${process.argv[1].split("/").pop()}: ${msg}\n`);
    process.exit(code);
}

// --name value parsing with a fixed table; unknown options are an error, never ignored.
export function parseArgs(spec, usage) {
    const out = {};
    for (const [k, v] of Object.entries(spec)) if (v.default !== undefined) out[k] = v.default;
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "-h" || a === "--help") { process.stdout.write(usage); process.exit(0); }
        if (!a.startsWith("--") || !(a.slice(2) in spec)) die(`unknown argument '${a}'\n${usage}`);
        const key = a.slice(2), s = spec[key];
        if (s.flag) { out[key] = true; continue; }
        if (i + 1 >= argv.length) die(`option ${a} needs a value`);
        const v = argv[++i];
        if (s.int) {
            if (!/^[0-9]+$/.test(v)) die(`option ${a}: '${v}' is not a non-negative integer`);
            out[key] = Number(v);
            if (s.min !== undefined && out[key] < s.min) die(`option ${a}: must be >= ${s.min}`);
        } else if (s.choices) {
            if (!s.choices.includes(v)) die(`option ${a}: '${v}' is not one of ${s.choices.join("|")}`);
            out[key] = v;
        } else out[key] = v;
    }
    for (const [k, s] of Object.entries(spec)) if (s.required && out[k] === undefined) die(`missing --${k}\n${usage}`);
    return out;
}

// Token ids: whitespace-separated non-negative integers (llama2.c-style files hold one per line).
export function parseTokenIds(text, where) {
    const parts = text.split(/\s+/).filter((s) => s.length);
    return parts.map((s, i) => {
        if (!/^[0-9]+$/.test(s)) die(`${where}: token ${i}: '${s}' is not a token id`);
        return Number(s);
    });
}

export function atomicWrite(path, data) {
    const tmp = `${path}.tmp.${process.pid}`;
    const fd = fs.openSync(tmp, "w");
    try { fs.writeSync(fd, data); fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(tmp, path);
}

export function ggmlTypeName(t) {
    return typeof t === "number" ? (GgmlType[t] ?? `type${t}`) : String(t);
}

// Load llama.cpp (prebuilt CPU build only) and a model. llama.cpp's own log lines are kept so we
// can report what it actually did (e.g. the KV cache line "K (f32): ..., V (f32): ...").
export async function loadModel(modelPath, { vocabOnly = false } = {}) {
    if (!fs.existsSync(modelPath)) die(`${modelPath}: no such file`);
    const logs = [];
    const llama = await getLlama({
        gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
        progressLogs: false, maxThreads: 0, logLevel: LlamaLogLevel.info,
        logger: (level, message) => {
            logs.push(message);
            if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(`llama.cpp: ${message}\n`);
        },
    });
    if (llama.gpu !== false || llama.buildType !== "prebuilt")
        die(`expected the prebuilt CPU llama.cpp, got gpu=${llama.gpu} build=${llama.buildType}`, 1);
    let model;
    try {
        model = await llama.loadModel({ modelPath, gpuLayers: 0, vocabOnly, useMmap: true });
    } catch (e) {
        const tail = logs.filter((l) => /error|fail|invalid|unknown|missing|wrong/i.test(l)).slice(-8).join("\n  ");
        die(`llama.cpp refused to load ${modelPath}: ${e.message}${tail ? "\n  " + tail : ""}`, 1);
    }
    return { llama, model, logs };
}

// A context with an explicit KV cache type and thread count; flash attention off so the
// attention path is the plain softmax(QK^T)V one lrgd computes.
export async function createContext(model, { contextSize, batchSize, threads, kv = "f32", flash = false }) {
    const type = kv.toUpperCase();
    return model.createContext({
        contextSize, batchSize, sequences: 1, threads: { ideal: threads, min: threads },
        flashAttention: flash, experimentalKvCacheKeyType: type, experimentalKvCacheValueType: type,
        failedCreationRemedy: false,
    });
}

// The KV cache types llama.cpp reports in its log, e.g. "K (f32): 0.16 MiB, V (f32): 0.16 MiB".
export function kvTypesFromLogs(logs) {
    for (let i = logs.length - 1; i >= 0; i--) {
        const m = /K \(([a-z0-9_]+)\).*V \(([a-z0-9_]+)\)/.exec(logs[i]);
        if (m) return { k: m[1], v: m[2] };
    }
    return null;
}

export function machineInfo(llama) {
    return { cpuMathCores: llama.cpuMathCores, buildType: llama.buildType, gpu: llama.gpu };
}
