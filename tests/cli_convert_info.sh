#!/usr/bin/env bash
# lrgd convert / lrgd info on stories260K: F32, F16 and Q8_0 GGUF files,
# text and JSON output, GGUF -> GGUF, and usage errors (exit 2).
set -u
: "${LRGD_BIN:?set LRGD_BIN to the lrgd binary}"
SHARED="${LRGD_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
SRC="$SHARED/models/stories260K.bin"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lrgd_conv.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { echo "FAIL: $*"; fail=$((fail + 1)); }
# expect CODE DESCRIPTION -- command...
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq "$want" ] && [ "$rc" -lt 128 ]; then ok; else no "$what: exit $rc, expected $want: $(head -3 "$TMP/err")"; fi
}
contains() { if grep -qF -- "$2" "$1"; then ok; else no "$(basename "$1") lacks '$2'"; fi; }

if [ ! -r "$SRC" ]; then echo "skip: $SRC not found"; echo "0 passed, 0 failed"; exit 0; fi

for t in f32 f16 q8_0; do
    expect 0 "convert --type $t" -- "$LRGD_BIN" convert "$SRC" "$TMP/s_$t.gguf" --type "$t" --quiet
    [ -s "$TMP/s_$t.gguf" ] && ok || no "no output for --type $t"
    expect 0 "info $t" -- "$LRGD_BIN" info "$TMP/s_$t.gguf"
    cp "$TMP/out" "$TMP/info_$t.txt"
    contains "$TMP/info_$t.txt" "dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, head_dim 8"
    contains "$TMP/info_$t.txt" "vocab_size 512, seq_len 512"
    contains "$TMP/info_$t.txt" "tensors (47):"
    contains "$TMP/info_$t.txt" "general.architecture"
    contains "$TMP/info_$t.txt" "tokenizer.ggml.tokens"
    contains "$TMP/info_$t.txt" "array[string] x 512"
done
grep -qE "blk.0.attn_q.weight +F32 +\[64, 64\]" "$TMP/info_f32.txt" && ok || no "F32 attn_q row"
grep -qE "blk.0.attn_q.weight +F16 +\[64, 64\]" "$TMP/info_f16.txt" && ok || no "F16 attn_q row"
grep -qE "blk.0.attn_q.weight +Q8_0 +\[64, 64\] +[0-9]+ +4352" "$TMP/info_q8_0.txt" && ok || no "Q8_0 attn_q row (64*64/32*34 = 4352 bytes)"
grep -qE "blk.0.ffn_down.weight +F16 +\[172, 64\]" "$TMP/info_q8_0.txt" && ok || no "Q8_0 file: ffn_down falls back to F16"
grep -qE "blk.0.ffn_norm.weight +F32 +\[64\]" "$TMP/info_q8_0.txt" && ok || no "norms stay F32"
# sizes: F32 > F16 > Q8_0
s32=$(stat -c %s "$TMP/s_f32.gguf"); s16=$(stat -c %s "$TMP/s_f16.gguf"); s8=$(stat -c %s "$TMP/s_q8_0.gguf")
[ "$s32" -gt "$s16" ] && [ "$s16" -gt "$s8" ] && ok || no "sizes f32 $s32, f16 $s16, q8_0 $s8"

# info on the llama2.c file itself
expect 0 "info llama2.c" -- "$LRGD_BIN" info "$SRC"
contains "$TMP/out" "format: llama2.c checkpoint"
contains "$TMP/out" "parameters 260032"

# JSON
expect 0 "info --json" -- "$LRGD_BIN" info --json "$TMP/s_q8_0.gguf"
cp "$TMP/out" "$TMP/info.json"
contains "$TMP/info.json" '"format": "gguf"'
contains "$TMP/info.json" '"n_layers": 5'
if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool "$TMP/info.json" >/dev/null && ok || no "info --json is not valid JSON"
    expect 0 "info --json llama2.c" -- "$LRGD_BIN" info --json "$SRC"
    python3 -m json.tool "$TMP/out" >/dev/null && ok || no "info --json (llama2.c) is not valid JSON"
    expect 0 "convert --json" -- "$LRGD_BIN" convert --json "$SRC" "$TMP/j.gguf"
    python3 -m json.tool "$TMP/out" >/dev/null && ok || no "convert --json is not valid JSON"
    expect 0 "info --raw --json" -- "$LRGD_BIN" info --raw --json --arrays 0 "$TMP/s_f32.gguf"
    python3 -m json.tool "$TMP/out" >/dev/null && ok || no "info --raw --json is not valid JSON"
