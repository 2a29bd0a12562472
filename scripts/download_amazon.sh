#!/usr/bin/env bash
# Download the three Amazon sequence files lrgd is evaluated on (Beauty,
# Sports_and_Outdoors, Toys_and_Games; 5-core, as preprocessed for
# S3-Rec/ICLRec) and verify their SHA-256 sums against ../shared/README.md.
#
# usage: scripts/download_amazon.sh [DIR]        (default DIR: ./data/amazon)
#
# Source: the data/ folder of the ICLRec repository (salesforce/ICLRec),
# pinned to commit 4afb54a0; its three files have the same sizes and
# contents as the ones lrgd was developed with (checked byte counts and
# file ends; the sums below decide). When that fails, the S3-Rec authors'
# repository (aHuiWang/CIKM2020-S3Rec, data/, whose README documents this
# format) is tried; I could not confirm that it still serves these three
# files, so treat it as a best-effort fallback. A file whose sum differs is
# rejected and removed: nothing unverified is left under its final name.
#
# The NAME.items.tsv item-text files are not downloaded: they were built
# from several repositories (see ../shared/datasets/amazon/ITEMS-SOURCES.md).
#
# Not run by the tests (they read ../shared directly).
set -euo pipefail

DIR=${1:-data/amazon}
ICLREC=https://raw.githubusercontent.com/salesforce/ICLRec/4afb54a036ebbf4166ed5858122d89c0642251a7/data
S3REC=https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/master/data

declare -A SHA=(
    [Beauty.txt]=226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8
    [Sports_and_Outdoors.txt]=2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2
    [Toys_and_Games.txt]=176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f
)

fetch() { # URL OUT
    if command -v curl >/dev/null; then
        curl -fL --retry 3 -o "$2" "$1"
    elif command -v wget >/dev/null; then
        wget -q -O "$2" "$1"
    else
        echo "download_amazon.sh: need curl or wget" >&2
        return 1
    fi
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$DIR"
status=0
for f in Beauty.txt Sports_and_Outdoors.txt Toys_and_Games.txt; do
    out="$DIR/$f"
    if [ -f "$out" ] && [ "$(sha_of "$out")" = "${SHA[$f]}" ]; then
        echo "$f: present, SHA-256 ok"
        continue
    fi
    ok=0
    for base in "$ICLREC" "$S3REC"; do
        tmp="$out.part.$$"
        if fetch "$base/$f" "$tmp"; then
            got=$(sha_of "$tmp")
            if [ "$got" = "${SHA[$f]}" ]; then
                mv -f "$tmp" "$out"
                echo "$f: downloaded from $base, SHA-256 ok"
                ok=1
                break
            fi
            echo "$f from $base: SHA-256 $got, expected ${SHA[$f]}; rejected" >&2
        fi
        rm -f "$tmp"
    done
    if [ "$ok" != 1 ]; then
        echo "$f: no source gave the expected file" >&2
        status=1
    fi
done
exit $status
