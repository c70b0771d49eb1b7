#!/usr/bin/env python3
"""reference_orders.py — the compute orders of the reference schedules.

Transcriptions, kept close to the structure of their sources, of

  PyTorch  torch/distributed/pipelining/schedules.py
           ScheduleGPipe, Schedule1F1B (both `_step_microbatches`, the
           order the ranks really run, and `_get_pipeline_order`, the IR),
           ScheduleInterleaved1F1B (`__init__` checks, `_get_warmup_ops`,
           `_calculate_single_rank_operations`, `_get_1f1b_rank_ops`);
  Megatron megatron/core/pipeline_parallel/schedules.py
           forward_backward_pipelining_without_interleaving,
           forward_backward_pipelining_with_interleaving with
           get_pp_rank_microbatches and get_schedule_table.

Only the compute calls are kept (forward_one_chunk / forward_step_helper,
backward_one_chunk / backward_step_helper); communication, losses and grad
syncs are dropped.  Micro-batch ids are tracked as the sources track them:
PyTorch by its counters, Megatron through its FIFO of saved input tensors
(a backward pops the oldest forward of its chunk).

Writes tests/golden/orders/{gpipe,1f1b,interleaved}.txt, read by
tests/test_policy.c (orders_common.py has what this shares with
reference_orders_zb.py):

    case POLICY D=.. M=.. v=.. group=..          (group 0 = policy default)
    0: F0.0 F0.1 B0.0 ...                          (one line per device, stage.mb)
    case POLICY D=.. M=.. v=.. group=.. refused    (our check must refuse it)

Where the references should agree it asserts they do; every order written
is checked to be executable (dependencies only, infinite buffers: the
rendezvous check is the verifier's).  Run: python3 tests/ref/reference_orders.py
"""

import sys

from orders_common import (B, DEVICES, F, UNSPLIT, Refused, case, check_executable, loop_placement,
                           torch_interleaved_rank_ops, write_goldens)


# ---------------------------------------------------------------- PyTorch

def torch_gpipe_step(D, M):
    """ScheduleGPipe._step_microbatches, on every rank (stage = rank)."""
    order = {}
    for rank in range(D):
        ops = []
        for i in range(M):                       # forward_one_chunk(i, ...)
            ops.append((F, rank, i))
        for i in range(M):                       # backward_one_chunk(i, ...)
            ops.append((B, rank, i))
        order[rank] = ops
    return order


def torch_gpipe_pipeline_order(D, M):
    """ScheduleGPipe._get_pipeline_order, Nones (idle steps) dropped."""
    pipeline_order = {}
    for rank in range(D):
        actions = [None] * rank
        for mb_idx in range(M):
            actions.append((F, rank, mb_idx))
        actions.extend([None] * (3 * (D - 1 - rank)))
        for mb_idx in range(M):
            actions.append((B, rank, mb_idx))
        pipeline_order[rank] = [a for a in actions if a is not None]
    return pipeline_order


def torch_1f1b_step(D, M):
    """Schedule1F1B.__init__ check and _step_microbatches on every rank."""
    if M < D:
        raise Refused("Schedule1F1B: Number of microbatches (%d) must be greater than or equal to "
                      "the number of stages (%d)." % (M, D))
    order = {}
    for stage_index in range(D):
        ops = []
        warmup_chunks = min(M, D - stage_index)
        fwd_mb_index = 0
        bwd_mb_index = 0
        for _ in range(warmup_chunks):
            ops.append((F, stage_index, fwd_mb_index))
            fwd_mb_index += 1
        while True:                              # 1B1F phase
            ops.append((B, stage_index, bwd_mb_index))
            bwd_mb_index += 1
            if fwd_mb_index == M:
                break
            ops.append((F, stage_index, fwd_mb_index))
            fwd_mb_index += 1
        while bwd_mb_index < M:                  # cooldown
            ops.append((B, stage_index, bwd_mb_index))
            bwd_mb_index += 1
        order[stage_index] = ops
    return order


def torch_1f1b_pipeline_order(D, M):
    """Schedule1F1B._get_pipeline_order, Nones dropped."""
    pipeline_order = {}
    for rank in range(D):
        actions = [None] * rank
        num_forward = (D - 1) - rank
        forward_mb = 0
        for i in range(num_forward):
            actions.append((F, rank, i))
            forward_mb = i
        actions.extend([None] * max(0, 2 * (D - 1 - rank)))
        backward_mb = 0
        remaining_forward = M - num_forward
        while remaining_forward > 0:
            forward_mb += 1
            actions.append((F, rank, forward_mb))
            remaining_forward -= 1
            actions.append((B, rank, backward_mb))
            backward_mb += 1
        remaining_backward = M - backward_mb
        while remaining_backward > 0:
            actions.append(None)
            actions.append((B, rank, backward_mb))
            backward_mb += 1
            remaining_backward -= 1
        pipeline_order[rank] = [a for a in actions if a is not None]
    return pipeline_order


