#!/usr/bin/env bash
# --max-memory: bad sizes are refused (exit 2); too little memory for the
# model file, an inference state or a training run fails up front (exit 2,
# naming the estimate and the limit); with the up-front estimates skipped
# (LRGD_MEM_SKIP_PLAN=1) the allocator's limit trips instead (exit 1,
# "memory limit ... exceeded at FILE:LINE"); a sweep of limits over train,
# eval, generate, dual and effect never crashes (and at 16M every run succeeds) and never leaks a sanitizer
# report; a generous limit changes nothing in the results.
set -u
B=${LRGD_BIN:?LRGD_BIN not set}
S=${LRGD_SHARED:?LRGD_SHARED not set}
M=$S/models/stories260K.bin
T=$(mktemp -d /tmp/lrgd_cli_maxmem.XXXXXX)
trap 'rm -rf "$T"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
sanitizer() { grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer" "$1"; }

# expect CODE SUBSTRING ENV -- lrgd ARGS..: exit code and stderr
expect() {
    local code=$1 want=$2 envs=$3
    shift 4
    env $envs "$B" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -ne "$code" ] || ! grep -qF -- "$want" "$T/err" || sanitizer "$T/err"; then
        bad "lrgd $*: exit $rc (want $code), stderr: $(head -c 400 "$T/err") (want '$want')"
    else
        ok
    fi
}

# 1. sizes: strict parsing, every command takes the option
for v in 0 -1M 5X 1e3 "5 " 1.2.3M "" 0x10 5KK; do
    expect 2 "--max-memory: expected a size such as 512M" "" -- info --max-memory "$v" "$M"
done
expect 2 "--max-memory: expected a size" "" -- eval --data /dev/null --method pop --max-memory 12Q
"$B" info --max-memory 1.5G "$M" >/dev/null 2>&1 && "$B" info --max-memory 64MiB "$M" >/dev/null 2>&1 &&
    "$B" info --max-memory 3000000 "$M" >/dev/null 2>&1 && ok || bad "valid sizes refused"
for c in train eval dual effect optimize experiment generate convert info bench; do
    "$B" help "$c" | grep -q -- "--max-memory" && ok || bad "lrgd $c --help lacks --max-memory"
done

# 2. up front (exit 2): the model file does not fit; the KV cache does not fit after it
expect 2 "mapping the file (1.01 MiB) does not fit in the memory limit of 512 KiB" "" -- \
    generate --model "$M" --prompt 1 --n 8 --ids --max-memory 512K
expect 2 "an inference state of 200 positions needs an estimated" "" -- \
    generate --model "$M" --prompt 1 --n 200 --ids --max-memory 1100K
grep -qF "(KV cache 250 KiB + activations 675 KiB)" "$T/err" && grep -qF "over the memory limit of 1.07 MiB (--max-memory)" "$T/err" \
    && ok || bad "inference state estimate: $(cat "$T/err")"

# a small planted dataset (Amazon format) and a model trained on it
awk 'BEGIN { srand(3); for (u = 1; u <= 120; u++) { n = 4 + int(rand() * 6); s = int(rand() * 40); d = 1 + u % 2;
       line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 40); print line } }' >"$T/syn.txt"
TARGS=(train --data "$T/syn.txt" --epochs 2 --batch 16 --dim 16 --hidden 32 --heads 2 --kv-heads 1 --seq 48
       --max-hist 8 --demo-hist 4 --demos 2 --threads 1 --quiet --no-resume)
"$B" "${TARGS[@]}" --out "$T/m.gguf" 2>"$T/err" && ok || bad "training the test model: $(cat "$T/err")"

# training: the estimate names its parts and the limit, nothing is written
expect 2 "training needs an estimated" "" -- "${TARGS[@]}" --out "$T/x.gguf" --max-memory 100K
for part in "weights" "gradients" "AdamW moments" "activations" "dataset" "over the memory limit of 100 KiB"; do
    grep -qF "$part" "$T/err" && ok || bad "training estimate lacks '$part': $(cat "$T/err")"
