#!/usr/bin/env bash
# lrgd experiment on the planted-taste synthetic data (--quick): results.json
# fields and validity, methods.csv, report.html with inline SVG and nothing
# fetched, a run killed with SIGKILL mid-way and re-run gives the same
# numbers, damaged checkpoints are recomputed, another configuration in the
# same DIR is refused, and bad options exit 2.
set -u
B=${LRGD_BIN:?LRGD_BIN not set}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
RUN=(experiment --synthetic --quick --threads 2 --seed 7)

"$B" "${RUN[@]}" --out "$T/a" >"$T/a.txt" 2>"$T/a.err"
rc=$?
cat "$T/a.txt"
[ $rc -eq 0 ] || { bad "quick run: exit $rc: $(tail -5 "$T/a.err")"; echo "$fails failure(s)"; exit 1; }
for f in results.json methods.csv report.html data.txt model.gguf; do
    [ -s "$T/a/$f" ] || bad "$f missing"
done
ls "$T/a" | grep -q '\.tmp' && bad "temporary files left in DIR"

J=$T/a/results.json
if command -v python3 >/dev/null; then
    python3 -m json.tool "$J" >/dev/null || bad "results.json is not valid JSON"
    python3 - "$J" <<'EOF' || bad "results.json fields"
import json, math, sys
r = json.load(open(sys.argv[1]))
run = r["run"]
assert "experiment" in run["command"] and run["seed"] == 7 and run["version"], run
c = r["config"]
assert c["users"] == 40 and c["quick"] is True and c["data_kind"].startswith("synthetic"), c
names = [m["method"] for m in r["methods"]]
want = ["pop", "itemknn", "zero-shot", "random", "similar", "stage1", "two-stage",
        "stage1-noperturb", "two-stage-noperturb", "stage1-noreg", "two-stage-noreg"]
assert names == want, names
for m in r["methods"]:
    for cand in ("full", "1+99", "1+19"):
        s = m[cand]
        for k in ("HR@1", "HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR"):
            v = s[k]
            assert 0 <= v["mean"] <= 1 and v["lo"] <= v["mean"] <= v["hi"], (m["method"], cand, k, v)
        # monotone in k, and a smaller candidate set ranks the target no worse
        assert s["HR@1"]["mean"] <= s["HR@5"]["mean"] <= s["HR@10"]["mean"] <= s["HR@20"]["mean"]
    assert m["full"]["HR@10"]["mean"] <= m["1+99"]["HR@10"]["mean"] <= m["1+19"]["HR@10"]["mean"] + 1e-12
# paired tests: each method vs zero-shot, two-stage vs stage1, with p in [0, 1]
pairs = {(p["a"], p["b"], p["candidates"], p["metric"]) for p in r["paired"]}
assert ("two-stage", "stage1", "full", "NDCG@10") in pairs
for m in want:
    if m != "zero-shot":
        assert (m, "zero-shot", "full", "HR@10") in pairs, m
for p in r["paired"]:
    assert 0 <= p["p_t"] <= 1 and 0 <= p["p_sign"] <= 1 and p["n"] == 40, p
# the planted structure: the trained model and ItemKNN beat popularity
mean = {m["method"]: m["full"]["NDCG@10"]["mean"] for m in r["methods"]}
assert mean["zero-shot"] > mean["pop"] and mean["itemknn"] > mean["pop"], mean
v = r["effect_validity"]
assert v["pairs"] >= 50 and -1 <= v["spearman"] <= 1 and v["seconds_per_pair_forward"] > 0, v
rb = r["robustness"]
assert rb["rates"][0] == 0 and len(rb["stage1 robust Effect_D"]["NDCG@10"]) == len(rb["rates"])
rp = r["replay"]["steps"]
assert len(rp) == 3 and all(0 <= s["ndcg10_adapted"] <= 1 and 0 <= s["ndcg10_frozen"] <= 1 for s in rp), rp
d = r["dual"]
assert len(d["layers"]) == 2
for l in d["layers"]:
    assert l["E2_max"] <= 1e-4, l          # the exact split is exact
    assert l["E4_max"] <= 1e-4, l
    assert l["E1_max_linear_model"] <= 1e-4, l
    e3 = l["E3_mean"]
    assert e3[-1] < e3[0], e3             # more features, less error
assert d["E3_slope"] < -0.2, d["E3_slope"]
print("results.json: fields ok")
EOF
else
    echo "note: python3 absent, JSON checked by grep only"
    grep -q '"methods"' "$J" && grep -q '"effect_validity"' "$J" || bad "results.json sections"
fi

# CSV: a header and one row per method and candidate set
C=$T/a/methods.csv
grep -q '^method,candidates,users,HR@1,' "$C" || bad "methods.csv header"
[ "$(grep -c '^[a-z0-9-]*,\(full\|1+99\|1+19\),40,' "$C")" -eq 33 ] || bad "methods.csv: expected 33 rows"