def torch_interleaved(D, M, v):
    """ScheduleInterleaved1F1B.__init__ and _calculate_single_rank_operations
    (orders_common.py: the builder it shares with the zero-bubble schedule)."""
    return torch_interleaved_rank_ops(D, M, v, zero_bubble=False)


def megatron_1f1b(D, M):
    """forward_backward_pipelining_without_interleaving on every rank."""
    order = {}
    for rank in range(D):
        ops = []
        data_iterator = iter(range(M))           # forward_step draws the next micro-batch
        input_tensors = []                       # FIFO of saved forwards
        num_warmup_microbatches = D - rank - 1
        num_warmup_microbatches = min(num_warmup_microbatches, M)
        num_microbatches_remaining = M - num_warmup_microbatches
        for i in range(num_warmup_microbatches):
            mb = next(data_iterator)
            ops.append((F, rank, mb))
            input_tensors.append(mb)
        for i in range(num_microbatches_remaining):
            mb = next(data_iterator)
            ops.append((F, rank, mb))
            input_tensors.append(mb)
            ops.append((B, rank, input_tensors.pop(0)))
        for i in range(num_warmup_microbatches):
            ops.append((B, rank, input_tensors.pop(0)))
        order[rank] = ops
    return order


def get_pp_rank_microbatches(num_microbatches, num_model_chunks, microbatch_group_size_per_vp_stage,
                             pipeline_parallel_size, pipeline_parallel_rank):
    """Its interleaved branch (virtual size set, not forward-only, no MoE overlap)."""
    total_num_microbatches = num_microbatches * num_model_chunks
    are_all_microbatches_in_warmup = False
    num_warmup_microbatches = (pipeline_parallel_size - pipeline_parallel_rank - 1) * 2
    num_warmup_microbatches += (num_model_chunks - 1) * microbatch_group_size_per_vp_stage
    if num_warmup_microbatches >= total_num_microbatches:
        num_warmup_microbatches = total_num_microbatches
        are_all_microbatches_in_warmup = True
    num_microbatches_remaining = total_num_microbatches - num_warmup_microbatches
    return (total_num_microbatches, are_all_microbatches_in_warmup, num_warmup_microbatches,
            num_microbatches_remaining)


def get_schedule_table(num_microbatches, num_model_chunks, microbatch_group_size_per_vp_stage):
    schedule_table = []
    G = microbatch_group_size_per_vp_stage
    for min_microbatch_id_in_group in range(0, num_microbatches, G):
        if min_microbatch_id_in_group + G >= num_microbatches:
            schedule_table.extend([(microbatch_id, model_chunk_id)
                                   for model_chunk_id in range(num_model_chunks)
                                   for microbatch_id in range(min_microbatch_id_in_group, num_microbatches)])
        else:
            schedule_table.extend([(microbatch_id, model_chunk_id)
                                   for model_chunk_id in range(num_model_chunks)
                                   for microbatch_id in range(min_microbatch_id_in_group,
                                                              min_microbatch_id_in_group + G)])
    return schedule_table


def megatron_interleaved(D, M, v, G, checks=True):
    """forward_backward_pipelining_with_interleaving on every rank.

    checks=False skips its two shape checks (used for the shapes we accept
    beyond Megatron's: M < D as PyTorch does, explicit groups out of range)."""
    if checks:
        if G > M or G < D:
            raise Refused("The number of contiguous micro-batches in a virtual pipeline stage"
                          "should range in [PP=%d , M=%d]" % (D, M))
        final_microbatch_group_size = M % G
        if 0 < final_microbatch_group_size < D:
            raise Refused("The remainder of M (the total micro-batches) divided by N ... is %d"
                          % final_microbatch_group_size)
    order = {}
    num_model_chunks = v
    for rank in range(D):
        ops = []
        (total_num_microbatches, are_all_microbatches_in_warmup, num_warmup_microbatches,
         num_microbatches_remaining) = get_pp_rank_microbatches(M, v, G, D, rank)
        schedule_table = get_schedule_table(M, v, G)
        microbatch_id_table, model_chunk_id_table = zip(*schedule_table)
        input_tensors = [[] for _ in range(v)]

        def get_model_chunk_id(virtual_microbatch_id, forward):
            model_chunk_id = model_chunk_id_table[virtual_microbatch_id % total_num_microbatches]
            if not forward:
                model_chunk_id = num_model_chunks - model_chunk_id - 1
            return model_chunk_id

        def forward_step_helper(virtual_microbatch_id):
            model_chunk_id = get_model_chunk_id(virtual_microbatch_id, forward=True)
            microbatch_id = microbatch_id_table[virtual_microbatch_id]
            ops.append((F, model_chunk_id * D + rank, microbatch_id))
            input_tensors[model_chunk_id].append(microbatch_id)

        def backward_step_helper(virtual_microbatch_id):
            model_chunk_id = get_model_chunk_id(virtual_microbatch_id, forward=False)
            ops.append((B, model_chunk_id * D + rank, input_tensors[model_chunk_id].pop(0)))

        for k in range(num_warmup_microbatches):
            forward_step_helper(k)
        for k in range(num_microbatches_remaining):
            forward_k = k + num_warmup_microbatches
            backward_k = k
            forward_step_helper(forward_k)
            backward_step_helper(backward_k)
        for k in range(num_microbatches_remaining, total_num_microbatches):
            backward_step_helper(k)
        assert all(not t for t in input_tensors)
        order[rank] = ops
    return order


