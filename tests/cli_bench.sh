#!/usr/bin/env bash
# lrgd bench: --help; bad options exit 2 with a one-line reason; a tiny run of every section
# (a small model trained here on a planted dataset, a 1-layer random model) whose JSON has
# every key with positive numbers, one forward row per model x dtype x thread count, the
# context cap applied, FLOP counts that match the model's shapes (recomputed here), kept GGUF
# files that are the ones timed, --json equal to --out, and no temporary files left behind.
set -u
BIN=${LRGD_BIN:?LRGD_BIN not set}
T=$(mktemp -d /tmp/lrgd_cli_bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# --help
"$BIN" bench --help > "$T/help.txt"; rc=$?
[ $rc -eq 0 ] && grep -q -- "--threads-list" "$T/help.txt" && grep -q "^  effect" "$T/help.txt" && ok ||
    bad "--help (exit $rc)"
"$BIN" help bench | cmp -s - "$T/help.txt" && ok || bad "'lrgd help bench' differs from --help"

# the planted data and a model trained on it (as in cli_effect.sh)
awk 'BEGIN { srand(11); for (u = 1; u <= 300; u++) { n = 6 + int(rand() * 8); s = int(rand() * 50); d = 1 + u % 2;
       line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 50); print line } }' > "$T/syn.txt"
"$BIN" train --data "$T/syn.txt" --epochs 2 --batch 16 --dim 32 --hidden 64 --heads 2 --kv-heads 1 --seq 96 \
    --max-hist 12 --demo-hist 8 --demos 2 --threads 1 --quiet --out "$T/m.gguf" \
    || { echo "FAIL: training the test model" >&2; exit 1; }

# bad options: exit 2, one line on stderr naming the problem
expect_usage() { # PATTERN ARGS...
    local pat=$1; shift
    "$BIN" bench "$@" > "$T/o.txt" 2> "$T/e.txt"; local rc=$?
    local lines; lines=$(wc -l < "$T/e.txt")
    if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$T/e.txt" && [ ! -s "$T/o.txt" ]; then ok
    else bad "bench $* -> exit $rc, $lines stderr lines: $(cat "$T/e.txt")"; fi
}
expect_usage "unknown section 'foo'" --only foo
expect_usage "unknown or incomplete option" --bogus
expect_usage "--pp" --pp 0
expect_usage "--reps" --reps x
expect_usage "--budget" --budget -1
expect_usage "unknown type 'q4_0'" --dtypes q4_0
expect_usage "given twice" --dtypes f32,f32
expect_usage "--random" --random 3x100
expect_usage "--threads-list" --threads-list 1,,2
expect_usage "not both" --threads 1 --threads-list 1,2
expect_usage "needs --data" --only eval --model "$T/m.gguf"
# a list given twice: the last one counts, with the whole capacity (not the first list's length)
expect_usage "needs --data" --threads-list 1 --threads-list 1,2,4 --only eval --model "$T/m.gguf"
expect_usage "no model" --only forward --random none
expect_usage "unexpected argument" extra
expect_usage "$T/none.gguf" --model "$T/none.gguf" --random none
expect_usage "no --model or --eval-model was trained" --only eval --data "$LRGD_TESTDATA/rec/tiny.txt" \
    --model "$T/m.gguf"
expect_usage "eval-model" --only eval --data "$LRGD_TESTDATA/rec/tiny.txt" --eval-model "$T/m.gguf"

# a tiny run of every section
mkdir -p "$T/tmp"
TMPDIR="$T/tmp" "$BIN" bench --model "$T/m.gguf" --random 1x64 --dtypes f32,q8_0 --threads-list 1,2 --pp 200 --tg 8 \
    --reps 1 --data "$T/syn.txt" --users 40 --k 2 --effect-users 4 --pool 4 --train-steps 2 --train-batch 8 \
    --train-dim 16 --train-layers 1 --out "$T/b.json" --json > "$T/stdout.json" 2> "$T/err.txt"
rc=$?
[ $rc -eq 0 ] && ok || bad "the tiny run exited $rc: $(tail -3 "$T/err.txt")"
J=$T/b.json
[ -s "$J" ] && ok || bad "no JSON written"
cmp -s "$J" "$T/stdout.json" && ok || bad "--json on stdout differs from --out"
grep -q "^forward: pp" "$T/err.txt" && ok || bad "with --json the table should go to stderr"
[ -z "$(ls -A "$T/tmp")" ] && ok || bad "temporary files left: $(ls -A "$T/tmp")"
if command -v jq > /dev/null; then
    jq -e . "$J" > /dev/null && ok || bad "not valid JSON (jq)"