done
[ ! -e "$T/x.gguf" ] && [ ! -e "$T/x.gguf.train" ] && ok || bad "a refused training run wrote files"

# 3. the allocator's limit (estimates skipped): exit 1 naming the call site, never a crash
expect 1 "memory limit of 100 KiB (--max-memory) exceeded at src/" "LRGD_MEM_SKIP_PLAN=1" -- \
    "${TARGS[@]}" --out "$T/y.gguf" --max-memory 100K
expect 1 "memory limit of 1.07 MiB (--max-memory) exceeded at src/model/forward.c" "LRGD_MEM_SKIP_PLAN=1" -- \
    generate --model "$M" --prompt 1 --n 200 --ids --max-memory 1100K

# 4. a sweep of limits: every command ends in 0, 1 or 2, a refusal says why, no sanitizer report
n_sweep=0 n_rc0=0 n_rc1=0 n_rc2=0
for lim in 16K 48K 96K 200K 400K 800K 1500K 16M; do
    for run in "eval --data $T/syn.txt --method itemknn --quiet" \
               "eval --data $T/syn.txt --method model --model $T/m.gguf --quiet" \
               "eval --data $T/syn.txt --method model --engine --model $T/m.gguf --quiet" \
               "generate --model $M --prompt 1 --n 40 --ids" \
               "dual --model $T/m.gguf --data $T/syn.txt --users 3 --e3-users 1 --features 16 --out $T/dual --quiet" \
               "effect --model $T/m.gguf --data $T/syn.txt --users 3 --pool 4 --out $T/eff --quiet" \
               "${TARGS[*]} --epochs 1 --out $T/s.gguf"; do
        for skip in 0 1; do
            n_sweep=$((n_sweep + 1))
            # shellcheck disable=SC2086
            LRGD_MEM_SKIP_PLAN=$skip timeout 120 "$B" $run --max-memory $lim >/dev/null 2>"$T/err"
            rc=$?
            if [ $rc -gt 2 ] || sanitizer "$T/err"; then
                bad "sweep: lrgd $run --max-memory $lim (skip plans $skip): exit $rc: $(head -c 600 "$T/err")"
            elif [ $rc -ne 0 ] && ! grep -qE "memory limit|out of memory" "$T/err"; then
                bad "sweep: lrgd $run --max-memory $lim: exit $rc without naming memory: $(head -c 300 "$T/err")"
            elif [ $rc -eq 1 ] && ! grep -qE "exceeded at (src|tools)/" "$T/err"; then
                bad "sweep: lrgd $run --max-memory $lim: exit 1 without the call site: $(head -c 300 "$T/err")"
            elif [ "$lim" = 16M ] && [ $rc -ne 0 ]; then
                bad "sweep: lrgd $run --max-memory 16M failed (exit $rc): $(head -c 300 "$T/err")"
            else
                ok
            fi
            eval "n_rc$rc=\$((n_rc$rc + 1))"
        done
    done
done
echo "sweep: $n_sweep runs: $n_rc0 succeeded, $n_rc1 stopped by the allocator (exit 1), $n_rc2 refused up front (exit 2)"
[ $n_rc1 -gt 0 ] && [ $n_rc2 -gt 0 ] && ok || bad "the sweep did not reach both kinds of refusal"

# 5. a generous limit changes nothing
"$B" eval --data "$T/syn.txt" --method model --model "$T/m.gguf" --quiet >"$T/a.txt" 2>/dev/null
"$B" eval --data "$T/syn.txt" --method model --model "$T/m.gguf" --quiet --max-memory 2G >"$T/b.txt" 2>"$T/err"
# (the timing line aside)
grep -v "evaluation .* s$" "$T/a.txt" >"$T/a2.txt"
grep -v "evaluation .* s$" "$T/b.txt" >"$T/b2.txt"
[ -s "$T/a2.txt" ] && grep -q "NDCG@10" "$T/a2.txt" && cmp -s "$T/a2.txt" "$T/b2.txt" && ok || bad "--max-memory 2G changed the eval output: $(cat "$T/err")"

echo "cli_max_memory: $pass passed, $fail failed"
[ $fail -eq 0 ]
