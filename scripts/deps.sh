#!/usr/bin/env bash
# Install the Debian packages lrgd needs, only those missing. Root or sudo.
set -euo pipefail
need=(build-essential cmake pkg-config libopenblas-dev libomp-dev clang libclang-rt-14-dev)
[ "${LRGD_WITH_VALGRIND:-0}" = 1 ] && need+=(valgrind)
# OpenMPI for the -DLRGD_MPI=ON build (tests/cli_mpi.sh); the default build needs none.
[ "${LRGD_WITH_MPI:-0}" = 1 ] && need+=(libopenmpi-dev openmpi-bin)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
