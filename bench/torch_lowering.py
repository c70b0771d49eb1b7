#!/usr/bin/env python3
"""torch_lowering.py — time PyTorch's own pure-Python schedule lowering and
simulation of an interleaved 1F1B pipeline, the baseline ppcc is compared
with in bench/ppcc_vs_torch.sh.

For each shape (D devices x V chunks x M micro-batches) it builds the real
ScheduleInterleaved1F1B (its own __init__, on stand-in stages that carry
only their index and rank: no model, no process group), then times, in
process, the three pieces of torch.distributed.pipelining.schedules that its
own tests (TestScheduleLowering) chain together:

  schedule  the schedule's own _calculate_single_rank_operations for every
            rank: the compute-only `pipeline_order` its __init__ builds
            (checked equal to the one it built)
  lower     _add_send_recv: inserts SEND_F/RECV_F/SEND_B/RECV_B
  simulate  _simulate_comms_compute: dry-run of all ranks, flags deadlocks

The stage -> rank map and the stage count are the schedule's own
attributes.  __init__ itself is not timed: it also runs the FSDP
(UNSHARD/RESHARD, REDUCE_GRAD) and send-wait passes, which ppcc has no
counterpart for and whose output _simulate_comms_compute rejects.  Timings
exclude `import torch` (printed separately), so the figures favour PyTorch.

  torch_lowering.py [--devices 64] [--virtual 4] [--microbatches 64,128,256]
                    [--runs 3]
Prints a header line (torch=<version> python=<version> import=<s>), then
one line per shape:
  M=<M> ops=<ops after lowering> steps=<simulated steps> schedule=<s>
  lower=<s> simulate=<s> total=<s>
each time the best of --runs (total is the best of the per-run sums).
"""

import argparse
import sys
import time
import types

t_import = time.perf_counter()
import torch  # noqa: E402
from torch.distributed.pipelining.schedules import (  # noqa: E402
    ScheduleInterleaved1F1B,
    _add_send_recv,
    _simulate_comms_compute,
)

t_import = time.perf_counter() - t_import


def build_schedule(devices, virtual, microbatches):
    """The real schedule for rank 0, built by its own __init__ on stand-in
    stages: rank 0 holds stages 0, D, 2D, ... (the loop placement, as ppcc's
    interleaved.pp).  Every rank's constructor computes the whole
    pipeline's order alike."""
    num_stages = devices * virtual
    stages = [types.SimpleNamespace(stage_index=s, num_stages=num_stages,
                                    group_rank=0, group_size=devices)
              for s in range(0, num_stages, devices)]
    try:
        return ScheduleInterleaved1F1B(stages, n_microbatches=microbatches)
    except ValueError as e:
        sys.exit(f"torch_lowering: ScheduleInterleaved1F1B refuses "
                 f"{devices}x{virtual}x{microbatches}: {e}")


def run_once(sched, devices):
    stage_to_rank = sched.stage_index_to_group_rank.__getitem__
    num_stages = sched._num_stages

    t0 = time.perf_counter()
    order = {rank: sched._calculate_single_rank_operations(rank)
             for rank in range(devices)}
    t1 = time.perf_counter()
    # _add_send_recv consumes its argument
    lowered = _add_send_recv(
        {r: list(a) for r, a in order.items()}, stage_to_rank, num_stages)
    t2 = time.perf_counter()
    simulated = _simulate_comms_compute(lowered, stage_to_rank, num_stages)
    t3 = time.perf_counter()

    if order != sched.pipeline_order:
        sys.exit("torch_lowering: the timed order is not the one the "
                 "schedule's __init__ built")
    ops = sum(len(actions) for actions in lowered.values())
    compute = sum(1 for actions in order.values() for a in actions
                  if a is not None)
    steps = max(len(s) for s in simulated.values())
    return ops, compute, steps, (t1 - t0, t2 - t1, t3 - t2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--virtual", type=int, default=4)
    ap.add_argument("--microbatches", default="64,128,256")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    print(f"torch={torch.__version__} python={sys.version.split()[0]} "
          f"import={t_import:.3f}")
    for m in (int(x) for x in args.microbatches.split(",")):
        best = None
        sched = build_schedule(args.devices, args.virtual, m)
        for _ in range(args.runs):
            ops, compute, steps, t = run_once(sched, args.devices)
            # every (stage, micro-batch) gets one F and one B
            expected = 2 * args.devices * args.virtual * m
            if compute != expected:
                sys.exit(f"torch_lowering: {compute} compute ops, "
                         f"expected {expected}")
            if best is None:
                best = [list(t), sum(t)]
            else:
                best[0] = [min(a, b) for a, b in zip(best[0], t)]
                best[1] = min(best[1], sum(t))
        (sched, lower, sim), total = best
        print(f"M={m} ops={ops} compute={compute} steps={steps} "
              f"schedule={sched:.3f} lower={lower:.3f} simulate={sim:.3f} "
              f"total={total:.3f}", flush=True)


if __name__ == "__main__":
    main()
