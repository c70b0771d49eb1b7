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
