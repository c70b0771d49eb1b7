#!/usr/bin/env bash
# test_valgrind.sh — ppcc and pprun under valgrind: no read of uninitialised
# memory, no invalid access, on a few small commands that go through the
# parser, the policies, the balance and auto searches, --compare, the views
# and the plan writer and loader (ASan does not see uninitialised reads; a
# layer's fields left as stack garbage once made --compare's peaks NaN).
#   test_valgrind.sh PATH/TO/ppcc PATH/TO/pprun
# Skipped (77) without valgrind or on a sanitizer build, which valgrind
# cannot run.
set -u
ppcc=$1 pprun=$2
src=${PP_SOURCE_ROOT:?}
command -v valgrind >/dev/null 2>&1 || { echo "test_valgrind: no valgrind: skipped"; exit 77; }
if nm -D "$ppcc" 2>/dev/null | grep -q '__asan_init\|__ubsan_handle'; then
    echo "test_valgrind: a sanitizer build: skipped"; exit 77
fi
. "$(dirname "$0")/lib.sh"

# vg WHAT -- command...: the command under valgrind, exit 0, no valgrind error
# (its errors exit 99 and are shown)
vg() {
    local what=$1
    shift 2
    checks=$((checks + 1))
    valgrind -q --error-exitcode=99 --suppressions="$(dirname "$0")/valgrind.supp" "$@" >out.txt 2>err.txt
    local rc=$?
    if [ $rc = 99 ]; then
        fail "$what: valgrind found errors"; sed 's/^/    /' err.txt | head -40 >&2
    elif [ $rc != 0 ]; then
        fail "$what: exited $rc"; sed 's/^/    /' err.txt | head -20 >&2
    fi
}

s=$src/schedules
cat >gpt.pp <<'PP'
pipeline {
    devices = 4
    microbatches = 4
    schedule = 1f1b
}
model gpt {
    layers = 4
    hidden = 16
    heads = 2
    seq = 8
    vocab = 64
    batch = 8
    optimizer = adamw
    tie = 1
}
hardware cpu { }
PP
vg "balance.pp --compare gpipe" -- "$ppcc" "$s/balance.pp" --compare gpipe
vg "gpt2-small-4gpu.pp --stats" -- "$ppcc" "$s/gpt2-small-4gpu.pp" --stats
vg "dualpipe.pp --timeline" -- "$ppcc" "$s/dualpipe.pp" --timeline
vg "auto.pp --stats" -- "$ppcc" "$s/auto.pp" --stats
vg "a tied gpt, data_parallel = 2, zero = 1, -o" -- "$ppcc" gpt.pp -D data_parallel=2 -D zero=1 -o dp.json
vg "data_parallel = 2 --compare" -- "$ppcc" gpt.pp -D data_parallel=2 --compare 1f1b,zb-h1
vg "pprun of the data-parallel plan" -- "$pprun" dp.json --backend cpu --steps 2 --timeline --trace run.json
vg "--stats --measured of its trace" -- "$ppcc" gpt.pp -D data_parallel=2 -D zero=1 --stats --measured run.json
finish test_valgrind
