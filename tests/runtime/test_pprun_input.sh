#!/usr/bin/env bash
# test_pprun_input.sh PPRUN WRITE_PLAN — the plan input as users give it:
# what cannot be a plan is refused at once, whatever its size or kind (a
# device, a pipe, a huge file, a directory); a FIFO without a writer says
# what pprun waits for, then runs the plan when it arrives.
set -u
pprun=$1 write_plan=$2
. "$(dirname "$0")/../lib.sh"

"$write_plan" 1f1b-2x4 plan.json || exit 1

# streams are checked as they arrive: /dev/zero once grew pprun to 6 GB
expect 1 '^/dev/zero:1:1: error: expected a value, got a NUL byte \(not JSON text\)$' -- timeout 20 "$pprun" /dev/zero
expect 1 "^/dev/stdin:1:1: error: 'y' is not a JSON value$" -- sh -c "yes | timeout 20 '$pprun' /dev/stdin"
expect 0 '^step 1/1' -- sh -c "cat plan.json | '$pprun' /dev/stdin"
# a regular file is refused by its size before it is read (a sparse file here)
truncate -s 9G big.json
expect 1 '^pprun: error: big.json: 9663676416 bytes, more than the largest plan pprun reads \(8589934592 bytes: 128 for each of the 67108864 ops a plan may hold\)$' -- timeout 20 "$pprun" big.json
rm -f big.json
expect 1 '^pprun: error: \. is a directory, not a plan$' -- "$pprun" .

# a FIFO without a writer: a note (not a silent wait), then the run
mkfifo plan.fifo
"$pprun" plan.fifo >fifo.txt 2>&1 &
pid=$!
for _ in $(seq 100); do
    grep -q 'note: waiting' fifo.txt && break
    sleep 0.1
done
checks=$((checks + 1))
grep -q '^pprun: note: waiting for plan.fifo: nothing written to it yet (a FIFO without a writer?)$' fifo.txt ||
    fail "no note while waiting for a writer: $(cat fifo.txt)"
cat plan.json >plan.fifo
wait $pid
status=$?
checks=$((checks + 1))
[ $status = 0 ] && grep -q '^step 1/1' fifo.txt || fail "the plan from the FIFO did not run ($status): $(cat fifo.txt)"

finish test_pprun_input
