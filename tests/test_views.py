#!/usr/bin/env python3
"""test_views.py PPCC — every view of one compilation tells the same truth.

- Peak memory (docs/recompute.md: one definition, activation_memory.c) is the same
  number, per device, in --stats (peak_mem), the --timeline summary, the
  plan JSON (stats.peak_memory), the memory.limit error ("peak memory X")
  and the --compare row of the same compilation.
- Every --compare row is a compilation: `ppcc FILE -D ... SETTINGS --stats`
  with the row's printed settings gives its makespan, bubble and peak
  memory, fits (or fails at memory.limit, and gives them with
  -D memory.limit=0), or fails with the row's reason.
- auto's report ("auto: makespan X") is the makespan of the plan it writes,
  recompute and memory limit included.
- The bubble's split (fill/drain, imbalance, the bottleneck stage) is the same
  in --stats, the --timeline summary and the SVG's summary, its parts add up
  to the bubble, and it is what the plan's busy times and stage costs give
  by docs/timeline.md's definition.

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


def split_of(plan):
    """(fill_drain %, imbalance %, bottleneck stage) from the plan's busy times,
    makespan and stage costs, by docs/timeline.md's "The bubble, split"."""
    busy, ms = plan["stats"]["busy"], plan["stats"]["makespan"]
    D = len(busy)
    top = max(range(D), key=lambda d: (busy[d], -d))
    fill = 100 * (ms - busy[top]) / ms
    imbalance = 100 * (D * busy[top] - sum(busy)) / (D * ms)
    if busy[top] - min(busy) <= 1e-9 * busy[top]:
        return fill, imbalance, "none"
    c = plan["cost"]
    rec = set(plan["memory"].get("recompute_stages", []))
    per_mb = [c["stage_F"][s] * (2 if s in rec else 1) + c["stage_B"][s] + c["stage_W"][s]
              for s in range(len(c["stage_F"]))]
    mine = [s for s, dev in enumerate(plan["pipeline"]["placement"]) if dev == top]
    return fill, imbalance, str(max(mine, key=lambda s: (per_mb[s], -s)))


# Shapes with and without recompute, with activation sizes other than 1.
CASES = [
    ("gpipe.pp", ["recompute=always", "memory.activation=0.5"]),
    ("1f1b.pp", ["recompute=except_last", "memory.activation=2", "memory.input=0.3"]),
    ("zbv.pp", ["recompute=always"]),
    ("interleaved.pp", ["memory.activation=0.25"]),
    ("zb-h1.pp", ["recompute=always", "memory.activation=3"]),
    ("1f1b.pp", []),
    # memory in bytes (docs/hardware.md, "Views"): every view in GB
    ("1f1b.pp", ["memory.activation=1.5GB"]),
    ("zb-h1.pp", ["recompute=always", "memory.activation=3GiB", "memory.input=0.7GiB"]),
    # layers (docs/costs.md): per-stage sums, static memory, an uneven split
    ("balance.pp", ["model.balance=[3,4,3,2]", "memory.limit=0"]),
    ("balance.pp", ["model.balance=[2,3,4,3]", "memory.limit=0", "recompute=always", "schedule=zb-h1"]),
    ("1f1b.pp", ["model.balance=[1,1,3,3]", "memory.activation=2"]),
    # an uneven stage among chunks: the bottleneck is the busiest device's heaviest stage
    ("interleaved.pp", ["cost.stage.5.F=4"]),
    ("zbv.pp", ["cost.stage.6.B=3"]),
]


