#!/usr/bin/env bash
# Installs the llama.cpp reference (node-llama-cpp 3.21.1 with its prebuilt linux-x64 CPU
# binaries) into bench/llamacpp/node_modules from package-lock.json.
# Exit 0: ready. Exit 77: skip (no node/npm, unsupported platform, or the install failed, e.g.
# offline), so tests that need it are reported as skipped rather than failed.
# Never builds llama.cpp and never downloads anything but the npm packages: install scripts are
# off (--ignore-scripts; node-llama-cpp's postinstall would otherwise try to build or fetch
# binaries), and NODE_LLAMA_CPP_SKIP_DOWNLOAD is set for good measure.
set -u
src=${BASH_SOURCE[0]}; [[ $src == */* ]] || src=./$src
here=$(cd "${src%/*}" && pwd)
say() { echo "llamacpp/setup.sh: $*" >&2; }

command -v node >/dev/null 2>&1 || { say "node not found: skipping"; exit 77; }
command -v npm >/dev/null 2>&1 || { say "npm not found: skipping"; exit 77; }
node -e 'process.exit(process.platform === "linux" && process.arch === "x64" && +process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    { say "needs node >= 20 on linux-x64 (have $(node --version) $(node -p 'process.platform + "-" + process.arch')): skipping"; exit 77; }

installed() {
    node -e '
        const fs = require("fs"), p = process.argv[1] + "/node_modules/";
        const v = (n) => { try { return JSON.parse(fs.readFileSync(p + n + "/package.json")).version; } catch { return null; } };
        const ok = v("node-llama-cpp") === "3.21.1" && v("@node-llama-cpp/linux-x64") === "3.21.1" &&
            fs.existsSync(p + "@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node");
        process.exit(ok ? 0 : 1);' "$here"
}

installed && exit 0

# Several build trees may run the tests at once: one installer at a time.
exec 9>"${TMPDIR:-/tmp}/lrgd-llamacpp-setup.lock"
flock 9
installed && exit 0

say "installing node-llama-cpp 3.21.1 (npm ci, no install scripts)"
if ! (cd "$here" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
    say "npm ci failed (offline?): skipping"
    exit 77
fi
installed || { say "install finished but the prebuilt linux-x64 binaries are missing: skipping"; exit 77; }
exit 0
