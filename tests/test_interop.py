#!/usr/bin/env python3
"""test_interop.py PPCC PPRUN — PyTorch's schedule CSV and the pictures, without
torch (tests/ref/torch_csv_roundtrip.py checks the CSV against PyTorch).

- export: every shipped schedule PyTorch can run exports in both formats;
  a CSV read back gives the same plan (--stats equal, the same CSV again);
  what PyTorch cannot run (asynchronous weights, recompute as an op, a
  placement list) is refused, exit 1, nothing written; option misuse exits 2;
- Megatron's layout string: a gpt's split written (lists, virtual stages,
  balance = auto), read back as model.layout to the same split and written
  again to the same string; refused for an mlp and a V placement (exit 1,
  nothing written); an MTP layer refused at its column;
- import: a malformed CSV is reported at its row and column, a deadlocking
  one names its cycle, a shape that contradicts --ranks / --microbatches /
  -D is refused;
- pictures: the SVG is well-formed XML with one lane and one memory curve
  per device, its summary is --stats' numbers, every compute op has a box
  with a <title>; the HTML page holds the same SVG, and neither has a
  script or fetches anything; the README's picture is what ppcc draws
  today; pprun's --svg of a run has the same lanes, and the summary of
  its own measured --timeline; pprun --timeline takes --width and --compact;
  ppcc --measured draws the prediction and, under it, the run read from
  pprun's --trace, the same ops and summary as pprun's own --svg; a trace of
  another plan, cut short, doubled, renamed, ppcc's own or not JSON is
  refused (exit 1, nothing written); a trace of a plan with collectives
  (mirror, tied, over replicas, ZeRO-1) is read, and pprun --timeline's
  data-parallel allreduce is the sum of the trace's reductions;
- the text timeline of 8 devices x 32 micro-batches x 2 chunks at 80
  columns (in parts): its golden, and every op's micro-batch read back.

Run from the build tree's test harness with PP_SOURCE_ROOT set.
"""
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

PPCC, PPRUN = sys.argv[1], sys.argv[2]
SRC = os.environ["PP_SOURCE_ROOT"]
SCHED = os.path.join(SRC, "schedules")
fails = 0
checks = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, file=sys.stderr)


def run(args):
    return subprocess.run([PPCC] + args, capture_output=True, text=True)


def expect(args, rc, pattern=None):
    global checks
    checks += 1
    r = run(args)
    out = r.stdout + r.stderr
    if r.returncode != rc:
        fail("ppcc %s exited %d, want %d:\n%s" % (" ".join(args), r.returncode, rc, out))
    elif pattern and not re.search(pattern, out):
        fail("ppcc %s: output does not match /%s/:\n%s" % (" ".join(args), pattern, out))
    return out


def stats(args):
    r = run(args + ["--stats"])
    if r.returncode:
        fail("ppcc %s --stats exited %d:\n%s" % (" ".join(args), r.returncode, r.stderr))
        return {}
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def write(path, text):
    with open(path, "w", newline="") as f:
        f.write(text)
    return path


SVG = "{http://www.w3.org/2000/svg}"