def shown(x, plan):
    """A size of the plan JSON as the text views show it."""
    if plan["memory"].get("unit") == "B":
        return "%.4gGB" % (x / 1e9)
    return g(x)

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
        in_json = [shown(x, plan) for x in plan["stats"]["peak_memory"]]
        if in_json != peaks:
            fail("%s: plan JSON peak_memory %s, --stats peak_mem %s" % (label, in_json, peaks))
        # The limit error names each device's peak: the same number.  Under a limit the lowering
        # holds posted receives back (docs/costs.md, "Posted receives"); below what every device's
        # sets alone take (the synchronous plan's peak) nothing can fit and nothing moves.
        values = plan["stats"]["peak_memory"]
        sync_path = os.path.join(tmp, "sync.json")
        if not ppcc([f, "-o", sync_path, "-D", "overlap=false"] + d):
            continue
        limit = min(json.load(open(sync_path))["stats"]["peak_memory"]) * 0.99
        unit = "B" if plan["memory"].get("unit") == "B" else ""
        err = ppcc([f, "--stats"] + d + ["-D", "memory.limit=%r%s" % (limit, unit)], want_rc=1)
        if err:
            checks += 1
            seen = re.findall(r"device (\d+), op \d+ \([^)]*\): holds (?:activation )?memory [^,]+, over the memory "
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
        # The bubble's split: the same in --stats, the timeline and the picture,
        # the parts adding up to the bubble, and what the plan's busy times and
        # stage costs give by docs/timeline.md's definition.
        checks += 1
        sv = stats_of(st.stdout)
        want = split_of(plan)
        have = (float(sv["fill_drain"].rstrip("%")), float(sv["imbalance"].rstrip("%")), sv["bottleneck_stage"])
        if abs(have[0] - want[0]) > 0.006 or abs(have[1] - want[1]) > 0.006 or have[2] != want[2] or \
                abs(have[0] + have[1] - float(sv["bubble"].rstrip("%"))) > 0.011:
            fail("%s: --stats split %s, the plan's busy and costs give %s (bubble %s)" % (label, have, want, sv["bubble"]))
        m = re.search(r"bubble ([\d.]+)% \(fill/drain ([\d.]+)%, imbalance ([\d.]+)%, (?:bottleneck stage )?(\w+)\)",
                      tl.stdout)
        if not m or abs(float(m.group(2)) - have[0]) > 0.051 or abs(float(m.group(3)) - have[1]) > 0.051 or \
                m.group(4).replace("balanced", "none") != have[2]:
            fail("%s: the timeline's split %s is not --stats' %s" % (label, m and m.groups(), have))
        svg_path = os.path.join(tmp, "t.svg")
        if ppcc([f, "--svg", svg_path] + d):
            summary = re.search(r'<text id="summary"[^>]*>([^<]*)<', open(svg_path).read())
            keys = dict(kv.split("=", 1) for kv in summary.group(1).split()) if summary else {}
            if [keys.get(k) for k in ("bubble", "fill_drain", "imbalance", "bottleneck_stage")] != \
                    [sv["bubble"], sv["fill_drain"], sv["imbalance"], sv["bottleneck_stage"]]:
                fail("%s: the picture's summary %s is not --stats'" % (label, summary and summary.group(1)))


def compare_rows(text):
    """(name, fields, peaks, settings, reason) for each row of a --compare table."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("policy "))
    rate = "tokens/s/dev" in lines[start]  # a gpt on hardware: tokens/s and MFU after the peaks
    rows = []
    for l in lines[start + 1:]:
        if l.startswith("best"):  # --shapes: the summary after the table
            break
        if l.startswith(" "):
            m = re.match(r"\s+cannot run: (.*)$", l)
            if not m or not rows:
                fail("unexpected line in --compare: %r" % l)
                continue
            rows[-1][4] = m.group(1)
            continue
        at = l.find(" -D ")
        head, settings = l[:at].split(), re.findall(r"-D (\S+)", l[at:])
        rows.append([head[0], head[1:6], head[6:-2] if rate else head[6:], settings, None])
    return rows


def best_lines(text):
    """--shapes' summary: {"best:" or "best in V PLACE:": (name, v, place, makespan, settings)}."""
    out = {}
    for l in text.splitlines():
        m = re.match(r"^(best(?: in \d \w+)?:)\s+(\S+)\s+(\d) (\w+)\s+makespan (\S+)( \(does not fit\))?\s+(-D .*)$", l)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3), m.group(4), m.group(5), re.findall(r"-D (\S+)", m.group(7)))
        elif l.startswith("best"):
            fail("unexpected summary line: %r" % l)
    return out


