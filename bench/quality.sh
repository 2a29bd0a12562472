#!/usr/bin/env bash
# Quality benchmark of the embedded model (issue 4): on each Amazon dataset, train with
# `lrgd train` (time-limited), then evaluate on the test split with full ranking: zero-shot,
# random demonstrations and most-similar-user demonstrations, each paired against zero-shot,
# next to the published ICLRec figures. Writes one JSON per dataset and summary.json.
#
# usage: bench/quality.sh [OUTDIR]
# environment:
#   LRGD_BIN     the lrgd binary (default build/h5/lrgd, else build/lrgd)
#   LRGD_SHARED  folder with datasets/amazon (default ../shared)
#   THREADS      threads (default 2: the reference machine has 2 cores)
#   MINUTES      training time limit per dataset (default 30)
#   DATASETS     default "Beauty Sports_and_Outdoors Toys_and_Games"
#   TRAIN_ARGS   extra options for lrgd train (default: the settings below)
#   K            demonstrations at evaluation (default 3)
#   MODELS       a folder holding NAME.gguf models already trained by `lrgd train`
#                (with their NAME.gguf.json): no training, only the evaluation; the
#                training time reported is the one the model's JSON records
# A killed run can be restarted with the same OUTDIR: training resumes from its state.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${LRGD_BIN:-}
if [ -z "$BIN" ]; then
    for b in "$here/build/h5/lrgd" "$here/build/lrgd"; do [ -x "$b" ] && { BIN=$b; break; }; done
fi
[ -x "${BIN:-}" ] || { echo "quality.sh: set LRGD_BIN to the lrgd binary" >&2; exit 2; }
SHARED=${LRGD_SHARED:-$here/../shared}
THREADS=${THREADS:-2}
MINUTES=${MINUTES:-30}
K=${K:-3}
DATASETS=${DATASETS:-"Beauty Sports_and_Outdoors Toys_and_Games"}
TRAIN_ARGS=${TRAIN_ARGS:-"--epochs 200 --patience 15 --demos 3 --dropout 0.3 --lr 1e-3 --batch 128"}
OUT=${1:-$here/bench/results/quality-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 1

# published ICLRec full-ranking test figures on these files (LRGD.md section 5)
target() {
    case $1 in
    Beauty) echo "0.0744 0.0403" ;;
    Sports_and_Outdoors) echo "0.0437 0.0238" ;;
    Toys_and_Games) echo "0.0834 0.0480" ;;
    *) echo "0 0" ;;
    esac
}

# "METRIC a b diff p_t p_sign" rows from lrgd eval's table
table_row() { awk -v m="$2" '$1 == m { printf "%s %s %.6f %s %s\n", $2, $5, $8 + 0, $11, $12 }' "$1"; }

echo "{" > "$OUT/summary.json.tmp"
first=1
for d in $DATASETS; do
    data="$SHARED/datasets/amazon/$d.txt"
    [ -r "$data" ] || { echo "quality.sh: missing $data" >&2; exit 2; }
    model="$OUT/$d.gguf"
    if [ -n "${MODELS:-}" ]; then
        model="$MODELS/$d.gguf"
        [ -r "$model" ] && [ -r "$model.json" ] || { echo "quality.sh: missing $model or $model.json" >&2; exit 2; }
    else
        echo "== $d: training (at most $MINUTES min, $THREADS threads)"
        # shellcheck disable=SC2086
        "$BIN" train --data "$data" --out "$model" --max-minutes "$MINUTES" --threads "$THREADS" $TRAIN_ARGS \
            2> >(tee "$OUT/$d.train.log" >&2) || { echo "quality.sh: training $d failed" >&2; exit 1; }
    fi
    # the training's own record: its seconds (resumed sessions summed), command and epochs
    train_s=$(sed -nE 's/.*"train_seconds": *([0-9.eE+-]+).*/\1/p' "$model.json" | head -1)
    train_cmd=$(sed -nE 's/.*"command": *"([^"]*)".*/\1/p' "$model.json" | head -1)
    for mode in similar random; do
        echo "== $d: test, model-$mode vs model-none (full ranking, k=$K)"
        "$BIN" eval --data "$data" --method "model-$mode" --compare model-none --model "$model" --k "$K" \
            --threads "$THREADS" --quiet --out "$OUT/$d.$mode.json" > "$OUT/$d.$mode.txt" \
            || { echo "quality.sh: evaluating $d failed" >&2; exit 1; }
        cat "$OUT/$d.$mode.txt"
    done
    read -r thr tnd <<< "$(target "$d")"
    read -r s_hr z_hr d_hr p_hr ps_hr <<< "$(table_row "$OUT/$d.similar.txt" HR@10)"
    read -r s_nd z_nd d_nd p_nd ps_nd <<< "$(table_row "$OUT/$d.similar.txt" NDCG@10)"
    read -r r_hr _ rd_hr rp_hr _ <<< "$(table_row "$OUT/$d.random.txt" HR@10)"
    read -r r_nd _ rd_nd rp_nd _ <<< "$(table_row "$OUT/$d.random.txt" NDCG@10)"
    pass=$(awk -v a="$s_hr" -v b="$s_nd" -v x="$thr" -v y="$tnd" 'BEGIN { print (a >= x && b >= y) ? "true" : "false" }')
    [ $first -eq 1 ] || echo "," >> "$OUT/summary.json.tmp"
    first=0
    cat >> "$OUT/summary.json.tmp" <<EOF
  "$d": {
    "train_seconds": ${train_s:-null}, "train_command": "$train_cmd", "eval_threads": $THREADS, "k": $K,
    "iclrec": {"HR@10": $thr, "NDCG@10": $tnd},
    "zero_shot": {"HR@10": $z_hr, "NDCG@10": $z_nd},
    "random": {"HR@10": $r_hr, "NDCG@10": $r_nd, "diff_vs_zero_shot": {"HR@10": $rd_hr, "NDCG@10": $rd_nd},
               "p_t": {"HR@10": $rp_hr, "NDCG@10": $rp_nd}},
    "similar": {"HR@10": $s_hr, "NDCG@10": $s_nd, "diff_vs_zero_shot": {"HR@10": $d_hr, "NDCG@10": $d_nd},
                "p_t": {"HR@10": $p_hr, "NDCG@10": $p_nd}, "p_sign": {"HR@10": $ps_hr, "NDCG@10": $ps_nd}},
    "similar_reaches_iclrec": $pass
  }
EOF
    echo "== $d: similar HR@10 $s_hr NDCG@10 $s_nd (ICLRec $thr / $tnd): reaches: $pass"
done
echo "}" >> "$OUT/summary.json.tmp"
mv "$OUT/summary.json.tmp" "$OUT/summary.json"
echo "wrote $OUT/summary.json"