else
    echo "skip: python3 not found, JSON not validated"
fi

# GGUF -> GGUF: F32 -> F32 is byte-identical (same keys, same tensors)
expect 0 "convert gguf -> gguf" -- "$LRGD_BIN" convert "$TMP/s_f32.gguf" "$TMP/again.gguf" --quiet
cmp -s "$TMP/s_f32.gguf" "$TMP/again.gguf" && ok || no "F32 GGUF -> F32 GGUF is not byte-identical"
expect 0 "convert --rope-norm" -- "$LRGD_BIN" convert "$SRC" "$TMP/rn.gguf" --rope-norm --quiet
cmp -s "$TMP/s_f32.gguf" "$TMP/rn.gguf" && ok || no "--rope-norm changed a model that already uses adjacent-pair RoPE"
expect 0 "convert --name" -- "$LRGD_BIN" convert "$SRC" "$TMP/named.gguf" --name "tiny stories" --quiet
expect 0 "info named" -- "$LRGD_BIN" info "$TMP/named.gguf"
contains "$TMP/out" '"tiny stories"'

# usage errors and bad values: exit 2, no output file
expect 0 "convert --help" -- "$LRGD_BIN" convert --help
contains "$TMP/out" "usage: lrgd convert"
expect 0 "info --help" -- "$LRGD_BIN" info --help
contains "$TMP/out" "usage: lrgd info"
expect 2 "--type q4_0" -- "$LRGD_BIN" convert "$SRC" "$TMP/bad.gguf" --type q4_0
contains "$TMP/err" "--type: expected f32, f16 or q8_0, got 'q4_0'"
[ ! -e "$TMP/bad.gguf" ] && ok || no "output written despite a bad option"
expect 2 "--type missing value" -- "$LRGD_BIN" convert "$SRC" "$TMP/bad.gguf" --type
expect 2 "--name empty" -- "$LRGD_BIN" convert "$SRC" "$TMP/bad.gguf" --name ""
expect 2 "convert one file" -- "$LRGD_BIN" convert "$SRC"
expect 2 "convert three files" -- "$LRGD_BIN" convert "$SRC" "$TMP/a.gguf" "$TMP/b.gguf"
expect 2 "convert unknown option" -- "$LRGD_BIN" convert --frobnicate "$SRC" "$TMP/bad.gguf"
expect 2 "convert --threads -1" -- "$LRGD_BIN" convert --threads -1 "$SRC" "$TMP/bad.gguf"
expect 2 "info no file" -- "$LRGD_BIN" info
expect 2 "info two files" -- "$LRGD_BIN" info "$SRC" "$SRC"
expect 2 "info --arrays -1" -- "$LRGD_BIN" info --arrays -1 "$SRC"
expect 2 "info --arrays x" -- "$LRGD_BIN" info --arrays x "$SRC"
expect 2 "info missing file" -- "$LRGD_BIN" info "$TMP/nope.gguf"
contains "$TMP/err" "cannot open"
expect 2 "info --raw on llama2.c" -- "$LRGD_BIN" info --raw "$SRC"
contains "$TMP/err" "magic"
# an output that cannot be written: a runtime failure, exit 1 (an unreadable input stays 2)
expect 1 "convert into a missing directory" -- "$LRGD_BIN" convert "$SRC" "$TMP/no/such/dir/x.gguf"
contains "$TMP/err" "x.gguf: cannot create"
expect 1 "convert under a regular file" -- "$LRGD_BIN" convert "$SRC" /etc/passwd/x.gguf
contains "$TMP/err" "Not a directory"
ls "$TMP"/no 2>/dev/null && no "left something behind" || ok
# atomic: a failed conversion leaves an existing output untouched
cp "$TMP/s_f16.gguf" "$TMP/keep.gguf"
expect 2 "convert bad input over an existing file" -- "$LRGD_BIN" convert "$TMP/nope.bin" "$TMP/keep.gguf"
cmp -s "$TMP/s_f16.gguf" "$TMP/keep.gguf" && ok || no "existing output changed by a failed convert"
ls "$TMP"/*.tmp.* >/dev/null 2>&1 && no "temporary files left behind" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
