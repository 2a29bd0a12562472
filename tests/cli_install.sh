#!/usr/bin/env bash
# The install target: 'cmake --install' of this build into a temporary prefix puts the lrgd
# binary, the static and shared libraries, every public header, lrgd.pc and the man page in
# place; each installed header compiles on its own; examples/hello.c builds through
# 'pkg-config --cflags --libs lrgd' (shared, and static with --static), loads stories260K and
# prints its configuration and greedy tokens, which must match the checkpoint's header and
# llama2.c's own greedy decode; examples/recommend.c links the same way and prints what the build
# tree's example prints. The installed tree still works after it is moved.
set -u
src=${BASH_SOURCE[0]}; [[ $src == */* ]] || src=./$src
root=$(cd "${src%/*}/.." && pwd)
: "${LRGD_BUILD:?LRGD_BUILD is not set}"
: "${LRGD_SHARED:?LRGD_SHARED is not set}"
fail=0
say() { echo "cli_install: $*"; }
bad() { say "$*"; fail=1; }

command -v pkg-config >/dev/null || { say "pkg-config not found: skipping"; exit 77; }
cache="$LRGD_BUILD/CMakeCache.txt"
[[ -f $cache ]] || { say "$cache not found"; exit 1; }
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache")
[[ -n $cc ]] || cc=cc
# A sanitizer build's libraries need the sanitizer runtime in the program too.
san=()
grep -q '^LRGD_SANITIZE:BOOL=ON' "$cache" && san=(-fsanitize=address,undefined)

tmp=$(mktemp -d /tmp/lrgd_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cmake --install "$LRGD_BUILD" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; bad "cmake --install failed"; exit 1; }

pcdir=$(dirname "$(find "$prefix" -name lrgd.pc -path '*/pkgconfig/*' | head -n 1)")
[[ -f $pcdir/lrgd.pc ]] || { bad "no lib*/pkgconfig/lrgd.pc installed"; exit 1; }
libdir=$(cd "$pcdir/.." && pwd)
for f in "$prefix/bin/lrgd" "$libdir/liblrgd.a" "$libdir/liblrgd.so" "$prefix/share/man/man1/lrgd.1"; do
    [[ -e $f ]] || bad "missing $f"
done
ls "$libdir"/liblrgd.so.[0-9]* >/dev/null 2>&1 || bad "no versioned liblrgd.so.N"
for h in "$root"/include/lrgd/*.h; do
    [[ -f $prefix/include/lrgd/${h##*/} ]] || bad "header ${h##*/} not installed"
done
"$prefix/bin/lrgd" --version | grep -q "^lrgd [0-9]" || bad "installed lrgd --version"

export PKG_CONFIG_PATH="$pcdir"
version=$("$prefix/bin/lrgd" --version | awk '{print $2}')
[[ $(pkg-config --modversion lrgd) == "$version" ]] || bad "pkg-config version $(pkg-config --modversion lrgd) != lrgd $version"
cflags=$(pkg-config --cflags lrgd) || bad "pkg-config --cflags"
libs=$(pkg-config --libs lrgd) || bad "pkg-config --libs"

# Each public header on its own, strict.
n_h=0
for h in "$prefix"/include/lrgd/*.h; do
    n_h=$((n_h + 1))
    printf '#include <lrgd/%s>\nint main(void) { return 0; }\n' "${h##*/}" >"$tmp/h.c"
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags -c "$tmp/h.c" -o "$tmp/h.o" 2>"$tmp/h.err" ||
        { cat "$tmp/h.err"; bad "lrgd/${h##*/} does not compile on its own"; }
done

# What hello must print: the checkpoint header (7 little-endian int32) and llama2.c's greedy ids.
model="$LRGD_SHARED/models/stories260K.bin"
read -r dim hidden layers heads kv vocab seq < <(od -An -t d4 -N 28 -w28 "$model")
want_ids=$(tr -s ' \n' '  ' <"$LRGD_SHARED/models/stories260K.greedy-from-bos.txt" | awk '{for (i = 1; i <= 12; i++) printf "%s%s", (i > 1 ? " " : ""), $i}')

