#!/usr/bin/env bash
# examples/recommend (built against the public headers only) on a trained item model and on a tiny text
# LLM: the held-out item's rank from its ICL prompt equals 'lrgd eval --split valid --demos similar' on
# the same user (lrgd_rank_full over the same scores), its top-10 list agrees with that rank, each
# demonstration's Effect_D equals the pair's value in 'lrgd effect' (effect_pairs.csv), the prompt given
# as ids on the command line gives the same numbers as the dataset's user, and bad input exits 2.
set -u
BIN=${LRGD_BIN:?}
: "${LRGD_BUILD:?LRGD_BUILD is not set}"
SHARED=${LRGD_SHARED:?}
EX="$LRGD_BUILD/examples/recommend"
[ -x "$EX" ] || { echo "FAIL: $EX not built" >&2; exit 1; }
tool="$LRGD_BUILD/tests/test_tokenizer"
[ -x "$tool" ] || { echo "FAIL: $tool not built" >&2; exit 1; }
T=$(mktemp -d /tmp/lrgd_examples.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
export OMP_NUM_THREADS=2

# 120 users walking 40 items with stride 1 or 3 (item model); the first 30 of them for the text LLM
awk 'BEGIN { srand(5); for (u = 1; u <= 120; u++) { a = (u % 2) ? 1 : 3; x = int(rand() * 40);
      n = 6 + int(rand() * 6); line = u; for (i = 0; i < n; i++) { line = line " " (x + 1); x = (x + a) % 40 }
      print line } }' >"$T/d.txt"
awk 'BEGIN { srand(9); for (u = 1; u <= 30; u++) { a = (u % 2) ? 1 : 3; x = int(rand() * 40);
      n = 5 + int(rand() * 3); line = u; for (i = 0; i < n; i++) { line = line " " (x + 1); x = (x + a) % 40 }
      print line } }' >"$T/t.txt"
head -n 41 "$SHARED/datasets/amazon/Beauty.items.tsv" >"$T/items.tsv"

# $1 output of recommend, $2 user, $3 ranks csv: the rank and target agree with lrgd eval's
check_rank() {
    local out=$1 u=$2 csv=$3 tgt rank row
    read -r tgt rank < <(awk '$1 == "target" { print $2, $4 }' "$out")
    row=$(awk -F, -v u="$u" '$1 == u' "$csv")
    [ -n "$tgt" ] && [ -n "$row" ] || { fail "user $u: no target line or no eval row"; return; }
    [ "$(cut -d, -f2 <<<"$row")" = "$tgt" ] || fail "user $u: target $tgt, lrgd eval's $(cut -d, -f2 <<<"$row")"
    [ "$(cut -d, -f4 <<<"$row")" = "$rank" ] || fail "user $u: rank $rank, lrgd eval's $(cut -d, -f4 <<<"$row")"
    # the top list: descending scores, and the target at its rank when it is in the top 10
    awk '$1 == "top" { if (n && $6 > prev) bad = 1; prev = $6; n++ } END { exit bad || n != 10 }' "$out" ||
        fail "user $u: top list not 10 descending scores: $(grep '^top' "$out")"
    if [ "$rank" -le 10 ]; then
        awk -v r="$rank" -v t="$tgt" '$1 == "top" && $2 == r { ok = ($4 == t) } END { exit !ok }' "$out" ||
            fail "user $u: the top list does not show target $tgt at rank $rank"
    fi
    echo "user $u: target $tgt rank $rank (lrgd eval: $(cut -d, -f4 <<<"$row"))"
}

