#!/usr/bin/env python3
"""generate_orders.py — the golden compute orders, produced by running the
reference implementations themselves (torch, megatron-core, deepspeed).

  generate_orders.py           writes tests/golden/orders/{gpipe,1f1b,interleaved}.txt
                               and tests/golden/orders_zb/<policy>.txt
  generate_orders.py --check   regenerates them in memory and compares with those
                               files (exit 1 at the first difference)

Without the three packages it says which are missing and exits 0 (77 with
--check: the test suite's skip).  docs/reference-orders.md says how to
install them and what each golden file is made of.

Golden format (read by tests/order_golden.c):

    # ...                                          (header: provenance, findings)
    case POLICY D=.. M=.. v=.. group=..            (group 0 = the policy default)
    0: F0.0 F0.1 B0.0 ...                          (one line per device, stage.mb)
    case POLICY D=.. M=.. v=.. group=.. refused    (the policy must refuse it)

The first header lines name the packages and versions ("# source: ...");
--check reports a different installed version but compares everything
else, the findings included: they are counts over the packages' own output
(which references agree, where an IR differs from what the ranks run), so a
change upstream shows as a difference.
"""

import importlib.metadata
import os
import sys

DEVICES = range(2, 9)
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
PACKAGES = ("torch", "megatron-core", "deepspeed")


# ------------------------------------------------------------ golden files

class Golden:
    """One golden file: provenance, findings, then the cases."""

    def __init__(self, subdir, policy, split, sources):
        self.path = os.path.join(subdir, policy + ".txt")
        self.policy, self.split, self.sources = policy, split, sources
        self.findings, self.cases = [], []

    def note(self, text):
        self.findings.append(text)

    def case(self, D, M, v, group, order=None):
        """One case: the order {rank: [(kind, stage, mb)]} or None (refused)."""
        head = "case %s D=%d M=%d v=%d group=%d" % (self.policy, D, M, v, group)
        if order is None:
            self.cases.append(head + " refused\n")
            return
        lines = [head + "\n"]
        for d in sorted(order):
            ops = " ".join("%s%d.%d" % op for op in notation(order[d], self.split))
            lines.append("%d: %s\n" % (d, ops))
        self.cases.append("".join(lines))

    def text(self):
        source = ", ".join("%s %s" % (p, importlib.metadata.version(p)) for p in self.sources)
        head = ["# %s: written by tests/ref/generate_orders.py (do not edit)" % self.path,
                "# source: " + source]
        return "".join(line + "\n" for line in head + ["# " + f for f in self.findings]) + "".join(self.cases)


def notation(ops, split):
    """The packages' kinds in ours: F; a full backward BW is B then W when
    the policy splits the backward (what a full backward computes), B when
    it does not; an input-gradient-only B and a W exist only when split."""
    out = []
    for kind, stage, mb in ops:
        if kind == "BW":
            out += [("B", stage, mb), ("W", stage, mb)] if split else [("B", stage, mb)]
        else:
            assert split or kind == "F", "%s in an unsplit order" % kind
            out.append((kind, stage, mb))
    return out


class Tally:
    """How often a comparison held: 'n of m'."""

    def __init__(self):
        self.held, self.total = 0, 0

    def add(self, held):
        self.held += bool(held)
        self.total += 1

    def __str__(self):
        return "%d of %d" % (self.held, self.total)


def without_w(order):
    """The F/B sequence of a split order (a full backward counts as B)."""
    return {d: [("F" if k == "F" else "B", s, m) for k, s, m in ops if k != "W"] for d, ops in order.items()}


# ------------------------------------------------------ orders/ (classic)

def gen_gpipe(pt):
    g = Golden("orders", "gpipe", False, ["torch"])
    ir_equal = Tally()
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            ran, ir, _ = pt.run(pt.schedules.ScheduleGPipe, D, M, 1)
            ir_equal.add(ir == ran)
            g.case(D, M, 1, 0, ran)
        g.case(D, D, 2, 0)  # PipelineScheduleSingle: one stage per rank
    g.note("order: torch ScheduleGPipe._step_microbatches on every rank; v > 1 refused (a single-stage "
           "schedule, one stage per rank)")
    g.note("finding: its IR (_get_pipeline_order) equals what the ranks run in %s cases" % ir_equal)
    return g


