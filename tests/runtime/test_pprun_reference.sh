#!/usr/bin/env bash
# test_pprun_reference.sh PPRUN WRITE_PLAN — `pprun --dump` recomputed by
# tests/ref/mlp_reference.py (numpy): the dumped data and initial weights,
# trained independently, give the dumped final weights and losses.  And a
# tampered dump is caught.  Skips (77) without python3 + numpy.
set -u
pprun=$1 write_plan=$2
src=${PP_SOURCE_ROOT:?}
# the first python3 that has numpy (a pyenv shim may hide Debian's python3-numpy)
py=
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import numpy' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "python3 with numpy not found: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$src/tests/ref/mlp_reference.py"
fails=0
for plan in gpipe-4x8 zb-2x4; do
    "$write_plan" $plan "$tmp/$plan.json" || exit 1
    "$pprun" "$tmp/$plan.json" --steps 3 --dump "$tmp/$plan" >"$tmp/out.txt" 2>&1 ||
        { echo "FAIL: pprun $plan"; cat "$tmp/out.txt"; exit 1; }
    ls "$tmp/$plan"/*.tmp* >/dev/null 2>&1 && { echo "FAIL: temporary files left"; fails=$((fails + 1)); }
    "$py" "$ref" "$tmp/$plan" "$tmp/$plan.json" || { echo "FAIL: $plan differs from the reference"; fails=$((fails + 1)); }
done
# the comparison can fail: change the plan's lr under the dump
sed 's/"lr":[^,]*,/"lr": 0.07,/' "$tmp/gpipe-4x8.json" >"$tmp/wrong.json"
grep -q '"lr": 0.07' "$tmp/wrong.json" || { echo "FAIL: could not edit lr"; exit 1; }
if "$py" "$ref" "$tmp/gpipe-4x8" "$tmp/wrong.json"; then
    echo "FAIL: the reference accepted a run with another lr"; fails=$((fails + 1))
fi
[ $fails = 0 ] && echo "ok"
exit $((fails > 0))
