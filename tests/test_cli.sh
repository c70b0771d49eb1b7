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

# Usage errors exit 2.
expect 0 'usage: ppcc FILE.pp' -- "$ppcc" --help
expect 0 '^ppcc [0-9]' -- "$ppcc" --version
expect 2 'expected one schedule file' -- "$ppcc"
expect 2 "unknown option '--bogus'" -- "$ppcc" --bogus "$src/schedules/1f1b.pp"
expect 2 "option '-o' needs a value" -- "$ppcc" "$src/schedules/1f1b.pp" -o
expect 2 "--width expects an integer" -- "$ppcc" "$src/schedules/1f1b.pp" --width abc
expect 2 "-D expects NAME=VALUE" -- "$ppcc" "$src/schedules/1f1b.pp" -D devices
expect 2 'exactly one schedule file' -- "$ppcc" a.pp b.pp
expect 0 '1f1b' -- "$ppcc" --list-policies
expect 2 '--compare prints its table alone' -- "$ppcc" "$src/schedules/1f1b.pp" --compare 1f1b,gpipe -o plan.json
no_plan_left usage

# Every shipped schedule compiles to a well-formed plan.
for f in "$src"/schedules/*.pp; do
    name=$(basename "$f" .pp)
    expect 0 '' -- "$ppcc" "$f" -o "$name.json"
    checks=$((checks + 1))
    python3 - "$name.json" <<'PY' || fail "$name.json is not a valid plan"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["format"] == "ppcc-plan" and p["version"] == 1, p.get("format")
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
# GPipe 4x8, 8 layers, recompute: 7 kept inputs of 4/(2*8) = 0.25 plus one full set.
expect 0 'peak_act=\[1,1,1,1\] peak_mem=\[2.75,2.75,2.75,2.75\]$' -- "$ppcc" "$src/schedules/gpipe.pp" --stats -D recompute=always
expect 0 'peak_act=\[8,8,8,8\] peak_mem=\[8,8,8,8\]$' -- "$ppcc" "$src/schedules/gpipe.pp" --stats
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
