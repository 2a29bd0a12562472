#!/usr/bin/env bash
# lrgd dual and lrgd effect on text LLMs brought as GGUF (tiny random llama models with vocabularies
# learned on Beauty titles, written by lrgd's GGUF writer: test_effect_text --make-models): no item
# vocabulary, the item-title prompts of textllm scoring. dual: E1 (linear attention), E2 (softmax), E4
# and the rebuilt logits within 1e-5 under --strict (E3 runs and is recorded), the prompts recorded as text; effect: Effect_D
# against the ground truth dlogP (Spearman rho > 0 for softmax), each candidate's tokens and the JSON;
# effect --items: titles shown as "item <id>" give the run without titles, real titles lengthen every
# demonstration and change Effect_D; a model with neither item vocabulary nor tokenizer exits 2 with a reason.
set -u
BIN=${LRGD_BIN:?}
: "${LRGD_BUILD:?LRGD_BUILD is not set}"
SHARED=${LRGD_SHARED:?}
tool="$LRGD_BUILD/tests/test_effect_text"
[ -x "$tool" ] || { echo "FAIL: $tool not built" >&2; exit 1; }
T=$(mktemp -d /tmp/lrgd_text_effect.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
export OMP_NUM_THREADS=2

"$tool" --make-models "$T" "$SHARED/datasets/amazon/Beauty.items.tsv" >/dev/null || { echo "FAIL: models" >&2; exit 1; }
# 30 users walking 40 titled items with stride 1 or 3
awk 'BEGIN { srand(9); for (u = 1; u <= 30; u++) { a = (u % 2) ? 1 : 3; x = int(rand() * 40);
      n = 5 + int(rand() * 3); line = u; for (i = 0; i < n; i++) { line = line " " (x + 1); x = (x + a) % 40 }
      print line } }' >"$T/t.txt"
head -n 41 "$SHARED/datasets/amazon/Beauty.items.tsv" >"$T/items.tsv"

# the number after "key": in a flattened JSON object path (first match after $2)
num() { tr -d ' \n' <"$1" | grep -o "$2" | head -n 1 | sed 's/.*://'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 <= b + 0) }'; }

# ---- lrgd dual --------------------------------------------------------------------------------------
for m in bpe-linear spm-softmax-neox; do
    extra=()
    [ $m = spm-softmax-neox ] && extra=(--e3-users 2 --features 16,64,256,1024)
    "$BIN" dual --model "$T/$m.gguf" --data "$T/t.txt" --items "$T/items.tsv" --users 5 --k 2 --max-hist 3 \
        --demo-hist 3 --strict --out "$T/d-$m" "${extra[@]}" >"$T/d-$m.txt" 2>&1 || { fail "dual $m: exit $?: $(cat "$T/d-$m.txt")"; continue; }
    j="$T/d-$m/dual.json"
    tr -d ' \n' <"$j" | grep -q '"prompts":"text(lrgd_textrec)"' || fail "dual $m: the prompts are not recorded as text"
    tr -d ' \n' <"$j" | grep -q '"pass":true' || fail "dual $m: checks do not pass"
    ex=E1; [ $m = spm-softmax-neox ] && ex=E2
    e_t=$(num "$j" "\"$ex\":{\"what\":\"[^\"]*\",\"at_t\":{\"max\":[-0-9.e]*")
    e4=$(num "$j" '"E4":{"what":"[^"]*","matrix":{"mean":[-0-9.e]*,"max":[-0-9.e]*')
    lg=$(num "$j" '"logits":{"mean":[-0-9.e]*,"max":[-0-9.e]*')
    le "$e_t" 1e-5 && le "$e4" 1e-5 && le "$lg" 1e-5 || fail "dual $m: $ex at t $e_t, E4 $e4, logits $lg (want <= 1e-5)"
    echo "dual $m: $ex at t max $e_t, E4 max $e4, rebuilt logits max $lg"
    if [ $m = spm-softmax-neox ]; then
        # E3 runs on text prompts too (its error against r is issue 5's subject, not asserted here)
        slope=$(num "$j" '"loglog_slope":[-0-9.e]*')
        tr -d ' \n' <"$j" | grep -q '"E3":{"kernel":"prf","users":2,"r":\[16,64,256,1024\],"mean_error":\[[0-9]' ||
            fail "dual $m: no E3 errors in dual.json"
        echo "dual $m: E3 log-log slope $slope (2 users)"
    fi
done

