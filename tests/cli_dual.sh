#!/usr/bin/env bash
# lrgd dual through the command line, on Beauty with random recommendation
# models (softmax and linear attention): E1/E2/E4 and the stacked logits
# within 1e-5 (--strict), the E3 block and plots, JSON on stdout, seeded
# reproducibility, atomic outputs, and error exits for bad input.
set -u
B=${LRGD_BIN:?LRGD_BIN not set}
S=${LRGD_SHARED:?LRGD_SHARED not set}
MK=${LRGD_BUILD:?LRGD_BUILD not set}/tests/test_dual_cli
DATA=$S/datasets/amazon/Beauty.txt
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ -x "$MK" ] || { echo "SKIP: $MK not built"; exit 77; }
[ -r "$DATA" ] || { echo "SKIP: $DATA missing"; exit 77; }

"$MK" --make-model "$T/soft.gguf" 12101 softmax norm || bad "making the softmax model"
"$MK" --make-model "$T/lin.gguf" 12101 linear neox || bad "making the linear model"

# softmax: E2, E4, stacked logits within 1e-5; E3 on 8 users
"$B" dual --model "$T/soft.gguf" --data "$DATA" --users 40 --e3-users 8 --features 16,64,256,1024 --out "$T/s" \
    --strict --threads 2 >"$T/s.txt" 2>"$T/s.err"
rc=$?
cat "$T/s.txt"
[ $rc -eq 0 ] || bad "softmax run: exit $rc: $(cat "$T/s.err")"
J=$T/s/dual.json
grep -q '"pass": true' "$J" || bad "softmax: checks did not pass"
grep -q '"E1": null' "$J" || bad "softmax: E1 must not apply"
grep -q '"loglog_slope": -0\.' "$J" || bad "softmax: no negative E3 slope"
grep -q '"kernel": "prf"' "$J" || bad "softmax: kernel not recorded"
grep -q '"users": 40' "$J" || bad "softmax: user count"
for f in dual_e3.svg dual_lambda.svg; do
    head -c 5 "$T/s/$f" | grep -q '<svg' || bad "softmax: $f missing or not SVG"
done
grep -q 'E2 (at t; scaled at every position), E4, logits within 1e-05: yes' "$T/s.txt" || bad "softmax: summary line"
ls "$T/s" | grep -q tmp && bad "temporary files left in the output directory"

# the same seed gives the same numbers
"$B" dual --model "$T/soft.gguf" --data "$DATA" --users 40 --e3-users 8 --features 16,64,256,1024 --out "$T/s2" \
    --quiet --threads 2 || bad "second softmax run: exit $?"
diff <(grep -v -e '"seconds"' -e '"command"' -e '"plot"' -e '"lambda_plot"' "$J") \
    <(grep -v -e '"seconds"' -e '"command"' -e '"plot"' -e '"lambda_plot"' "$T/s2/dual.json") >/dev/null ||
    bad "same seed, different results"

# linear: E1 (every position), E4 with its output, stacked logits; JSON on stdout
"$B" dual --model "$T/lin.gguf" --data "$DATA" --users 30 --demos random --k 2 --json --quiet --out "$T/l" \
    --strict --threads 2 >"$T/l.json" 2>"$T/l.err"
rc=$?
[ $rc -eq 0 ] || bad "linear run: exit $rc: $(cat "$T/l.err")"
grep -q '"pass": true' "$T/l.json" || bad "linear: checks did not pass (stdout JSON)"
grep -q '"E2": null' "$T/l.json" || bad "linear: E2 must not apply"
grep -q '"E3": null' "$T/l.json" || bad "linear: E3 must not apply"
grep -q '"E4_output"' "$T/l.json" || bad "linear: no E4 output check"
cmp -s "$T/l.json" "$T/l/dual.json" || bad "linear: stdout JSON differs from dual.json"
[ -e "$T/l/dual_e3.svg" ] && bad "linear: an E3 plot was written"

# zero-shot: no demonstrations, lambda = 0
"$B" dual --model "$T/soft.gguf" --data "$DATA" --users 5 --demos none --e3-users 0 --out "$T/z" --quiet ||
    bad "zero-shot: exit $?"
grep -A3 '"lambda"' "$T/z/dual.json" | grep -q '"max": 0,' || bad "zero-shot: lambda must be 0"

