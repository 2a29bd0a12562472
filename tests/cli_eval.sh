#!/usr/bin/env bash
# lrgd eval end to end: planted data whose ranks are worked out by hand,
# the same data as RecBole, outputs (table, JSON, CSV), reproducibility,
# thread independence, usage errors, and every bad dataset in
# tests/data/bad/datasets.tsv.
set -u
BIN=${LRGD_BIN:?}
DATA=${LRGD_TESTDATA:?}
SHARED=${LRGD_SHARED:-}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect CODE SUBSTRING -- lrgd args...: exit code and a stderr piece.
expect() {
    local code=$1 piece=$2
    shift 3
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ "$rc" = "$code" ] || fail "lrgd $*: exit $rc, want $code ($(head -c 300 "$T/err"))"
    grep -qF -- "$piece" "$T/err" || fail "lrgd $*: stderr lacks '$piece': $(head -c 300 "$T/err")"
}

# ---- planted data --------------------------------------------------------------
# tiny.txt:  u1: 1 2 3 4 5   u2: 2 3 4 6   u3: 1 2 7   u4: 8 9 (skipped, < 3)
# Test step, Pop trained on u1 {1,2,3,4}, u2 {2,3,4}, u3 {1,2} (u4 is not
# training data): counts 1:2 2:3 3:2 4:2, items 5-9: 0. History excluded:
#   u1: target 5 vs 5..9, all 0: ties count against it      -> rank 5 of 5
#   u2: target 6 (0) vs 1 (2), 5,7,8,9 (0)                  -> rank 6 of 6
#   u3: target 7 (0) vs 3,4 (2), 5,6,8,9 (0)                -> rank 7 of 7
# HR@5 = 1/3, HR@10 = 1, MRR = (1/5 + 1/6 + 1/7)/3 = 0.16984127.
"$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --ranks-csv "$T/r.csv" --out "$T/r.json" --quiet >"$T/table" 2>"$T/err" \
    || fail "tiny pop: $(cat "$T/err")"
printf 'user,target,n_ranked,rank_pop\n1,5,5,5\n2,6,6,6\n3,7,7,7\n' >"$T/want.csv"
cmp -s "$T/r.csv" "$T/want.csv" || fail "tiny ranks: $(cat "$T/r.csv")"
grep -q '"users_evaluated": 3' "$T/r.json" || fail "json lacks users_evaluated 3"
grep -q '"users_skipped": 1' "$T/r.json" || fail "json lacks users_skipped 1"
grep -q '"interactions": 14' "$T/r.json" || fail "json lacks interactions 14 (5+4+3+2)"
grep -q '"command": ".*eval --data' "$T/r.json" || fail "json lacks the command line"
tr -d ' \n' <"$T/r.json" >"$T/flat.json"
grep -q '"HR@5":{"mean":0.33333333' "$T/flat.json" || fail "json HR@5 is not 1/3"
grep -q '"HR@10":{"mean":1,' "$T/flat.json" || fail "json HR@10 is not 1"
grep -q '"MRR":{"mean":0.1698412' "$T/flat.json" || fail "json MRR is not 0.1698412"
grep -q '^HR@5 *0.3333' "$T/table" || fail "table lacks HR@5 0.3333: $(cat "$T/table")"
grep -q '3 users evaluated, 1 skipped' "$T/table" || fail "table lacks user counts"
# No temp files left behind by the atomic writers.
ls "$T" | grep -q '\.tmp\.' && fail "temporary output file left behind"

# The same data as a RecBole .inter (columns reordered, an extra column,
# shuffled rows, a timestamp tie kept in file order): the same ranks.
"$BIN" eval --data "$DATA/rec/tiny.inter" --method pop --ranks-csv "$T/rb.csv" --quiet >/dev/null 2>"$T/err" \
    || fail "tiny.inter: $(cat "$T/err")"
cmp -s "$T/rb.csv" "$T/want.csv" || fail "tiny.inter ranks: $(cat "$T/rb.csv")"

# --keep-history: u1's target now also trails 1,2,3,4 -> rank 9 of 9.
"$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --keep-history --ranks-csv "$T/k.csv" --quiet >/dev/null 2>&1
sed -n 2p "$T/k.csv" | grep -qx '1,5,9,9' || fail "keep-history rank: $(cat "$T/k.csv")"

# Validation split: u1 target 4 after 1 2 3; Pop on {1,2,3},{2,3},{1}:
# 1:2 2:2 3:2; candidates 4..9 all 0 -> rank 6 of 6.
"$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --split valid --ranks-csv "$T/v.csv" --quiet >/dev/null 2>&1
sed -n 2p "$T/v.csv" | grep -qx '1,4,6,6' || fail "valid rank: $(cat "$T/v.csv")"

# Sampled: 1+4 for u1 uses all four items it never saw (6,7,8,9), all 0 -> 5.
"$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --candidates 5 --ranks-csv "$T/s.csv" --quiet >/dev/null 2>&1
sed -n 2p "$T/s.csv" | grep -qx '1,5,5,5' || fail "sampled rank: $(cat "$T/s.csv")"

# Item text: checked against the dataset; an unknown item names its line.
"$BIN" eval --data "$DATA/rec/tiny.txt" --items "$DATA/rec/tiny.items.tsv" --method pop --out "$T/i.json" --quiet >/dev/null 2>&1 \
    || fail "items file rejected"
grep -q '"items_with_text": 3' "$T/i.json" || fail "json lacks items_with_text 3"
expect 2 "tiny.unknown-items.tsv:2: item id '99' is not in the dataset" -- eval --data "$DATA/rec/tiny.txt" \
    --items "$DATA/rec/tiny.unknown-items.tsv" --method pop

