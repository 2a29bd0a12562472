# Sourced by cli_effect.sh and cli_effect_shared.sh (not a test itself: ctest
# runs only cli_*.sh): the planted dataset and the small model both score.
# planted_effect_model DIR writes DIR/syn.txt, 300 users walking item cycles
# with stride 1 or 2 (Amazon format, ids from 1), and DIR/m.gguf trained on it
# with $BIN; it exits 1 if training fails.
planted_effect_model() {
    awk 'BEGIN { srand(11); for (u = 1; u <= 300; u++) { n = 6 + int(rand() * 8); s = int(rand() * 50); d = 1 + u % 2;
           line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 50); print line } }' > "$1/syn.txt"
    "$BIN" train --data "$1/syn.txt" --epochs 6 --batch 16 --dim 16 --hidden 32 --heads 2 --kv-heads 1 --seq 96 \
        --max-hist 12 --demo-hist 8 --demos 2 --lr 0.01 --warmup 10 --threads 1 --quiet --out "$1/m.gguf" \
        || { echo "FAIL: training the test model" >&2; exit 1; }
}
