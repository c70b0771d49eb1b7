#!/usr/bin/env bash
# test_ref_orders.sh — the golden compute orders (tests/golden/orders*) are
# what the reference packages give today: runs tests/ref/generate_orders.py
# --check with $PP_REF_PYTHON, a python that has torch, megatron-core and
# deepspeed (docs/reference-orders.md).  Opt-in, since it runs the packages'
# schedules over every golden case (a minute of CPU): skips (77) when
# PP_REF_PYTHON is unset, or when the packages are missing there.
set -u
src=${PP_SOURCE_ROOT:?}
py=${PP_REF_PYTHON:-}
[ -n "$py" ] || { echo "PP_REF_PYTHON is not set: skipped (docs/reference-orders.md)"; exit 77; }
command -v "$py" >/dev/null || { echo "PP_REF_PYTHON=$py: not found"; exit 1; }
exec "$py" "$src/tests/ref/generate_orders.py" --check
