#!/usr/bin/env python3
"""test_schedule_claims.py PPCC — a shipped schedule's header states what ppcc predicts for it.

A schedules/*.pp may carry one line `# prediction: KEY=VALUE ...`, KEY one of --stats'
keys: ppcc FILE --stats must print each VALUE as written, and for a per-device key
(peak_mem=[...], zero_saved=[...]) VALUE is its largest device's entry.  So a change
to the cost model, the policy or the passes that moves a prediction fails here until
the header says the new number.

Run from the build tree's test harness with PP_SOURCE_ROOT set.
"""
import glob
import os
import re
import subprocess
import sys

PPCC = sys.argv[1]
SRC = os.environ["PP_SOURCE_ROOT"]
fails = checks = 0


def number(text):
    """'58.1GB' -> 58.1, '1.79863s' -> 1.79863: the value without its unit."""
    return float(re.match(r"[-+0-9.e]+", text).group(0))


for path in sorted(glob.glob(os.path.join(SRC, "schedules", "*.pp"))):
    claims = [l for l in open(path) if l.startswith("# prediction:")]
    if not claims:
        continue
    name = os.path.basename(path)
    r = subprocess.run([PPCC, path, "--stats"], capture_output=True, text=True)
    if r.returncode != 0:
        fails += 1
        print("FAIL: ppcc %s --stats exited %d:\n%s" % (name, r.returncode, r.stderr), file=sys.stderr)
        continue
    stats = dict(kv.split("=", 1) for kv in r.stdout.split())
    for key, want in (kv.split("=", 1) for kv in claims[0][len("# prediction:"):].split()):
        checks += 1
        have = stats.get(key)
        if have is not None and have.startswith("["):
            have = max(have.strip("[]").split(","), key=number)
        if have != want:
            fails += 1
            print("FAIL: %s says %s=%s, ppcc --stats prints %s" % (name, key, want, have), file=sys.stderr)
if checks == 0:
    fails += 1
    print("FAIL: no schedule states a prediction", file=sys.stderr)
print("test_schedule_claims: %d checks, %d failed" % (checks, fails))
sys.exit(1 if fails else 0)