def gen_1f1b(pt, meg, ds):
    g = Golden("orders", "1f1b", False, ["megatron-core", "torch", "deepspeed"])
    torch_equal, ds_equal = Tally(), Tally()
    refused_small, refused_other, small = 0, 0, 0
    ir_inner, ir_last_equal, ir_last_shifted = Tally(), Tally(), Tally()
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            order = meg.run(D, M)
            small += M < D
            ds_equal.add(ds.train(D, M) == order)
            try:
                ran, ir, _ = pt.run(pt.schedules.Schedule1F1B, D, M, 1)
            except pt.Refused:
                refused_small += M < D
                refused_other += M >= D
            else:
                torch_equal.add(ran == order)
                ir_inner.add(all(ir[r] == ran[r] for r in range(D - 1)))
                last = ran[D - 1]
                ir_last_equal.add(ir[D - 1] == last)
                ir_last_shifted.add(ir[D - 1] == [(k, s, m + 1 if k == "F" else m) for k, s, m in last])
            g.case(D, M, 1, 0, order)
        try:
            refused = meg.run(D, D, v=2)
        except meg.Refused:
            refused = None
        g.case(D, D, 2, 0, refused)
    g.note("order: megatron-core forward_backward_pipelining_without_interleaving on every rank, any M; "
           "v = 2 refused by it (one model chunk)")
    g.note("finding: torch Schedule1F1B._step_microbatches runs the same order in %s cases it accepts; "
           "it refuses %d of the %d cases with M < D and %d others" % (torch_equal, refused_small, small,
                                                                       refused_other))
    g.note("finding: deepspeed TrainSchedule runs the same order in %s cases" % ds_equal)
    g.note("finding: torch Schedule1F1B._get_pipeline_order (its IR, for its simulator and plots) equals "
           "what the ranks run on ranks 0..D-2 in %s cases, on the last rank in %s; there it lists "
           "F(m+1) for every F(m) in %s (off by one)"
           % (ir_inner, ir_last_equal, ir_last_shifted))
    return g


def torch_interleaved(pt, D, M, v):
    """ScheduleInterleaved1F1B's order, IR and round size, or three Nones."""
    try:
        ran, ir, sched = pt.run(pt.schedules.ScheduleInterleaved1F1B, D, M, v)
    except pt.Refused:
        return None, None, None
    return ran, ir, sched.microbatches_per_round


def gen_interleaved(pt, meg):
    g = Golden("orders", "interleaved", False, ["megatron-core", "torch"])
    agree, overlap_same, ir_equal = Tally(), Tally(), Tally()
    from_torch = 0

    def megatron(D, M, v, G, overlap_p2p=False):
        try:
            return meg.run(D, M, v, G, interleaved=True, overlap_p2p=overlap_p2p)
        except meg.Refused:
            return None

    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            for v in range(1, 5):
                # The default group: Megatron's D; M (one group) when M < D, where
                # Megatron refuses and PyTorch runs one round of M.
                G = M if M < D else D
                order = megatron(D, M, v, G)
                if order is not None and v > 1:  # the overlapped path is for model chunks
                    overlap_same.add(megatron(D, M, v, G, overlap_p2p=True) == order)
                pt_ran, pt_ir, per_round = torch_interleaved(pt, D, M, v)
                if pt_ran is not None:
                    ir_equal.add(pt_ir == pt_ran)
                    if M >= D:  # Megatron runs PyTorch's round size as its group
                        agree.add(pt_ran == (order if per_round == G else megatron(D, M, v, per_round)))
                if order is None and M < D:
                    order = pt_ran
                    from_torch += order is not None
                g.case(D, M, v, 0, order)
                if pt_ran is not None and (order is None or per_round != G):
                    g.case(D, M, v, per_round, pt_ran)
        # Explicit groups: every G in 1..M+1 for a few M.  Megatron's checks
        # decide, except that G = M (one group) is PyTorch's single round
        # when M < D, where Megatron refuses it.
        for M in sorted({max(1, D - 1), 2 * D, 2 * D + 1, 3 * D - 1}):
            for v in (2, 3):
                for G in range(1, M + 2):
                    order = megatron(D, M, v, G)
                    if order is None and G == M and M < D:
                        order = torch_interleaved(pt, D, M, v)[0]
                        from_torch += order is not None
                    g.case(D, M, v, G, order)
    g.note("order: megatron-core forward_backward_pipelining_with_interleaving on every rank, "
           "microbatch_group_size_per_vp_stage = group (D by default), refused where it refuses; "
           "where it refuses M < D and group = M, torch ScheduleInterleaved1F1B (one round of M): %d cases"
           % from_torch)
    g.note("order: group = M // max(1, M // D) cases, written where that is not the default, are "
           "torch ScheduleInterleaved1F1B's")
    g.note("finding: torch ScheduleInterleaved1F1B runs megatron-core's order with group = its round "
           "size M // max(1, M // D) in %s cases with M >= D that it accepts" % agree)
    g.note("finding: megatron-core runs the same order with overlap_p2p_comm (Megatron-LM's default "
           "for virtual pipelines) in %s default cases with v > 1" % overlap_same)
    g.note("finding: the IR of torch ScheduleInterleaved1F1B (pipeline_order) equals what its ranks "
           "run in %s cases" % ir_equal)
    return g