# --strict with an impossible tolerance fails with exit 1
"$B" dual --model "$T/soft.gguf" --data "$DATA" --users 3 --e3-users 0 --tol 1e-15 --strict --out "$T/x" --quiet \
    2>/dev/null
[ $? -eq 1 ] || bad "--strict with tol 1e-15 must exit 1"

# trained embedded models (lrgd train, a few epochs on planted sequences x_{i+1} = x_i + a mod 50):
# E1/E2/E4 and the stacked logits hold on the model the trainer writes
awk 'BEGIN { srand(5); for (u = 1; u <= 200; u++) { a = (u % 2) ? 1 : 3; x = int(rand() * 50);
      n = 6 + int(rand() * 8); line = u; for (i = 0; i < n; i++) { line = line " " (x + 1); x = (x + a) % 50 }
      print line } }' >"$T/planted.txt"
for a in softmax linear; do
    "$B" train --data "$T/planted.txt" --out "$T/tr-$a.gguf" --attention $a --layers 2 --dim 32 --heads 4 \
        --kv-heads 2 --hidden 64 --seq 96 --epochs 2 --batch 32 --lr 3e-3 --warmup 5 --quiet --threads 2 \
        >"$T/tr-$a.log" 2>&1 || { bad "lrgd train ($a): exit $?: $(tail -3 "$T/tr-$a.log")"; continue; }
    "$B" dual --model "$T/tr-$a.gguf" --data "$T/planted.txt" --users 30 --e3-users 5 --out "$T/tr-$a" --strict \
        --threads 2 >"$T/tr-$a.txt" 2>&1 || bad "dual on the trained $a model: exit $?: $(cat "$T/tr-$a.txt")"
    grep -E 'E[12] \(at t|logits' "$T/tr-$a.txt"
done

# a text LLM (stories260K converted to GGUF: a vocabulary, no item keys): text prompts with segments
"$B" convert "$S/models/stories260K.bin" "$T/st.gguf" --quiet || bad "convert stories260K: exit $?"
"$B" dual --model "$T/st.gguf" --data "$DATA" --users 3 --k 1 --e3-users 0 --out "$T/t" --strict --threads 2 \
    >"$T/t.txt" 2>&1 || bad "dual on a text LLM: exit $?: $(cat "$T/t.txt")"
grep -q '"prompts": "text (lrgd_textrec)"' "$T/t/dual.json" || bad "text LLM: prompt kind not recorded"
grep -q 'softmax text model, 5 layers' "$T/t.txt" || bad "text LLM: summary"

# bad input: exit 2 with a message
expect2() { # label needle args...
    local label=$1 needle=$2
    shift 2
    "$B" dual "$@" >/dev/null 2>"$T/err"
    local rc=$?
    [ $rc -eq 2 ] || bad "$label: exit $rc, expected 2"
    grep -q -- "$needle" "$T/err" || bad "$label: message '$(cat "$T/err")' lacks '$needle'"
}
expect2 "no model" "--model is required" --data "$DATA"
expect2 "no data" "--data is required" --model "$T/soft.gguf"
expect2 "bad demos" "expected none, random or similar" --model "$T/soft.gguf" --data "$DATA" --demos best
expect2 "bad features" "features" --model "$T/soft.gguf" --data "$DATA" --features 16,0
expect2 "bad kernel" "expected prf or oprf" --model "$T/soft.gguf" --data "$DATA" --kernel rff
expect2 "too many users" "has only" --model "$T/soft.gguf" --data "$DATA" --users 9999999
expect2 "missing data" "nonexistent" --model "$T/soft.gguf" --data "$T/nonexistent.txt"
expect2 "no vocabulary at all" "no tokenizer" --model "$S/models/stories260K.bin" --data "$DATA"
expect2 "titles for an item model" "titles are for text LLMs" --model "$T/soft.gguf" --data "$DATA" \
    --items "$S/datasets/amazon/Beauty.items.tsv"
printf '1 1 2 3 4\n2 2 3 4 5\n3 12102 3 4 5\n' >"$T/unknown.txt"
expect2 "unknown item" "12102" --model "$T/soft.gguf" --data "$T/unknown.txt" --users 3 --out "$T/u"
[ -e "$T/u/dual.json" ] && bad "a failed run wrote dual.json"

echo "cli_dual: $fails failed"
[ $fails -eq 0 ]