# report: inline SVG for every figure, nothing fetched
H=$T/a/report.html
[ "$(grep -o '<svg' "$H" | wc -l)" -ge 6 ] || bad "report.html: fewer than 6 inline SVG figures"
grep -qi '<script\|https\?://[^"]*\.\(js\|css\|woff\)\|<link' "$H" && bad "report.html references outside resources"
grep -q 'Effect_D validity' "$H" && grep -q 'Robustness' "$H" && grep -q 'E1-E4' "$H" || bad "report.html sections"

# killed with SIGKILL in the middle, then the same command: the same numbers
"$B" "${RUN[@]}" --out "$T/b" --quiet >/dev/null 2>"$T/b.err" &
pid=$!
for _ in $(seq 1 600); do
    [ -e "$T/b/ckpt/opt_noperturb" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ -e "$T/b/results.json" ] && bad "the run finished before it could be killed (test did not test resuming)"
[ -e "$T/b/ckpt/m_pop" ] && echo "note: killed after the methods stage began"
"$B" "${RUN[@]}" --out "$T/b" --quiet >/dev/null 2>"$T/b2.err" || bad "resumed run failed: $(tail -3 "$T/b2.err")"
cmp -s "$T/a/methods.csv" "$T/b/methods.csv" || {
    # the CSV's first line names --out; compare the rest
    diff <(tail -n +2 "$T/a/methods.csv") <(tail -n +2 "$T/b/methods.csv") >/dev/null ||
        bad "resumed run: methods.csv differs from the uninterrupted run"
}
strip() { python3 -c '
import json, sys
def s(o):
    if isinstance(o, dict): return {k: s(v) for k, v in o.items() if "second" not in k and k not in ("command", "run")}
    if isinstance(o, list): return [s(v) for v in o]
    return o
r = json.load(open(sys.argv[1])); r["config"].pop("data", None)
print(json.dumps(s(r), sort_keys=True))' "$1"; }
if command -v python3 >/dev/null; then
    [ "$(strip "$T/a/results.json")" = "$(strip "$T/b/results.json")" ] ||
        bad "resumed run: results.json numbers differ from the uninterrupted run"
fi

# a damaged checkpoint is recomputed, with the same result
printf 'garbage' >"$T/b/ckpt/robust"
rm -f "$T/b/ckpt/dual"
"$B" "${RUN[@]}" --out "$T/b" --quiet >/dev/null 2>"$T/b3.err" || bad "run over damaged checkpoints failed"
if command -v python3 >/dev/null; then
    [ "$(strip "$T/a/results.json")" = "$(strip "$T/b/results.json")" ] || bad "recomputed checkpoints differ"
fi

# another configuration in the same DIR is refused
"$B" "${RUN[@]}" --out "$T/b" --users 20 --quiet >/dev/null 2>"$T/e.err"
[ $? -eq 2 ] && grep -q 'another configuration' "$T/e.err" || bad "changed configuration not refused"

# usage errors and bad input: exit 2 with a one-line reason
expect2() {
    "$B" experiment "$@" >/dev/null 2>"$T/u.err"
    local r=$?
    [ $r -eq 2 ] || bad "exit $r (want 2) for: $*"
    [ "$(wc -l <"$T/u.err")" -ge 1 ] || bad "no message for: $*"
}
expect2 --synthetic
expect2 --out "$T/u1"
expect2 --synthetic --data x --out "$T/u2"
expect2 --synthetic --out "$T/u3" --users abc
expect2 --synthetic --out "$T/u4" --users 1
expect2 --synthetic --out "$T/u5" --k 0
expect2 --synthetic --out "$T/u6" --dim 33
expect2 --synthetic --out "$T/u7" --bogus
expect2 --synthetic --out "$T/u8" extra
expect2 --data "$T/missing.txt" --out "$T/u9"
printf '1 2 3\n\n2 3 4\n' >"$T/blank.txt"
expect2 --data "$T/blank.txt" --out "$T/u10"
# a text LLM as --model (stories260K through lrgd convert: a tokenizer, no lrgd item vocabulary) is
# refused with a plain one-line reason before DIR is made
"$B" convert "${LRGD_SHARED:?}/models/stories260K.bin" "$T/text.gguf" --quiet || bad "convert stories260K"
"$B" experiment --synthetic --quick --model "$T/text.gguf" --out "$T/u11" >/dev/null 2>"$T/u.err"
r=$?
[ $r -eq 2 ] && [ "$(wc -l <"$T/u.err")" -eq 1 ] && grep -q 'text.gguf has no lrgd item vocabulary (a text LLM)' "$T/u.err" &&
    [ ! -e "$T/u11" ] || bad "text LLM --model: exit $r, $(cat "$T/u.err")"
"$B" experiment --help | grep -q -- '--synthetic' || bad "--help"

[ $fails -eq 0 ] && echo "cli_experiment: all checks passed" || { echo "$fails failure(s)"; exit 1; }
