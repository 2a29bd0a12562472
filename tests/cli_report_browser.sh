#!/usr/bin/env bash
# The report of a quick `lrgd experiment` opens in headless Chromium with no
# console errors and no network requests, and its DOM holds every figure.
# Skips (exit 77) without /usr/bin/chromium (Debian package `chromium`).
# LRGD_SCREENSHOT=FILE.png keeps a screenshot of the page.
set -u
B=${LRGD_BIN:?LRGD_BIN not set}
CH=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CH" ] || { echo "SKIP: $CH not installed (apt-get install chromium)"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$B" experiment --synthetic --quick --threads 2 --quiet --out "$T/r" >/dev/null 2>"$T/run.err" ||
    { echo "FAIL: experiment run: $(tail -3 "$T/run.err")"; exit 1; }
H=$T/r/report.html

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --disable-dev-shm-usage --enable-logging=stderr --v=0)
# the page renders: its DOM after load, with the console on stderr
timeout 120 "$CH" "${flags[@]}" --user-data-dir="$(mktemp -d -p "$T")" --dump-dom "file://$H" \
    >"$T/dom.html" 2>"$T/dom.err"
rc=$?
[ $rc -eq 0 ] || bad "chromium --dump-dom exit $rc: $(tail -3 "$T/dom.err")"
n_svg=$(grep -o '<svg' "$T/dom.html" | wc -l)
[ "$n_svg" -ge 6 ] || bad "rendered DOM has $n_svg SVG figures (want >= 6)"
grep -q 'Effect_D validity' "$T/dom.html" || bad "rendered DOM lacks the validity section"
# console messages are logged as CONSOLE(...) lines; any is an error here (the page has no scripts)
if grep -E 'CONSOLE|Uncaught|Failed to load resource|net::ERR' "$T/dom.err"; then
    bad "console errors or failed loads while rendering the report"
fi

# a screenshot (also checks that painting works)
shot=${LRGD_SCREENSHOT:-$T/shot.png}
timeout 120 "$CH" "${flags[@]}" --user-data-dir="$(mktemp -d -p "$T")" --hide-scrollbars \
    --window-size=1100,2600 --screenshot="$shot" "file://$H" >/dev/null 2>"$T/shot.err"
[ -s "$shot" ] || bad "no screenshot written: $(tail -3 "$T/shot.err")"
grep -E 'CONSOLE|Uncaught' "$T/shot.err" && bad "console errors while taking the screenshot"
head -c 8 "$shot" | od -An -c | grep -q 'P   N   G' || bad "screenshot is not a PNG"

[ $fails -eq 0 ] && echo "cli_report_browser: report rendered in $(basename "$CH") with $n_svg SVG figures, no console errors" ||
    { echo "$fails failure(s)"; exit 1; }
