#!/usr/bin/env bash
# Speed-up of `mpirun -np 2 lrgd eval` over one process, measured in the same
# run, interleaved, REPS times (the machine may be shared: min and spread).
#
# usage: bench/mpi_eval.sh MPI_LRGD DATA OUT.json [REPS] -- lrgd eval options...
#   MPI_LRGD  an lrgd built with -DLRGD_MPI=ON (run by hand it is one process)
# e.g.  bench/mpi_eval.sh build/mpi/lrgd ../shared/datasets/amazon/Beauty.txt \
#           bench-mpi-beauty.json 5 -- --method itemknn --candidates all
#
# Configurations (CONFIGS="p1t1 n1t1 n2t1" by default; each rank --threads 1):
#   p1t1   one process, no MPI, 1 thread             (the reference)
#   n1t1   mpirun -np 1 (the sharded path, MPI started)
#   n2t1   mpirun -np 2, 1 thread per rank
#   p1t2   one process, 2 OpenMP threads             (the other way to use 2 cores)
# Per run: wall time of the whole command; "compute", the phase the JSON
# reports (one process: fit + eval seconds; sharded: rank 0's sharded phase,
# fit, its shards, waiting for the slowest rank and the gather); and each
# process's CPU time (user + sys, from /usr/bin/time). On a machine that
# others load, the scheduler (autogroups) may cap this session's share of
# the cores whatever the process count, so the wall ratio can understate
# what 2 ranks give on idle cores; cpu_max_rank (the busiest rank's CPU
# seconds) is what an idle core per rank would need, and
# modelled_speedup_np2 = cpu(p1t1) / cpu_max_rank(n2t1) that idle-machine
# ratio (start-up excluded; it is in the wall times).
set -u
[ $# -ge 4 ] || { sed -n 2,24p "$0"; exit 2; }
MB=$1 DATA=$2 OUT=$3
shift 3
REPS=5
if [ "$1" != "--" ]; then REPS=$1; shift; fi
[ "${1:-}" = "--" ] && shift
read -r -a configs <<<"${CONFIGS:-p1t1 n1t1 n2t1}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
# Each process writes its CPU seconds to $T/cpu.RANK.
TIMED=(sh -c '/usr/bin/time -f "%U %S" -o "$0.${OMPI_COMM_WORLD_RANK:-0}" "$@"' "$T/cpu")

run_one() { # config lrgd-eval-args... -> "wall compute cpu_total cpu_max"
    local c=$1 t0 t1
    shift
    rm -f "$T"/cpu.*
    t0=$(date +%s.%N)
    case $c in
    p1t1) "${TIMED[@]}" "$MB" eval --data "$DATA" "$@" --threads 1 --quiet --out "$T/o.json" >/dev/null ;;
    p1t2) "${TIMED[@]}" "$MB" eval --data "$DATA" "$@" --threads 2 --quiet --out "$T/o.json" >/dev/null ;;
    n1t1) "${MPIRUN[@]}" -np 1 "${TIMED[@]}" "$MB" eval --data "$DATA" "$@" --threads 1 --quiet --out "$T/o.json" >/dev/null ;;
    n2t1) "${MPIRUN[@]}" -np 2 "${TIMED[@]}" "$MB" eval --data "$DATA" "$@" --threads 1 --quiet --out "$T/o.json" >/dev/null ;;
    *) echo "unknown configuration $c" >&2; return 1 ;;
    esac || { echo "FAILED: $c" >&2; return 1; }
    t1=$(date +%s.%N)
    tr -d ' \n' <"$T/o.json" >"$T/flat"
    local comp cpu
    if grep -q '"sharded":true' "$T/flat"; then
        comp=$(grep -o '"seconds":[0-9.e+-]*' "$T/flat" | head -1 | cut -d: -f2)
    else
        comp=$(grep -o '"fit_seconds":[0-9.e+-]*,"eval_seconds":[0-9.e+-]*' "$T/flat" |
            awk -F'[:,]' '{s += $2 + $4} END {print s}')
    fi
    cpu=$(cat "$T"/cpu.* | awk '{c = $1 + $2; s += c; if (c > m) m = c} END {print s, m}')
    awk -v a="$t0" -v b="$t1" -v k="$comp" -v c="$cpu" 'BEGIN {print b - a, k, c}'
}

for ((r = 1; r <= REPS; r++)); do
    for c in "${configs[@]}"; do
        line=$(run_one "$c" "$@") || exit 1
        echo "$c $line" >>"$T/times"
        read -r w k ct cm <<<"$line"
        printf 'rep %d %-5s wall %7.3f s  compute %7.3f s  cpu %7.3f s (busiest process %7.3f s)  load %s\n' \
            "$r" "$c" "$w" "$k" "$ct" "$cm" "$(cut -d' ' -f1 /proc/loadavg)"
    done
done
users=$(grep -o '"users_evaluated":[0-9]*' "$T/flat" | cut -d: -f2)

stat3() { # config column -> "min median max"
    awk -v c="$1" -v col="$2" '$1 == c {print $col}' "$T/times" | sort -g |
        awk '{v[NR] = $1} END {printf "%.4f %.4f %.4f", v[1], v[int((NR + 1) / 2)], v[NR]}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
{
    echo "{"
    echo "  \"command\": \"lrgd eval --data $DATA $*\","
    echo "  \"machine\": \"$(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)\","
    echo "  \"reps\": $REPS, \"users\": ${users:-0}, \"record_bytes_per_user\": 20,"
    echo "  \"configs\": {"
    n=0
    for c in "${configs[@]}"; do
        read -r w0 w1 w2 <<<"$(stat3 "$c" 2)"
        read -r k0 k1 k2 <<<"$(stat3 "$c" 3)"
        read -r c0 c1 c2 <<<"$(stat3 "$c" 4)"
        read -r m0 m1 m2 <<<"$(stat3 "$c" 5)"
        n=$((n + 1))
        sep=","; [ $n = ${#configs[@]} ] && sep=""
        echo "    \"$c\": {\"wall\": [$w0, $w1, $w2], \"compute\": [$k0, $k1, $k2], \"cpu_total\": [$c0, $c1, $c2], \"cpu_max_rank\": [$m0, $m1, $m2]}$sep"
    done
    echo "  },"
    echo "  \"stats\": \"[min, median, max] seconds\","
    if grep -q '^p1t1 ' "$T/times" && grep -q '^n2t1 ' "$T/times"; then
        read -r wa _ <<<"$(stat3 p1t1 2)"; read -r wb _ <<<"$(stat3 n2t1 2)"
        read -r ka _ <<<"$(stat3 p1t1 3)"; read -r kb _ <<<"$(stat3 n2t1 3)"
        read -r ca _ <<<"$(stat3 p1t1 4)"; read -r mb _ <<<"$(stat3 n2t1 5)"; read -r cb _ <<<"$(stat3 n2t1 4)"
        echo "  \"speedup_np2_wall\": $(ratio "$wa" "$wb"),"
        echo "  \"speedup_np2_compute\": $(ratio "$ka" "$kb"),"
        echo "  \"cpu_overhead_np2\": $(ratio "$cb" "$ca"),"
        echo "  \"modelled_speedup_np2\": $(ratio "$ca" "$mb")"
    else
        echo "  \"speedup_np2_wall\": null"
    fi
    echo "}"
} >"$OUT"
cat "$OUT"
