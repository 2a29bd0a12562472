#!/usr/bin/env node
// Compares lrgd's token ids (one line of ids per string) with bench/llamacpp/tokenize.mjs's JSON
// for the same strings. Prints "NAME: N strings, K identical (T tokens)" and, for each string that
// differs (first 5), the text and both id lists. Exit 1 if any string differs.
//   node tests/tokenizer_compare.mjs NAME LRGD.txt LLAMA.json
import fs from "node:fs";

const [name, lrgdFile, llamaFile] = process.argv.slice(2);
if (!llamaFile) { process.stderr.write("usage: node tokenizer_compare.mjs NAME LRGD.txt LLAMA.json\n"); process.exit(2); }
const ours = fs.readFileSync(lrgdFile, "utf8").split("\n");
ours.pop(); // the final newline
const ref = JSON.parse(fs.readFileSync(llamaFile, "utf8")).items;
if (ours.length !== ref.length) {
    process.stderr.write(`${name}: lrgd gave ${ours.length} lines for ${ref.length} strings\n`);
    process.exit(1);
}
let same = 0, tokens = 0, shown = 0;
for (let i = 0; i < ref.length; i++) {
    const a = ours[i] === "" ? [] : ours[i].split(" ").map(Number);
    const b = ref[i].ids;
    tokens += b.length;
    if (a.length === b.length && a.every((x, k) => x === b[k])) { same++; continue; }
    if (shown++ < 5) process.stdout.write(`  ${name}: string ${i} ${JSON.stringify(ref[i].text)}\n    lrgd:      ${a.join(" ")}\n    llama.cpp: ${b.join(" ")}\n`);
}
process.stdout.write(`${name}: ${ref.length} strings, ${same} identical (${tokens} llama.cpp tokens)\n`);
process.exit(same === ref.length ? 0 : 1);