# --compare: both columns and the paired block.
"$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --compare itemknn --out "$T/c.json" --ranks-csv "$T/c.csv" --quiet >"$T/ct" 2>&1 \
    || fail "compare failed: $(cat "$T/ct")"
head -1 "$T/c.csv" | grep -qx 'user,target,n_ranked,rank_pop,rank_itemknn' || fail "compare csv header"
grep -q '"comparison"' "$T/c.json" && grep -q '"p_sign"' "$T/c.json" && grep -q '"p_t"' "$T/c.json" \
    || fail "compare json lacks the paired tests"
grep -q 'p(sign)' "$T/ct" || fail "compare table lacks p(sign)"

# --json prints the same document on stdout.
"$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --json --quiet >"$T/j.json" 2>/dev/null
grep -q '"results"' "$T/j.json" || fail "--json output"

# ---- usage and option errors ------------------------------------------------------
expect 2 "--data FILE is required" -- eval --method pop
expect 2 "--method NAME is required" -- eval --data "$DATA/rec/tiny.txt"
expect 2 "unknown method 'nope'" -- eval --data "$DATA/rec/tiny.txt" --method nope
expect 2 "--compare: unknown method 'x'" -- eval --data "$DATA/rec/tiny.txt" --method pop --compare x
expect 2 "--candidates" -- eval --data "$DATA/rec/tiny.txt" --method pop --candidates 1
expect 2 "--candidates" -- eval --data "$DATA/rec/tiny.txt" --method pop --candidates 10x
expect 2 "the dataset has only 9 items" -- eval --data "$DATA/rec/tiny.txt" --method pop --candidates 100
expect 2 "--split: expected test or valid" -- eval --data "$DATA/rec/tiny.txt" --method pop --split train
expect 2 "--knn-decay" -- eval --data "$DATA/rec/tiny.txt" --method itemknn --knn-decay 0
expect 2 "--format" -- eval --data "$DATA/rec/tiny.txt" --method pop --format csv
# An output that cannot be written is a runtime failure (exit 1, LRGD_E_WRITE); an input that cannot
# be read stays bad input (exit 2). Tests run as root, so a path under a regular file stands for an
# unwritable folder, and a file-size limit (ulimit -f, SIGXFSZ ignored) for a full disk.
expect 1 "no/such/dir/r.json: cannot create" -- eval --data "$DATA/rec/tiny.txt" --method pop --out "$T/no/such/dir/r.json"
expect 1 "/etc/passwd/r.csv: cannot create: Not a directory" -- eval --data "$DATA/rec/tiny.txt" --method pop \
    --ranks-csv /etc/passwd/r.csv
expect 2 "cannot open" -- eval --data "$T/no/such/data.txt" --method pop --out "$T/r-unread.json"
[ ! -e "$T/r-unread.json" ] || fail "an output was written although the input could not be read"
(trap '' XFSZ; ulimit -f 1; exec "$BIN" eval --data "$DATA/rec/tiny.txt" --method pop --quiet --out "$T/big.json") \
    >/dev/null 2>"$T/err"
rc=$?
[ $rc = 1 ] && grep -q "write failed: File too large" "$T/err" || fail "eval --out over the file-size limit: exit $rc: $(cat "$T/err")"
ls "$T" | grep -q 'big.json' && fail "a partial output or its temporary file was left: $(ls "$T")"
# u1 never interacted with only 4 items (6-9): 5 negatives cannot be drawn.
expect 2 "cannot draw 5 negatives" -- eval --data "$DATA/rec/tiny.txt" --method pop --candidates 6
"$BIN" eval --help | grep -q -- '--keep-history' || fail "help lacks --keep-history"

# ---- every bad dataset case -------------------------------------------------------
n_bad=0
while IFS=$'\t' read -r file args code piece; do
    [ -z "$file" ] && continue
    path="$DATA/bad/$file"
    read -r -a argv <<<"${args//\{\}/$path}"
    expect "$code" "$piece" -- "${argv[@]}"
    n_bad=$((n_bad + 1))
done <"$DATA/bad/datasets.tsv"
[ "$n_bad" -ge 12 ] || fail "only $n_bad bad dataset cases"

# ---- a real file: reproducible negatives, thread-independent ranks ---------------------
if [ -n "$SHARED" ] && [ -f "$SHARED/datasets/amazon/Beauty.txt" ]; then
    B="$SHARED/datasets/amazon/Beauty.txt"
    "$BIN" eval --data "$B" --method itemknn --candidates 100 --seed 7 --threads 1 --ranks-csv "$T/b1.csv" --quiet >/dev/null 2>&1 || fail "beauty t1"
    "$BIN" eval --data "$B" --method itemknn --candidates 100 --seed 7 --threads 2 --batch 33 --ranks-csv "$T/b2.csv" --quiet >/dev/null 2>&1 || fail "beauty t2"
    "$BIN" eval --data "$B" --method itemknn --candidates 100 --seed 8 --threads 2 --ranks-csv "$T/b3.csv" --quiet >/dev/null 2>&1 || fail "beauty seed 8"
    cmp -s "$T/b1.csv" "$T/b2.csv" || fail "ranks depend on threads or batch size"
    cmp -s "$T/b1.csv" "$T/b3.csv" && fail "another seed gave identical sampled ranks"
    [ "$(wc -l <"$T/b1.csv")" = 22364 ] || fail "beauty ranks csv has $(wc -l <"$T/b1.csv") lines"
fi

echo "cli_eval: $n_bad bad dataset cases, $fails failures"
[ "$fails" = 0 ]
