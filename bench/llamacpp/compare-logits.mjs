#!/usr/bin/env node
// Compares lrgd's raw logits (float32 LE, n x vocab, from `lrgd generate --logits`) with
// llama.cpp's log-softmax rows (from logits.mjs). lrgd's rows go through log-softmax in double
// first, because node-llama-cpp only exposes normalized probabilities (see logits.mjs).
// Checks: max |difference| <= --tol over every position and token, and the same argmax at every
// position. Exit 0 pass, 1 fail, 2 bad input. Plain node, no node-llama-cpp needed.
import fs from "node:fs";

const usage = "usage: node compare-logits.mjs --lrgd LRGD.f32 --llama LLAMA.f32 --vocab V [--tol 1e-4] [--json OUT.json] [--label TEXT]\n";
const o = { tol: 1e-4, label: "lrgd vs llama.cpp" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]?.replace(/^--/, ""), v = argv[i + 1];
    if (!["lrgd", "llama", "vocab", "tol", "json", "label"].includes(k) || v === undefined) { process.stderr.write(usage); process.exit(2); }
    o[k] = ["vocab", "tol"].includes(k) ? Number(v) : v;
}
if (!o.lrgd || !o.llama || !(Number.isInteger(o.vocab) && o.vocab > 0) || !(o.tol > 0)) { process.stderr.write(usage); process.exit(2); }

function readF32(path) {
    let b;
    try { b = fs.readFileSync(path); } catch (e) { process.stderr.write(`${path}: ${e.message}\n`); process.exit(2); }
    if (b.length === 0 || b.length % (4 * o.vocab)) {
        process.stderr.write(`${path}: ${b.length} bytes is not a whole number of ${o.vocab}-float rows\n`);
        process.exit(2);
    }
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}
const A = readF32(o.lrgd), B = readF32(o.llama), V = o.vocab;
if (A.length !== B.length) {
    process.stderr.write(`row counts differ: lrgd ${A.length / V}, llama.cpp ${B.length / V}\n`);
    process.exit(1);
}
const n = A.length / V;

function argmax(row) {
    let b = 0;
    for (let j = 1; j < row.length; j++) if (row[j] > row[b]) b = j;
    return b;
}

let maxDiff = 0, at = null, argmaxAgree = 0, nonFinite = 0, sumDiff = 0;
const mismatches = [];
const ls = new Float64Array(V);
for (let i = 0; i < n; i++) {
    const a = A.subarray(i * V, (i + 1) * V), b = B.subarray(i * V, (i + 1) * V);
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, a[j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(a[j] - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < V; j++) {
        ls[j] = a[j] - lse;
        if (!Number.isFinite(ls[j]) || !Number.isFinite(b[j])) { nonFinite++; continue; }
        const d = Math.abs(ls[j] - b[j]);
        sumDiff += d;
        if (d > maxDiff) { maxDiff = d; at = { position: i, token: j, lrgd: ls[j], llama_cpp: b[j] }; }
    }
    const ia = argmax(a), ib = argmax(b);
    if (ia === ib) argmaxAgree++;
    else mismatches.push({ position: i, lrgd: ia, llama_cpp: ib, lrgd_gap: ls[ia] - ls[ib], llama_cpp_gap: b[ib] - b[ia] });
}

const pass = nonFinite === 0 && maxDiff <= o.tol && argmaxAgree === n;
const res = {
    positions: n, vocab: V, compared: "log_softmax", max_abs_diff: maxDiff, mean_abs_diff: sumDiff / (n * V),
    worst: at, tolerance: o.tol, argmax_agree: argmaxAgree, argmax_mismatches: mismatches.slice(0, 20),
    non_finite: nonFinite, pass,
};
process.stdout.write(`${o.label}: ${n} positions x ${V}: max |d log_softmax| = ${maxDiff.toExponential(3)}` +
    ` (tol ${o.tol}), mean ${res.mean_abs_diff.toExponential(3)}, argmax agree ${argmaxAgree}/${n}` +
    `${nonFinite ? `, ${nonFinite} non-finite` : ""} -> ${pass ? "PASS" : "FAIL"}\n`);
if (at && !pass) process.stdout.write(`  worst at position ${at.position} token ${at.token}: lrgd ${at.lrgd} llama.cpp ${at.llama_cpp}\n`);
for (const mm of mismatches.slice(0, 5)) process.stdout.write(`  argmax differs at ${mm.position}: lrgd ${mm.lrgd}, llama.cpp ${mm.llama_cpp}\n`);
if (o.json) fs.writeFileSync(o.json, JSON.stringify(res, null, 2) + "\n");
process.exit(pass ? 0 : 1);
