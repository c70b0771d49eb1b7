#!/usr/bin/env bash
# test_cli.sh — the ppcc command line as users meet it: exit codes (0 ok,
# 1 input error, 2 usage), messages that name what is wrong, plans written
# whole or not at all, and no crash on mangled files.
#   test_cli.sh PATH/TO/ppcc
set -u
ppcc=$1
src=${PP_SOURCE_ROOT:?}
. "$(dirname "$0")/lib.sh"

no_plan_left() {
    checks=$((checks + 1))
    local left
    left=$(find . -name '*.json*' | head -5)
    [ -z "$left" ] || fail "$1: left files behind: $left"
}

# Usage errors exit 2, each one as "ppcc: error: ...".
expect 0 'usage: ppcc FILE.pp' -- "$ppcc" --help
expect 0 '^ppcc [0-9]' -- "$ppcc" --version
expect 2 '^ppcc: error: expected one schedule file' -- "$ppcc"
expect 2 "^ppcc: error: unknown option '--bogus'" -- "$ppcc" --bogus "$src/schedules/1f1b.pp"
expect 2 "^ppcc: error: option '-o' needs a value" -- "$ppcc" "$src/schedules/1f1b.pp" -o
expect 2 "^ppcc: error: --width expects an integer" -- "$ppcc" "$src/schedules/1f1b.pp" --width abc
expect 2 "^ppcc: error: -D expects NAME=VALUE" -- "$ppcc" "$src/schedules/1f1b.pp" -D devices
expect 2 "^ppcc: error: -D expects NAME=VALUE, got '=4'" -- "$ppcc" "$src/schedules/1f1b.pp" -D =4
expect 2 '^ppcc: error: expected exactly one schedule file' -- "$ppcc" a.pp b.pp
expect 0 '1f1b' -- "$ppcc" --list-policies
expect 2 '^ppcc: error: --compare prints its table alone' -- "$ppcc" "$src/schedules/1f1b.pp" --compare 1f1b,gpipe -o plan.json
expect 2 "^ppcc: error: --compare expects policy names separated by commas, got ''" -- "$ppcc" "$src/schedules/1f1b.pp" --compare ''
expect 2 "^ppcc: error: --compare expects .*got 'gpipe,'" -- "$ppcc" "$src/schedules/1f1b.pp" --compare gpipe,
# a misspelt policy is an input error with the same hint as 'schedule 1f1c' in a file
expect 1 "^ppcc: error: --compare: unknown policy '1f1c'; did you mean 1f1b\\? \\(see --list-policies\\)\$" -- "$ppcc" "$src/schedules/1f1b.pp" --compare gpipe,1f1c
expect 2 "^ppcc: error: a schedule read from standard input \('-'\) needs -o" -- "$ppcc" - <"$src/schedules/1f1b.pp"
# An empty path is a usage error, the same for every path option (and as pprun's).
expect 2 "^ppcc: error: -o: empty file name\$" -- "$ppcc" "$src/schedules/1f1b.pp" -o ''
expect 2 "^ppcc: error: --trace: empty file name\$" -- "$ppcc" "$src/schedules/1f1b.pp" --trace ''
# No option is silently ignored: an option with a value given twice (the
# second used to win), and what shapes the timeline without --timeline.
expect 2 "^ppcc: error: -o given twice \('a.json', then 'b.json'\)\$" -- "$ppcc" "$src/schedules/1f1b.pp" -o a.json -o b.json
expect 2 "^ppcc: error: --trace given twice \('a.json', then 'b.json'\)\$" -- "$ppcc" "$src/schedules/1f1b.pp" --trace a.json --trace=b.json
expect 2 "^ppcc: error: --compare given twice \('gpipe', then '1f1b'\)\$" -- "$ppcc" "$src/schedules/1f1b.pp" --compare gpipe --compare 1f1b
expect 2 "^ppcc: error: --width given twice \('90', then '100'\)\$" -- "$ppcc" "$src/schedules/1f1b.pp" --timeline --width 90 --width 100
expect 2 "^ppcc: error: --width shapes the timeline, which only --timeline prints: give --timeline too\$" -- "$ppcc" "$src/schedules/1f1b.pp" --stats --width 100
expect 2 "^ppcc: error: --compact shapes the timeline, which only --timeline prints: give --timeline too\$" -- "$ppcc" "$src/schedules/1f1b.pp" --compact -o plan.json
expect 2 "^ppcc: error: -o - and --trace - would both write to standard output\$" -- "$ppcc" "$src/schedules/1f1b.pp" --trace - -o -
# flags may repeat (they say the same thing twice); -D may repeat: a later one wins (docs/dsl.md)
expect 0 '^schedule=1f1b devices=8 ' -- "$ppcc" "$src/schedules/1f1b.pp" --stats --stats -D devices=2 -D devices=8
# '--' ends the options, as getopt's convention is: a file named like an
# option is read after it; an unknown short option is named, even inside a word
cp "$src/schedules/1f1b.pp" ./-x.pp
expect 0 '^schedule=1f1b ' -- "$ppcc" --stats -- -x.pp
expect 2 "^ppcc: error: unknown option '-x'\$" -- "$ppcc" --stats -x.pp
expect 2 '^ppcc: error: expected exactly one schedule file' -- "$ppcc" -- -x.pp --stats
expect 0 '' -- "$ppcc" -- -x.pp
checks=$((checks + 1)); [ -s ./-x.json ] || fail "ppcc -- -x.pp wrote no -x.json"
rm -f ./-x.pp ./-x.json
no_plan_left usage

