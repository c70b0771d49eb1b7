#!/usr/bin/env bash
# test_pprun_faults.sh PPRUN_FAULT PPRUN WRITE_PLAN — a device that stops
# inside an op (injected by pprun_fault, the test build of pprun with
# fault_hook.c: PPRUN_TEST_FAULT=DEVICE:OP:pause|sleep=S) never hangs the
# run silently: the device waiting for it times out, the error names the
# stuck device and its op (not the waiting one), and the process exits
# within the timeout even though the stuck thread never returns; an
# allocation that fails (PPRUN_TEST_NOMEM=WHAT) is named; and no output's
# temporary is left behind by any of it.
set -u
pprun_fault=$1 pprun=$2 write_plan=$3
. "$(dirname "$0")/../lib.sh"

"$write_plan" 1f1b-2x4 plan.json || exit 1
"$write_plan" gpipe-4x8 plan4.json || exit 1

# faulty PLAN SPEC PATTERN [options]: exit 1 within 4 s, first error line matching PATTERN
faulty() {
    local plan=$1 spec=$2 pattern=$3
    shift 3
    local t0 t1
    t0=$(date +%s.%N)
    expect 1 "$pattern" -- timeout 10 env PPRUN_TEST_FAULT="$spec" "$pprun_fault" "$plan" --timeout 1 "$@"
    t1=$(date +%s.%N)
    checks=$((checks + 1))
    awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 4) }' ||
        fail "$spec: took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s with --timeout 1"
    checks=$((checks + 1))
    grep -m1 'error' out.txt | grep -Eq -- "$pattern" ||
        { fail "$spec: the first error is not /$pattern/"; sed 's/^/    /' out.txt >&2; }
}

# device 0's F0.1 never returns: device 1's receive of its output times out and names it
faulty plan.json 0:F0.1:pause \
    '^pprun: error: device 0 op 2 \(F0\.1\) has not returned after 1\.[0-9]+ s: device 1 op 4 \(recv act 0\.1 from 0\) waited 1 s for it \(timeout\)$'
checks=$((checks + 1))
grep -Eq '^pprun: error: device 0 op 2 \(F0\.1\) is still running .* exiting without waiting for it$' out.txt ||
    fail "the exit without the stuck thread is not explained"
# a 5 s op: the same device is blamed, and the run ends at the timeout, not after 5 s
faulty plan.json 0:F0.1:sleep=5 '^pprun: error: device 0 op 2 \(F0\.1\) has not returned after 1\.[0-9]+ s: device 1 op 4'
# the last device's backward: device 0 waits for its gradient
faulty plan.json 1:B1.3:pause '^pprun: error: device 1 op 14 \(B1\.3\) has not returned after 1\.[0-9]+ s: device 0 op 14 \(recv grad 1\.3 from 1\)'
# device 0's last backward: device 1 has finished its list and waits at the flush barrier
faulty plan.json 0:B0.3:pause '^pprun: error: device 0 op 15 \(B0\.3\) has not returned after 1\.[0-9]+ s: device 1 op 17 \(flush\) waited 1 s for it at the step.s barrier \(timeout\)$'
# four devices: whoever times out first (device 1 waits for 0; 2 and 3 wait through it), device 0 is named
faulty plan4.json 0:F0.0:pause '^pprun: error: device 0 op 0 \(F0\.0\) has not returned after '

# a slow op within the timeout is no fault
expect 0 'steps in' -- timeout 10 env PPRUN_TEST_FAULT=0:F0.1:sleep=0.3 "$pprun_fault" plan.json --timeout 5
# pprun itself has no hook: the variables change nothing
expect 0 'steps in' -- timeout 10 env PPRUN_TEST_FAULT=0:F0.1:pause "$pprun" plan.json --timeout 1
expect 0 'steps in' -- timeout 10 env PPRUN_TEST_NOMEM=the "$pprun" plan.json --timeout 1

# No output's temporary survives the error paths that end the process at
# once (docs/outputs.md): the watchdog's exit, out of memory on the main
# thread or a device's; what was there stays as it was
no_temporaries() { # WHAT
    checks=$((checks + 1))
    local left
    left=$(find . -name '.*.tmp-*' | head -5)
    [ -z "$left" ] || { fail "$1: temporaries left: $left"; find . -name '.*.tmp-*' -exec rm -rf {} +; }
    checks=$((checks + 1))
    [ "$(cat t.json)" = previous ] && [ ! -e dd ] || fail "$1: --trace t.json or --dump dd changed"
}
echo previous >t.json
faulty plan.json 0:F0.1:pause '^pprun: error: device 0 op 2 \(F0\.1\) has not returned' --trace t.json --dump dd
no_temporaries "the watchdog's exit"
# every allocation names what it is for and its size, and ends the run or the process cleanly
nomem() { # WHAT PATTERN
    expect 1 "$2" -- timeout 10 env PPRUN_TEST_NOMEM="$1" "$pprun_fault" plan.json --trace t.json --dump dd
    no_temporaries "out of memory for $1"
}
nomem 'the op times of device 1' '^pprun: error: out of memory: cannot allocate 144 bytes for the op times of device 1$'
nomem 'a channel of the threads transport' '^pprun: error: out of memory: cannot allocate [0-9]+ bytes for a channel of the threads transport$'
nomem 'a message of the threads transport' '^pprun: error: device 0 op 1 \(send act 0\.0 to 1\): out of memory: the threads transport cannot buffer the message \(512 bytes\)$'
nomem 'the trained weights' '^pprun: error: out of memory: cannot allocate 4096 bytes for the trained weights$'


finish test_pprun_faults
