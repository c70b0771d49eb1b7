#!/usr/bin/env bash
# test_pprun_cli.sh PPRUN WRITE_PLAN — the pprun command line as users meet
# it: exit codes (0 ok, 1 bad plan or failed run/check, 2 usage), messages
# that name what is wrong, progress lines, --check, --trace, --dump files.
set -u
pprun=$1 write_plan=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fails=0 checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
# expect STATUS PATTERN -- command...
expect() {
    local want=$1 pattern=$2
    shift 3
    checks=$((checks + 1))
    "$@" >out.txt 2>&1
    local got=$?
    if [ "$got" != "$want" ]; then
        fail "$* exited $got, want $want"; sed 's/^/    /' out.txt >&2; return
    fi
    if ! grep -Eq -- "$pattern" out.txt; then
        fail "$* output does not match /$pattern/"; sed 's/^/    /' out.txt >&2
    fi
}

"$write_plan" 1f1b-2x4 plan.json || exit 1

expect 0 '^usage: pprun PLAN.json' -- "$pprun" --help
expect 0 '^pprun [0-9]' -- "$pprun" --version
expect 2 'expected one plan file, got none' -- "$pprun"
expect 2 'expected one plan file, got several' -- "$pprun" plan.json plan.json
expect 2 "unknown option '--bogus'" -- "$pprun" plan.json --bogus
expect 2 "--steps: 'abc' is not an integer" -- "$pprun" plan.json --steps abc
expect 2 "--steps: '0' is not an integer" -- "$pprun" plan.json --steps 0
expect 2 "--steps: '3x' is not an integer" -- "$pprun" plan.json --steps 3x
expect 2 "--timeout: '-1' is not a number" -- "$pprun" plan.json --timeout -1
expect 2 "--timeout: 'nan' is not a number" -- "$pprun" plan.json --timeout nan
expect 2 "--backend: 'gpu' is not cpu or cuda" -- "$pprun" plan.json --backend gpu
expect 2 '--steps needs a value' -- "$pprun" plan.json --steps
expect 1 '^pprun: error: the cuda backend is not built in this binary' -- "$pprun" plan.json --backend cuda
expect 1 '^pprun: error: cannot open missing.json' -- "$pprun" missing.json
echo '{"format": "ppcc-plan", "version": 1} x' >garbage.json
expect 1 '^garbage.json:1:39: error: trailing characters after the plan' -- "$pprun" garbage.json
sed 's/"peer":	1/"peer":	9/' plan.json >badpeer.json
expect 1 '^pprun: error: badpeer.json: devices\[0\]\.ops\[1\]\.peer: 9 is not a rank$' -- "$pprun" badpeer.json

# a run: one progress line per step, then --check passes
expect 0 'check: largest relative error .* ok' -- "$pprun" plan.json --steps 3 --check --backend cpu
checks=$((checks + 1))
[ "$(grep -Ec '^step [0-9]+/3  loss [0-9.]+  time [0-9.]+ ms  samples/s [0-9]+$' out.txt)" = 3 ] ||
    { fail "want 3 progress lines"; cat out.txt >&2; }

# --trace: valid Chrome JSON, one X event per op and step
expect 0 'steps in' -- "$pprun" plan.json --steps 2 --trace trace.json
checks=$((checks + 1))
nops=$(grep -c '"op":' plan.json)
nx=$(grep -c '"ph":"X"' trace.json)
[ "$nx" = $((2 * nops)) ] || fail "trace has $nx events, want $((2 * nops))"
[ -z "$(ls | grep tmp)" ] || fail "temporary files left: $(ls)"

# --dump writes the seven files
expect 0 'steps in' -- "$pprun" plan.json --steps 2 --dump dump
for f in x t w_init b_init w_final b_final loss; do
    checks=$((checks + 1))
    [ -s "dump/$f.npy" ] || fail "dump/$f.npy missing"
done
checks=$((checks + 1))
# x: [2, 32, 16] float32 = 4096 bytes of data after a 128-byte header
[ "$(stat -c %s dump/x.npy)" = $((128 + 2 * 32 * 16 * 4)) ] || fail "x.npy has the wrong size"

echo "$checks checks, $fails failed"
exit $((fails > 0))
