#!/usr/bin/env bash
# Speed-up of `mpirun -np 2 lrgd optimize` (Stage 1 and Stage 2) or `lrgd
# effect` over one process, measured in the same run, interleaved, REPS times
# (the machine may be shared: min, median and max, and the load average).
#
# usage: bench/mpi_experiment.sh MPI_LRGD CMD OUT.json [REPS] -- lrgd CMD options...
#   MPI_LRGD  an lrgd built with -DLRGD_MPI=ON (run by hand it is one process)
#   CMD       optimize | effect
# e.g.  bench/mpi_experiment.sh build/mpi/lrgd optimize bench-mpi-opt.json 3 -- \
#           --model beauty.gguf --data ../shared/datasets/amazon/Beauty.txt --users 64 --hold 16
#
# Configurations (CONFIGS="p1t1 n2t1" by default; --threads 1 everywhere):
#   p1t1   one process, 1 thread (the reference; the sequential Stage 2)
#   n1t1   mpirun -np 1 (the sharded path: speculative Stage 2 rounds)
#   n2t1   mpirun -np 2, 1 thread per rank
# Per run: wall time of the command; each process's CPU seconds (user + sys,
# /usr/bin/time); from the command's JSON: the wall and CPU seconds of each
# stage (optimize: rank 0's; the per-rank CPU of each stage and the bytes
# each rank sent and received from "distributed"). The stage-2 speed-up on
# idle cores is modelled as cpu_stage2(p1t1) / max over ranks of
# cpu_stage2(n2t1): on a machine whose other users cap this session's CPU
# share (see docs/DISTRIBUTED.md), wall ratios say little about idle cores.
# Results agree with one process (tests/cli_mpi.sh); this script checks
# that every run's selections equal the first run's.
set -u
[ $# -ge 4 ] || { sed -n 2,25p "$0"; exit 2; }
MB=$1 CMD=$2 OUT=$3
shift 3
REPS=3
if [ "$1" != "--" ]; then REPS=$1; shift; fi
[ "${1:-}" = "--" ] && shift
case $CMD in optimize | effect) ;; *) echo "CMD: optimize or effect" >&2; exit 2 ;; esac
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
read -r -a configs <<<"${CONFIGS:-p1t1 n2t1}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
TIMED=(sh -c '/usr/bin/time -f "%U %S" -o "$0.${OMPI_COMM_WORLD_RANK:-0}" "$@"' "$T/cpu")
JSON=$CMD.json

run_one() { # config -> one line of figures
    local c=$1 t0 t1
    rm -rf "$T"/cpu.* "$T/o"
    t0=$(date +%s.%N)
    case $c in
    p1t1) "${TIMED[@]}" "$MB" "$CMD" "${ARGS[@]}" --threads 1 --quiet --out "$T/o" >/dev/null ;;
    n1t1) "${MPIRUN[@]}" -np 1 "${TIMED[@]}" "$MB" "$CMD" "${ARGS[@]}" --threads 1 --quiet --out "$T/o" >/dev/null ;;
    n2t1) "${MPIRUN[@]}" -np 2 "${TIMED[@]}" "$MB" "$CMD" "${ARGS[@]}" --threads 1 --quiet --out "$T/o" >/dev/null ;;
    *) echo "unknown configuration $c" >&2; return 1 ;;
    esac || { echo "FAILED: $c" >&2; return 1; }
    t1=$(date +%s.%N)
    if [ "$CMD" = optimize ]; then
        if [ -f "$T/ref.sel" ]; then
            cmp -s "$T/ref.sel" "$T/o/selections.json" || { echo "FAILED: $c: selections differ from the first run" >&2; return 1; }
        else cp "$T/o/selections.json" "$T/ref.sel"; fi
    fi
    python3 - "$T/o/$JSON" "$T" "$t0" "$t1" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import glob, json, sys
j = json.load(open(sys.argv[1])); T = sys.argv[2]
wall = float(sys.argv[4]) - float(sys.argv[3])
cpu = [sum(map(float, open(f).read().split())) for f in sorted(glob.glob(T + '/cpu.*'))]
run = j.get('run', {}); d = j.get('distributed') or {}
pr = d.get('per_rank', [])
def mx(k, own):
    v = [r.get(k, 0) for r in pr]
    return max(v) if v else own