check_hello() { # $1 = binary, $2 = label
    local out
    out=$("$1" "$model" 12) || { bad "$2: hello failed"; return; }
    for kv_ in "dim $dim" "hidden_dim $hidden" "n_layers $layers" "n_heads $heads" "n_kv_heads $kv" \
        "vocab_size ${vocab#-}" "seq_len $seq" "greedy $want_ids"; do
        grep -qx "$kv_" <<<"$out" || bad "$2: expected the line '$kv_' in:
$out"
    done
}

"$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" "$root/examples/hello.c" $cflags $libs -Wl,-rpath,"$libdir" \
    -o "$tmp/hello" 2>"$tmp/cc.err" || { cat "$tmp/cc.err"; bad "hello.c does not link through pkg-config"; }
[[ -x $tmp/hello ]] && check_hello "$tmp/hello" shared
# Static: the archive plus the private dependencies pkg-config --static lists.
slibs=$(pkg-config --static --libs lrgd | sed "s#-llrgd#$libdir/liblrgd.a#")
"$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" "$root/examples/hello.c" $cflags $slibs -o "$tmp/hello_static" \
    2>"$tmp/cc.err" || { cat "$tmp/cc.err"; bad "hello.c does not link statically with pkg-config --static"; }
[[ -x $tmp/hello_static ]] && { ldd "$tmp/hello_static" | grep -q liblrgd && bad "static hello links liblrgd.so"; check_hello "$tmp/hello_static" static; }

# examples/recommend.c through pkg-config too: an ICL prompt, a ranking and each demonstration's
# Effect_D on a text LLM (stories260K converted to GGUF by the installed lrgd: a tokenizer, no item
# vocabulary), printing exactly what the build tree's example prints.
"$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" "$root/examples/recommend.c" $cflags $libs -Wl,-rpath,"$libdir" \
    -o "$tmp/recommend" 2>"$tmp/cc.err" || { cat "$tmp/cc.err"; bad "recommend.c does not link through pkg-config"; }
printf '1 1 2 3 4 5\n2 2 3 4 5 6\n3 3 4 5 6 7 8\n4 1 3 5 7 9\n5 2 4 6 8 10\n' >"$tmp/seq.txt"
if [[ -x $tmp/recommend ]] && "$prefix/bin/lrgd" convert "$model" "$tmp/st.gguf" --quiet; then
    # one thread in both runs: results are bit-identical for a fixed thread count
    OMP_NUM_THREADS=1 "$tmp/recommend" "$tmp/st.gguf" "$tmp/seq.txt" --user 3 --k 1 >"$tmp/rec.txt" 2>"$tmp/rec.err" ||
        bad "installed recommend failed: $(cat "$tmp/rec.err")"
    grep -q '^target 7 rank [0-9]' "$tmp/rec.txt" && grep -q '^effect demo 1 user [0-9]* tokens [0-9]* Effect_D ' "$tmp/rec.txt" ||
        bad "installed recommend printed no rank or Effect_D: $(cat "$tmp/rec.txt")"
    if [[ -x $LRGD_BUILD/examples/recommend ]]; then
        OMP_NUM_THREADS=1 "$LRGD_BUILD/examples/recommend" "$tmp/st.gguf" "$tmp/seq.txt" --user 3 --k 1 >"$tmp/rec_build.txt" 2>&1
        cmp -s "$tmp/rec.txt" "$tmp/rec_build.txt" || bad "installed recommend differs from the build tree's: $(diff "$tmp/rec.txt" "$tmp/rec_build.txt")"
    fi
else
    bad "could not build recommend or convert stories260K with the installed lrgd"
fi

# Relocatable: move the tree, pkg-config still finds headers and library.
mv "$prefix" "$tmp/moved"
export PKG_CONFIG_PATH="${pcdir/$prefix/$tmp/moved}"
"$cc" -std=c11 "${san[@]}" "$root/examples/hello.c" $(pkg-config --cflags --libs lrgd) \
    -Wl,-rpath,"${libdir/$prefix/$tmp/moved}" -o "$tmp/hello_moved" 2>"$tmp/cc.err" || { cat "$tmp/cc.err"; bad "moved tree"; }
[[ -x $tmp/hello_moved ]] && check_hello "$tmp/hello_moved" moved

[[ $fail == 0 ]] && say "ok: installed into a temporary prefix, $n_h headers compile alone, hello linked (shared, static, moved) and printed stories260K's config and greedy ids, recommend linked and ranked"
exit $fail
