#!/usr/bin/env bash
# lrgd eval --method textllm end to end on tiny random text models (a byte-level BPE and a
# SentencePiece vocabulary learned on Beauty titles, written by test_tokenizer --make-models):
# 20 sampled candidates and similar demonstrations by default, the JSON records the method's
# configuration, runs are reproducible and thread-independent, demonstrations change ranks,
# full ranking and --compare work, and bad usage exits 2 with a one-line reason.
set -u
BIN=${LRGD_BIN:?}
: "${LRGD_BUILD:?LRGD_BUILD is not set}"
SHARED=${LRGD_SHARED:?}
tool="$LRGD_BUILD/tests/test_tokenizer"
[ -x "$tool" ] || { echo "FAIL: $tool not built" >&2; exit 1; }
T=$(mktemp -d /tmp/lrgd_textllm.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
expect() { # CODE SUBSTRING -- args
    local code=$1 piece=$2
    shift 3
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ "$rc" = "$code" ] || fail "lrgd $*: exit $rc, want $code ($(head -c 300 "$T/err"))"
    grep -qF -- "$piece" "$T/err" || fail "lrgd $*: stderr lacks '$piece': $(head -c 300 "$T/err")"
    [ "$code" = 0 ] || [ "$(wc -l <"$T/err")" -le 2 ] || fail "lrgd $*: more than a short reason: $(cat "$T/err")"
}

"$tool" --make-models "$T" "$SHARED/datasets/amazon/Beauty.items.tsv" >/dev/null || { echo "FAIL: models" >&2; exit 1; }

# 30 users over items 1..60 (Amazon format; users 29 and 30 hold every item so that all 60
# exist); items 1..50 get Beauty's titles, 51..60 none.
awk 'BEGIN { for (u = 1; u <= 28; u++) { n = 3 + u % 5; s = u; for (k = 0; k < n; k++) s = s " " (1 + (u * 7 + k * 11 + k * k) % 60); print s }
             s = 29; for (i = 1; i <= 30; i++) s = s " " i; print s; s = 30; for (i = 31; i <= 60; i++) s = s " " i; print s }' >"$T/d.txt"
head -n 51 "$SHARED/datasets/amazon/Beauty.items.tsv" >"$T/items.tsv"

run() { "$BIN" eval --data "$T/d.txt" --items "$T/items.tsv" --method textllm --quiet "$@"; }

run --model "$T/bpe-gpt2.gguf" --out "$T/a.json" --ranks-csv "$T/a.csv" >"$T/table" 2>"$T/err" || fail "textllm: $(cat "$T/err")"
tr -d ' \n' <"$T/a.json" >"$T/flat"
grep -q '"n_negatives":19' "$T/flat" || fail "default candidates are not target + 19"
grep -q '"method":"textllm"' "$T/flat" || fail "json lacks the method"
grep -q '"textllm":{"model":"[^"]*bpe-gpt2.gguf","demos_option":"similar","k":3,"demo_hist":20,"text_hist":20,"title_bytes":160,"score":"summedlog-likelihood"' "$T/flat" ||
    fail "json lacks the textllm configuration: $(grep -o '"textllm":{[^}]*}' "$T/flat")"
grep -q '"users_evaluated":30' "$T/flat" || fail "json: users_evaluated is not 30"
grep -q 'candidates: target + 19 negatives' "$T/table" || fail "table lacks the candidates line"
awk -F, 'NR > 1 && ($3 != 20 || $4 < 1 || $4 > 20) { bad = 1 } END { exit bad }' "$T/a.csv" || fail "ranks outside 1..20: $(head "$T/a.csv")"
# reproducible, and independent of the thread count
run --model "$T/bpe-gpt2.gguf" --ranks-csv "$T/b.csv" --threads 1 >/dev/null 2>&1 || fail "second run"
cmp -s "$T/a.csv" "$T/b.csv" || fail "ranks differ between runs (2 threads vs 1)"
# mean scores, the SentencePiece model, a short history, full ranking, a paired comparison
run --model "$T/spm.gguf" --demos none --text-score mean --text-hist 3 --candidates 10 --json >"$T/spm.json" 2>"$T/err" ||
    fail "spm: $(cat "$T/err")"
tr -d ' \n' <"$T/spm.json" | grep -q '"demos_option":"none","k":3,"demo_hist":20,"text_hist":3,"title_bytes":160,"score":"meanlog-likelihoodpertoken"' ||
    fail "spm json config"
run --model "$T/bpe-llama3.gguf" --demos none --candidates all --text-hist 2 --ranks-csv "$T/full.csv" >/dev/null 2>"$T/err" || fail "full ranking: $(cat "$T/err")"
awk -F, 'NR > 1 && ($3 < 25 || $4 > $3) { bad = 1 } END { exit bad }' "$T/full.csv" || fail "full ranking ranked too few items"
run --model "$T/bpe-default.gguf" --compare pop --out "$T/c.json" >/dev/null 2>"$T/err" || fail "compare: $(cat "$T/err")"
tr -d ' \n' <"$T/c.json" | grep -q '"comparison":{"a":"textllm","b":"pop"' || fail "comparison missing"
# demonstrations matter: similar (k 2, short) against zero-shot, paired over the same users
"$BIN" eval --data "$T/d.txt" --items "$T/items.tsv" --method textllm-similar --compare textllm-none --k 2 --demo-hist 3 \
    --text-hist 4 --model "$T/bpe-gpt2.gguf" --quiet --ranks-csv "$T/icl.csv" >/dev/null 2>"$T/err" || fail "icl compare: $(cat "$T/err")"
awk -F, 'NR > 1 && $4 != $5 { d++ } END { exit !(d > 0) }' "$T/icl.csv" || fail "similar demonstrations changed no rank: $(head -5 "$T/icl.csv")"

# bad usage: exit 2 with a reason
expect 2 "--model FILE (a GGUF text LLM) is required" -- eval --data "$T/d.txt" --method textllm
expect 2 "no tokenizer" -- eval --data "$T/d.txt" --method textllm --model "$SHARED/models/stories260K.bin"
expect 2 "--text-score: expected sum or mean" -- eval --data "$T/d.txt" --method textllm --model "$T/spm.gguf" --text-score max
expect 2 "text-hist" -- eval --data "$T/d.txt" --method textllm --model "$T/spm.gguf" --text-hist 0
expect 2 "text-ctx" -- eval --data "$T/d.txt" --method textllm --model "$T/spm.gguf" --text-ctx 8
expect 2 "exceeds the model's context" -- eval --data "$T/d.txt" --method textllm --model "$T/spm.gguf" --text-ctx 100000
expect 2 "cannot open" -- eval --data "$T/d.txt" --method textllm --model "$T/missing.gguf"

[ "$fails" = 0 ] && echo "cli_textllm: ok"
exit $((fails > 0))
