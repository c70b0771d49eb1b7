#!/usr/bin/env python3
"""reference_orders_zb.py — compute orders of the split-backward references.

Transcriptions, kept close to the structure of their source, of PyTorch's
torch/distributed/pipelining/schedules.py:

  ScheduleLoopedBFS._calculate_single_rank_operations           -> looped-bfs
  ScheduleInterleavedZeroBubble.__init__ checks and
    _calculate_single_rank_operations, _get_warmup_ops,
    _get_1f1b_rank_ops(enable_zero_bubble=True)                 -> interleaved-zb
  the same builder with one stage per rank (PyTorch's ZB1P)     -> zb-h1
  ScheduleZBVZeroBubble.__init__ checks and
    _calculate_single_rank_operations                           -> zbv
  ScheduleDualPipeV.__init__ checks and
    _calculate_single_rank_operations                           -> dualpipev

Only compute actions are kept.  PyTorch's `None` padding and the bubbles
that ScheduleInterleavedZeroBubble._add_bubbles_to_actions inserts are
idle slots: they never reorder a rank's actions, so they are dropped.
Action kinds map to ours: F -> F, I (BACKWARD_INPUT) -> B, W -> W, and a
FULL_BACKWARD (DualPipeV mixes them in) -> B immediately followed by W of
the same (stage, mb), which is what a full backward computes.  An
OVERLAP_F_B runs its sub-actions in order (F, then the full backward).

Writes tests/golden/orders_zb/<policy>.txt, read by tests/test_policy_zb.c,
in the format of tests/golden/orders (reference_orders.py):

    case POLICY D=.. M=.. v=.. group=0
    0: F0.0 F0.1 B0.0 W0.0 ...
    case POLICY D=.. M=.. v=.. group=0 refused

Every order written is checked: each F/B/W once per (stage, mb) on the
stage's device, and all lists run to the end honouring the dependencies
(infinite buffers).  It also prints the unit-cost (F = B = W = 1, no comm)
makespan, bubble and peak activations the docs quote.
Run: python3 tests/ref/reference_orders_zb.py
"""

import sys

from orders_common import (B, DEVICES, F, SPLIT, UNSPLIT, W, Refused, case, loop_placement,
                           torch_interleaved_rank_ops, vshape_placement, write_goldens)

FULL = "FULL"  # PyTorch FULL_BACKWARD, expanded to B then W when written


# ------------------------------------------------------------ LoopedBFS

def torch_looped_bfs(D, M, v):
    """ScheduleLoopedBFS._calculate_single_rank_operations (full backward)."""
    order = {}
    for rank in range(D):
        n_local_stages = v
        stage_indices = range(rank, D * n_local_stages, D)
        rank_ops = [None for _ in range(rank)]
        for stage_index in stage_indices:
            rank_ops.extend((F, stage_index, mb_index) for mb_index in range(M))
        post_warmup_ops = 2 * (D - 1 - rank)
        rank_ops.extend([None] * post_warmup_ops)
        for stage_index in reversed(stage_indices):
            rank_ops.extend((B, stage_index, mb_index) for mb_index in reversed(range(M)))
        order[rank] = [a for a in rank_ops if a is not None]
    return order


# ------------------------------------------------- InterleavedZeroBubble

def torch_interleaved_zb(D, M, v, check_rounds=True):
    """ScheduleInterleavedZeroBubble.__init__ + _calculate_single_rank_operations
    (orders_common.py: the builder it shares with ScheduleInterleaved1F1B).
    check_rounds=False skips the rounds check, for zb-h1 (v = 1)."""
    return torch_interleaved_rank_ops(D, M, v, zero_bubble=True, check_rounds=check_rounds)[0]


# ------------------------------------------------------------------ ZBV

