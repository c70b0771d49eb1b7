#!/usr/bin/env python3
"""torch_csv_roundtrip.py PPCC — ppcc's PyTorch CSV against PyTorch itself
(docs/torch.md).  For every policy PyTorch also has, on small shapes:

1. export: `ppcc --emit torch-csv` equals PyTorch's own CSV of that schedule
   (`_dump_csv(format="compute_only")` of the multi-stage classes; for the
   single-stage ScheduleGPipe / Schedule1F1B, which have no CSV, the actions
   their ranks run, in the same grammar), blank padding cells aside;
2. PyTorch loads both of ppcc's formats (`_PipelineScheduleRuntime._load_csv`,
   its validation and lowering included), and its runtime, stepping each
   rank (`_step_microbatches`), runs exactly ppcc's per-rank compute order;
3. import: ppcc reads PyTorch's CSV (both formats) and gives back the same
   per-rank order;
4. zb-h2, auto and custom, which PyTorch has no class for: its loader and
   runtime take ppcc's CSVs and run ppcc's order.

Needs torch: exits 77 (skipped) when it cannot be imported.
"""
import csv
import os
import subprocess
import sys
import tempfile

PPCC = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEDULES = os.path.join(HERE, "..", "..", "schedules")
sys.path.insert(0, HERE)
try:
    import torch  # noqa: F401
    import torch_orders as T
    from torch.distributed.pipelining import schedules as S
except ImportError as e:
    print("torch is not importable (%s): skipped" % e)
    sys.exit(77)

fails = 0
checks = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, file=sys.stderr)


def rows_of(path):
    """The CSV's rows, blank (padding) cells dropped."""
    with open(path, newline="") as f:
        return [[c.strip() for c in row if c.strip()] for row in csv.reader(f)]


def compute_only(rows, split):
    """PyTorch's compute actions in ppcc's terms: OVERLAP_F_B pairs
    flattened; a full backward B is I then W where the order is split."""
    out = []
    for row in rows:
        r = []
        for cell in row:
            parts = cell[1:cell.index(")")].split(";") if cell.startswith("(") else [cell]
            for a in parts:
                act = S._Action.from_str(a)
                if not act.is_compute_op:
                    continue
                if act.computation_type == S.B and split:
                    r += ["%dI%d" % (act.stage_index, act.microbatch_index),
                          "%dW%d" % (act.stage_index, act.microbatch_index)]
                else:
                    r.append(str(act))
        out.append(r)
    return out


def ppcc(args):
    r = subprocess.run([PPCC] + args, capture_output=True, text=True)
    if r.returncode:
        fail("ppcc %s exited %d:\n%s" % (" ".join(args), r.returncode, r.stderr))
        return False
    return True


# (ppcc policy, PyTorch class, placement style, split backward, shapes (D, M, v))
CASES = [
    ("gpipe", S.ScheduleGPipe, "loop", False, [(2, 3, 1), (4, 8, 1)]),
    ("1f1b", S.Schedule1F1B, "loop", False, [(2, 4, 1), (4, 8, 1)]),
    ("interleaved", S.ScheduleInterleaved1F1B, "loop", False, [(2, 4, 2), (4, 8, 2), (2, 6, 3)]),
    ("looped-bfs", S.ScheduleLoopedBFS, "loop", False, [(2, 2, 2), (4, 8, 2)]),
    ("zb-h1", S.ScheduleInterleavedZeroBubble, "loop", True, [(2, 4, 1), (4, 8, 1)]),
    ("interleaved-zb", S.ScheduleInterleavedZeroBubble, "loop", True, [(2, 4, 2), (4, 8, 2)]),
    ("zbv", S.ScheduleZBVZeroBubble, "v", True, [(2, 4, 2), (4, 8, 2)]),
    ("dualpipev", S.ScheduleDualPipeV, "v", True, [(2, 4, 2), (4, 8, 2)]),
]


def pytorch_rows(cls, D, M, v, style, tmp):
    """PyTorch's compute-only CSV rows of the schedule, and its file."""
    ran, ir, sched = T.run(cls, D, M, v, style)
    path = os.path.join(tmp, "torch.csv")
    if hasattr(sched, "_dump_csv"):
        sched._dump_csv(path, format="compute_only")
    else:  # single-stage classes: what the ranks run, in the grammar
        kind = {"F": "F", "BW": "B", "B": "I", "W": "W"}
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            for rank in range(D):
                w.writerow(["%d%s%d" % (s, kind[k], m) for k, s, m in ran[rank]])
    comms = None
    if hasattr(sched, "pipeline_order_with_comms"):
        comms = os.path.join(tmp, "torch_comms.csv")
        sched._dump_csv(comms, format="compute_comms")
    return path, comms


