#!/usr/bin/env node
// Diagnostic: a float64 forward pass of a llama2.c checkpoint (tied or untied classifier,
// adjacent-pair RoPE theta 10000, RMSNorm eps 1e-5, GQA), one token at a time, written as
// log-softmax rows (float32 LE, n x vocab) like logits.mjs. It tells how far each float32
// implementation (lrgd, llama.cpp) is from the exact answer, i.e. whose rounding dominates
// their difference. Written straight from the Llama equations; slow, for small models only.
import fs from "node:fs";

const [bin, idsFile, outFile] = process.argv.slice(2);
if (!outFile) { process.stderr.write("usage: node ref-f64.mjs MODEL.bin IDS.txt OUT.f32\n"); process.exit(2); }
const buf = fs.readFileSync(bin);
const hdr = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 28));
const [dim, hidden, nLayers, nHeads, nKv, vocabSigned, seqLen] = hdr;
const vocab = Math.abs(vocabSigned), headDim = dim / nHeads, kvDim = nKv * headDim;
let off = 28;
function take(n) {
    if (off + 4 * n > buf.length) { process.stderr.write(`${bin}: truncated\n`); process.exit(2); }
    const a = Float64Array.from(new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * n)));
    off += 4 * n;
    return a;
}
const perLayer = (n) => Array.from({ length: nLayers }, () => take(n));
const emb = take(vocab * dim);
const attnNorm = perLayer(dim), wq = perLayer(dim * dim), wk = perLayer(kvDim * dim), wv = perLayer(kvDim * dim);
const wo = perLayer(dim * dim), ffnNorm = perLayer(dim), w1 = perLayer(hidden * dim), w2 = perLayer(dim * hidden);
const w3 = perLayer(hidden * dim), outNorm = take(dim);
take(seqLen * headDim);  // RoPE tables (unused)
const cls = vocabSigned > 0 ? emb : take(vocab * dim);

const ids = fs.readFileSync(idsFile, "utf8").trim().split(/\s+/).map(Number);
if (ids.length > seqLen || ids.some((t) => !(t >= 0 && t < vocab))) { process.stderr.write("bad ids\n"); process.exit(2); }

const matvec = (W, x, rows, cols) => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) { let s = 0; for (let c = 0; c < cols; c++) s += W[r * cols + c] * x[c]; y[r] = s; }
    return y;
};
const rmsnorm = (x, w) => {
    let ss = 0; for (const v of x) ss += v * v;
    const k = 1 / Math.sqrt(ss / x.length + 1e-5);
    return x.map((v, i) => v * k * w[i]);
};
const rope = (v, heads, pos) => {
    for (let h = 0; h < heads; h++) for (let i = 0; i < headDim; i += 2) {
        const a = pos * Math.pow(10000, -i / headDim), c = Math.cos(a), s = Math.sin(a), o = h * headDim + i;
        const v0 = v[o], v1 = v[o + 1];
        v[o] = v0 * c - v1 * s; v[o + 1] = v0 * s + v1 * c;
    }
};

const keys = Array.from({ length: nLayers }, () => []), vals = Array.from({ length: nLayers }, () => []);
const out = new Float32Array(ids.length * vocab);
for (let pos = 0; pos < ids.length; pos++) {
    let x = emb.slice(ids[pos] * dim, (ids[pos] + 1) * dim);
    for (let l = 0; l < nLayers; l++) {
        const xn = rmsnorm(x, attnNorm[l]);
        const q = matvec(wq[l], xn, dim, dim), k = matvec(wk[l], xn, kvDim, dim), v = matvec(wv[l], xn, kvDim, dim);
        rope(q, nHeads, pos); rope(k, nKv, pos);
        keys[l].push(k); vals[l].push(v);
        const att = new Float64Array(dim);
        for (let h = 0; h < nHeads; h++) {
            const kh = Math.floor(h / (nHeads / nKv)), sc = new Float64Array(pos + 1);
            let mx = -Infinity;
            for (let t = 0; t <= pos; t++) {
                let s = 0; for (let i = 0; i < headDim; i++) s += q[h * headDim + i] * keys[l][t][kh * headDim + i];
                sc[t] = s / Math.sqrt(headDim); mx = Math.max(mx, sc[t]);
            }
            let z = 0; for (let t = 0; t <= pos; t++) { sc[t] = Math.exp(sc[t] - mx); z += sc[t]; }
            for (let t = 0; t <= pos; t++) for (let i = 0; i < headDim; i++) att[h * headDim + i] += sc[t] / z * vals[l][t][kh * headDim + i];
        }
        const o = matvec(wo[l], att, dim, dim);
        x = x.map((a, i) => a + o[i]);
        const xn2 = rmsnorm(x, ffnNorm[l]);
        const g = matvec(w1[l], xn2, hidden, dim), u = matvec(w3[l], xn2, hidden, dim);
        const d = matvec(w2[l], g.map((a, i) => a / (1 + Math.exp(-a)) * u[i]), dim, hidden);
        x = x.map((a, i) => a + d[i]);
    }
    const logits = matvec(cls, rmsnorm(x, outNorm), vocab, dim);
    let m = -Infinity; for (const a of logits) m = Math.max(m, a);
    let s = 0; for (const a of logits) s += Math.exp(a - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < vocab; j++) out[pos * vocab + j] = logits[j] - lse;
}
fs.writeFileSync(outFile, Buffer.from(out.buffer));