def torch_zbv(D, M):
    """ScheduleZBVZeroBubble._calculate_single_rank_operations, every rank."""
    num_stages = 2 * D
    order = {}
    for rank in range(D):
        n_micro = max(2 * D - 1, M)
        rank_ops = [None for _ in range(rank)]
        f0_cnt, f1_cnt, b0_cnt, b1_cnt = 0, 0, 0, 0
        warmup_n1 = 2 * (D - rank) - 1
        stage_id_chunk0 = rank
        stage_id_chunk1 = num_stages - 1 - rank
        for _ in range(warmup_n1):
            rank_ops.append((F, stage_id_chunk0, f0_cnt))
            f0_cnt += 1
        warmup_n2 = rank
        for _ in range(warmup_n2):
            rank_ops.append((F, stage_id_chunk1, f1_cnt))
            f1_cnt += 1
            rank_ops.append((F, stage_id_chunk0, f0_cnt))
            f0_cnt += 1
        warmup_n3 = D - rank
        for _ in range(warmup_n3):
            rank_ops.append((F, stage_id_chunk1, f1_cnt))
            f1_cnt += 1
            rank_ops.append((B, stage_id_chunk1, b1_cnt))
            rank_ops.append((W, stage_id_chunk1, b1_cnt))
            b1_cnt += 1
        while f1_cnt < f0_cnt or f0_cnt < n_micro:
            if f0_cnt < n_micro:
                rank_ops.append((F, stage_id_chunk0, f0_cnt))
                f0_cnt += 1
            rank_ops.append((B, stage_id_chunk0, b0_cnt))
            rank_ops.append((W, stage_id_chunk0, b0_cnt))
            b0_cnt += 1
            rank_ops.append((F, stage_id_chunk1, f1_cnt))
            f1_cnt += 1
            rank_ops.append((B, stage_id_chunk1, b1_cnt))
            rank_ops.append((W, stage_id_chunk1, b1_cnt))
            b1_cnt += 1
        w0_cnt, w1_cnt = b0_cnt, b1_cnt
        cooldown_n1 = rank
        for _ in range(cooldown_n1):
            rank_ops.append((B, stage_id_chunk0, b0_cnt))
            b0_cnt += 1
            rank_ops.append((B, stage_id_chunk1, b1_cnt))
            b1_cnt += 1
        cooldown_n2 = D - rank
        for _ in range(cooldown_n2):
            rank_ops.append((B, stage_id_chunk0, b0_cnt))
            b0_cnt += 1
            rank_ops.append((W, stage_id_chunk0, w0_cnt))
            w0_cnt += 1
        while w1_cnt < b1_cnt:
            rank_ops.append((W, stage_id_chunk1, w1_cnt))
            w1_cnt += 1
        while w0_cnt < b0_cnt:
            rank_ops.append((W, stage_id_chunk0, w0_cnt))
            w0_cnt += 1
        assert w0_cnt == b0_cnt == f0_cnt and w1_cnt == b1_cnt == f1_cnt
        # max() above may add micro-batches past M: PyTorch turns them into None.
        rank_ops = [a if a is not None and a[2] < M else None for a in rank_ops]
        order[rank] = [a for a in rank_ops if a is not None]
    return order


# ------------------------------------------------------------ DualPipeV

def torch_dualpipev(D, M):
    """ScheduleDualPipeV.__init__ checks + _calculate_single_rank_operations."""
    num_stages = 2 * D
    if M < num_stages:
        raise Refused("DualPipeV requires at least as many microbatches as stages, but got "
                      "%d microbatches and %d stages." % (M, num_stages))
    placement = vshape_placement(D)
    order = {}
    for rank in range(D):
        actions = []
        counters = {}
        weight_queue = []
        num_ranks = D
        num_chunks = M
        stage0_index, stage1_index = [s for s in range(num_stages) if placement[s] == rank]

        def increment_backward_counts(stage_index):
            counters[(stage_index, B)] = counters.get((stage_index, B), 0) + 1
            counters[(stage_index, W)] = counters.get((stage_index, W), 0) + 1

        def add_overlap_f_b(actions, forward_stage, backward_stage):
            forward_mb = counters.get((forward_stage, F), 0)
            backward_mb = counters.get((backward_stage, B), 0)
            actions.append((F, forward_stage, forward_mb))
            actions.append((FULL, backward_stage, backward_mb))
            counters[(forward_stage, F)] = forward_mb + 1
            increment_backward_counts(backward_stage)

        def add_action(actions, stage_index, computation_type):
            key = (stage_index, computation_type) if computation_type != FULL else (stage_index, B)
            mb_index = counters.get(key, 0)
            actions.append((computation_type, stage_index, mb_index))
            if computation_type == FULL:
                increment_backward_counts(stage_index)
            else:
                if computation_type == B:
                    weight_queue.append((stage_index, mb_index))
                counters[key] = mb_index + 1

        def add_weight_action_if_pending(actions):
            if not weight_queue:
                return
            actual_stage_index, weight_mb_index = weight_queue.pop(0)
            actions.append((W, actual_stage_index, weight_mb_index))
            counters[(actual_stage_index, W)] = counters.get((actual_stage_index, W), 0) + 1

        step_1 = (num_ranks - rank - 1) * 2          # F0
        for _ in range(step_1):
            add_action(actions, stage0_index, F)
        step_2 = rank + 1                            # F0F1
        for _ in range(step_2):
            add_action(actions, stage0_index, F)
            add_action(actions, stage1_index, F)
        step_3 = num_ranks - rank - 1                # I1W1F1
        for _ in range(step_3):
            add_action(actions, stage1_index, B)
            add_weight_action_if_pending(actions)
            add_action(actions, stage1_index, F)
        step_4 = num_chunks - num_ranks * 2 + rank + 1   # F0B1-F1B0
        for i in range(step_4):
            if i == 0 and rank == num_ranks - 1:
                add_action(actions, stage0_index, F)
                add_action(actions, stage1_index, FULL)
            else:
                add_overlap_f_b(actions, forward_stage=stage0_index, backward_stage=stage1_index)
            add_overlap_f_b(actions, forward_stage=stage1_index, backward_stage=stage0_index)
        step_5 = num_ranks - rank - 1                # B1-F1B0
        for _ in range(step_5):
            add_action(actions, stage1_index, FULL)
            add_overlap_f_b(actions, forward_stage=stage1_index, backward_stage=stage0_index)
        step_6 = rank + 1                            # B1B0
        enable_zb = False
        for i in range(step_6):
            if i == step_6 // 2 and rank % 2 == 1:
                enable_zb = True
            add_action(actions, stage1_index, B if enable_zb else FULL)
            if i == step_6 // 2 and rank % 2 == 0:
                enable_zb = True
            add_action(actions, stage0_index, B if enable_zb else FULL)
        step_7 = num_ranks - rank - 1                # W0B0
        for _ in range(step_7):
            add_weight_action_if_pending(actions)
            add_action(actions, stage0_index, B if enable_zb else FULL)
        step_8 = rank + 1                            # W0
        for _ in range(step_8):
            add_weight_action_if_pending(actions)

        expanded = []
        for k, s, m in actions:
            if k == FULL:
                expanded += [(B, s, m), (W, s, m)]
            else:
                expanded.append((k, s, m))
        order[rank] = expanded
    return order