def check_compare(f, cmd_defs, policies, all_run=False, shapes=False):
    """Every row of ppcc f cmd_defs --compare policies, compiled again (all_run: none may fail);
    with shapes, --shapes, and its best lines compiled again too.  Returns the best lines."""
    global checks
    label = "%s %s --compare %s%s" % (os.path.basename(f), " ".join(cmd_defs), policies, " --shapes" if shapes else "")
    r = ppcc([f] + defs(cmd_defs) + ["--compare", policies] + (["--shapes"] if shapes else []))
    if not r:
        return {}
    best = best_lines(r.stdout) if shapes else {}
    for what, (name, v, place, makespan, settings) in best.items():
        checks += 1
        got = ppcc([f, "--stats"] + defs(cmd_defs) + defs(settings))
        if got and stats_of(got.stdout)["makespan"] != makespan:
            fail("%s: %s %s compiles to %s" % (label, what, makespan, stats_of(got.stdout)["makespan"]))
        if ("virtual=2" in settings) != (v == "2") or ("placement=vshape" in settings) != (place == "vshape"):
            fail("%s: %s says %s %s, settings %s" % (label, what, v, place, settings))
    rows = compare_rows(r.stdout)
    if [row[0] for row in rows] != policies.split(","):
        fail("%s: rows %s" % (label, [row[0] for row in rows]))
    if shapes:
        # the best line is the best fitting row of the table
        fit = [float(fields[2].rstrip("s")) for name, fields, peaks, settings, reason in rows
               if reason is None and fields[4] == "yes"]
        checks += 1
        if fit and ("best:" not in best or float(best["best:"][3].rstrip("s")) != min(fit)):
            fail("%s: best %s, the rows' best %s" % (label, best.get("best:"), min(fit)))
    for name, fields, peaks, settings, reason in rows:
        checks += 1
        args = [f, "--stats"] + defs(cmd_defs) + defs(settings)
        what = "%s: row %s (ppcc %s)" % (label, name, " ".join(args[1:]))
        if settings[0] != "schedule=" + name:
            fail("%s: settings do not start with schedule=%s" % (what, name))
        if reason is not None and all_run:
            fail("%s: cannot run: %s" % (what, reason))
        if reason is not None:
            got = ppcc(args, want_rc=1)
            if got and reason not in got.stderr:
                fail("%s: row says %r, ppcc says %s" % (what, reason, got.stderr))
            continue
        fits = fields[4]
        if fits == "no":
            got = ppcc(args, want_rc=1)
            if got and "over the memory limit" not in got.stderr:
                fail("%s: does not fit, but ppcc says %s" % (what, got.stderr))
            args += ["-D", "memory.limit=0"]
        got = ppcc(args)
        if not got:
            continue
        st = stats_of(got.stdout)
        want = (fields[2], fields[3], ",".join(peaks))
        have = (st["makespan"], st["bubble"], st["peak_mem"].strip("[]"))
        if want != have:
            fail("%s: row makespan, bubble, peak %s; compiled %s" % (what, want, have))
        if name == "auto":
            m = re.search(r"^auto: makespan (\S+)", got.stderr, re.M)
            if not m or m.group(1) != st["makespan"]:
                fail("%s: auto reports %s, compiles to %s" % (what, m and m.group(1), st["makespan"]))
    return best


ALL = "gpipe,1f1b,interleaved,looped-bfs,zb-h1,zb-h2,interleaved-zb,zbv,dualpipev,v-half,v-min,auto"
sched = lambda n: os.path.join(SRC, "schedules", n)
check_compare(sched("1f1b.pp"), [], ALL)
check_compare(sched("1f1b.pp"), ["recompute=always", "memory.limit=2"], "gpipe,1f1b,zb-h1,zbv,auto")
check_compare(sched("auto.pp"), [], ALL)
check_compare(sched("zbv.pp"), ["recompute=except_last"], ALL)
check_compare(sched("interleaved.pp"), ["memory.activation=0.5", "memory.limit=3"], ALL)
# costs in seconds: makespans keep their digits
check_compare(sched("1f1b.pp"), ["cost.F=0.00123", "cost.B=0.00247", "cost.W=0.0004", "cost.comm=0.0001"], ALL)
check_compare(sched("custom.pp"), [], "custom,1f1b")
# memory in bytes: rows in GB, a row that does not fit compiled again with memory.limit=0
check_compare(sched("1f1b.pp"), ["memory.activation=1.5GB", "memory.limit=7GB"], "gpipe,1f1b,interleaved,zbv")

# layers and balance = auto: each row's split is in its settings
check_compare(sched("balance.pp"), [], ALL)
check_compare(sched("balance.pp"), ["memory.limit=0", "recompute=always"], "gpipe,1f1b,zb-h1,zbv,auto")
# --shapes: each policy in its best shape, every row and best line compiled again.  On the
# shipped 1-chunk balance.pp with a limit of 24 the best plan has 2 chunks on the V and beats
# the best 1-chunk plan (103 against 117).
best = check_compare(sched("balance.pp"), ["memory.limit=24"], ALL, shapes=True)
checks += 1
if (best.get("best:", ("",))[1:3] != ("2", "vshape") or
        not float(best["best:"][3]) < float(best["best in 1 loop:"][3])):
    fail("balance.pp limit 24 --shapes: best %s, best in 1 loop %s" % (best.get("best:"), best.get("best in 1 loop:")))
check_compare(sched("1f1b.pp"), ["recompute=always", "memory.limit=2"], "gpipe,1f1b,zbv,v-half,v-min,auto", shapes=True)
check_compare(sched("1f1b.pp"), ["model.balance=[1,1,1,5]"], "gpipe,1f1b,zbv,interleaved")

