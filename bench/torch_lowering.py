#!/usr/bin/env python3
"""torch_lowering.py — time PyTorch's own pure-Python schedule lowering and
simulation of an interleaved 1F1B pipeline, the baseline ppcc is compared
with in bench/ppcc_vs_torch.sh.

For each shape (D devices x V chunks x M micro-batches) it runs, in-process,
the three pieces of torch.distributed.pipelining.schedules that its own tests
(TestScheduleLowering) chain together:

  schedule  ScheduleInterleaved1F1B._calculate_single_rank_operations for
            every rank: the compute-only `pipeline_order` its __init__ builds
  lower     _add_send_recv: inserts SEND_F/RECV_F/SEND_B/RECV_B
  simulate  _simulate_comms_compute: dry-run of all ranks, flags deadlocks

The schedule method is called unbound on a small object carrying the four
attributes it reads, instead of constructing the schedule with mock stages:
the constructor would also run the FSDP (UNSHARD/RESHARD, REDUCE_GRAD) and
send-wait passes, which ppcc has no counterpart for and which
_simulate_comms_compute rejects.  Timings exclude `import torch` (printed
separately), so the figures favour PyTorch.

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


def schedule_shim(devices, virtual, microbatches):
    """The attributes ScheduleInterleaved1F1B.__init__ sets before it calls
    _calculate_single_rank_operations, computed the same way."""
    rounds = max(1, microbatches // devices)
    if microbatches % rounds != 0:
        sys.exit(f"torch_lowering: {microbatches} micro-batches is not a "
                 f"multiple of {rounds} rounds")
    return types.SimpleNamespace(
        n_local_stages=virtual,
        pp_group_size=devices,
        _n_microbatches=microbatches,
        microbatches_per_round=microbatches // rounds,
    )


def run_once(devices, virtual, microbatches):
    num_stages = devices * virtual
    # generate_stage_to_rank_mapping's loop style for interleaved schedules
    stage_to_rank = lambda s: s % devices  # noqa: E731
    shim = schedule_shim(devices, virtual, microbatches)

    t0 = time.perf_counter()
    order = {
        rank: ScheduleInterleaved1F1B._calculate_single_rank_operations(shim, rank)
        for rank in range(devices)
    }
    t1 = time.perf_counter()
    # _add_send_recv consumes its argument
    lowered = _add_send_recv(
        {r: list(a) for r, a in order.items()}, stage_to_rank, num_stages)
    t2 = time.perf_counter()
    simulated = _simulate_comms_compute(lowered, stage_to_rank, num_stages)
    t3 = time.perf_counter()

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
        for _ in range(args.runs):
            ops, compute, steps, t = run_once(args.devices, args.virtual, m)
            # every (stage, micro-batch) gets one F and one B, or the shim is wrong
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