# ---- lrgd effect ------------------------------------------------------------------------------------
for m in bpe-softmax spm-softmax-neox bpe-linear; do
    "$BIN" effect --model "$T/$m.gguf" --data "$T/t.txt" --users 10 --pool 6 --max-hist 4 --demo-hist 4 --truth \
        --out "$T/e-$m" --quiet >"$T/e-$m.txt" 2>&1 || { fail "effect $m: exit $?: $(cat "$T/e-$m.txt")"; continue; }
    j="$T/e-$m/effect.json"
    rho=$(num "$j" '"spearman":[-0-9.e]*')
    pairs=$(num "$j" '"pairs":[0-9]*')
    [ "${pairs:-0}" -ge 30 ] || fail "effect $m: only $pairs pairs"
    [ "$(($(wc -l <"$T/e-$m/effect_pairs.csv") - 1))" = "$pairs" ] || fail "effect $m: effect_pairs.csv lacks rows"
    # every pair has a finite Effect_D and dlogP
    awk -F, 'NR > 1 && ($4 == "" || $7 == "" || $4 ~ /nan|inf/ || $7 ~ /nan|inf/) { bad = 1 } END { exit bad }' \
        "$T/e-$m/effect_pairs.csv" || fail "effect $m: a pair without Effect_D or dlogP"
    [ -s "$T/e-$m/effect_scatter.svg" ] || fail "effect $m: no scatter plot"
    if [ $m != bpe-linear ]; then
        awk -v r="$rho" 'BEGIN { exit !(r > 0) }' || fail "effect $m: Spearman rho $rho is not positive"
    fi
    echo "effect $m: $pairs pairs, Spearman rho of Effect_D vs dlogP $rho"
done
# reproducible: the same run again gives the same Effect_D values
"$BIN" effect --model "$T/bpe-softmax.gguf" --data "$T/t.txt" --users 10 --pool 6 --max-hist 4 --demo-hist 4 \
    --out "$T/e-again" --quiet >/dev/null 2>&1 || fail "effect again"
cut -d, -f1-4 "$T/e-again/effect_pairs.csv" | cmp -s - <(cut -d, -f1-4 "$T/e-bpe-softmax/effect_pairs.csv") ||
    fail "effect: the same run gives other Effect_D values"

# ---- lrgd effect --items: the titles are what the text prompts show ----------------------------------
E=(effect --model "$T/bpe-softmax.gguf" --data "$T/t.txt" --users 10 --pool 6 --max-hist 4 --demo-hist 4 --quiet)
# titles that read exactly "item <id>", what the prompts show without --items: the same pairs, the same
# demonstration token counts and the same Effect_D as the run without titles
awk -F'\t' 'NR > 1 { print $1 "\titem " $1 }' "$T/items.tsv" >"$T/items-as-ids.tsv"
"$BIN" "${E[@]}" --items "$T/items-as-ids.tsv" --out "$T/e-ids" >"$T/e-ids.txt" 2>&1 || fail "effect --items (ids): $(cat "$T/e-ids.txt")"
cut -d, -f1-4 "$T/e-ids/effect_pairs.csv" | cmp -s - <(cut -d, -f1-4 "$T/e-again/effect_pairs.csv") ||
    fail "effect --items with 'item <id>' titles differs from the run without --items"
# the real titles: the same (user, demonstration) pairs, each demonstration longer in tokens than as
# "item <id>" lines, other Effect_D values, and the file recorded in effect.json
"$BIN" "${E[@]}" --items "$T/items.tsv" --out "$T/e-titles" >"$T/e-titles.txt" 2>&1 || fail "effect --items: $(cat "$T/e-titles.txt")"
cut -d, -f1-2 "$T/e-titles/effect_pairs.csv" | cmp -s - <(cut -d, -f1-2 "$T/e-again/effect_pairs.csv") ||
    fail "effect --items: other (user, demonstration) pairs than without titles"
paste -d, "$T/e-titles/effect_pairs.csv" "$T/e-again/effect_pairs.csv" | awk -F, 'NR > 1 { n++; if (!($3 > $10)) short++; if ($4 != $11) diff++ }
    END { if (n < 30 || short || diff < n / 2) { print n " pairs, " short + 0 " not longer, " diff + 0 " other Effect_D"; exit 1 } }' ||
    fail "effect --items: the titles are not in the prompts"
tr -d ' \n' <"$T/e-titles/effect.json" | grep -qF "\"items\":\"$T/items.tsv\"" || fail "effect --items: not in effect.json"
tr -d ' \n' <"$T/e-again/effect.json" | grep -q '"items":null' || fail "effect without --items: items not null in effect.json"
echo "effect --items: 'item <id>' titles reproduce the run without titles; real titles lengthen every demonstration"
# an item the dataset does not have: exit 2 naming the file and line
printf '1\tA title\n99\tNo such item\n' >"$T/items-bad.tsv"
"$BIN" "${E[@]}" --items "$T/items-bad.tsv" --out "$T/e-bad" >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "items-bad.tsv:2" "$T/err" || fail "effect --items with an unknown item: exit $rc: $(cat "$T/err")"

# ---- bad input --------------------------------------------------------------------------------------
"$BIN" effect --model "$SHARED/models/stories260K.bin" --data "$T/t.txt" >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "no tokenizer" "$T/err" && [ "$(wc -l <"$T/err")" -le 2 ] ||
    fail "effect on a model without items or tokenizer: exit $rc: $(cat "$T/err")"

[ "$fails" = 0 ] && echo "cli_text_effect: ok"
exit $((fails > 0))