# balance = auto reports the makespan of the plan it writes.
for cmd in ([], ["-D", "schedule=zb-h1", "-D", "memory.limit=0"], ["-D", "schedule=auto"]):
    r = ppcc([sched("balance.pp"), "--stats"] + cmd)
    if r:
        checks += 1
        m = re.search(r"^balance auto: \[[0-9,]+\] makespan (\S+)", r.stderr, re.M)
        if not m or m.group(1) != stats_of(r.stdout)["makespan"]:
            fail("balance.pp %s: balance auto reports %s, compiles to %s" % (" ".join(cmd), m and m.group(1),
                                                                           stats_of(r.stdout)["makespan"]))

# Every --sweep row is the compilation of its printed settings (docs/costs.md).
# A gpt on hardware: its rows in seconds and GB, its layers derived for each
# row's micro-batch (never rescaled by microbatches.reference).
for f, cmd_defs in [(sched("balance.pp"), []), (sched("1f1b.pp"), ["cost.comm=0.5", "recompute=always"]),
                    (sched("gpt2-small-4gpu.pp"), []), (sched("gpt2-small-4gpu.pp"), ["model.balance=auto"]),
                    (sched("gpt2-small-4gpu.pp"), ["model.balance=compute", "schedule=zb-h1"])]:
    r = ppcc([f, "--sweep", "microbatches=1..8"] + defs(cmd_defs))
    if not r:
        continue
    m = re.search(r"-D microbatches=M (-D microbatches\.reference=\d+ -D model\.batch=\d+)` compiles", r.stdout)
    if not m:
        fail("%s --sweep: no settings in the header:\n%s" % (f, r.stdout))
        continue
    for line in r.stdout.splitlines():
        row = re.match(r"^ +(\d+) +(\S+) +(\S+)% +(\S+) +(\S+)  (yes|no)(?: +<-best)?(?: +(-D model\.balance=\S+))?$", line)
        if not row:
            if re.match(r"^ +\d+ ", line) and "cannot run:" not in line:
                fail("%s --sweep: unexpected row %r" % (f, line))
            continue
        checks += 1
        args = [f, "--stats"] + defs(cmd_defs) + ["-D", "microbatches=" + row.group(1)] + m.group(1).split()
        if row.group(7):
            args += row.group(7).split()
        if row.group(6) == "no":
            args += ["-D", "memory.limit=0"]
        got = ppcc(args)
        if not got:
            continue
        st = stats_of(got.stdout)
        peak = max(st["peak_mem"].strip("[]").split(","), key=lambda x: float(x.rstrip("GB")))
        have = (st["makespan"], st["bubble"].rstrip("%"), peak)
        if have != (row.group(2), row.group(3), row.group(5)):
            fail("%s --sweep row %s: %s; ppcc %s: %s" % (f, row.group(1), row.groups(), " ".join(args[1:]), have))

# auto's report is the plan it writes.
for name, settings in [("auto.pp", ["recompute=always"]), ("auto.pp", ["recompute=except_last", "memory.limit=4"]),
                       ("1f1b.pp", ["schedule=auto", "recompute=always", "memory.limit=2"]),
                       ("zbv.pp", ["schedule=auto", "recompute=always"])]:
    checks += 1
    r = ppcc([sched(name), "--stats"] + defs(settings))
    if r:
        m = re.search(r"^auto: makespan (\S+)", r.stderr, re.M)
        st = stats_of(r.stdout)
        if not m or m.group(1) != st["makespan"]:
            fail("%s %s: auto reports %s, writes a plan of makespan %s" % (name, settings, m and m.group(1),
                                                                          st["makespan"]))