def run_in_pytorch(path, fmt, D, M, v, style):
    """Loads path into PyTorch's runtime on each rank and steps it: the
    compute calls each rank makes, in the grammar."""
    where = T.placement(D, v, style)
    logs = {rank: [] for rank in range(D)}
    kind = {"F": "F", "BW": "B", "B": "I", "W": "W"}
    for rank in range(D):
        stages = [T.RecordingStage(logs[rank], s, D * v, rank, D) for s in range(D * v) if where[s] == rank]
        sched = S._PipelineScheduleRuntime(stages, n_microbatches=M, loss_fn=lambda o, t: None)
        sched._load_csv(path, format=fmt)
        sched._stages_forward_initialized = sched._stages_backward_initialized = True
        sched._step_microbatches(target_mbs=[None] * M)
    return [["%d%s%d" % (s, kind[k], m) for k, s, m in logs[rank]] for rank in range(D)]


with tempfile.TemporaryDirectory() as tmp:
    for policy, cls, style, split, shapes in CASES:
        for D, M, v in shapes:
            what = "%s D=%d M=%d v=%d" % (policy, D, M, v)
            sched_file = os.path.join(SCHEDULES, policy + ".pp")
            shape = ["-D", "devices=%d" % D, "-D", "microbatches=%d" % M, "-D", "virtual=%d" % v,
                     "-D", "layers=%d" % (D * v * 2), "-D", "batch=%d" % (M * 4)]
            mine = os.path.join(tmp, "ppcc.csv")
            mine_comms = os.path.join(tmp, "ppcc_comms.csv")
            if not (ppcc([sched_file] + shape + ["--emit", "torch-csv", "-o", mine]) and
                    ppcc([sched_file] + shape + ["--emit", "torch-csv=compute_comms", "-o", mine_comms])):
                continue
            theirs, theirs_comms = pytorch_rows(cls, D, M, v, style, tmp)
            ours = rows_of(mine)
            want = compute_only(rows_of(theirs), split)
            checks += 1
            if ours != want:
                fail("%s: ppcc's export differs from PyTorch's CSV\n ppcc:  %s\n torch: %s" % (what, ours, want))
            # Exactly the cells PyTorch writes where its rows have no pair to flatten.
            if policy != "dualpipev" and ours != rows_of(theirs):
                fail("%s: ppcc's export is not PyTorch's CSV cell for cell" % what)
            # The comms export holds the same compute order.
            checks += 1
            if compute_only(rows_of(mine_comms), split) != ours:
                fail("%s: compute_comms holds another compute order than compute_only" % what)
            # PyTorch's loader, validation and runtime take both files.
            for path, fmt in ((mine, "compute_only"), (mine_comms, "compute_comms")):
                checks += 1
                try:
                    got = compute_only(run_in_pytorch(path, fmt, D, M, v, style), split)
                except Exception as e:  # noqa: BLE001 - any refusal is the finding
                    fail("%s: PyTorch refuses ppcc's %s CSV: %s: %s" % (what, fmt, type(e).__name__, e))
                    continue
                if got != ours:
                    fail("%s: PyTorch's runtime runs another order from ppcc's %s CSV\n ran:  %s\n ppcc: %s" %
                         (what, fmt, got, ours))
            # Import: PyTorch's CSVs, read back by ppcc, give the same per-rank order.
            for path in (theirs, theirs_comms):
                if path is None:
                    continue
                back = os.path.join(tmp, "back.csv")
                checks += 1
                if ppcc([path, "--ranks", str(D), "--microbatches", str(M), "--emit", "torch-csv", "-o", back]):
                    if rows_of(back) != want:
                        fail("%s: ppcc's import of %s gives another order\n back:  %s\n torch: %s" %
                             (what, os.path.basename(path), rows_of(back), want))

    # Schedules PyTorch has no class for (zb-h2, auto's winner, a custom
    # order): its loader and runtime take ppcc's CSV and run ppcc's order.
    for policy in ("zb-h2", "auto", "custom"):
        sched_file = os.path.join(SCHEDULES, policy + ".pp")
        r = subprocess.run([PPCC, sched_file, "--stats"], capture_output=True, text=True)
        st = dict(kv.split("=", 1) for kv in r.stdout.split())
        D, M, S_ = int(st["devices"]), int(st["microbatches"]), int(st["stages"])
        mine = os.path.join(tmp, "ppcc.csv")
        mine_comms = os.path.join(tmp, "ppcc_comms.csv")
        if not (ppcc([sched_file, "--emit", "torch-csv", "-o", mine]) and
                ppcc([sched_file, "--emit", "torch-csv=compute_comms", "-o", mine_comms])):
            continue
        ours = rows_of(mine)
        split = any("W" in a for row in ours for a in row)
        on = {S._Action.from_str(a).stage_index: r for r, row in enumerate(ours) for a in row}
        style = "loop" if all(on[s] == T.placement(D, S_ // D, "loop")[s] for s in on) else "v"
        for path, fmt in ((mine, "compute_only"), (mine_comms, "compute_comms")):
            checks += 1
            try:
                got = compute_only(run_in_pytorch(path, fmt, D, M, S_ // D, style), split)
            except Exception as e:  # noqa: BLE001
                fail("%s: PyTorch refuses ppcc's %s CSV: %s: %s" % (policy, fmt, type(e).__name__, e))
                continue
            if got != compute_only(ours, split):
                fail("%s: PyTorch's runtime runs another order from ppcc's %s CSV" % (policy, fmt))

print("%d checks, %d failures" % (checks, fails))
sys.exit(1 if fails else 0)
