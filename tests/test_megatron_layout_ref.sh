#!/usr/bin/env bash
# test_megatron_layout_ref.sh PPCC — ppcc's Megatron layout strings against
# Megatron-LM's own parser (tests/ref/megatron_layout_ref.py, docs/megatron.md),
# run with $PP_REF_PYTHON, a python that has megatron-core.  Opt-in like
# test_torch_csv_ref: skips (77) when PP_REF_PYTHON is unset or megatron.core
# is not importable there.
set -u
src=${PP_SOURCE_ROOT:?}
py=${PP_REF_PYTHON:-}
[ -n "$py" ] || { echo "PP_REF_PYTHON is not set: skipped (docs/megatron.md)"; exit 77; }
command -v "$py" >/dev/null || { echo "PP_REF_PYTHON=$py: not found"; exit 1; }
exec "$py" "$src/tests/ref/megatron_layout_ref.py" "$1"