# A gpt on hardware (docs/hardware.md): times in seconds, transfers from
# bytes, and the throughput every view shows is the arithmetic of the plan:
# tokens/s per device = batch * seq / makespan / devices, MFU = Narayanan et
# al.'s step FLOPs / (makespan * devices * the precision's peak).
gpt_file = os.path.join(SRC, "schedules", "gpt2-small-4gpu.pp")
with tempfile.TemporaryDirectory() as tmp:
    plan_path = os.path.join(tmp, "plan.json")
    st, tl, pl = ppcc([gpt_file, "--stats"]), ppcc([gpt_file, "--timeline"]), ppcc([gpt_file, "-o", plan_path])
    if st and tl and pl:
        plan = json.load(open(plan_path))
        m, hw, stats = plan["model"], plan["hardware"], plan["stats"]
        D = plan["pipeline"]["devices"]
        B, s, l, h, V = m["batch"], m["seq"], m["layers"], m["hidden"], m["vocab"]
        flops = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h))
        tps = B * s / stats["makespan"] / D
        mfu = flops / (stats["makespan"] * D * hw[m["precision"] + "_flops"])
        kv = stats_of(st.stdout)
        checks += 1
        if plan["cost"].get("unit") != "s" or kv["makespan"] != "%.6gs" % stats["makespan"]:
            fail("gpt: --stats makespan %s, plan %r %s" % (kv["makespan"], stats["makespan"], plan["cost"].get("unit")))
        checks += 1
        if kv.get("tokens_per_s_per_device") != "%.6g" % tps or kv.get("mfu") != "%.2f%%" % (100 * mfu):
            fail("gpt: --stats %s %s, arithmetic %.6g %.2f%%" % (kv.get("tokens_per_s_per_device"), kv.get("mfu"),
                                                                   tps, 100 * mfu))
        checks += 1
        if abs(stats["tokens_per_s_per_device"] - tps) > 1e-9 * tps or abs(stats["mfu"] - mfu) > 1e-9:
            fail("gpt: plan JSON throughput %r %r, arithmetic %r %r" % (stats["tokens_per_s_per_device"],
                                                                      stats["mfu"], tps, mfu))
        checks += 1
        want = "makespan %.6gs  %.6g tokens/s per device, MFU %.1f%%" % (stats["makespan"], tps, 100 * mfu)
        summary = " ".join(tl.stdout[tl.stdout.find("makespan"):].split())
        if not summary.startswith(" ".join(want.split())):
            fail("gpt: timeline summary %r, want %r" % (summary[:120], want))
    # another chunking splits the layers over its stages (it used to fail on the cost.F it wrote)
    check_compare(gpt_file, [], "gpipe,1f1b,zb-h1,interleaved,zbv", all_run=True)
    # balance = auto on a gpt: each row's block split in its settings
    check_compare(gpt_file, ["model.balance=auto"], "gpipe,1f1b,zb-h1,interleaved,zbv", all_run=True)
    check_compare(gpt_file, ["model.balance=auto", "memory.limit=4GB"], "gpipe,1f1b,zb-h1", all_run=True)
    # the balance found is what it reports, and never slower than the even split
    for cmd in ([], ["-D", "schedule=zbv", "-D", "virtual=2", "-D", "placement=vshape"], ["-D", "schedule=auto"]):
        r = ppcc([gpt_file, "--stats", "-D", "model.balance=auto"] + cmd)
        even = ppcc([gpt_file, "--stats"] + cmd)
        if r and even:
            checks += 1
            m = re.search(r"^balance auto: \[[0-9,]+\] makespan (\S+) against (\S+) for the even split", r.stderr, re.M)
            have = stats_of(r.stdout)["makespan"]
            if not m or m.group(1) != have or m.group(2) != stats_of(even.stdout)["makespan"]:
                fail("gpt %s: balance auto reports %s, compiles to %s (even %s)" % (" ".join(cmd), m and m.groups(),
                                                                                   have, stats_of(even.stdout)["makespan"]))
            elif float(have.rstrip("s")) > float(m.group(2).rstrip("s")):
                fail("gpt %s: balance auto %s is slower than the even split %s" % (" ".join(cmd), have, m.group(2)))
    # microbatches = auto picks the sweep's best row
    for cmd in (["-D", "microbatches=auto", "-D", "microbatches.max=16"],
                ["-D", "microbatches=auto", "-D", "microbatches.max=16", "-D", "model.balance=auto"]):
        chosen, sweep = ppcc([gpt_file, "--stats"] + cmd), ppcc([gpt_file, "--sweep", "microbatches=1..16"] + cmd)
        if chosen and sweep:
            checks += 1
            m = re.search(r"^microbatches auto: (\d+) ", chosen.stderr, re.M)
            best = re.search(r"^ +(\d+) .*<-best", sweep.stdout, re.M)
            if not m or not best or m.group(1) != best.group(1) or \
                    stats_of(chosen.stdout)["microbatches"] != m.group(1):
                fail("gpt %s: microbatches auto %s, the sweep's best %s" % (" ".join(cmd), m and m.group(1),
                                                                           best and best.group(1)))

