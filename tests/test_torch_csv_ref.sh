#!/usr/bin/env bash
# test_torch_csv_ref.sh PPCC — ppcc's PyTorch CSV export and import against
# PyTorch itself (tests/ref/torch_csv_roundtrip.py, docs/torch.md), run with
# $PP_REF_PYTHON, a python that has torch.  Opt-in like test_ref_orders:
# skips (77) when PP_REF_PYTHON is unset or torch is not importable there.
set -u
src=${PP_SOURCE_ROOT:?}
py=${PP_REF_PYTHON:-}
[ -n "$py" ] || { echo "PP_REF_PYTHON is not set: skipped (docs/torch.md)"; exit 77; }
command -v "$py" >/dev/null || { echo "PP_REF_PYTHON=$py: not found"; exit 1; }
exec "$py" "$src/tests/ref/torch_csv_roundtrip.py" "$1"