with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)

    # ---------------------------------------------------------------- export
    runnable = ["naive", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "zbv", "dualpipev", "v-half", "v-min", "looped-bfs",
                "interleaved-zb", "custom", "auto"]
    for name in runnable:
        pp = os.path.join(SCHED, name + ".pp")
        for fmt in ("compute_only", "compute_comms"):
            out = "%s.%s.csv" % (name, fmt)
            expect([pp, "--emit", "torch-csv=" + fmt, "-o", out], 0)
            if not os.path.exists(out):
                continue
            rows = open(out, newline="").read().split("\r\n")
            checks += 1
            if rows[-1] != "" or any("\n" in r for r in rows):
                fail("%s: rows must end in CRLF" % out)
            s_pp = stats([pp])
            if fmt == "compute_only":
                # Read back: the same compute order, so the same timing and memory
                # (the activation sets: a posted recv's buffer is sized by memory.input,
                # which a CSV does not carry, so both sides without overlap).
                # (auto searches its order again without overlap: its sets only by count)
                s_csv = stats([out])
                checks += 1
                keys = ("devices", "stages", "microbatches", "compute_ops", "peak_act")
                if any(s_pp.get(k) != s_csv.get(k) for k in keys):
                    fail("%s: read back %s, compiled %s" % (out, s_csv, s_pp))
                if name != "auto":
                    s_csv, s_v1 = stats([out, "-D", "overlap=false"]), stats([pp, "-D", "overlap=false"])
                    checks += 1
                    if s_csv.get("peak_mem") != s_v1.get("peak_mem"):
                        fail("%s: read back without overlap %s, compiled %s" % (out, s_csv, s_v1))
                again = "%s.again.csv" % name
                expect([out, "--emit", "torch-csv", "-o", again], 0)
                checks += 1
                if open(again).read() != open(out).read():
                    fail("%s: exporting its import does not give it back" % out)
            # A compute_comms CSV is read as its compute order: the same plan.
            else:
                checks += 1
                if stats([out]).get("compute_ops") != s_pp.get("compute_ops"):
                    fail("%s: its compute actions are not the plan's" % out)

    # The grammar: I and W for a split backward, B for a full one.
    out = expect([os.path.join(SCHED, "zbv.pp"), "-D", "devices=2", "-D", "microbatches=2", "-D", "batch=8",
                  "-D", "layers=4", "--emit", "torch-csv", "-o", "-"], 0)
    checks += 1
    if not re.search(r"^0F0,0F1,3F0,3I0,3W0", out) or "B" in out.split("\n")[0]:
        fail("zbv: split backward not written as I/W:\n" + out)
    out = expect([os.path.join(SCHED, "1f1b.pp"), "-D", "devices=2", "-D", "microbatches=2", "-D", "batch=8",
                  "-D", "layers=4", "--emit", "torch-csv", "-o", "-"], 0)
    checks += 1
    if out != "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n":  # text mode reads CRLF as \n
        fail("1f1b D=2 M=2: got %r" % out)

    # A gpt's tied allreduce (docs/torch.md): PyTorch sums tied weights outside its
    # schedule, so the export leaves it out (the CSV of the untied model); a CSV read
    # as a tied gpt gets it back, as any custom order does.
    gpt = os.path.join(SCHED, "gpt.pp")
    for fmt in ("compute_only", "compute_comms"):
        tied = expect([gpt, "--emit", "torch-csv=" + fmt, "-o", "-"], 0)
        untied = expect([gpt, "-D", "tie=0", "--emit", "torch-csv=" + fmt, "-o", "-"], 0)
        checks += 1
        if tied != untied or not tied:
            fail("gpt %s: the tied export differs from the untied one:\n%s\n%s" % (fmt, tied, untied))
    write("gpt.csv", expect([gpt, "--emit", "torch-csv", "-o", "-"], 0))
    gpt_defs = ["-D", "model=gpt", "-D", "layers=4", "-D", "hidden=64"]
    checks += 1
    if stats(["gpt.csv"] + gpt_defs).get("allreduce") is None or "allreduce" in stats(["gpt.csv"] + gpt_defs +
                                                                                     ["-D", "tie=0"]):
        fail("gpt.csv read as a gpt: the tied allreduce is not added iff tie = true")

    # Refusals: nothing written.
    for args, pattern in [
        ([os.path.join(SCHED, "pipedream.pp")], r"pipedream weight versions"),
        ([os.path.join(SCHED, "2bw.pp")], r"2bw weight versions"),
        ([os.path.join(SCHED, "1f1b.pp"), "-D", "recompute=always"], r"recomputes its forward as an op of its own"),
        ([write("blocks.csv", "0F0,1F0,1B0,0B0\n2F0,3F0,3B0,2B0\n")], r"neither loop nor vshape"),
    ]:
        expect(args + ["--emit", "torch-csv", "-o", "refused.csv"], 1, pattern)
        checks += 1
        if os.path.exists("refused.csv"):
            fail("%s: a refused export left refused.csv" % args)
    pp = os.path.join(SCHED, "1f1b.pp")
    expect([pp, "--emit", "torch-csv"], 2, r"give -o")
    expect([pp, "--emit", "torch", "-o", "x.csv"], 2, r"--emit expects torch-csv")
    expect([pp, "--emit", "torch-csv=comms", "-o", "x.csv"], 2, r"--emit expects")
    expect([pp, "--ranks", "4", "--stats"], 2, r"--ranks gives the shape of a PyTorch CSV")

    # ------------------------------------------------------- Megatron's layout
    import json
    gpt = [os.path.join(SCHED, "gpt.pp"), "-D", "data=none"]
    for extra in ([], ["-D", "layers=10", "-D", "model.balance=[0,4,4,2]"],
                  ["-D", "layers=13", "-D", "virtual=2", "-D", "schedule=interleaved",
                   "-D", "model.balance=[1,2,2,2,2,2,2,0]"],
                  ["-D", "devices=1", "-D", "layers=3"]):
        text = expect(gpt + extra + ["--emit", "megatron-layout", "-o", "-"], 0).strip()
        balance = json.loads(run(gpt + extra + ["-o", "-"]).stdout)["model"]["blocks_per_stage"]
        layers = [a for a in extra if a.startswith("layers=")] or ["layers=4"]
        shape = [a for a in extra if a.startswith(("devices=", "virtual=", "schedule="))]
        again = gpt + sum((["-D", a] for a in layers + shape), []) + ["-D", "layout=" + text]
        back = json.loads(run(again + ["-o", "-"]).stdout)["model"]["blocks_per_stage"]
        text2 = expect(again + ["--emit", "megatron-layout", "-o", "-"], 0).strip()
        checks += 1
        if back != balance or text2 != text:
            fail("megatron layout %s: %r read back as %s (want %s), written again %r" % (extra, text, back, balance, text2))
    auto = [os.path.join(SCHED, "gpt2-small-4gpu.pp"), "-D", "model.balance=auto"]
    found = json.loads(run(auto + ["-o", "-"]).stdout)["model"]["blocks_per_stage"]
    expect(auto + ["--emit", "megatron-layout", "-o", "-"], 0)
    text = run(auto + ["--emit", "megatron-layout", "-o", "-"]).stdout.strip()  # the report is on stderr
    back = json.loads(run([os.path.join(SCHED, "gpt2-small-4gpu.pp"), "-D", "layout=" + text, "-o", "-"]).stdout)
    checks += 1
    if back["model"]["blocks_per_stage"] != found:
        fail("balance = auto's %s written as %r reads back as %s" % (found, text, back["model"]["blocks_per_stage"]))
    for args, pattern in [
        ([pp], r"--emit megatron-layout: Megatron's layout places a transformer's .*this is model mlp"),
        (gpt + ["-D", "schedule=zbv", "-D", "virtual=2", "-D", "placement=vshape", "-D", "layers=8"],
         r"Megatron puts stage i on rank i mod 4 \(placement loop\), but stage 4 is on device 3"),
    ]:
        expect(args + ["--emit", "megatron-layout", "-o", "refused.txt"], 1, pattern)
        checks += 1
        if os.path.exists("refused.txt"):
            fail("%s: a refused layout left refused.txt" % args)
    expect(gpt + ["--emit", "megatron-layout"], 2, r"--emit megatron-layout writes what -o OUT names: give -o")
    expect(gpt + ["-D", "layout=Et|tm|t|tL", "--stats"], 1, r"column 5: m is Megatron's multi-token prediction")

    # ---------------------------------------------------------------- import
    write("ok.csv", "0F0,0F1,0B0,0B1\r\n1F0,1B0,1F1,1B1\r\n")
    expect(["ok.csv", "--ranks", "2", "--microbatches", "2", "--stats"], 0, r"schedule=custom devices=2 stages=2")
    expect(["ok.csv", "--ranks", "3", "--stats"], 1, r"ok\.csv:2:1: error: torch csv: 2 rows, but --ranks 3")
    expect(["ok.csv", "--microbatches", "1", "--stats"], 1,
           r"ok\.csv:1:5: error: torch csv: 0F1: micro-batch 1 does not exist")
    expect(["ok.csv", "-D", "devices=3", "--stats"], 1, r"-D devices contradicts the CSV")
    expect(["ok.csv", "-D", "schedule=1f1b", "--stats"], 1, r"-D schedule contradicts the CSV")
    # padding, quoting, spaces and PyTorch's communication actions are read
    write("pad.csv", '0F0,,"0F1", 0SEND_F0 ,0B0,0REDUCE_GRAD,0B1\n,1RECV_F0,1F0,1B0,1F1,1B1\n')
    expect(["pad.csv", "--stats"], 0, r"compute_ops=8")
    # malformed: row and column
    write("bad.csv", "0F0,0X1,0B0\n1F0,1B0,,1F1x,1B1\n")
    expect(["bad.csv", "--stats"], 1, r"bad\.csv:1:5: error: torch csv: '0X1' is not an action")
    expect(["bad.csv", "--stats"], 1, r"bad\.csv:2:10: error: torch csv: '1F1x': unexpected text")
    write("nomb.csv", "0F0,0F,0B0\n1F0,1B0\n")
    expect(["nomb.csv", "--stats"], 1, r"nomb\.csv:1:5: error: torch csv: '0F' names no micro-batch")
    write("quote.csv", '0F0,"0B0\n')
    expect(["quote.csv", "--stats"], 1, r"quote\.csv:1:5: error: torch csv: unterminated quoted cell")
    # found by hand (docs/fuzzing.md): text after a quoted cell was dropped
    # (an action lost without a word), numbers past the limits were blamed
    # on the wrong part
    write("after.csv", '"0F0"1B0,0B0\n1F0,1B0\n')
    expect(["after.csv", "--stats"], 1, r"after\.csv:1:6: error: torch csv: unexpected text after a quoted cell")
    write("dq.csv", '"0F0"",0B0\n1F0,1B0\n')
    expect(["dq.csv", "--stats"], 1, r"dq\.csv:1:6: error: torch csv: unexpected text after a quoted cell")
    write("big.csv", "0F0,0B99999999999\n99999999999F0,1B0\n")
    expect(["big.csv", "--stats"], 1, r"big\.csv:1:5: error: torch csv: '0B99999999999': micro-batch number past "
           r"ppcc's limit \(1048576 micro-batches\)")
    expect(["big.csv", "--stats"], 1, r"big\.csv:2:1: error: torch csv: '99999999999F0': stage number past ppcc's limit")
    write("moved.csv", "0F0,0B0\n0F1,1B0\n")
    expect(["moved.csv", "--stats"], 1, r"moved\.csv:2:1: error: torch csv: stage 0 is on rank 1 here, but on rank 0")
    write("overlap.csv", "0F0,(0F1;0B0)OVERLAP,0B1\n1F0,1B0,1F1,1B1\n")
    expect(["overlap.csv", "--stats"], 1, r"overlap\.csv:1:5: error: torch csv: .*\(action;action\)OVERLAP_F_B")
    write("empty.csv", "0UNSHARD\n1UNSHARD\n")
    expect(["empty.csv", "--stats"], 1, r"no compute action")
    # the custom policy's checks, at the CSV's cells
    write("twice.csv", "0F0,0F0,0B0,0B1\n1F0,1B0,1F1,1B1\n")
    expect(["twice.csv", "--stats"], 1, r"twice\.csv:1:5: error: order: F0\.0 is listed twice")
    write("dl.csv", "0F0,0B0,0F1,0B1\r\n1F1,1B1,1F0,1B0\r\n")
    expect(["dl.csv", "--stats"], 1,
           r"dl\.csv:1:5: error: order: deadlock: device 0 waits at B0\.0 for B1\.0 \(device 1\), "
           r"which waits at F1\.1 for F0\.1 \(device 0\)")
    # a V-placed CSV with full backwards inside a split order (DualPipeV's cells)
    write("v.csv", "0F0,0F1,3F0,3I0,3W0,(0F2;3B1)OVERLAP_F_B,0I0,0W0,0B1\n1F0,2F0,1F1,2F1,2B0,1B0,2B1,1B1\n")
    expect(["v.csv", "--microbatches", "2", "--stats"], 1, r"micro-batch 2 does not exist")
    write("v.csv", "0F0,0F1,3F0,3I0,3W0,(3F1;0I0)OVERLAP_F_B,0W0,3B1,0B1\n1F0,2F0,1F1,2F1,2B0,1B0,2B1,1B1\n")
    expect(["v.csv", "--stats"], 0, r"schedule=custom devices=2 stages=4 chunks=2 microbatches=2 ops=\d+ "
                                     r"compute_ops=24")

    # --------------------------------------------------------------- pictures
    for name, extra in [("1f1b", []), ("interleaved", []), ("zbv", []), ("1f1b", ["-D", "recompute=always"])]:
        pp = os.path.join(SCHED, name + ".pp")
        st = stats([pp] + extra)
        expect([pp] + extra + ["--svg", "t.svg", "--html", "t.html"], 0)
        try:
            root = ET.parse("t.svg").getroot()
        except (ET.ParseError, OSError) as e:
            fail("%s: the SVG is not well-formed XML: %s" % (name, e))
            continue
        D = int(st["devices"])
        lanes = [g for g in root.iter(SVG + "g") if g.get("class") == "lane"]
        memory = [g for g in root.iter(SVG + "g") if g.get("class") == "memory"]
        checks += 3
        if [g.get("data-device") for g in lanes] != [str(d) for d in range(D)]:
            fail("%s: lanes %s, want one per device" % (name, [g.get("data-device") for g in lanes]))
        if len(memory) != D:
            fail("%s: %d memory curves for %d devices" % (name, len(memory), D))
        summary = next((t.text for t in root.iter(SVG + "text") if t.get("id") == "summary"), "")
        want = "makespan=%s bubble=%s fill_drain=%s imbalance=%s bottleneck_stage=%s peak_mem=%s" % (
            st["makespan"], st["bubble"], st["fill_drain"], st["imbalance"], st["bottleneck_stage"], st["peak_mem"])
        if summary != want:
            fail("%s: the SVG's summary %r is not --stats' %r" % (name, summary, want))
        boxes = sum(1 for lane in lanes for g in lane.iter(SVG + "g") if g is not lane and g.find(SVG + "rect/" + SVG + "title") is not None)
        checks += 1
        if boxes != int(st["compute_ops"]):
            fail("%s: %d boxes with details, %s compute ops" % (name, boxes, st["compute_ops"]))
        text = open("t.svg").read()
        page = open("t.html").read()
        checks += 2
        if "<script" in text + page or re.search(r"(href|src)=|url\(|@import", text + page):
            fail("%s: the picture runs a script or fetches something" % name)
        if not page.startswith("<!DOCTYPE html>") or text[text.index("<svg"):] not in page:
            fail("%s: the HTML page does not hold the SVG" % name)
    expect([os.path.join(SCHED, "1f1b.pp"), "--svg", "readme.svg"], 0)
    checks += 1
    if open("readme.svg").read() != open(os.path.join(SRC, "docs", "timeline-1f1b.svg")).read():
        fail("docs/timeline-1f1b.svg is not what `ppcc schedules/1f1b.pp --svg` draws: regenerate it")
    # pprun: the measured step, by the same renderer
    expect([os.path.join(SCHED, "interleaved.pp"), "-o", "plan.json"], 0)
    checks += 1
    r = subprocess.run([PPRUN, "plan.json", "--backend", "cpu", "--svg", "m.svg", "--html", "m.html", "--timeline"],
                       capture_output=True, text=True)
    if r.returncode:
        fail("pprun --svg exited %d:\n%s" % (r.returncode, r.stderr))
    else:
        root = ET.parse("m.svg").getroot()
        lanes = [g for g in root.iter(SVG + "g") if g.get("class") == "lane"]
        summary = next((t.text for t in root.iter(SVG + "text") if t.get("id") == "summary"), "")
        m = re.search(r"bubble ([\d.]+)% \(fill/drain ([\d.]+)%, imbalance ([\d.]+)%, (?:bottleneck stage )?(\w+)\)"
                      r"\s+makespan ([\d.]+)\s+peak memory: (.*)", r.stdout.replace("\n  ", " "))
        s = re.match(r"makespan=([\d.e+]+) bubble=([\d.]+)% fill_drain=([\d.]+)% imbalance=([\d.]+)% "
                     r"bottleneck_stage=(\w+) peak_mem=\[(.*)\]", summary or "")
        checks += 2
        if len(lanes) != 4 or "measured" not in "".join(root.itertext()):
            fail("pprun --svg: %d lanes, want 4, titled measured" % len(lanes))
        if not m or not s or any(abs(float(s.group(k)) - float(m.group(k - 1))) > 0.051 for k in (2, 3, 4)) or \
                s.group(5) != m.group(4).replace("balanced", "none") or \
                abs(float(s.group(1)) - float(m.group(5))) > 0.006 * float(m.group(5)) or \
                abs(float(s.group(3)) + float(s.group(4)) - float(s.group(2))) > 0.011 or \
                ["d%d %s" % (d, v) for d, v in enumerate(s.group(6).split(","))] != m.group(6).strip().split(", "):
            fail("pprun --svg summary %r is not its --timeline's:\n%s" % (summary, r.stdout))
        if open("m.svg").read()[open("m.svg").read().index("<svg"):] not in open("m.html").read():
            fail("pprun --html does not hold its SVG")
    # ppcc --measured: the prediction and pprun's run in one picture, the run
    # read from pprun's --trace as pprun's own --svg draws it
    inter = os.path.join(SCHED, "interleaved.pp")
    r = subprocess.run([PPRUN, "plan.json", "--backend", "cpu", "--steps", "2", "--trace", "run.json", "--svg",
                        "own.svg"], capture_output=True, text=True)
    checks += 1
    if r.returncode:
        fail("pprun --trace exited %d:\n%s" % (r.returncode, r.stderr))
    else:
        expect([inter, "--svg", "both.svg", "--html", "both.html", "--measured", "run.json"], 0)
        root = ET.parse("both.svg").getroot()
        panels = [g for g in root.iter(SVG + "g") if g.get("class") == "panel"]
        texts = {t.get("id"): t.text for t in root.iter(SVG + "text") if t.get("id")}
        own = ET.parse("own.svg").getroot()
        own_summary = next(t.text for t in own.iter(SVG + "text") if t.get("id") == "summary")

        def boxes(g):
            """(device, op name, start, end) of every box, from its <title>."""
            out = []
            for lane in g.iter(SVG + "g"):
                if lane.get("class") != "lane":
                    continue
                for t in lane.iter(SVG + "title"):
                    m = re.match(r"(\S+) on device (\d+): .* ([-\d.e+]+) to ([-\d.e+]+)$", t.text)
                    if m:
                        out.append((int(m.group(2)), m.group(1), float(m.group(3)), float(m.group(4))))
            return out

        checks += 4
        lanes = [[g.get("data-device") for g in p.iter(SVG + "g") if g.get("class") == "lane"] for p in panels]
        if len(panels) != 2 or lanes != [["0", "1", "2", "3"]] * 2:
            fail("--measured: %d panels with lanes %s, want 2 of 4" % (len(panels), lanes))
        if not (texts.get("summary") or "").startswith("makespan=%s " % stats([inter])["makespan"]):
            fail("--measured: the first panel is not the prediction: %r" % texts.get("summary"))
        got, want = (panels[1:] and boxes(panels[1])) or [], boxes(own)
        if len(got) != len(want) or any(a[:2] != b[:2] or abs(a[2] - b[2]) > 0.01 + 1e-5 * abs(b[2]) or
                                        abs(a[3] - b[3]) > 0.01 + 1e-5 * abs(b[3]) for a, b in zip(got, want)):
            fail("--measured: the measured panel's ops are not pprun --svg's of the same run (%d, %d boxes)" %
                 (len(got), len(want)))
        a = dict(kv.split("=", 1) for kv in (texts.get("summary-1") or "").split())
        b = dict(kv.split("=", 1) for kv in own_summary.split())
        if a.get("peak_mem") != b.get("peak_mem") or a.get("bottleneck_stage") != b.get("bottleneck_stage") or \
                any(abs(float(a.get(k, "nan").rstrip("%")) - float(b[k].rstrip("%"))) > 0.011 + 1e-5 * float(b[k].rstrip("%"))
                    for k in ("makespan", "bubble", "fill_drain", "imbalance")):
            fail("--measured: summary %r, pprun's own %r" % (texts.get("summary-1"), own_summary))
        checks += 1
        if open("both.svg").read()[open("both.svg").read().index("<svg"):] not in open("both.html").read():
            fail("--measured: the page does not hold the picture")
        # refusals: nothing written
        ev = __import__("json").load(open("run.json"))
        x = [e for e in ev["traceEvents"] if e.get("ph") == "X"]
        last = [e for e in x if e["args"]["step"] == 1]
        cut = dict(ev, traceEvents=[e for e in ev["traceEvents"] if e is not last[3]])
        twice = dict(ev, traceEvents=ev["traceEvents"] + [last[5]])
        renamed = dict(ev, traceEvents=[dict(e, name="F9.9") if e is last[0] else e for e in ev["traceEvents"]])
        for name, obj in (("cut.json", cut), ("twice.json", twice), ("renamed.json", renamed)):
            write(name, __import__("json").dumps(obj))
        expect([inter, "--trace", "predicted.json"], 0)
        write("notjson.json", "{\"traceEvents\": [")
        for args, rc, pattern in [
            ([inter, "-D", "microbatches=4"], 1, r"--measured run\.json: traceEvents\[\d+\]: .*a trace of another plan"),
            ([inter], 1, r"--measured cut\.json: step 1 has no event for device \d+'s op \d+ \([^)]+\): a trace of another "
                         r"plan, or cut short"),
            ([inter], 1, r"--measured twice\.json: traceEvents\[\d+\]: device \d+'s op \d+ \([^)]+\) of step 1 is there twice"),
            ([inter], 1, r"--measured renamed\.json: traceEvents\[\d+\]: device 0's op \d+ is \S+ in this plan, 'F9\.9' in "
                         r"the trace"),
            ([inter], 1, r"--measured predicted\.json: traceEvents\[\d+\]: no args\.step and args\.op: not a trace of "
                         r"pprun's"),
            ([inter], 1, r"--measured notjson\.json: not JSON"),
            ([inter], 1, r"--measured nothere\.json: cannot open it: No such file"),
            ([inter], 1, r"--measured \.: not a regular file"),
        ]:
            trace = re.search(r"--measured (\S+):", pattern).group(1).replace("\\", "")
            expect(args + ["--svg", "refused.svg", "--measured", trace], rc, pattern)
            checks += 1
            if os.path.exists("refused.svg"):
                fail("--measured %s: a refused picture left refused.svg" % trace)
        expect([inter, "--measured", "run.json", "--timeline"], 2, r"--measured compares pprun's run with the "
               r"prediction, drawn in a picture or reported by --stats: give --svg, --html or --stats")
        # --stats --measured: the makespan's error and the compute ops', from the same numbers as the picture
        out = expect([inter, "--stats", "--measured", "run.json"], 0,
                     r"measured against predicted: makespan [0-9.]+ measured, [0-9.]+ predicted: [-+][0-9.]+ %\n"
                     r"  [0-9]+ compute ops: start error mean [0-9.]+ % of the predicted makespan, largest [0-9.]+ % "
                     r"\(device [0-9]+ op [0-9]+, [FBWR][0-9]+\.[0-9]+: [0-9.]+ measured, [0-9.]+ predicted\); "
                     r"duration error mean [0-9.]+ %")
        made = float(re.search(r"makespan ([0-9.]+) measured", out).group(1))
        t0 = min(e["ts"] for e in last)
        ev_span = max(e["ts"] for e in last if e["name"] == "flush") - t0
        if abs(made - float(ev_span)) > 0.05 + 1e-6 * float(ev_span):
            fail("--stats --measured: measured makespan %s, the trace's flush starts at %s" % (made, ev_span))
        expect([inter, "--compare", "1f1b", "--measured", "run.json"], 2, r"--compare prints its table alone")
        expect([inter, "--svg", "t.svg", "--measured", "run.json", "--measured", "run.json"], 2,
               r"--measured given twice")

    # --measured reads pprun's trace of plans with collectives (the mirror's, the tied pair's, the
    # replicas' reductions, ZeRO-1's shards and gathers): each is named by what it sums, as both
    # sides number their groups differently; pprun --timeline's data-parallel allreduce is the sum
    # of the trace's reductions over replicas (each on its one device)
    write("tiny.pp", "pipeline {\n devices = 4\n microbatches = 8\n schedule = 1f1b\n}\n"
          "model gpt {\n layers = 4\n hidden = 16\n heads = 2\n seq = 8\n vocab = 64\n batch = 16\n"
          " optimizer = adamw\n tie = 1\n}\nhardware cpu { }\n")
    dual = ["-D", "schedule=dualpipe", "-D", "virtual=2", "-D", "placement=vshape"]
    for args in ([os.path.join(SCHED, "dualpipe.pp")], [os.path.join(SCHED, "dualpipe.pp"), "-D", "data_parallel=2"],
                 [os.path.join(SCHED, "1f1b.pp"), "-D", "data_parallel=2"], ["tiny.pp"],
                 ["tiny.pp", "-D", "data_parallel=2"], ["tiny.pp", "-D", "data_parallel=2", "-D", "zero=1"],
                 ["tiny.pp", "-D", "data_parallel=2", "-D", "zero=1"] + dual, ["tiny.pp"] + dual):
        what = " ".join(os.path.basename(a) for a in args)
        expect(args + ["-o", "coll.json"], 0)
        r = subprocess.run([PPRUN, "coll.json", "--backend", "cpu", "--steps", "2", "--trace", "coll-run.json",
                            "--timeline"], capture_output=True, text=True)
        checks += 1
        if r.returncode:
            fail("pprun %s --trace exited %d:\n%s" % (what, r.returncode, r.stderr))
            continue
        x = [e for e in __import__("json").load(open("coll-run.json"))["traceEvents"] if e.get("ph") == "X"]
        checks += 1
        if not any(e["name"].startswith("allreduce ") for e in x):
            fail("pprun %s --trace: no allreduce in the trace" % what)
        out = expect(args + ["--stats", "--measured", "coll-run.json"], 0, r"measured against predicted: makespan "
                     r"[0-9.]+ measured(.|\n)*\n  allreduce [0-9.]+ measured, [0-9.]+ predicted")
        m = re.search(r"data-parallel allreduce\s+([0-9.e+]+)", r.stdout)
        dp = sum(e["dur"] for e in x if e["args"]["step"] == 1 and e["name"].endswith(" replicas}"))
        # --stats --measured: each collective of the last step once, on its first member
        def first_member(name):
            one = re.search(r"\{device ([0-9]+) x", name)
            return int(one.group(1)) if one else min(int(v) for v in re.search(r"\{([0-9,]+)\}", name).group(1).split(","))
        coll = sum(e["dur"] for e in x if e["args"]["step"] == 1 and e["name"].startswith("allreduce ")
                   and e["tid"] == first_member(e["name"]))
        got = re.search(r"\n  allreduce ([0-9.]+) measured, ([0-9.]+) predicted(: [-+][0-9.]+ %)?"
                        r"(; data-parallel ([0-9.]+) measured, [0-9.]+ predicted(: [-+][0-9.]+ %)?)?\n", out)
        checks += 1
        if not got or abs(float(got.group(1)) - coll) > 0.05 + 1e-6 * coll:
            fail("ppcc %s --stats --measured: allreduce %s measured, the trace's collectives sum to %.3f" %
                 (what, got and got.group(1), coll))
        elif ("data_parallel=2" in args) != (got.group(5) is not None) or \
                (got.group(5) and abs(float(got.group(5)) - dp) > 0.05 + 1e-6 * dp):
            fail("ppcc %s --stats --measured: data-parallel %s measured, the trace's reductions sum to %.3f" %
                 (what, got.group(5), dp))
        checks += 1
        if "data_parallel=2" not in args:
            if m:
                fail("pprun %s --timeline: a data-parallel allreduce without replicas" % what)
        elif not m or dp <= 0 or abs(float(m.group(1)) - dp) > 1e-4 * dp + 0.01 * len(x):
            fail("pprun %s --timeline: data-parallel allreduce %s, the trace's reductions sum to %.3f" %
                 (what, m and m.group(1), dp))

    expect_rc = subprocess.run([PPRUN, "plan.json", "--svg", "-"], capture_output=True, text=True)
    checks += 1
    if expect_rc.returncode != 2 or "--svg -: standard output carries" not in expect_rc.stderr:
        fail("pprun --svg -: exit %d, %s" % (expect_rc.returncode, expect_rc.stderr))
    # pprun --timeline takes ppcc's --width and --compact
    for extra, want in ((["--width", "120"], 120), (["--compact"], 80), (["--width", "50", "--compact"], 50)):
        r = subprocess.run([PPRUN, "plan.json", "--backend", "cpu", "--timeline"] + extra, capture_output=True, text=True)
        chart = r.stdout[r.stdout.find("interleaved:"):]
        checks += 1
        if r.returncode or not chart or max(len(line) for line in chart.split("\n")) > want or \
                (want < 120 and "compact" not in chart) or (want == 120 and max(map(len, chart.split("\n"))) <= 80):
            fail("pprun --timeline %s: exit %d, not a chart of %d columns:\n%s" % (extra, r.returncode, want, r.stdout))
    for extra, pattern in ((["--width", "100"], r"--width shapes the timeline"), (["--compact"], r"--compact shapes"),
                           (["--timeline", "--width", "39"], r"--width: '39' is not an integer in 40\.\.1000")):
        r = subprocess.run([PPRUN, "plan.json"] + extra, capture_output=True, text=True)
        checks += 1
        if r.returncode != 2 or not re.search(pattern, r.stderr):
            fail("pprun %s: exit %d, %s" % (extra, r.returncode, r.stderr))
    expect([os.path.join(SCHED, "1f1b.pp"), "--svg", ""], 2, r"--svg: empty file name")
    expect([os.path.join(SCHED, "1f1b.pp"), "--svg", "nodir/t.svg"], 1, r"cannot create nodir/t\.svg")
    expect([os.path.join(SCHED, "1f1b.pp"), "--compare", "1f1b,gpipe", "--svg", "t.svg"], 2, r"--compare prints")

    # ------------------------------------------- the text timeline in parts
    # 8 devices x 32 micro-batches x 2 chunks at 80 columns: the golden, and
    # every op legible: read back from the parts, each device's ops (kind,
    # chunk by case, micro-batch in full) are its plan's compute ops in order.
    pp = os.path.join(SCHED, "interleaved.pp")
    args = [pp, "-D", "devices=8", "-D", "microbatches=32"]
    text = expect(args + ["--timeline"], 0)
    golden = open(os.path.join(SRC, "tests", "golden", "emit", "interleaved_8x32_parts.txt")).read()
    checks += 2
    if text != golden:
        fail("interleaved 8x32 --timeline differs from tests/golden/emit/interleaved_8x32_parts.txt:\n" + text)
    if any(len(line) > 80 for line in text.split("\n")):
        fail("interleaved 8x32 --timeline: a line is wider than 80 columns")
    expect(args + ["-o", "plan8.json"], 0)
    plan = __import__("json").load(open("plan8.json"))
    lines = text.split("\n")
    seen = {d: [] for d in range(8)}
    i = 0
    while i < len(lines):
        m = re.match(r"d(\d+) +\|(.*)\|$", lines[i])
        if not m:
            i += 1
            continue
        d, kinds = int(m.group(1)), m.group(2)
        rows = [lines[j].split("|") for j in (i + 1, i + 2) if j < len(lines)]
        tens, units = [r[1] if len(r) > 2 else "" for r in rows + [[], []]][:2]
        for x, k in enumerate(kinds):
            if k.upper() in "FBW":
                digits = (tens[x:x + 1] + units[x:x + 1]).strip()
                seen[d].append((k, int(digits) if digits.isdigit() else None))
        i += 3
    checks += 1
    for dev in plan["devices"]:
        d, stages = dev["rank"], dev["stages"]
        want = [((op["op"] if stages.index(op["stage"]) % 2 == 0 else op["op"].lower()), op["mb"])
                for op in dev["ops"] if op["op"] in ("F", "B", "W")]
        if seen[d] != want:
            fail("interleaved 8x32 --timeline: device %d reads %s..., its plan has %s..." % (d, seen[d][:8], want[:8]))
            break

print("test_interop: %d checks, %d failed" % (checks, fails))
sys.exit(1 if fails else 0)