# ------------------------------------------------ orders_zb/ (split backward)

def gen_zb_h1(pt):
    g = Golden("orders_zb", "zb-h1", True, ["torch"])
    lifted, same_round = 0, Tally()
    cls = pt.schedules.ScheduleInterleavedZeroBubble
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            try:
                ran, _, _ = pt.run(cls, D, M, 1)
            except pt.Refused:
                ran, _, _ = pt.run(cls, D, M, 1, lift_round_check=True)
                lifted += 1
            else:
                same_round.add(pt.run(cls, D, M, 1, lift_round_check=True)[0] == ran)
            g.case(D, M, 1, 0, ran)
        g.case(D, D, 2, 0)  # v > 1 is interleaved-zb
    g.note("order: torch ScheduleInterleavedZeroBubble with one stage per rank (ZB1P); v > 1 refused "
           "(that is interleaved-zb)")
    g.note("order: M that its rounds check refuses (not a multiple of max(1, M // D)), %d cases: its "
           "IR built for one round of M" % lifted)
    g.note("finding: with one stage per rank the round size changes nothing: one round of M gives the "
           "order of its own rounds in %s cases it accepts" % same_round)
    return g


def gen_zbv(pt):
    g = Golden("orders_zb", "zbv", True, ["torch"])
    ir_equal = Tally()
    cls = pt.schedules.ScheduleZBVZeroBubble
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            ran, ir, _ = pt.run(cls, D, M, 2, style="v")
            ir_equal.add(ir == ran)
            g.case(D, M, 2, 0, ran)
        for v in (1, 3):
            try:
                ran = pt.run(cls, D, D, v, style="v")[0]
            except pt.Refused:
                ran = None
            g.case(D, D, v, 0, ran)
    g.note("order: torch ScheduleZBVZeroBubble on every rank (V placement), refused where it refuses")
    g.note("finding: its IR equals what the ranks run in %s cases" % ir_equal)
    return g


def gen_dualpipev(pt, ds):
    g = Golden("orders_zb", "dualpipev", True, ["torch", "deepspeed"])
    ir_equal, ds_same, refused_alike = Tally(), Tally(), Tally()
    cls = pt.schedules.ScheduleDualPipeV
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            try:
                ran, ir, _ = pt.run(cls, D, M, 2, style="v")
            except pt.Refused:
                ran = None
            try:
                ds_order = ds.dualpipev(D, M)
            except ds.Refused:
                ds_order = None
            if ran is None or ds_order is None:
                refused_alike.add(ran is None and ds_order is None)
            else:
                ir_equal.add(ir == ran)
                ds_same.add(without_w(ran) == without_w(ds_order))
            g.case(D, M, 2, 0, ran)
        try:
            ran = pt.run(cls, D, 2 * D, 1, style="v")[0]
        except pt.Refused:
            ran = None
        g.case(D, 2 * D, 1, 0, ran)
    g.note("order: torch ScheduleDualPipeV on every rank (V placement), refused where it refuses")
    g.note("finding: its IR equals what the ranks run in %s cases" % ir_equal)
    g.note("finding: deepspeed DualPipeVSchedule (weight gradients kept in its backward) runs the same "
           "F/B order in %s cases; both refuse the same %s" % (ds_same, refused_alike))
    return g


