"""torch_orders.py — the compute order each rank of a PyTorch pipeline
schedule runs, taken by running torch.distributed.pipelining itself.

Each rank's schedule object is built by its own class (so its __init__ checks
and its IR builder run as shipped) and then runs its own `_step_microbatches`;
only the stages are stand-ins: `RecordingStage` moves no tensors and holds no
device or process group, it records the compute calls the schedule makes.
Everything else, from the schedule IR to the lowering with sends and
receives that the multi-stage runtime executes, is the package's code.
"""

import torch
from torch.distributed.pipelining import schedules
from torch.distributed.pipelining._utils import generate_stage_to_rank_mapping


class Refused(Exception):
    """The schedule class refused the shape (its message is the argument)."""


class RecordingStage:
    """What a schedule calls on a stage: compute calls are logged as
    (kind, stage, mb) with kind F, B (input gradient only), W (weight
    gradient) or BW (a full backward); communication has nothing to move."""

    def __init__(self, log, stage_index, num_stages, rank, group_size):
        self.log = log
        self.stage_index, self.num_stages = stage_index, num_stages
        self.group_rank, self.group_size = rank, group_size
        self.is_first, self.is_last = stage_index == 0, stage_index == num_stages - 1
        self.submod = torch.nn.Module()  # not FSDP: no unshard / reshard work
        self.device = torch.device("cpu")

    def forward_one_chunk(self, mb, args, kwargs, save_forward_output=True):
        self.log.append(("F", self.stage_index, mb))

    def backward_one_chunk(self, mb, loss=None, full_backward=True, last_backward=False):
        self.log.append(("BW" if full_backward else "B", self.stage_index, mb))

    def backward_weight_one_chunk(self, mb, last_backward=False):
        self.log.append(("W", self.stage_index, mb))

    def get_fwd_recv_ops(self, mb):
        return []

    get_fwd_send_ops = get_bwd_recv_ops = get_bwd_send_ops = get_fwd_recv_ops

    def release_fwd_send_outputs(self, mb):
        pass

    def set_local_fwd_input(self, output, mb):
        pass

    def set_local_bwd_input(self, grad, mb):
        pass

    def get_local_bwd_output(self, mb):
        return None

    def perform_reduce_grad(self, scale):
        pass


def placement(D, v, style):
    """Stage -> rank, as the package maps it ("loop" or "v")."""
    return generate_stage_to_rank_mapping(D, D * v, style=style)


def _ir(pipeline_order):
    """The schedule's IR, padding (None) and non-compute actions dropped,
    OVERLAP_F_B flattened into its sub-actions."""
    kind = {"F": "F", "B": "BW", "I": "B", "W": "W"}  # _ComputationType values
    out = {}
    for rank, actions in pipeline_order.items():
        ops = []
        for a in actions:
            for sub in (a.sub_actions or (a,)) if a is not None else ():
                name = sub.computation_type.value
                if name in kind:
                    ops.append((kind[name], sub.stage_index, sub.microbatch_index))
        out[rank] = ops
    return out


def _build(cls, stages, M, lift_round_check):
    kwargs = dict(n_microbatches=M, loss_fn=lambda output, target: None)
    if issubclass(cls, schedules.PipelineScheduleSingle):
        if len(stages) != 1:
            raise Refused("%s runs one stage per rank, got %d" % (cls.__name__, len(stages)))
        sched = cls(stages[0], **kwargs)
        # Stage set-up exchanges shapes with the neighbours: nothing to set up here.
        sched._stage_forward_initialized = sched._stage_backward_initialized = True
        return sched
    if lift_round_check:
        # Built for D micro-batches (one round, always accepted), then rebuilt for M.
        sched = cls(stages, **dict(kwargs, n_microbatches=stages[0].group_size))
        _rebuild_one_round(sched, M)
    else:
        sched = cls(stages, **kwargs)
    sched._stages_forward_initialized = sched._stages_backward_initialized = True
    return sched


def _rebuild_one_round(sched, M):
    """The IR of ScheduleInterleavedZeroBubble for M micro-batches in one
    round, by the steps its __init__ takes after the rounds check (which
    refuses M when it is not a multiple of max(1, M // D))."""
    sched._n_microbatches = M
    sched.number_of_rounds, sched.microbatches_per_round = 1, M
    sched.pipeline_order = {r: sched._calculate_single_rank_operations(r) for r in range(sched.pp_group_size)}
    sched.pipeline_order = sched._add_bubbles_to_actions(sched.n_local_stages * sched.pp_group_size)
    sched._prepare_schedule_with_comms(sched.pipeline_order)


def run(cls, D, M, v, style="loop", lift_round_check=False):
    """Runs schedule class `cls` on every rank of a D-rank pipeline with v
    stages per rank.  Returns (ran, ir, schedule): what each rank's
    _step_microbatches executed and the schedule's IR (`pipeline_order`),
    both as {rank: [(kind, stage, mb), ...]}, and the last schedule object
    built.  Raises Refused where the class does.

    A single-stage schedule is built on each rank.  A multi-stage one is
    built once, on rank 0: every rank's __init__ computes the IR and the
    lowering of the whole pipeline alike, and its _step_microbatches runs
    the row of its own rank (`rank`) on its own stages, which are swapped
    in for each rank.  lift_round_check builds ScheduleInterleavedZeroBubble
    for one round of M instead of letting __init__ refuse M (see
    _rebuild_one_round)."""
    where = placement(D, v, style)
    logs = {rank: [] for rank in range(D)}
    stages = {rank: [RecordingStage(logs[rank], s, D * v, rank, D) for s in range(D * v) if where[s] == rank]
              for rank in range(D)}
    sched = None
    for rank in range(D):
        try:
            if sched is None or isinstance(sched, schedules.PipelineScheduleSingle):
                sched = _build(cls, stages[rank], M, lift_round_check)
        except ValueError as e:
            raise Refused(str(e)) from e
        if isinstance(sched, schedules.PipelineScheduleMulti):
            sched.rank, sched._stages = rank, stages[rank]
        sched._step_microbatches(target_mbs=[None] * M)
    return logs, _ir(sched.pipeline_order), sched
