#!/bin/sh
# auto_sweep.sh — auto against every named policy on random non-uniform
# cost models and memory limits (docs/bench.md, "auto sweep").  Each row:
# the best named policy that fits the limit, auto's makespan, auto's gain.
# The same sweep is asserted by tests/test_auto.c (auto_never_worse).
#
#   bench/auto_sweep.sh [PPCC] [CASES]
set -eu
PPCC=${1:-build/compiler/ppcc}
CASES=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAMED=gpipe,1f1b,interleaved,looped-bfs,zb-h1,zb-h2,interleaved-zb,zbv,dualpipev
printf '%-4s %-16s %-6s %-16s %9s %9s %7s\n' case costs limit best-named makespan auto gain
i=0
seed=12345
while [ "$i" -lt "$CASES" ]; do
    # Deterministic pseudo-random per-stage costs (awk's srand is seeded).
    defs=$(awk -v s=$((seed + i)) 'BEGIN { srand(s);
        printf "-D cost.comm=%.2f", rand() * 0.5;
        for (st = 0; st < 4; st++)
            printf " -D cost.stage.%d.F=%.2f -D cost.stage.%d.B=%.2f -D cost.stage.%d.W=%.2f",
                st, 0.5 + rand() * 1.5, st, 0.5 + rand() * 2.5, st, rand() * 1.5 }')
    for limit in 0 4 6; do
        # shellcheck disable=SC2086
        out=$("$PPCC" "$ROOT/schedules/1f1b.pp" $defs -D memory.limit=$limit --compare "$NAMED,auto")
        echo "$out" | awk -v c="$i" -v l="$limit" -v costs="$(echo "$defs" | cut -d" " -f2)" '
            $2 !~ /^[0-9]+$/ || $3 !~ /^(loop|vshape)$/ { next }   # only the rows of the table
            $1 == "auto" { auto = $4; next }
            $4 ~ /^[0-9.]+$/ && $6 == "yes" && (best == "" || $4 + 0 < best + 0) { best = $4; name = $1 }
            END { gain = best > 0 ? 100 * (best - auto) / best : 0;
                  printf "%-4s %-16s %-6s %-16s %9s %9s %6.1f%%\n", c, costs, l == 0 ? "none" : l, name, best, auto, gain }'
    done
    i=$((i + 1))
done