# Every shipped schedule compiles to a well-formed plan.
for f in "$src"/schedules/*.pp; do
    name=$(basename "$f" .pp)
    expect 0 '' -- "$ppcc" "$f" -o "$name.json"
    checks=$((checks + 1))
    python3 - "$name.json" <<'PY' || fail "$name.json is not a valid plan"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["format"] == "ppcc-plan" and p["version"] == 2, p.get("format")
assert len(p["devices"]) == p["pipeline"]["devices"]
for d in p["devices"]:
    assert d["ops"][-1]["op"] == "flush"
PY
    rm -f "$name.json"
done

# Without -o, the plan goes to NAME.json; --timeline / --stats alone write none.
expect 0 '' -- "$ppcc" "$src/schedules/1f1b.pp"
checks=$((checks + 1)); [ -s 1f1b.json ] || fail "default output 1f1b.json missing"
rm -f 1f1b.json
expect 0 'bubble' -- "$ppcc" "$src/schedules/1f1b.pp" --timeline
expect 0 'bubble' -- "$ppcc" "$src/schedules/1f1b.pp" --stats -D microbatches=32
# GPipe 4x8, 8 layers, recompute: 7 kept inputs of 4/(2*8) = 0.25 plus one full set
# (version-1 lists: the sets alone).
expect 0 'peak_act=\[1,1,1,1\] peak_mem=\[2.75,2.75,2.75,2.75\]$' -- "$ppcc" "$src/schedules/gpipe.pp" --stats -D recompute=always -D overlap=false
expect 0 'peak_act=\[8,8,8,8\] peak_mem=\[8,8,8,8\]$' -- "$ppcc" "$src/schedules/gpipe.pp" --stats -D overlap=false
# With overlap each of devices 0-2 also holds the gradient it posted for
# while its last forward runs: one buffer of 0.25 (docs/costs.md, "Posted receives").
expect 0 'peak_act=\[8,8,8,8\] peak_mem=\[8.25,8.25,8.25,8\]$' -- "$ppcc" "$src/schedules/gpipe.pp" --stats
no_plan_left "--timeline/--stats"
expect 0 '"format": ?"ppcc-plan"' -- "$ppcc" "$src/schedules/1f1b.pp" -o -
no_plan_left "-o -"

# Input errors exit 1 and leave no plan.
printf 'devices = 4\nmicrobatches = = 8\n' >bad.pp
expect 1 '^bad\.pp:2:16: error: ' -- "$ppcc" bad.pp -o plan.json
checks=$((checks + 1)); grep -Eq '^ +\| +\^$' out.txt || fail "syntax error without a caret line"
expect 1 'devices' -- "$ppcc" "$src/schedules/1f1b.pp" -D devices=abc -o plan.json
expect 1 'nosuch' -- "$ppcc" "$src/schedules/1f1b.pp" -D nosuch=1 -o plan.json
expect 1 'no-such-policy' -- "$ppcc" "$src/schedules/1f1b.pp" -D schedule=no-such-policy -o plan.json
expect 1 'device [0-9]+.*(memory|limit)' -- "$ppcc" "$src/schedules/1f1b.pp" -D memory.limit=1 -o plan.json
expect 1 'missing\.pp' -- "$ppcc" missing.pp -o plan.json
expect 1 'cannot (create|write)' -- "$ppcc" "$src/schedules/1f1b.pp" -o /nonexistent-dir/plan.json
expect 1 'cannot create /nonexistent-dir/t.json' -- "$ppcc" "$src/schedules/1f1b.pp" --trace /nonexistent-dir/t.json -o plan.json
no_plan_left "input errors"

# Layers, balance and micro-batches (docs/costs.md): a bad sweep is usage
# (exit 2), what the file cannot meet is input (exit 1); neither leaves a plan.
b="$src/schedules/balance.pp"
expect 2 "^ppcc: error: --sweep microbatches=8\.\.2: the range is empty" -- "$ppcc" "$b" --sweep microbatches=8..2
expect 2 "^ppcc: error: --sweep expects microbatches=A\.\.B .*got 'devices=1\.\.4'" -- "$ppcc" "$b" --sweep devices=1..4
expect 2 "^ppcc: error: --sweep microbatches=A\.\.B: A and B must be integers from 1 to [0-9]+, got '0\.\.4'" -- "$ppcc" "$b" --sweep microbatches=0..4
expect 2 "^ppcc: error: --sweep microbatches=1,,2: each value must be an integer" -- "$ppcc" "$b" --sweep microbatches=1,,2
expect 2 "^ppcc: error: --sweep microbatches=1\.\.9999: 9999 rows, more than 4096" -- "$ppcc" "$b" --sweep microbatches=1..9999
expect 2 "^ppcc: error: --sweep prints its table alone" -- "$ppcc" "$b" --sweep microbatches=1..4 -o plan.json
expect 2 "^ppcc: error: --sweep prints its table alone: drop .* and --shapes" -- "$ppcc" "$b" --sweep microbatches=1..4 --shapes
expect 2 "^ppcc: error: --sweep given twice" -- "$ppcc" "$b" --sweep microbatches=1..4 --sweep microbatches=2
expect 0 "^ +8 +117 .* yes +<-best$" -- "$ppcc" "$b" --sweep microbatches=1..8 -D model.balance=[3,4,3,2]
expect 1 "^ppcc: error: model\.balance = auto: no split of the 12 layers over 4 stages fits memory\.limit = 16 under schedule 1f1b \(166 compiled\): the closest, balance \[2,2,4,4\], peaks at 21 on device 2$" -- "$ppcc" "$b" -D memory.limit=16 -o plan.json
expect 1 "^ppcc: error: model\.balance = auto: layer 0 \(embedding\) alone holds 4 of weights, over memory\.limit = 3" -- "$ppcc" "$b" -D memory.limit=3 -o plan.json
expect 1 "^ppcc: error: device 0, op [0-9]+ \(F0\.[0-9]\): holds memory [0-9.]+ \(static 9 \+ activations" -- "$ppcc" "$b" -D model.balance=[6,2,2,2] -o plan.json
expect 1 "^ppcc: error: microbatches = auto: no M from 1 to 64 \(microbatches\.max\) has a bubble of at most 1%" -- "$ppcc" "$b" -D microbatches=auto -D microbatches.bubble=0.01 -o plan.json
expect 1 "^ppcc: error: -D microbatches=many: expected an integer, or auto" -- "$ppcc" "$b" -D microbatches=many -o plan.json
no_plan_left "layers, balance, micro-batches"

# Outputs never harm a file (docs/outputs.md).
no_temporaries() {
    checks=$((checks + 1))
    local left
    left=$(find . -name '*.tmp*' | head -5)
    [ -z "$left" ] || fail "$1: temporaries left: $left"
}
"$ppcc" "$src/schedules/1f1b.pp" -o want.json || fail "cannot compile 1f1b.pp"
# a character device and a FIFO are written through, never replaced
if mknod null c 1 3 2>/dev/null && mknod full c 1 7 2>/dev/null; then
    devnull=null devfull=full
else
    devnull=/dev/null devfull=/dev/full # not root: /dev is not ours to break anyway
fi
expect 0 '' -- "$ppcc" "$src/schedules/1f1b.pp" -o "$devnull"
checks=$((checks + 1)); [ -c "$devnull" ] || fail "-o $devnull replaced the device"
mkfifo fifo
timeout 20 cat fifo >from-fifo.json &
expect 0 '' -- "$ppcc" "$src/schedules/1f1b.pp" -o fifo
wait
checks=$((checks + 1)); [ -p fifo ] && cmp -s from-fifo.json want.json || fail "-o FIFO: not written through"
# a device that fails names itself; an output written before it is not left
expect 1 "^ppcc: error: cannot write $devfull: No space left on device\$" -- "$ppcc" "$src/schedules/1f1b.pp" --trace t.json -o "$devfull"
checks=$((checks + 1)); [ -c "$devfull" ] && [ ! -e t.json ] || fail "-o $devfull: the device was replaced or --trace was left"
# a symbolic link: its target is replaced, with its mode; the link stays
echo old >target.json; chmod 640 target.json; ln -s target.json link.json
expect 0 '' -- "$ppcc" "$src/schedules/1f1b.pp" -o link.json
checks=$((checks + 1))
[ -L link.json ] && cmp -s target.json want.json && [ "$(stat -c %a target.json)" = 640 ] ||
    fail "-o LINK: link replaced, or its target not written with its mode"
ln -s nowhere.json dangling.json
expect 1 'cannot create dangling.json: it is a symbolic link to a missing file' -- "$ppcc" "$src/schedules/1f1b.pp" -o dangling.json
# new files get 0666 less the umask; a replaced file keeps its mode
(umask 027 && "$ppcc" "$src/schedules/1f1b.pp" -o new.json) || fail "cannot write new.json"
echo old >kept.json; chmod 604 kept.json
expect 0 '' -- "$ppcc" "$src/schedules/1f1b.pp" -o kept.json
checks=$((checks + 1))
[ "$(stat -c %a new.json) $(stat -c %a kept.json)" = "640 604" ] ||
    fail "modes: new $(stat -c %a new.json) (want 640), kept $(stat -c %a kept.json) (want 604)"
# the input is never the output, by any name
cp "$src/schedules/1f1b.pp" same.pp; mkdir sub; ln same.pp hard.pp
for out in same.pp ./sub/../same.pp hard.pp; do
    expect 1 "^ppcc: error: -o $out would overwrite the schedule same.pp\$" -- "$ppcc" same.pp -o "$out"
done
checks=$((checks + 1)); cmp -s same.pp "$src/schedules/1f1b.pp" || fail "the schedule was overwritten"
expect 1 '^ppcc: error: --trace t.json and -o ./t.json are the same file$' -- "$ppcc" same.pp --trace t.json -o ./t.json
expect 1 '^ppcc: error: --trace - and -o /dev/stdout both write to standard output$' -- "$ppcc" same.pp --trace - -o /dev/stdout
# A path naming a descriptor the shell opened (/dev/stdout, /dev/stderr,
# /dev/fd/N, /proc/self/fd/N), or the file standard output or error is
# open on, is written through that descriptor as '-' is: with >> it
# appends, with > it writes where the shell's other writes go; the file is
# never replaced (it was: the shell's earlier and later writes were lost).
appended() { # FILE: "old", then the plan alone, in FILE
    checks=$((checks + 1))
    python3 - "$1" want.json <<'PY' || fail "$2: $1 is not 'old' then the plan"
import json, sys
text = open(sys.argv[1]).read()
assert text.startswith("old\n"), text[:40]
assert json.loads(text[4:]) == json.load(open(sys.argv[2]))
PY
}
for out in /dev/stdout /dev/fd/1 /proc/self/fd/1 log.txt; do
    echo old >log.txt
    "$ppcc" "$src/schedules/1f1b.pp" -o "$out" >>log.txt || fail "-o $out >>log.txt failed"
    appended log.txt "-o $out >>"
    # with >, what the shell writes before and after stays in the same file
    ino=$(stat -c %i log.txt)
    { echo old; "$ppcc" "$src/schedules/1f1b.pp" -o "$out" --stats; echo tail; } >log.txt 2>stats.txt
    checks=$((checks + 1))
    [ "$(head -1 log.txt)" = old ] && [ "$(tail -1 log.txt)" = tail ] && [ "$(stat -c %i log.txt)" = "$ino" ] &&
        grep -q '^schedule=1f1b ' stats.txt || fail "-o $out >log.txt: replaced the file, or --stats not on stderr"
done
for out in /dev/stderr /dev/fd/2 /proc/self/fd/2; do
    echo old >log.txt
    "$ppcc" "$src/schedules/1f1b.pp" -o "$out" 2>>log.txt || fail "-o $out 2>>log.txt failed"
    appended log.txt "-o $out 2>>"
done
echo old >log.txt
"$ppcc" "$src/schedules/1f1b.pp" -o /dev/fd/3 3>>log.txt || fail "-o /dev/fd/3 3>>log.txt failed"
appended log.txt "-o /dev/fd/3 3>>"
ln -sf /dev/stdout to-stdout.json # a link to one leads there too
echo old >log.txt
"$ppcc" "$src/schedules/1f1b.pp" --trace t.json -o to-stdout.json >>log.txt || fail "-o LINK-TO-/dev/stdout failed"
appended log.txt "-o to-stdout.json >>"
checks=$((checks + 1)); [ -L to-stdout.json ] && [ -s t.json ] || fail "-o to-stdout.json: the link was replaced or --trace lost"
rm -f to-stdout.json t.json
# a descriptor that is not open, open for reading only, or ppcc's own (the
# temporary of --trace is the first descriptor it opens: 3, once closed)
expect 1 '^ppcc: error: cannot write /dev/fd/9: descriptor 9 is not open$' -- bash -c 'exec 9>&- && exec "$0" same.pp -o /dev/fd/9' "$ppcc"
expect 1 '^ppcc: error: cannot write /dev/stdin: standard input is open for reading only$' -- bash -c 'exec "$0" same.pp -o /dev/stdin <same.pp' "$ppcc"
expect 1 '^ppcc: error: cannot write /dev/fd/3: descriptor 3 is one ppcc opened itself, not one it was given$' -- \
    bash -c 'exec 3>&- && exec "$0" same.pp --trace t.json -o /dev/fd/3' "$ppcc"
# redirected into the input, by any name
cp same.pp same.bak
expect 1 '^ppcc: error: -o - would write into the schedule same.pp$' -- bash -c 'exec "$0" same.pp -o - >>same.pp' "$ppcc"
expect 1 '^ppcc: error: -o /dev/stdout would write into the schedule same.pp$' -- bash -c 'exec "$0" same.pp -o /dev/stdout >>same.pp' "$ppcc"
checks=$((checks + 1)); cmp -s same.pp same.bak || fail "the schedule was written into"
rm -f log.txt stats.txt same.bak
# outputs are checked before any work: the bad file is not even read
expect 1 '^ppcc: error: cannot create nodir/p.json: the directory nodir does not exist$' -- "$ppcc" bad.pp -o nodir/p.json
checks=$((checks + 1)); [ "$(wc -l <out.txt)" = 1 ] || fail "the schedule was compiled before the output was checked"
expect 1 '^ppcc: error: cannot write sub: it is a directory$' -- "$ppcc" same.pp -o sub
# -o - carries the plan alone: --stats and --timeline go to standard error
checks=$((checks + 1))
"$ppcc" "$src/schedules/1f1b.pp" -o - --stats --timeline 2>text.txt >stdout.json &&
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' stdout.json && grep -q 'bubble' text.txt ||
    fail "-o - --stats --timeline: stdout is not the plan alone, or the reports are missing"
# SIGTERM while the plan is written (to a FIFO nobody reads) removes the
# --trace temporary: neither output stays
mkfifo stuck
exec 3<>stuck # a reader that never reads: the writer blocks
"$ppcc" "$src/schedules/1f1b.pp" -D microbatches=512 -D batch=512 --trace t.json -o stuck 2>/dev/null &
pid=$!
for _ in $(seq 100); do # until the trace is staged (the plan is written after it)
    [ -n "$(find . -maxdepth 1 -name '.t.json.tmp-*' -size +0 | head -1)" ] && break
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
st=$?
exec 3>&-
checks=$((checks + 1)); [ "$st" = 143 ] || fail "SIGTERM while writing: exit $st, want 143"
checks=$((checks + 1)); [ ! -e t.json ] || fail "SIGTERM while writing: --trace was left"
no_temporaries "signal"
rm -f want.json from-fifo.json target.json link.json dangling.json new.json kept.json stdout.json
no_temporaries "outputs"

# Inputs (docs/dsl.md "Reading the file").
# '-' reads standard input, named <stdin> in errors.
expect 0 '^schedule=1f1b ' -- "$ppcc" - --stats <"$src/schedules/1f1b.pp"
printf 'schedule 1f1c\n' >typo.pp
expect 1 '^<stdin>:1:10: error: schedule: unknown policy .1f1c.; did you mean 1f1b\?' -- "$ppcc" - --stats <typo.pp
expect 1 '^typo\.pp:1:10: error: schedule: unknown policy' -- "$ppcc" typo.pp --stats
# CR-only and CRLF line ends: comments end there (a CR-only file used to be
# one comment, and the defaults compiled silently).
tr '\n' '\r' <"$src/schedules/custom.pp" >cr.pp
expect 0 '^schedule=custom ' -- "$ppcc" cr.pp --stats
sed 's/$/\r/' "$src/schedules/custom.pp" >crlf.pp
expect 0 '^schedule=custom ' -- "$ppcc" crlf.pp --stats
# A UTF-8 byte order mark is accepted.
{ printf '\357\273\277'; cat "$src/schedules/gpipe.pp"; } >bom.pp
expect 0 '^schedule=gpipe ' -- "$ppcc" bom.pp --stats
# Bytes that would not show as themselves are echoed as '?', one column each, as control
# characters are: ill-formed UTF-8 (echoed raw, it garbled the terminal) and a byte order
# mark past the start (it printed as nothing); the columns count them alike.
printf 'devices = 4 \377 x\n' >ff.pp
expect 1 '^ff\.pp:1:13: error: unexpected byte 0xff$' -- "$ppcc" ff.pp --stats
checks=$((checks + 1))
grep -q '^     1 | devices = 4 ? x$' out.txt && ! LC_ALL=C grep -q $'\377' out.txt || fail "0xff echoed raw: $(cat -A out.txt)"
printf 'devices = 4 \200\200 x\n' >cont.pp
expect 1 '^cont\.pp:1:14: error: unexpected byte 0x80$' -- "$ppcc" cont.pp --stats
checks=$((checks + 1)); grep -q '^       |              \^$' out.txt || fail "stray continuation bytes: caret misplaced: $(cat -A out.txt)"
printf 'devices = 4\n\357\273\277microbatches = 8\n' >midbom.pp
expect 1 '^midbom\.pp:2:1: error: unexpected U\+FEFF, a byte order mark \(only the start of the file may hold one\)$' -- "$ppcc" midbom.pp --stats
checks=$((checks + 1))
grep -q '^     2 | ?microbatches = 8$' out.txt && ! LC_ALL=C grep -q $'\357\273\277' out.txt || fail "a mid-file BOM echoed raw: $(cat -A out.txt)"
# Nothing to compile is an error, not the default plan.
: >empty.pp
expect 1 '^ppcc: error: empty\.pp: empty: nothing to compile$' -- "$ppcc" empty.pp --stats
printf '# only a comment\n\n' >comments.pp
expect 1 '^ppcc: error: comments\.pp: no settings: the file holds only comments' -- "$ppcc" comments.pp --stats
expect 1 '^ppcc: error: <stdin>: empty' -- "$ppcc" - --stats </dev/null
# Bounded reads: a file over 64 MiB is refused before it is read, an endless
# device after 64 MiB, a directory at once; NUL bytes once, precisely.
truncate -s 65M big.pp
expect 1 '^ppcc: error: big\.pp: 68157440 bytes, more than a schedule file may have \(64 MiB\)$' -- "$ppcc" big.pp --stats
expect 1 '^ppcc: error: /dev/zero: more than a schedule file may have \(64 MiB\)' -- "$ppcc" /dev/zero --stats
expect 1 '^ppcc: error: cannot read \.: it is a directory' -- "$ppcc" . --stats
printf 'devices = 4\0\0\n' >nul.pp
expect 1 '^nul\.pp:1:12: error: NUL byte: a schedule file is text \(2 NUL bytes, the first here\)$' -- "$ppcc" nul.pp --stats
checks=$((checks + 1))
[ "$(grep -c error out.txt)" = 1 ] || fail "NUL bytes: more than one error"
# A FIFO with no writer is not waited for (it reads as empty); one with a
# writer already there, and a pipe from a process substitution, are read.
mkfifo fifo.pp
expect 1 '^ppcc: error: fifo\.pp: empty: .*FIFO.*no writer' -- timeout 20 "$ppcc" fifo.pp --stats
expect 0 '^schedule=1f1b ' -- "$ppcc" <(cat "$src/schedules/1f1b.pp") --stats
# Errors on a huge line print a window of it: 20 errors on a 2 MB line
# made 40 MB of messages.
{ printf 'devices = 4 '; head -c 2000000 /dev/zero | tr '\0' '@'; printf '\n'; } >wide.pp
expect 1 '^wide\.pp:1:13: error: unexpected character' -- "$ppcc" wide.pp --stats
checks=$((checks + 1))
[ "$(wc -c <out.txt)" -lt 8000 ] || fail "errors on a 2 MB line: $(wc -c <out.txt) bytes"
# The model's limits are pprun's: refused at compile time, at the key.
expect 1 '^ppcc: error: -D batch=33554432: must be between 1 and 16777216$' -- "$ppcc" "$src/schedules/1f1b.pp" -D batch=33554432 --stats
expect 1 '^ppcc: error: -D hidden=65536: 8 layers of 65536 x 65536 weights' -- "$ppcc" "$src/schedules/1f1b.pp" -D hidden=65536 --stats
no_plan_left "inputs"

# The golden error files are what ppcc itself prints for their schedule
# (test_custom and test_dsl compare the passes with them, so they must be
# the command line's truth: a test compiling another way let the op
# indices of mem_limit.err drift from ppcc's). The hand_* goldens are of
# plans built by hand, not of a file.
for f in "$src"/tests/golden/custom/*.pp "$src"/tests/golden/dsl/*.pp; do
    rel=${f#"$src"/}
    case $(basename "$f") in hand_*) continue ;; esac
    checks=$((checks + 1))
    (cd "$src" && "$ppcc" "$rel" --stats) >/dev/null 2>golden.txt
    st=$?
    [ "$st" = 1 ] && cmp -s golden.txt "${f%.pp}.err" ||
        { fail "ppcc $rel: exit $st, or its messages differ from ${rel%.pp}.err:"; diff "${f%.pp}.err" golden.txt | head -5 >&2; }
done

# model gpt's data file (docs/gpt.md, "Data"), found relative to the
# schedule file's directory, from the current one after -D: one that is
# missing, empty, shorter than a sequence, a directory or a FIFO (opened
# without waiting for a writer) is an error at model.data; a vocabulary
# below the 256 byte values of the file is one at model.vocab.
mkdir -p gptdata
printf 'model gpt { seq = 8 data = "corpus.txt" }\n' >gptdata/g.pp
expect 1 '^gptdata/g.pp:1:28: error: model.data: "corpus.txt" \(read from the schedule file.s directory: gptdata/corpus.txt\) cannot be opened: No such file or directory$' -- "$ppcc" gptdata/g.pp --stats
: >gptdata/corpus.txt
expect 1 'error: model.data: "corpus.txt" \(.*\) is empty$' -- "$ppcc" gptdata/g.pp --stats
printf '12345678' >gptdata/corpus.txt
expect 1 'error: model.data: .* holds 8 bytes, fewer than seq \+ 1 = 9 \(a sequence and the token after it\)$' -- "$ppcc" gptdata/g.pp --stats
printf '123456789' >gptdata/corpus.txt
expect 0 '' -- "$ppcc" gptdata/g.pp --stats
expect 1 '^ppcc: error: -D model.data=gptdata: "gptdata" is a directory, not a regular file$' -- "$ppcc" gptdata/g.pp --stats -D model.data=gptdata
mkfifo gptdata/fifo
expect 1 '^ppcc: error: -D model.data=gptdata/fifo: "gptdata/fifo" is not a regular file \(a FIFO\)' -- timeout 10 "$ppcc" gptdata/g.pp --stats -D model.data=gptdata/fifo
expect 1 '^ppcc: error: -D model.data="": expected a file name, not an empty one$' -- "$ppcc" gptdata/g.pp --stats -D 'model.data=""'
expect 1 '^ppcc: error: -D vocab=100: 100 is fewer than the 256 byte values of a data file \(each byte is a token; model.data is set\)$' -- "$ppcc" gptdata/g.pp --stats -D vocab=100
expect 0 '' -- "$ppcc" gptdata/g.pp --stats -D vocab=100 -D data=none
rm -rf gptdata

# Memory in bytes on hardware: the device's memory is the limit unless the
# file gives one, and the error names the device, the op, the bytes and the
# limit in GB (docs/hardware.md, "Sizes").
gpt2=$src/schedules/gpt2-small-4gpu.pp
expect 1 '^ppcc: error: device 0, op 6 \(F0\.3\): holds memory 3\.386GB \(static 0\.9704GB \+ activations 2\.416GB\), over the memory limit 3GB \(peak memory 3\.386GB\)$' -- "$ppcc" "$gpt2" --stats -D memory.limit=3GB -D overlap=false
expect 0 'peak_mem=\[3\.386GB,2\.152GB,1\.548GB,2\.398GB\]' -- "$ppcc" "$gpt2" --stats -D overlap=false
expect 0 'peak_mem=\[3\.386GB' -- "$ppcc" "$gpt2" --stats -D hardware=h200 -D overlap=false
# overlap (the default) adds the buffers of the recvs posted ahead where they are held at the peak
expect 0 'peak_mem=\[3\.386GB,2\.158GB,1\.554GB,2\.404GB\]' -- "$ppcc" "$gpt2" --stats
expect 1 'over the memory limit 2GB' -- "$ppcc" "$gpt2" --stats -D memory.limit=2GB -D hardware=h200
# Its activations come from its layers: memory.activation and .input are refused, not ignored.
expect 1 "^ppcc: error: -D memory.activation=30GB: model gpt on hardware h100 counts each stage's activations from its layers" -- "$ppcc" "$gpt2" --stats -D memory.activation=30GB
expect 1 "^ppcc: error: -D memory.input=1GB: model gpt on hardware h100 counts each stage's activations and the input" -- "$ppcc" "$gpt2" --stats -D memory.input=1GB
# A gpt's micro-batch costs come from batch / microbatches: a reference in the file is refused, not ignored.
sed 's/^microbatches = 16$/microbatches = 16\nmicrobatches.reference = 4/' "$gpt2" >gpt_ref.pp
expect 1 "^gpt_ref.pp:[0-9]+:1: error: microbatches.reference: model gpt derives each micro-batch's costs from batch / microbatches" -- "$ppcc" gpt_ref.pp --stats
# Recompute keeps each block's input only: less memory on every stage but the last (whose head is not recomputed)
expect 0 'peak_mem=\[1\.574GB,0\.9568GB,0\.9505GB,2\.398GB\]' -- "$ppcc" "$gpt2" --stats -D recompute=always -D overlap=false

# Mangled files: an error or a plan, never a crash (ASan builds abort on a
# memory error, which shows here as a status above 2).
i=0
for f in "$src"/schedules/*.pp; do
    size=$(wc -c <"$f")
    for cut in 1 7 19 33 64 101 150 222 300; do
        [ "$cut" -lt "$size" ] || continue
        head -c "$cut" "$f" >m.pp
        "$ppcc" m.pp --stats >/dev/null 2>&1
        st=$?
        checks=$((checks + 1))
        [ $st -le 1 ] || fail "prefix $cut of $f: exit $st"
        # Flip one byte to a character the language gives meaning to.
        for ch in '{' '}' '=' '[' '"' '#' '-' '9'; do
            i=$((i + 1))
            head -c "$cut" "$f" >m.pp
            printf '%s' "$ch" >>m.pp
            tail -c +"$((cut + 2))" "$f" >>m.pp
            "$ppcc" m.pp --stats >/dev/null 2>&1
            st=$?
            checks=$((checks + 1))
            [ $st -le 1 ] || fail "mutation $i of $f ($ch at $cut): exit $st"
        done
    done
done
no_plan_left "mutations"

finish test_cli
