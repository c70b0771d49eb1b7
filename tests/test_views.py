#!/usr/bin/env python3
"""test_views.py PPCC — every view of one compilation tells the same truth.

Peak memory (docs/recompute.md: one definition, memory.c) is the same
number, per device, in --stats (peak_mem), the --timeline summary, the plan
JSON (stats.peak_memory), the memory.limit error ("peak memory X") and the
--compare row of the same compilation.

Run from the build tree's test harness with PP_SOURCE_ROOT set.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

PPCC = sys.argv[1]
SRC = os.environ["PP_SOURCE_ROOT"]
fails = 0
checks = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, file=sys.stderr)


def ppcc(args, want_rc=0):
    r = subprocess.run([PPCC] + args, capture_output=True, text=True)
    if r.returncode != want_rc:
        fail("ppcc %s exited %d, want %d:\n%s%s" % (" ".join(args), r.returncode, want_rc, r.stdout, r.stderr))
        return None
    return r


def defs(settings):
    out = []
    for s in settings:
        out += ["-D", s]
    return out


def stats_of(text):
    """--stats line -> dict of its keys."""
    line = text.strip().splitlines()[-1]
    return dict(kv.split("=", 1) for kv in line.split())


def timeline_peaks(text):
    """The 'peak memory: d0 X, d1 Y' summary (wrapped lines included)."""
    at = text.find("peak memory:")
    if at < 0:
        return None
    rest = text[at + len("peak memory:"):]
    lines = [rest.split("\n")[0]]
    for more in rest.split("\n")[1:]:
        if not more.startswith("  "):
            break
        lines.append(more)
    return re.findall(r"d\d+ ([^,\s]+)", " ".join(lines))


def g(x):
    return "%g" % x


# Shapes with and without recompute, with activation sizes other than 1.
CASES = [
    ("gpipe.pp", ["recompute=always", "memory.activation=0.5"]),
    ("1f1b.pp", ["recompute=except_last", "memory.activation=2", "memory.input=0.3"]),
    ("zbv.pp", ["recompute=always"]),
    ("interleaved.pp", ["memory.activation=0.25"]),
    ("zb-h1.pp", ["recompute=always", "memory.activation=3"]),
    ("1f1b.pp", []),
]

with tempfile.TemporaryDirectory() as tmp:
    for name, settings in CASES:
        f = os.path.join(SRC, "schedules", name)
        label = "%s %s" % (name, " ".join(settings))
        d = defs(settings)
        st = ppcc([f, "--stats"] + d)
        tl = ppcc([f, "--timeline"] + d)
        plan_path = os.path.join(tmp, "plan.json")
        pl = ppcc([f, "-o", plan_path] + d)
        if not st or not tl or not pl:
            continue
        checks += 1
        peaks = stats_of(st.stdout)["peak_mem"].strip("[]").split(",")
        if timeline_peaks(tl.stdout) != peaks:
            fail("%s: timeline peak memory %s, --stats peak_mem %s" % (label, timeline_peaks(tl.stdout), peaks))
        checks += 1
        plan = json.load(open(plan_path))
        in_json = [g(x) for x in plan["stats"]["peak_memory"]]
        if in_json != peaks:
            fail("%s: plan JSON peak_memory %s, --stats peak_mem %s" % (label, in_json, peaks))
        # The limit error names each device's peak: the same number.
        values = [float(x) for x in peaks]
        limit = min(values) * 0.99
        err = ppcc([f, "--stats"] + d + ["-D", "memory.limit=%r" % limit], want_rc=1)
        if err:
            checks += 1
            seen = re.findall(r"device (\d+), op \d+ \([^)]*\): holds activation memory [^,]+, over the memory "
                              r"limit [^ ]+ \(peak memory ([^)]+)\)", err.stderr)
            if len(seen) != len(values):
                fail("%s: limit %r: %d memory errors for %d devices:\n%s" % (label, limit, len(seen), len(values),
                                                                          err.stderr))
            for dev, peak in seen:
                if peak != peaks[int(dev)]:
                    fail("%s: limit error says device %s peaks at %s, --stats %s" % (label, dev, peak,
                                                                                  peaks[int(dev)]))
        # --compare's row of the file's own policy is this compilation.
        policy = plan["pipeline"]["schedule"]
        cmp_ = ppcc([f, "--compare", policy] + d)
        if cmp_:
            checks += 1
            row = [l for l in cmp_.stdout.splitlines() if l.startswith(policy + " ")]
            if len(row) != 1 or " ".join(peaks) not in row[0]:
                fail("%s: --compare row %s does not show peak memory %s" % (label, row, " ".join(peaks)))

print("test_views: %d checks, %d failed" % (checks, fails))
sys.exit(1 if fails else 0)