# A gpt's tied allreduce (docs/plan-format.md, docs/timeline.md): the first and the
# last stage's devices sum wte's gradient once a step. Every view shows the one
# collective the simulator timed: --stats' allreduce=, the plan's stats.allreduce,
# the trace's event on each member (same begin, same length), the SVG's band, the
# timeline's '=' on both members' rows and nowhere else; on hardware it costs the
# link's latency + vocab * hidden * gradient bytes / bandwidth, and with a V
# placement (stage 0 and the last on device 0) there is none.
with tempfile.TemporaryDirectory() as tmp:
    for settings, members in [([], [0, 3]), (["hardware.devices_per_node=2"], [0, 3]),
                              (["schedule=zb-h1", "recompute=always"], [0, 3]),
                              (["schedule=zbv", "virtual=2", "placement=vshape"], [])]:
        label = "gpt2-small-4gpu %s" % " ".join(settings)
        d = defs(settings)
        plan_path, trace_path, svg_path = (os.path.join(tmp, n) for n in ("p.json", "t.json", "p.svg"))
        st = ppcc([gpt_file, "--stats"] + d)
        tl = ppcc([gpt_file, "--timeline", "--width", "200"] + d)
        pl = ppcc([gpt_file, "-o", plan_path, "--trace", trace_path, "--svg", svg_path] + d)
        if not st or not tl or not pl:
            continue
        plan, trace, svg = json.load(open(plan_path)), json.load(open(trace_path)), open(svg_path).read()
        kv = stats_of(st.stdout)
        ops = {dv["rank"]: [o for o in dv["ops"] if o["op"] == "allreduce"] for dv in plan["devices"]}
        checks += 1
        have = [r for r in ops if ops[r]]
        if have != members or any(o != {"op": "allreduce", "what": "tied", "ranks": members}
                                  for r in have for o in ops[r]) or any(len(ops[r]) != 1 for r in have):
            fail("%s: allreduce ops %s, want one {tied, %s} on each of %s" % (label, ops, members, members))
        events = [e for e in trace["traceEvents"] if e.get("cat") == "allreduce"]
        rows = re.findall(r"^d(\d+) \|([^|]*)\|", tl.stdout, re.M)
        if not members:
            checks += 1
            if "allreduce" in kv or "allreduce" in plan["stats"] or events or 'class="collectives"' in svg or \
                    any("=" in r for _, r in rows):
                fail("%s: a V placement holds wte once, but a view shows an allreduce" % label)
            continue
        hw, m = plan["hardware"], plan["model"]
        same_node = members[0] // hw["devices_per_node"] == members[1] // hw["devices_per_node"]
        bw, lat = (hw["node_bandwidth"], hw["node_latency"]) if same_node else (hw["network_bandwidth"],
                                                                             hw["network_latency"])
        want = lat + m["vocab"] * m["hidden"] * (2 if m["precision"] == "bf16" else 4) / bw
        t = plan["stats"]["allreduce"]
        checks += 1
        if abs(t - want) > 1e-12 * want or kv.get("allreduce") != "%.6gs" % t:
            fail("%s: allreduce %r in the plan, %s in --stats, link arithmetic %r" % (label, t, kv.get("allreduce"),
                                                                                     want))
        checks += 1
        us = trace["otherData"]["us_per_unit"]
        if sorted(e["tid"] for e in events) != members or len({e["ts"] for e in events}) != 1 or \
                any(abs(e["dur"] - t * us) > 1e-9 * t * us for e in events) or \
                any(e["name"] != "allreduce tied {%d,%d}" % tuple(members) for e in events):
            fail("%s: trace allreduce events %s, want one of %r us on each of %s together" % (label, events, t * us,
                                                                                         members))
        checks += 1
        band = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill-opacity="0.35" '
                          r'data-start="([^"]+)" data-end="([^"]+)"><title>allreduce tied', svg)
        if len(band) != 1 or abs(float(band[0][1]) - float(band[0][0]) - t) > 1e-12 * t or \
                abs(float(band[0][0]) * us - events[0]["ts"]) > 1e-6 * max(1, events[0]["ts"]):
            fail("%s: SVG allreduce bands %s, trace %s" % (label, band, events))
        checks += 1
        # the collective ends the step on its last member: the makespan of every view
        if abs(float(band[0][1]) - plan["stats"]["makespan"]) > 1e-12 and \
                float(band[0][1]) > plan["stats"]["makespan"]:
            fail("%s: the allreduce ends at %s, after the makespan %r" % (label, band[0][1], plan["stats"]["makespan"]))
        checks += 1
        drawn = sorted(int(dv) for dv, r in rows if "=" in r)
        if drawn != members:
            fail("%s: timeline draws '=' on devices %s, want %s:\n%s" % (label, drawn, members, tl.stdout))