# $1 output of recommend, $2 user, $3 effect_pairs.csv: each demonstration's Effect_D equals the pair's
check_effect() {
    local out=$1 u=$2 csv=$3 n
    n=$(awk -F'[ ,]' -v u="$u" 'NR == FNR { if ($1 == "effect") e[$5] = $9; next }
            $1 == u && ($2 in e) { d = e[$2] - $4; if (d < 0) d = -d; s = ($4 < 0 ? -$4 : $4);
                                   if (d > 1e-4 * s + 1e-7) { print "demo user", $2, e[$2], "vs", $4 > "/dev/stderr"; bad = 1 } m++ }
            END { print m + 0; exit bad }' "$out" "$csv") || fail "user $u: Effect_D differs from lrgd effect"
    [ "$n" -ge 1 ] && [ "$n" = "$(grep -c '^effect' "$out")" ] || fail "user $u: $n of $(grep -c '^effect' "$out") demonstrations found in lrgd effect's pairs"
}

# ---- a recommendation model trained on d.txt --------------------------------------------------------
"$BIN" train --data "$T/d.txt" --out "$T/m.gguf" --layers 2 --dim 32 --heads 4 --kv-heads 2 --hidden 64 --seq 96 \
    --epochs 6 --batch 32 --lr 3e-3 --warmup 5 --quiet --threads 2 >"$T/train.log" 2>&1 || { cat "$T/train.log"; fail "train"; }
"$BIN" eval --data "$T/d.txt" --model "$T/m.gguf" --method model --demos similar --k 3 --split valid \
    --ranks-csv "$T/r.csv" --quiet >/dev/null 2>"$T/err" || fail "eval: $(cat "$T/err")"
"$BIN" effect --model "$T/m.gguf" --data "$T/d.txt" --users 120 --pool 50 --out "$T/eff" --quiet >/dev/null 2>"$T/err" ||
    fail "effect: $(cat "$T/err")"
for u in 7 12 64; do
    "$EX" "$T/m.gguf" "$T/d.txt" --user $u >"$T/u$u.txt" 2>"$T/err" || { fail "recommend --user $u: $(cat "$T/err")"; continue; }
    check_rank "$T/u$u.txt" $u "$T/r.csv"
    check_effect "$T/u$u.txt" $u "$T/eff/effect_pairs.csv"
done
# the same prompt as ids on the command line: the same rank and Effect_D
args=(--query "$(awk '$1 == "query" { print $3 }' "$T/u7.txt")" --target "$(awk '$1 == "target" { print $2 }' "$T/u7.txt")")
while read -r h nx; do args+=(--demo "$h:$nx"); done < <(awk '$1 == "demo" { print $6, $8 }' "$T/u7.txt")
"$EX" "$T/m.gguf" "$T/d.txt" "${args[@]}" >"$T/ids.txt" 2>"$T/err" || fail "recommend --query: $(cat "$T/err")"
diff <(grep -E '^(target|top|prompt)' "$T/u7.txt") <(grep -E '^(target|top|prompt)' "$T/ids.txt") >/dev/null ||
    fail "ids on the command line rank differently: $(diff <(grep -E '^(target|top)' "$T/u7.txt") <(grep -E '^(target|top)' "$T/ids.txt"))"
diff <(awk '$1 == "effect" { print $(NF - 2) }' "$T/u7.txt") <(awk '$1 == "effect" { print $(NF - 2) }' "$T/ids.txt") >/dev/null ||
    fail "ids on the command line give other Effect_D values"

# ---- a tiny text LLM (a byte-level BPE learned on Beauty titles, random weights) ---------------------
"$tool" --make-models "$T" "$SHARED/datasets/amazon/Beauty.items.tsv" >/dev/null || fail "text models"
"$BIN" eval --data "$T/t.txt" --items "$T/items.tsv" --model "$T/bpe-gpt2.gguf" --method textllm --candidates all \
    --demos similar --k 2 --split valid --ranks-csv "$T/tr.csv" --quiet >/dev/null 2>"$T/err" || fail "eval textllm: $(cat "$T/err")"
"$EX" "$T/bpe-gpt2.gguf" "$T/t.txt" --user 7 --k 2 --items "$T/items.tsv" >"$T/x7.txt" 2>"$T/err" || fail "recommend text: $(cat "$T/err")"
grep -q "text LLM" "$T/x7.txt" || fail "the text LLM is not reported as one"
grep -q '^top  1 item [0-9]* score [-0-9.e]* "' "$T/x7.txt" || fail "the text LLM's top list shows no titles"
check_rank "$T/x7.txt" 7 "$T/tr.csv"
# Effect_D on the titled prompts equals lrgd effect --items; without titles ("item <id>"), lrgd effect's
"$BIN" effect --model "$T/bpe-gpt2.gguf" --data "$T/t.txt" --items "$T/items.tsv" --users 30 --pool 50 --out "$T/teff-titles" \
    --quiet >/dev/null 2>"$T/err" || fail "effect --items on the text LLM: $(cat "$T/err")"
check_effect "$T/x7.txt" 7 "$T/teff-titles/effect_pairs.csv"
"$BIN" effect --model "$T/bpe-gpt2.gguf" --data "$T/t.txt" --users 30 --pool 50 --out "$T/teff" --quiet >/dev/null 2>"$T/err" ||
    fail "effect on the text LLM: $(cat "$T/err")"
"$EX" "$T/bpe-gpt2.gguf" "$T/t.txt" --user 7 --k 2 >"$T/y7.txt" 2>"$T/err" || fail "recommend text without titles: $(cat "$T/err")"
check_effect "$T/y7.txt" 7 "$T/teff/effect_pairs.csv"

# ---- bad input: exit 2 with a reason ----------------------------------------------------------------
"$EX" "$T/m.gguf" "$T/d.txt" --user 999 >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "not in the split" "$T/err" || fail "unknown user: exit $rc: $(cat "$T/err")"
"$EX" "$T/m.gguf" "$T/d.txt" --query 1,2 --demo 3,4 >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "expected IDS:ID" "$T/err" || fail "bad --demo: exit $rc: $(cat "$T/err")"
"$EX" "$T/m.gguf" "$T/d.txt" --query 1,77 >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "'77' is not an item" "$T/err" || fail "unknown item: exit $rc: $(cat "$T/err")"
"$EX" "$SHARED/models/stories260K.bin" "$T/d.txt" --user 7 >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "no tokenizer" "$T/err" || fail "a model without items or tokenizer: exit $rc: $(cat "$T/err")"
"$EX" "$T/m.gguf" >/dev/null 2>&1; [ $? = 2 ] || fail "no arguments: not exit 2"

[ "$fails" = 0 ] && echo "cli_examples: ok"
exit $((fails > 0))