elif command -v node > /dev/null; then
    node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$J" && ok || bad "not valid JSON (node)"
fi
grep -q '"command": ".*bench --model' "$J" && ok || bad "no command line in the JSON"

# every numeric value of KEY is > 0; prints how many there were (strings are the JSON's own notes)
count_pos() {
    awk -v k="\"$1\":" '$1 == k && $2 !~ /^"/ { v = $2; sub(/,$/, "", v); n++; if (!(v + 0 > 0)) bad = 1 }
        END { print (bad ? -1 : n + 0) }' "$J"
}
# forward: 2 models x 2 dtypes x 2 thread counts
for k in pp_reps tg_reps pp_tok_s pp_best_tok_s tg_tok_s tg_best_tok_s pp_cpu_tok_s tg_cpu_tok_s pp_gflops sgemm_gflops \
    sgemm_openblas_gflops sgemm_lrgd_gflops pp_vs_sgemm tg_bytes_per_token \
    tg_bytes_per_s memcpy_bytes_per_s tg_vs_memcpy params file_bytes; do
    n=$(count_pos $k)
    [ "$n" = 8 ] && ok || bad "forward: '$k' positive in $n rows, expected 8"
done
# the roof is the better of the two sgemm arrangements
awk '$1 == "\"sgemm_gflops\":" && $2 !~ /^"/ { s = $2 + 0 } $1 == "\"sgemm_openblas_gflops\":" { o = $2 + 0 }
     $1 == "\"sgemm_lrgd_gflops\":" { l = $2 + 0; k++; m = o > l ? o : l; if ((s - m) ^ 2 > 1e-8 * m * m) bad = 1 }
     END { exit !(k == 8 && !bad) }' "$J" && ok || bad "sgemm_gflops is not the better of openblas and lrgd"
# the trained model's context is 96: pp 200 is capped there, tg 8 stays
[ "$(grep -c '"pp_tokens": 96,' "$J")" = 4 ] && [ "$(grep -c '"pp_tokens": 200,' "$J")" = 4 ] && ok ||
    bad "pp_tokens: expected 4 rows capped at the context (96) and 4 at 200"
# FLOPs of pp recomputed from the shapes: pp_gflops / pp_tok_s * pp_tokens = FLOPs of the pass
# m.gguf: L2 D32 F64 heads 2/1 hd16 vocab 55, n 96; random 1x64: L1 D64 F192 heads 1/1 hd64 vocab 32000, n 200
flops() { awk -v L=$1 -v D=$2 -v F=$3 -v H=$4 -v KV=$5 -v hd=$6 -v V=$7 -v n=$8 'BEGIN {
    Q = H * hd; K = KV * hd; printf "%.6e", 2 * n * (D * Q + 2 * D * K + Q * D + 3 * D * F) * L + 4 * H * hd * n * (n + 1) / 2 * L + 2 * D * V }'; }
check_flops() { # MODEL EXPECTED
    awk -v m="\"$1\"," -v want="$2" '
        $1 == "\"model\":" { on = ($2 == m) } on && $1 == "\"pp_tokens\":" { n = $2 + 0 }
        on && $1 == "\"pp_tok_s\":" { t = $2 + 0 } on && $1 == "\"pp_gflops\":" { g = $2 + 0; k++;
            got = g * 1e9 / t * n; if (got / want > 1.0001 || got / want < 0.9999) bad = 1 }
        END { exit !(k == 4 && !bad) }' "$J"
}
check_flops m "$(flops 2 32 64 2 1 16 55 96)" && ok || bad "pp FLOPs of m do not match its shapes"
check_flops random-1L-d64 "$(flops 1 64 192 1 1 64 32000 200)" && ok || bad "pp FLOPs of random-1L-d64 do not match"
# eval: 40 users at each thread count, users/s consistent with the time
n=$(awk '$1 == "\"users\":" && $2 == "40," { n++ } END { print n + 0 }' "$J")
[ "$n" = 2 ] && ok || bad "eval: expected 2 runs of 40 users, got $n"
for k in users_per_s all_users_est_s ndcg10 setup_s; do
    n=$(count_pos $k); [ "$n" -ge 1 ] && ok || bad "eval: '$k' not positive ($n)"
