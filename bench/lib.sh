# bench/lib.sh — shared by the benchmark scripts (sourced, not run).

# best_ms RUNS command... -> the best wall time over RUNS runs, in ms with
# three decimals (the command's stdout is discarded).
best_ms() {
    local runs=$1 best=""
    shift
    for _ in $(seq "$runs"); do
        local t0 t1 us
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        us=$(((t1 - t0) / 1000))
        if [ -z "$best" ] || [ "$us" -lt "$best" ]; then best=$us; fi
    done
    printf '%d.%03d' $((best / 1000)) $((best % 1000))
}

# best_times RUNS command... -> "WALL CPU USER SYS" in ms: the best wall
# time and the best CPU time (user + system, steadier than wall time on a
# shared machine) over RUNS runs, with that run's user and system times.
best_times() {
    local runs=$1 bw="" bc="" bu="" bs=""
    shift
    local TIMEFORMAT='%3R %3U %3S' t r u s
    for _ in $(seq "$runs"); do
        t=$({ time "$@" >/dev/null; } 2>&1) || { echo "failed: $*: $t" >&2; return 1; }
        read -r r u s <<<"$(tail -1 <<<"$t")"
        r=$((10#${r/./})) u=$((10#${u/./})) s=$((10#${s/./}))
        if [ -z "$bw" ] || [ "$r" -lt "$bw" ]; then bw=$r; fi
        if [ -z "$bc" ] || [ $((u + s)) -lt "$bc" ]; then bc=$((u + s)) bu=$u bs=$s; fi
    done
    echo "$bw $bc $bu $bs"
}
