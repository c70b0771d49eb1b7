"""deepspeed_orders.py — the compute order each rank of a DeepSpeed pipeline
schedule runs, read from the instructions deepspeed.runtime.pipe.schedule
generates (pure Python: no engine, device or process group is involved).
"""

import logging
import os

# No accelerator is used: say so rather than let DeepSpeed probe and warn.
os.environ.setdefault("DS_ACCELERATOR", "cpu")
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

from deepspeed.runtime.pipe import schedule  # noqa: E402


class Refused(Exception):
    """The schedule refused the shape (its message is the argument)."""


def train(D, M):
    """TrainSchedule (1F1B) on every rank: {rank: [(F|BW, rank, mb), ...]}.
    Its instructions name pipeline buffers, which are reused; the
    micro-batch of a step is the schedule's own _step_to_micro_batch."""
    order = {}
    for rank in range(D):
        sched = schedule.TrainSchedule(micro_batches=M, stages=D, stage_id=rank)
        ops = []
        for step, cmds in enumerate(sched.steps()):
            for cmd in cmds:
                if isinstance(cmd, (schedule.ForwardPass, schedule.BackwardPass)):
                    mb, forward = sched._step_to_micro_batch(step)
                    assert forward == isinstance(cmd, schedule.ForwardPass)
                    ops.append(("F" if forward else "BW", rank, mb))
        order[rank] = ops
    return order


def dualpipev(D, M):
    """DualPipeVSchedule on every rank: {rank: [(F|BW, stage, mb), ...]}, BW a
    full backward (it keeps weight gradients in BackwardPass).  Rank r holds
    stage r (phase 0) and 2D-1-r (phase 1); buffer = phase * M + mb."""
    order = {}
    for rank in range(D):
        try:
            sched = schedule.DualPipeVSchedule(micro_batches=M, stages=D, stage_id=rank)
        except ValueError as e:
            raise Refused(str(e)) from e
        ops = []
        for cmds in sched.steps():
            for cmd in cmds:
                if isinstance(cmd, (schedule.ForwardPass, schedule.BackwardPass)):
                    phase, mb = divmod(cmd.buffer_id, M)
                    assert phase == cmd.kwargs.get("phase", 0)
                    ops.append(("F" if isinstance(cmd, schedule.ForwardPass) else "BW",
                                rank if phase == 0 else 2 * D - 1 - rank, mb))
        order[rank] = ops
    return order