done
awk '$1 == "\"seconds\":" { s = $2 + 0 } $1 == "\"users_per_s\":" { u = $2 + 0; k++; if ((u * s - 40) ^ 2 > 0.01) bad = 1 }
     END { exit !(k == 2 && !bad) }' "$J" && ok || bad "eval: users_per_s x seconds is not 40"
# effect: pairs/s of both, their ratio, at each thread count; at most 4 users x 4 candidates
for k in score_pairs_per_s amortized_pairs_per_s truth_pairs_per_s ratio ratio_amortized; do
    n=$(count_pos $k); [ "$n" = 2 ] && ok || bad "effect: '$k' positive in $n runs, expected 2"
done
awk '$1 == "\"pairs\":" { p = $2 + 0; k++; if (p < 1 || p > 16) bad = 1 } END { exit !(k == 2 && !bad) }' "$J" &&
    ok || bad "effect: pairs outside 1..16"
awk '$1 == "\"score_pairs_per_s\":" { s = $2 + 0 } $1 == "\"truth_pairs_per_s\":" { t = $2 + 0 }
     $1 == "\"ratio\":" { r = $2 + 0; k++; if ((r - s / t) ^ 2 > 1e-6 * r * r) bad = 1 } END { exit !(k == 2 && !bad) }' "$J" &&
    ok || bad "effect: ratio is not score rate / truth rate"
# train
for k in step_ms tokens_per_s targets_per_s gflops forward_gflops sgemm_best_gflops vs_sgemm; do
    n=$(count_pos $k); [ "$n" = 2 ] && ok || bad "train: '$k' positive in $n runs, expected 2"
done
grep -q '"peak_rss": "' "$J" && ok || bad "no peak RSS method"
n=$(count_pos peak_rss_kb); [ "$n" = 14 ] && ok || bad "peak_rss_kb in $n rows, expected 8 + 2 + 2 + 2"

# kept models: the files timed, as written (size), loadable, in the dtype asked for
"$BIN" bench --model "$T/m.gguf" --random none --only forward --dtypes q8_0 --threads 1 --pp 16 --tg 4 --reps 1 \
    --keep-models "$T/kept" --quiet --out "$T/k.json" > /dev/null; rc=$?
[ $rc -eq 0 ] && [ -s "$T/kept/m-q8_0.gguf" ] && ok || bad "--keep-models: exit $rc, no $T/kept/m-q8_0.gguf"
size=$(stat -c %s "$T/kept/m-q8_0.gguf" 2>/dev/null)
grep -q "\"file_bytes\": $size," "$T/k.json" && grep -q "\"file\": \"$T/kept/m-q8_0.gguf\"" "$T/k.json" && ok ||
    bad "--keep-models: the JSON does not name the kept file and its size ($size)"
"$BIN" info --json "$T/kept/m-q8_0.gguf" > "$T/info.json" && grep -q '"Q8_0"' "$T/info.json" && ok ||
    bad "the kept q8_0 file does not load as Q8_0"
# --budget: a spent budget stops after one timed run; 0 always makes --reps runs
for b in 0:3 0.000001:1; do
    "$BIN" bench --only forward --random 1x32 --dtypes f32 --threads 1 --pp 8 --tg 2 --reps 3 --budget ${b%:*} --quiet \
        --out "$T/r.json" > /dev/null &&
        [ "$(grep -c "\"pp_reps\": ${b#*:}," "$T/r.json")" = 1 ] && [ "$(grep -c "\"tg_reps\": ${b#*:}," "$T/r.json")" = 1 ] &&
        ok || bad "--budget ${b%:*}: expected ${b#*:} timed runs: $(grep _reps "$T/r.json" | tr -d '\n')"
done
# only the sections asked for, and skipped sections say why
"$BIN" bench --only forward --random 1x32 --dtypes f32 --threads 1 --pp 8 --tg 2 --reps 1 --quiet --out "$T/f.json" \
    > /dev/null && ok || bad "--only forward failed"
grep -q '"eval"' "$T/f.json" && bad "--only forward wrote an eval section" || ok
"$BIN" bench --random 1x32 --dtypes f32 --threads 1 --pp 8 --tg 2 --reps 1 --quiet --out "$T/s.json" > "$T/s.txt" &&
    grep -q '"skipped": "no --data"' "$T/s.json" && grep -q "eval: skipped (no --data)" "$T/s.txt" && ok ||
    bad "sections without --data are not reported as skipped"

echo "cli_bench: $pass passed, $fail failed"
[ $fail -eq 0 ]