def check_shapes(f, cmd_defs, want_chunks=None):
    """ppcc f cmd_defs --shapes --stats: the plan compiled is the reported winner's, to the digit,
    as compiling its settings directly gives; the winner is no worse than the best of each shape."""
    global checks
    label = "%s %s --shapes" % (os.path.basename(f), " ".join(cmd_defs))
    r = ppcc([f] + defs(cmd_defs) + ["--shapes", "--stats"])
    if not r:
        return
    best = best_lines("\n".join(l[len("shapes: "):] for l in r.stderr.splitlines() if l.startswith("shapes: ")))
    checks += 1
    if "best:" not in best:
        fail("%s: no winner reported:\n%s" % (label, r.stderr))
        return
    name, v, place, makespan, settings = best["best:"]
    st = stats_of(r.stdout)
    direct = ppcc([f, "--stats"] + defs(cmd_defs) + defs(settings))
    if not direct:
        return
    dt = stats_of(direct.stdout)
    keys = ("makespan", "peak_mem", "chunks", "schedule", "compute_ops")
    if st["makespan"] != makespan or any(st[k] != dt[k] for k in keys):
        fail("%s: reports %s, compiles to %s, its settings directly to %s" %
             (label, makespan, [st[k] for k in keys], [dt[k] for k in keys]))
    for what, line in best.items():
        checks += 1
        if float(line[3].rstrip("s")) < float(makespan.rstrip("s")):
            fail("%s: %s %s beats the winner %s" % (label, what, line[3], makespan))
    if want_chunks is not None and st["chunks"] != str(want_chunks):
        fail("%s: the winner has %s chunks, want %s" % (label, st["chunks"], want_chunks))


# auto over shapes: on the shipped 1-chunk balance.pp (layer costs) at a limit of 24 it finds
# a 2-chunk plan; a named policy in its best shape; a file without layers (costs reshaped).
check_shapes(sched("balance.pp"), ["memory.limit=24", "schedule=auto"], want_chunks=2)
check_shapes(sched("balance.pp"), ["schedule=zb-h1"])
check_shapes(sched("1f1b.pp"), ["schedule=auto", "memory.limit=3"])


def check_data_parallel(f, settings, want_async):
    """data_parallel (docs/dsl.md): the reductions' time and ZeRO-1's saving are the same
    number in --stats, the plan JSON, the timeline, the trace, the SVG and the --compare row;
    an asynchronous reduction (plan version 2: want_async of them at least) has one wait
    after it, and the trace shows it on its device's data-parallel lane."""
    global checks
    label = "%s %s" % (os.path.basename(f), " ".join(settings))
    d = defs(settings)
    st, tl = ppcc([f, "--stats"] + d), ppcc([f, "--timeline"] + d)
    with tempfile.TemporaryDirectory() as tmp:
        plan_path, trace_path, svg_path = (os.path.join(tmp, n) for n in ("plan.json", "t.json", "p.svg"))
        if not st or not tl or not ppcc([f, "-o", plan_path, "--trace", trace_path, "--svg", svg_path] + d):
            return
        plan, trace, svg = json.load(open(plan_path)), json.load(open(trace_path)), open(svg_path).read()
    checks += 1
    replica = ("stage", "shard", "gather")
    nasync = 0
    for dv in plan["devices"]:
        for i, o in enumerate(dv["ops"]):
            if o["op"] != "allreduce" or "group" not in o:
                continue
            nasync += 1
            waits = [j for j, w in enumerate(dv["ops"]) if w["op"] == "wait" and w["group"] == o["group"]]
            if o["what"] not in ("stage", "shard") or len(waits) != 1 or waits[0] < i:
                fail("%s: device %d op %d %s: waits at %s" % (label, dv["rank"], i, o, waits))
    if nasync < want_async:
        fail("%s: %d asynchronous reductions, want %d at least" % (label, nasync, want_async))
    checks += 1
    us, D = trace["otherData"]["us_per_unit"], plan["pipeline"]["devices"]
    events = [e for e in trace["traceEvents"] if e.get("cat") == "allreduce" and e["args"]["what"] in replica]
    lanes = {e["tid"] for e in events if e["tid"] >= D}
    by_index = {(e["tid"] % D, e["args"]["index"]): e for e in events}
    for dv in plan["devices"]:
        for i, o in enumerate(dv["ops"]):
            if o["op"] == "allreduce" and o["what"] in replica:
                e = by_index.get((dv["rank"], i))
                if not e or e["tid"] != (D + dv["rank"] if "group" in o else dv["rank"]):
                    fail("%s: device %d op %d: trace event %s (tid: the device, or its lane if grouped)" %
                         (label, dv["rank"], i, e))
    if abs(sum(e["dur"] for e in events) - plan["stats"]["dp_allreduce"] * us) > 1e-9 * max(1, sum(e["dur"] for e in events)) \
            or len(lanes) != (nasync and len({dv["rank"] for dv in plan["devices"] for o in dv["ops"] if "group" in o and o["op"] == "allreduce"})):
        fail("%s: the trace's replica reductions last %r us on lanes %s, the plan's dp_allreduce %r" %
             (label, sum(e["dur"] for e in events), lanes, plan["stats"]["dp_allreduce"]))
    checks += 1
    bands = re.findall(r'data-start="([^"]+)" data-end="([^"]+)"><title>allreduce (?:stage|shard|gather) ', svg)
    if abs(sum(float(b) - float(a) for a, b in bands) - plan["stats"]["dp_allreduce"]) > 1e-9 * plan["stats"]["dp_allreduce"]:
        fail("%s: the SVG's replica reductions %s, the plan's dp_allreduce %r" % (label, bands,
                                                                             plan["stats"]["dp_allreduce"]))
    sv = stats_of(st.stdout)
    checks += 1
    dp = "%.6gs" % plan["stats"]["dp_allreduce"]
    if sv.get("dp_allreduce") != dp or plan["stats"]["dp_allreduce"] <= 0:
        fail("%s: --stats dp_allreduce=%s, the plan JSON %s" % (label, sv.get("dp_allreduce"), dp))
    m = re.search(r"data-parallel allreduce (\S+)", tl.stdout)
    if not m or m.group(1) != dp:
        fail("%s: the timeline's data-parallel allreduce %s, the plan JSON %s" % (label, m and m.group(1), dp))
    saved = [shown(x, plan) for x in plan["stats"].get("zero_saved", [])]
    checks += 1
    if sv.get("zero_saved", "[]").strip("[]").split(",") != saved or not saved:
        fail("%s: --stats zero_saved=%s, the plan JSON %s" % (label, sv.get("zero_saved"), saved))
    m = re.search(r"ZeRO-1 saved: (.*)", " ".join(tl.stdout.split()))
    in_tl = re.findall(r"d\d+ ([^ ,]+)", m.group(1)) if m else []
    if in_tl != saved:
        fail("%s: the timeline's ZeRO-1 saving %s, the plan JSON %s" % (label, in_tl, saved))
    policy = plan["pipeline"]["schedule"]
    cmp_ = ppcc([f, "--compare", policy] + d)
    if cmp_:
        checks += 1
        row = [l for l in cmp_.stdout.splitlines() if l.startswith(policy + " ")]
        big = shown(max(plan["stats"]["zero_saved"]), plan)
        if len(row) != 1 or (" %s " % dp) not in row[0] or (" %s " % big) not in row[0] or \
                " ".join(sv["peak_mem"].strip("[]").split(",")) not in row[0]:
            fail("%s: --compare row %s does not show dp_allreduce %s, zero_saved %s and the peaks" %
                 (label, row, dp, big))


