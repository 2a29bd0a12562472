#!/usr/bin/env node
// The tokenizer-agreement corpus for tests/cli_tokenizer_llamacpp.sh: hand-picked tricky strings,
// item titles from the three Amazon files, and seeded random strings over a tricky alphabet.
// Writes the same strings twice: one JSON string literal per line (bench/llamacpp/tokenize.mjs's
// input) and the UTF-8 bytes in hex per line (lrgd's side). Deterministic.
//   node tests/tokenizer_corpus.mjs SHARED_DIR OUT.jsonl OUT.hex
import fs from "node:fs";

const [shared, outJson, outHex] = process.argv.slice(2);
if (!outHex) { process.stderr.write("usage: node tokenizer_corpus.mjs SHARED_DIR OUT.jsonl OUT.hex\n"); process.exit(2); }

const tricky = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\n \n", "a", "A", " a", "a ", "  a", "a  ", " a b  c   d    ",
    "Hello world", "Hello  world", "Hello\tworld", "Hello\nworld", "Hello\r\nworld\r\n", "line1\n\n\nline2",
    "   leading spaces", "trailing spaces   ", "\t\ttabs\t\t", " \t \n mixed \r\n whitespace \u00a0\u3000",
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678901234567890", "3.14159", "1,000,000",
    "$9.99", "50%", "v2.0.1", "2024-01-31", "0.5-Fluid Ounce", "3x", "x3", "1st 2nd 3rd 4th", " 1 22 333 4444",
    "don't", "I'm", "I'M", "we'll", "they're", "THEY'RE", "it's", "IT'S", "you've", "he'd", "'s", "'", "''", "'''",
    "rock 'n' roll", "O'Reilly's", "Children's Toys", "Women's 3-Pack",
    "café", "naïve", "résumé", "Ångström", "straße", "ÆØÅ æøå", "e\u0301", "n\u0303o", "ﬁ ligature",
    "Ελληνικά", "Русский язык", "עברית", "مرحبا بالعالم", "नमस्ते दुनिया", "ภาษาไทย", "中文字符", "日本語のテキスト",
    "한국어 텍스트", "Tiếng Việt", "ĀāĒēĪī", "½ ¾ ² ³ ⅓", "١٢٣ ४५६", "①②③",
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵🇺🇸", "❤️", "☃", "😀😃😄", "emoji 🎉 party", "✓ ✗ → ← ★", "©®™", "€ £ ¥ ₹",
    "<s>", "</s>", "<unk>", "<0x41>", "<|bos|>", "<|eos|>", "<item>", "a<item>b", " <item> ", "<item><item>",
    "[SEP]", "x[SEP]y", "<item>[SEP]<item>", "▁", "▁▁", " ▁ ", "Ġ", "Ċ", "ĠĊ", "\u0000", "a\u0000b", "\u007f",
    "\u200b zero width", "\ufeffBOM", "\ud800 lone surrogate", "\udfff", "\uffff", "\u{10ffff}",
    "!!!", "???", "...", "…", "—", "--", "---", "(a)", "[b]", "{c}", "<d>", "a.b.c", "a,b;c:d", "e-mail@example.com",
    "https://www.example.com/path?q=1&r=2#frag", "C:\\Windows\\Path", "#hashtag @mention", "`code`", "~tilde~",
    "^caret^", "|pipe|", "a+b=c", "x<y>z", "$$$", "100% Pure & Natural", "&amp; &lt; &gt;",
    "ALL CAPS TITLE", "camelCaseWord", "snake_case_word", "kebab-case-word", "MiXeD CaSe",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab", "          ", "\n\n\n\n\n\n",
];

// Titles: every k-th line of each items file (third column).
function titles(file, every) {
    let lines;
    try { lines = fs.readFileSync(file, "utf8").split("\n"); } catch (e) { process.stderr.write(`${file}: ${e.message}\n`); process.exit(1); }
    const out = [];
    for (let i = 1; i < lines.length; i += every) {
        const f = lines[i].split("\t");
        if (f.length >= 3 && f[2] !== "") out.push(f[2]);
    }
    return out;
}
const base = `${shared}/datasets/amazon`;
const fromFiles = [
    ...titles(`${base}/Beauty.items.tsv`, 61),
    ...titles(`${base}/Toys_and_Games.items.tsv`, 97),
    ...titles(`${base}/Sports_and_Outdoors.items.tsv`, 151),
];

// Seeded random strings (xorshift32) over characters that stress the splits.
const alphabet = [..."aAzZ09 \t\n\r'.,;!?-_$+<=>^~|`()[]{}\"/\\@#%&*éßÆΩЖ中日한ا١٢½⅓™€😀👍🏽\u00a0\u3000\u200b\u0301▁Ġ"];
let seed = 20240601;
const rnd = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed / 4294967296; };
const random = [];
for (let i = 0; i < 150; i++) {
    const n = 1 + Math.floor(rnd() * 40);
    let s = "";
    for (let k = 0; k < n; k++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    random.push(s);
}

const all = [...tricky, ...fromFiles, ...random];
fs.writeFileSync(outJson, all.map((s) => JSON.stringify(s)).join("\n") + "\n");
// Buffer.from(s, "utf8") turns a lone surrogate into U+FFFD, as node-llama-cpp does when it hands the
// string to llama.cpp, so both sides see the same bytes.
fs.writeFileSync(outHex, all.map((s) => Buffer.from(s, "utf8").toString("hex")).join("\n") + "\n");
process.stdout.write(`corpus: ${all.length} strings (${tricky.length} tricky, ${fromFiles.length} titles, ${random.length} random)\n`);