# ------------------------------------------------------------ the cases

DEADLOCKS = [0, 0]  # refused explicit groups: [how many deadlock, how many]


def gen_gpipe():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            a, b = torch_gpipe_step(D, M), torch_gpipe_pipeline_order(D, M)
            assert a == b, "ScheduleGPipe: step and pipeline order differ at D=%d M=%d" % (D, M)
            out.append(case("gpipe", D, M, 1, 0, a))
        out.append(case("gpipe", D, D, 2, 0))    # single-stage schedules refuse chunks
    return out


def gen_1f1b():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            meg = megatron_1f1b(D, M)
            try:
                step, ir = torch_1f1b_step(D, M), torch_1f1b_pipeline_order(D, M)
            except Refused:
                assert M < D                     # PyTorch refuses, Megatron runs: we follow Megatron
            else:
                assert step == meg, "Schedule1F1B differs from Megatron at D=%d M=%d" % (D, M)
                # The IR agrees on every rank but the last, where it is off by
                # one: with no warmup forward, `forward_mb += 1` runs before
                # the first steady forward, so it lists F1..FM for F0..F(M-1).
                # The IR only feeds PyTorch's simulator and its plots; what
                # the last rank runs (_step_microbatches) is Megatron's order.
                for r in range(D - 1):
                    assert ir[r] == meg[r], "Schedule1F1B IR differs from Megatron at D=%d M=%d" % (D, M)
                shifted = [(k, s, m + 1 if k == F else m) for k, s, m in meg[D - 1]]
                assert ir[D - 1] == shifted, "Schedule1F1B IR: last rank not as documented at D=%d M=%d" % (D, M)
            out.append(case("1f1b", D, M, 1, 0, meg))
        out.append(case("1f1b", D, D, 2, 0))     # Megatron asserts one chunk
    return out


def default_group(D, M):
    """Our default: Megatron's G = D; PyTorch's single round G = M when M < D."""
    return M if M < D else D


def gen_interleaved():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            for v in range(1, 5):
                # The default group: Megatron's order where Megatron runs it.
                G = default_group(D, M)
                try:
                    meg = megatron_interleaved(D, M, v, G, checks=M >= D)
                except Refused:
                    meg = None
                out.append(case("interleaved", D, M, v, 0, meg))

                # PyTorch's order, where it runs: equal to Megatron's table with
                # G = microbatches_per_round (Megatron's checks skipped when M < D).
                try:
                    pt, per_round = torch_interleaved(D, M, v)
                except Refused:
                    continue
                mg = megatron_interleaved(D, M, v, per_round, checks=M >= D)
                assert pt == mg, "ScheduleInterleaved1F1B differs from Megatron G=%d at D=%d M=%d v=%d" % (
                    per_round, D, M, v)
                if meg is not None:
                    assert per_round != G or pt == meg
                if meg is None or per_round != G:
                    out.append(case("interleaved", D, M, v, per_round, pt))
        # Explicit groups: every G in 1..M for a few M.  Accepted where
        # Megatron accepts it, and G = M (one group, PyTorch's round when
        # M < D); refused otherwise -- those orders can deadlock, which the
        # dependency check shows for many of them (counted in DEADLOCKS).
        for M in sorted({max(1, D - 1), 2 * D, 2 * D + 1, 3 * D - 1}):
            for v in (2, 3):
                for G in range(1, M + 2):
                    if G > M:
                        out.append(case("interleaved", D, M, v, G))
                        continue
                    try:
                        order = megatron_interleaved(D, M, v, G)
                    except Refused:
                        order = megatron_interleaved(D, M, v, G, checks=False) if G == M else None
                    if order is None:
                        try:
                            check_executable(megatron_interleaved(D, M, v, G, checks=False), loop_placement(D, v), M,
                                             UNSPLIT)
                        except AssertionError:
                            DEADLOCKS[0] += 1
                        DEADLOCKS[1] += 1
                    out.append(case("interleaved", D, M, v, G, order))
    return out


def main():
    write_goldens("orders", (("gpipe", gen_gpipe), ("1f1b", gen_1f1b), ("interleaved", gen_interleaved)))
    print("interleaved: %d of the %d refused explicit groups deadlock" % tuple(DEADLOCKS), file=sys.stderr)

if __name__ == "__main__":
    main()
