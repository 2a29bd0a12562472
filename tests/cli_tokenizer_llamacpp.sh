#!/usr/bin/env bash
# lrgd's tokenizers against llama.cpp's (node-llama-cpp 3.21.1, prebuilt CPU) on the same GGUF
# vocabularies: a SentencePiece-style vocabulary (with and without add_space_prefix) and a
# byte-level BPE vocabulary under five pre-tokenizers, all learned on Beauty titles and written
# by lrgd's GGUF writer into tiny random models (test_tokenizer --make-models). A corpus of
# tricky strings, item titles of the three Amazon files and seeded random strings
# (tests/tokenizer_corpus.mjs) is tokenized by both (no BOS/EOS, special text not parsed), and
# every string must give identical ids. A cross-check shows the comparison can fail: the gpt-2
# and default pre-tokenizers, and SPM with and without the space prefix, must disagree somewhere.
# Exit 77 (skip) without node or the llama.cpp reference.
set -u
src=${BASH_SOURCE[0]}; [[ $src == */* ]] || src=./$src
here=$(cd "${src%/*}" && pwd)
root=$(cd "$here/.." && pwd)
: "${LRGD_BUILD:?LRGD_BUILD (the build folder) is not set}"
: "${LRGD_SHARED:?LRGD_SHARED is not set}"
say() { echo "cli_tokenizer_llamacpp: $*"; }

bash "$root/bench/llamacpp/setup.sh"
rc=$?
[[ $rc == 0 ]] || { say "llama.cpp reference unavailable (setup.sh exit $rc): skipping"; exit 77; }

tool="$LRGD_BUILD/tests/test_tokenizer"
[[ -x $tool ]] || { say "$tool not built"; exit 1; }
tmp=$(mktemp -d /tmp/lrgd_tok_llamacpp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$tool" --make-models "$tmp" "$LRGD_SHARED/datasets/amazon/Beauty.items.tsv" || { say "making the models failed"; exit 1; }
node "$here/tokenizer_corpus.mjs" "$LRGD_SHARED" "$tmp/corpus.jsonl" "$tmp/corpus.hex" || exit 1

fail=0
for m in spm spm-noprefix bpe-default bpe-gpt2 bpe-llama3 bpe-qwen2 bpe-smollm; do
    "$tool" --tokenize "$tmp/$m.gguf" "$tmp/corpus.hex" "$tmp/$m.lrgd" || { say "$m: lrgd failed"; fail=1; continue; }
    node "$root/bench/llamacpp/tokenize.mjs" --model "$tmp/$m.gguf" --strings-file "$tmp/corpus.jsonl" \
        --out "$tmp/$m.llama.json" >/dev/null || { say "$m: llama.cpp failed"; fail=1; continue; }
    node "$here/tokenizer_compare.mjs" "$m" "$tmp/$m.lrgd" "$tmp/$m.llama.json" || fail=1
done

# The comparison must be able to fail: different pre-tokenizers / prefix settings differ.
for pair in "bpe-gpt2 bpe-default" "spm spm-noprefix"; do
    set -- $pair
    if node "$here/tokenizer_compare.mjs" "$1-vs-$2" "$tmp/$1.lrgd" "$tmp/$2.llama.json" >"$tmp/cross.txt"; then
        say "negative control: $1 and $2 tokenize every string alike; the corpus does not tell them apart"
        fail=1
    else
        say "negative control: $(tail -n 1 "$tmp/cross.txt")"
    fi
done

[[ $fail == 0 ]] && say "all vocabularies agree with llama.cpp on every string"
exit $fail