s1, s2 = run.get('seconds_stage1', 0), run.get('seconds_stage2', 0)
c1, c2 = run.get('cpu_seconds_stage1', 0), run.get('cpu_seconds_stage2', 0)
sent = max([r['bytes_sent'] for r in pr] or [0]); recv = max([r['bytes_received'] for r in pr] or [0])
print(wall, run.get('seconds', 0), s1, s2, c1, mx('cpu_seconds_stage1', c1), c2, mx('cpu_seconds_stage2', c2),
      sum(cpu), max(cpu), sent, recv, d.get('stage2_redone', 0), sys.argv[5])
PY
}

ARGS=("$@")
for ((r = 1; r <= REPS; r++)); do
    for c in "${configs[@]}"; do
        line=$(run_one "$c") || exit 1
        echo "$c $line" >>"$T/times"
        read -r w s s1 s2 c1 c1m c2 c2m ct cm bs br rd ld <<<"$line"
        printf 'rep %d %-5s wall %7.2f s  stage1 %6.2f s (cpu %6.2f, busiest rank %6.2f)  stage2 %6.2f s (cpu %6.2f, busiest %6.2f)  cpu %6.2f s (busiest process %6.2f)  load %s\n' \
            "$r" "$c" "$w" "$s1" "$c1" "$c1m" "$s2" "$c2" "$c2m" "$ct" "$cm" "$ld"
    done
done
cp "$T/o/$JSON" "$T/last.json"
python3 - "$T/times" "$T/last.json" "$OUT" "$MB $CMD ${ARGS[*]}" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1])]
names = ['wall', 'seconds', 'stage1_wall', 'stage2_wall', 'stage1_cpu_rank0', 'stage1_cpu_busiest_rank',
         'stage2_cpu_rank0', 'stage2_cpu_busiest_rank', 'cpu_total', 'cpu_busiest_process', 'bytes_sent_max_rank',
         'bytes_received_max_rank', 'stage2_redone', 'load1']
cfg = {}
for r in rows:
    cfg.setdefault(r[0], []).append([float(v) for v in r[1:]])
def stat(vals):
    v = sorted(vals); return [v[0], v[(len(v) - 1) // 2], v[-1]]
out = {'command': sys.argv[4], 'machine': '%s cores, load average at the end %s' % (sys.argv[5], sys.argv[6]),
       'stats': '[min, median, max]', 'configs': {}}
for c, runs in cfg.items():
    out['configs'][c] = {n: stat([x[i] for x in runs]) for i, n in enumerate(names)}
last = json.load(open(sys.argv[2]))
opts = last.get('options', {})
if 'p1t1' in cfg and 'n2t1' in cfg:
    a, b = out['configs']['p1t1'], out['configs']['n2t1']
    med = lambda x, k: x[k][1]
    r = lambda p, q: round(p / q, 3) if q > 0 else None
    out['speedup_np2_wall'] = r(med(a, 'wall'), med(b, 'wall'))
    out['speedup_np2_stage1_wall'] = r(med(a, 'stage1_wall'), med(b, 'stage1_wall'))
    out['speedup_np2_stage2_wall'] = r(med(a, 'stage2_wall'), med(b, 'stage2_wall'))
    out['modelled_speedup_np2_stage1'] = r(med(a, 'stage1_cpu_rank0'), med(b, 'stage1_cpu_busiest_rank'))
    out['modelled_speedup_np2_stage2'] = r(med(a, 'stage2_cpu_rank0'), med(b, 'stage2_cpu_busiest_rank'))
    out['modelled_speedup_np2_process'] = r(med(a, 'cpu_total'), med(b, 'cpu_busiest_process'))
if opts:
    u, h = opts.get('users', 0), opts.get('hold', 0)
    rounds = len((last.get('guard') or {}).get('after_round') or []) or opts.get('rounds', 0)
    out['stage2_rounds_run'] = rounds
    a = out['configs'].get('p1t1')
    if a and u:
        out['per_user_cpu_stage1'] = a['stage1_cpu_rank0'][1] / (u + h)
        out['per_user_round_cpu_stage2'] = a['stage2_cpu_rank0'][1] / (u * max(rounds, 1))
json.dump(out, open(sys.argv[3], 'w'), indent=2)
print(json.dumps(out, indent=2))
PY