# ------------------------------------------------------- unit-cost stats

def unit_cost_stats(order, placement, split=True):
    """Makespan, bubble and peak activations with F = B = W = 1 (an unsplit B
    costs 2), no communication time, infinite buffers: each op starts when its
    device is free and its inputs are done.  Activations of (s, m) live from
    F(s,m) to its W (to B when unsplit), as the simulator counts them."""
    S = len(placement)
    end = {}
    t = {d: 0.0 for d in order}
    pos = {d: 0 for d in order}
    live = {d: 0 for d in order}
    peak = {d: 0 for d in order}
    remaining = sum(len(o) for o in order.values())
    while remaining:
        for d in order:
            while pos[d] < len(order[d]):
                k, s, m = order[d][pos[d]]
                deps = []
                if k == F and s > 0:
                    deps.append((F, s - 1, m))
                if k == B:
                    deps.append((F, s, m))
                    if s < S - 1:
                        deps.append((B, s + 1, m))
                if k == W:
                    deps.append((B, s, m))
                if any(x not in end for x in deps):
                    break
                start = max([t[d]] + [end[x] for x in deps])
                cost = 2.0 if (k == B and not split) else 1.0
                end[(k, s, m)] = t[d] = start + cost
                if k == F:
                    live[d] += 1
                    peak[d] = max(peak[d], live[d])
                if (k == W) or (k == B and not split):
                    live[d] -= 1
                pos[d] += 1
                remaining -= 1
    makespan = max(t.values())
    busy = sum((2.0 if (k == B and not split) else 1.0) for o in order.values() for k, _, _ in o)
    return makespan, 1 - busy / (len(order) * makespan), [peak[d] for d in sorted(order)]


def gen_zb_h1():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            out.append(case("zb-h1", D, M, 1, 0, torch_interleaved_zb(D, M, 1, False), SPLIT))
        out.append(case("zb-h1", D, D, 2, 0))   # one stage per device
    return out


def gen_zbv():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            out.append(case("zbv", D, M, 2, 0, torch_zbv(D, M), SPLIT))
        out.append(case("zbv", D, D, 1, 0))     # exactly two stages per rank
        out.append(case("zbv", D, D, 3, 0))
    return out


def gen_dualpipev():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            try:
                order = torch_dualpipev(D, M)
            except Refused:
                order = None
            out.append(case("dualpipev", D, M, 2, 0, order, SPLIT))
        out.append(case("dualpipev", D, 2 * D, 1, 0))
    return out


def gen_looped_bfs():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            for v in range(1, 5):
                out.append(case("looped-bfs", D, M, v, 0, torch_looped_bfs(D, M, v), UNSPLIT))
    return out


def gen_interleaved_zb():
    out = []
    for D in DEVICES:
        for M in range(1, 4 * D + 1):
            for v in range(1, 5):
                try:
                    order = torch_interleaved_zb(D, M, v)
                except Refused:
                    order = None
                out.append(case("interleaved-zb", D, M, v, 0, order, SPLIT))
    return out


def report():
    """The unit-cost figures docs/schedules-zb.md quotes (D = 8, M = 32)."""
    D, M = 8, 32
    rows = [("zb-h1", torch_interleaved_zb(D, M, 1, False), loop_placement(D, 1), True),
            ("zbv", torch_zbv(D, M), vshape_placement(D), True),
            ("dualpipev", torch_dualpipev(D, M), vshape_placement(D), True),
            ("interleaved-zb v=2", torch_interleaved_zb(D, M, 2), loop_placement(D, 2), True),
            ("looped-bfs v=2", torch_looped_bfs(D, M, 2), loop_placement(D, 2), False)]
    for name, order, placement, split in rows:
        mk, bub, peak = unit_cost_stats(order, placement, split)
        print("%-20s D=%d M=%d makespan %.0f bubble %.4f peak %s" % (name, D, M, mk, bub, peak), file=sys.stderr)


def main():
    write_goldens("orders_zb", (("zb-h1", gen_zb_h1), ("zbv", gen_zbv), ("dualpipev", gen_dualpipev),
                                ("looped-bfs", gen_looped_bfs), ("interleaved-zb", gen_interleaved_zb)))
    report()


if __name__ == "__main__":
    main()
