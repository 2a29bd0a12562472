#!/usr/bin/env node
// llama.cpp's tokenizer on a list of strings, for a tokenizer-agreement test.
// Input: one JSON string literal per line (so any text, newlines included, fits on a line);
// blank lines are skipped. Output: JSON {model, vocab_type, add_bos:false, parse_special:false,
// items:[{text, ids:[...]}, ...]}. No BOS/EOS is added and special-token text is not parsed
// (llama_tokenize(add_special=false, parse_special=false)). Only the vocabulary is loaded.
import fs from "node:fs";
import { parseArgs, die, atomicWrite, loadModel } from "./common.mjs";

const usage = `usage: node tokenize.mjs --model M.gguf --strings-file F --out OUT.json
  F: one JSON string per line, e.g. "Hello world"
`;
const o = parseArgs({ model: { required: true }, "strings-file": { required: true }, out: { required: true } }, usage);

let lines;
try { lines = fs.readFileSync(o["strings-file"], "utf8").split("\n"); } catch (e) { die(`${o["strings-file"]}: ${e.message}`); }
const texts = [];
lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let v;
    try { v = JSON.parse(line); } catch (e) { die(`${o["strings-file"]}:${i + 1}: not a JSON string literal (${e.message})`); }
    if (typeof v !== "string") die(`${o["strings-file"]}:${i + 1}: expected a JSON string, got ${typeof v}`);
    texts.push(v);
});

const { llama, model } = await loadModel(o.model, { vocabOnly: true });
// The native call directly: LlamaModel.tokenize() returns [] for "" without asking llama.cpp and
// has special cases we do not want in a reference.
const items = texts.map((text) => ({ text, ids: Array.from(model._model.tokenize(text, false)) }));
const res = {
    model: o.model, vocab_type: model.vocabularyType, add_bos: false, parse_special: false,
    via: "node-llama-cpp 3.21.1 (llama.cpp common_tokenize)", items,
};
// One item per line keeps the file diffable.
const head = JSON.stringify({ ...res, items: undefined }, null, 1).replace(/\n}$/, "");
atomicWrite(o.out, `${head},\n "items": [\n${items.map((it) => "  " + JSON.stringify(it)).join(",\n")}\n ]\n}\n`);
process.stdout.write(`tokenized ${items.length} strings (vocab type ${res.vocab_type}) -> ${o.out}\n`);
await model.dispose();
await llama.dispose();