def check_all_replicas(f, settings, D, R):
    """--all-replicas: a lane per rank, rank device * R + replica the copy of its device's lane
    (drawn as wide: the one-replica chart narrower by the labels' extra digits), and the same
    summary as one replica's timeline."""
    global checks
    d = defs(settings)
    narrower = len(str(D * R - 1)) - len(str(D - 1))
    one = ppcc([f, "--timeline", "--width", str(80 - narrower)] + d)
    every = ppcc([f, "--timeline", "--all-replicas"] + d)
    if not one or not every:
        return
    checks += 1
    lanes = lambda text, c: dict(re.findall(r"^%s(\d+) +(\|.*\|)$" % c, text, re.M))
    dev, rank = lanes(one.stdout, "d"), lanes(every.stdout, "r")
    want = {str(int(k) * R + r): v for k, v in dev.items() for r in range(R)}
    if not dev or rank != want:
        fail("%s: --all-replicas lanes %s, want each device's lane once a replica %s" % (f, rank, want))
    summary = lambda text: re.sub(r"[rd]\d+ ", "", " ".join(text[text.find("bubble "):].split()))
    if summary(every.stdout).replace(summary(one.stdout).split("peak memory:")[0], "", 1) == summary(every.stdout):
        fail("%s: --all-replicas summary\n%s\nis not one replica's\n%s" % (f, every.stdout, one.stdout))


check_all_replicas(sched("1f1b.pp"), ["data_parallel=2", "devices=2"], 2, 2)
check_all_replicas(sched("gpipe.pp"), ["data_parallel=3", "model.batch=48"], 4, 3)
check_data_parallel(sched("decoder-7b-8gpu.pp"), ["data_parallel=8", "model.batch=256", "zero=1"], 1)
check_data_parallel(sched("decoder-7b-8gpu.pp"), ["data_parallel=3", "model.batch=24", "microbatches=8", "zero=1", "memory.limit=0",
                                                  "schedule=interleaved", "virtual=2", "devices=4"], 8)
check_data_parallel(sched("decoder-7b-8gpu.pp"), ["data_parallel=2", "model.batch=16", "microbatches=8", "overlap=false", "zero=1", "memory.limit=0",
                                                  "schedule=interleaved", "virtual=2", "devices=4"], 0)
print("test_views: %d checks, %d failed" % (checks, fails))
sys.exit(1 if fails else 0)