def gen_looped_bfs(pt):
    g = Golden("orders_zb", "looped-bfs", False, ["torch"])
    ir_equal = Tally()
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            for v in range(1, 5):
                ran, ir, _ = pt.run(pt.schedules.ScheduleLoopedBFS, D, M, v)
                ir_equal.add(ir == ran)
                g.case(D, M, v, 0, ran)
    g.note("order: torch ScheduleLoopedBFS on every rank")
    g.note("finding: its IR equals what the ranks run in %s cases" % ir_equal)
    return g


def gen_interleaved_zb(pt):
    g = Golden("orders_zb", "interleaved-zb", True, ["torch"])
    ir_equal = Tally()
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            for v in range(1, 5):
                try:
                    ran, ir, _ = pt.run(pt.schedules.ScheduleInterleavedZeroBubble, D, M, v)
                except pt.Refused:
                    ran = None
                else:
                    ir_equal.add(ir == ran)
                g.case(D, M, v, 0, ran)
    g.note("order: torch ScheduleInterleavedZeroBubble on every rank, refused where it refuses")
    g.note("finding: its IR equals what the ranks run in %s cases" % ir_equal)
    return g


# ------------------------------------------------------------------ main

def missing_packages():
    missing = []
    for p in PACKAGES:
        try:
            importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            missing.append(p)
    return missing


def generate():
    sys.path.insert(0, HERE)
    import deepspeed_orders as ds
    import megatron_orders as meg
    import torch_orders as pt

    yield gen_gpipe(pt)
    yield gen_1f1b(pt, meg, ds)
    yield gen_interleaved(pt, meg)
    yield gen_zb_h1(pt)
    yield gen_zbv(pt)
    yield gen_dualpipev(pt, ds)
    yield gen_looped_bfs(pt)
    yield gen_interleaved_zb(pt)


def first_difference(want, got):
    """(line number, wanted, got) of the first differing line, ignoring the
    "# source:" line (package versions), or None."""
    def lines(text):
        return [(i, line) for i, line in enumerate(text.split("\n"), 1) if not line.startswith("# source:")]
    a, b = lines(want), lines(got)
    for (n, x), (_, y) in zip(a, b):
        if x != y:
            return n, x, y
    if len(a) != len(b):
        n = min(len(a), len(b))
        return (a[n][0] if n < len(a) else b[n][0]), (a[n][1] if n < len(a) else "(end)"), \
            (b[n][1] if n < len(b) else "(end)")
    return None


def source_line(text):
    return next((line for line in text.split("\n") if line.startswith("# source:")), "(none)")


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print("usage: generate_orders.py [--check]", file=sys.stderr)
        return 2
    missing = missing_packages()
    if missing:
        print("generate_orders: %s not installed: skipped (docs/reference-orders.md)" % ", ".join(missing))
        return 77 if check else 0
    status = 0
    for golden in generate():
        path = os.path.join(GOLDEN, golden.path)
        text = golden.text()
        if not check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
            print("%s: %d cases" % (golden.path, len(golden.cases)))
            continue
        try:
            with open(path) as f:
                want = f.read()
        except OSError as e:
            print("%s: %s" % (path, e.strerror), file=sys.stderr)
            status = 1
            continue
        if source_line(want) != source_line(text):
            print("%s: written from %s, installed: %s" % (golden.path, source_line(want)[2:], source_line(text)[2:]))
        diff = first_difference(want, text)
        if diff:
            print("%s:%d: differs from the packages' output\n  golden:   %s\n  packages: %s"
                  % ((golden.path,) + diff), file=sys.stderr)
            status = 1
        else:
            print("%s: %d cases, as the packages give them" % (golden.path, len(golden.cases)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
