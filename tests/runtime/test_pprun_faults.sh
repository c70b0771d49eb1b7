#!/usr/bin/env bash
# test_pprun_faults.sh PPRUN_FAULT PPRUN WRITE_PLAN — a device that stops
# inside an op (injected by pprun_fault, the test build of pprun with
# fault_hook.c: PPRUN_TEST_FAULT=DEVICE:OP:pause|sleep=S) never hangs the
# run silently: the device waiting for it times out (or, with nobody to
# wait, the watchdog's op limit), the error names the stuck device and its
# op (not the waiting one), and the process exits soon after even though
# the stuck thread never returns, but never before an op that does return
# has; an allocation that fails (PPRUN_TEST_NOMEM=WHAT) is named; and no
# output's temporary is left behind by any of it.
set -u
pprun_fault=$1 pprun=$2 write_plan=$3
. "$(dirname "$0")/../lib.sh"

"$write_plan" 1f1b-2x4 plan.json || exit 1
"$write_plan" gpipe-4x8 plan4.json || exit 1

# faulty PLAN SPEC PATTERN [options]: exit 1 within 4 s, first error line matching PATTERN
# (--timeout 1: the wait times out after 1 s, the stuck thread gets 1 s more)
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
# a 5 s op: the same device is blamed, and the run ends after the timeout and the grace, not after 5 s
faulty plan.json 0:F0.1:sleep=5 '^pprun: error: device 0 op 2 \(F0\.1\) has not returned after 1\.[0-9]+ s: device 1 op 4'
# the last device's backward: device 0 waits for its gradient
faulty plan.json 1:B1.3:pause '^pprun: error: device 1 op 14 \(B1\.3\) has not returned after 1\.[0-9]+ s: device 0 op 14 \(recv grad 1\.3 from 1\)'
# device 0's last backward: device 1 has finished its list and waits at the flush barrier
faulty plan.json 0:B0.3:pause '^pprun: error: device 0 op 15 \(B0\.3\) has not returned after 1\.[0-9]+ s: device 1 op 17 \(flush\) waited 1 s for it at the step.s barrier \(timeout\)$'
# four devices: whoever times out first (device 1 waits for 0; 2 and 3 wait through it), device 0 is named
faulty plan4.json 0:F0.0:pause '^pprun: error: device 0 op 0 \(F0\.0\) has not returned after '

# only the stuck device is named, never a device waiting for it (gpipe-4x8:
# devices 0, 1 and 3 all wait, through one another, for device 2): as the
# one that has not returned, and as the one the process does not wait for
only_named() { # SPEC WANT: every "has not returned" / "is still" subject is WANT
    checks=$((checks + 1))
    local other
    other=$(grep -E 'has not returned|is still (running|waiting)' out.txt | grep -Ev -- "^pprun: error: $2 ")
    [ -z "$other" ] || { fail "$1: names another device than $2:"; echo "$other" | sed 's/^/    /' >&2; }
}
faulty plan4.json 2:F2.3:pause '^pprun: error: device 2 op 10 \(F2\.3\) has not returned after [0-9]\.[0-9]+ s: device [013] op' --steps 2
checks=$((checks + 1))
grep -Eq '^pprun: error: device 2 op 10 \(F2\.3\) is still running .* exiting without waiting for it$' out.txt ||
    fail "2:F2.3:pause: the exit does not name F2.3"
only_named 2:F2.3:pause 'device 2 op 10 \(F2\.3\)'
faulty plan4.json 3:F3.0:sleep=3 '^pprun: error: device 3 op 1 \(F3\.0\) has not returned after [0-9]\.[0-9]+ s: device [012] op' --steps 2
checks=$((checks + 1))
grep -Eq '^pprun: error: device 3 op 1 \(F3\.0\) is still running .* exiting without waiting for it$' out.txt ||
    fail "3:F3.0:sleep=3: the exit does not name F3.0"
only_named 3:F3.0:sleep=3 'device 3 op 1 \(F3\.0\)' # (a waiter was, in three runs of four)
# an op a little slower than the timeout returns within the grace: the run
# fails naming it, and the process waits for it (teardown, no early exit)
t0=$(date +%s.%N)
expect 1 '^pprun: error: device 2 op 10 \(F2\.3\) has not returned after [0-9]\.[0-9]+ s: device [013] op' -- \
    timeout 10 env PPRUN_TEST_FAULT=2:F2.3:sleep=1.5 "$pprun_fault" plan4.json --timeout 1 --steps 2
t1=$(date +%s.%N)
checks=$((checks + 1))
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1.45) }' ||
    fail "2:F2.3:sleep=1.5: exited after $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s, before F2.3 returned"
checks=$((checks + 1))
! grep -q 'exiting without waiting' out.txt || fail "2:F2.3:sleep=1.5: did not wait for F2.3, which returns"
only_named 2:F2.3:sleep=1.5 'device 2 op 10 \(F2\.3\)'

# a flush that does not return: the devices at the barrier name it, not "the other devices"
faulty plan4.json 1:flush:pause '^pprun: error: device 1 op 49 \(flush\) has not returned after [0-9]\.[0-9]+ s: device [023] op (33|49) \(flush\) waited 1 s for it at the step.s barrier \(timeout\)$'
only_named 1:flush:pause 'device 1 op 49 \(flush\)'

# nobody waits for the op (a one-device plan): the watchdog's op limit,
# max(--timeout, 100 x the longest op so far), names it, and the process ends
"$write_plan" 1f1b-1x4 one.json || exit 1
faulty one.json 0:F0.1:pause '^pprun: error: device 0 op [0-9]+ \(F0\.1\) has not returned after 1\.[0-9]+ s, longer than an op may compute \(1 s: the larger of --timeout and 100 times the longest op so far, [0-9.e-]+ s\)$'
checks=$((checks + 1))
grep -Eq '^pprun: error: device 0 op [0-9]+ \(F0\.1\) is still running .* exiting without waiting for it$' out.txt ||
    fail "one device: the exit without the stuck thread is not explained"
# ... but an op within 100 times the longest before it is no fault, even past --timeout
expect 0 'steps in' -- timeout 10 env PPRUN_TEST_FAULT=0:F0.0:sleep=0.05,0:F0.1:sleep=1.5 "$pprun_fault" one.json --timeout 1
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
nomem "--dump's buffer" "^pprun: error: --dump: out of memory: cannot allocate [0-9.]+ KiB for its buffer$"
nomem 'the trained parameters' '^pprun: error: out of memory: cannot allocate 4352 bytes for the trained parameters$'

finish test_pprun_faults
