"""orders_common.py — what reference_orders.py and reference_orders_zb.py
share: the op kinds, placements, PyTorch's interleaved rank builder (the
1F1B and zero-bubble variants are one function in schedules.py), the
executability check and the golden-file writer.

Golden format (read by tests/order_golden.c):

    case POLICY D=.. M=.. v=.. group=..          (group 0 = policy default)
    0: F0.0 F0.1 B0.0 ...                          (one line per device, stage.mb)
    case POLICY D=.. M=.. v=.. group=.. refused    (our check must refuse it)
"""

import os
import sys
from collections import defaultdict

F, B, W = "F", "B", "W"
UNSPLIT, SPLIT = (F, B), (F, B, W)  # the kinds an order holds
DEVICES = range(2, 9)


class Refused(Exception):
    """A reference raised on this shape (ValueError / RuntimeError / assert)."""


def loop_placement(D, v):
    return [s % D for s in range(D * v)]


def vshape_placement(D):
    # torch.distributed.pipelining._utils.generate_stage_to_rank_mapping(style="v")
    return [s if s < D else 2 * D - 1 - s for s in range(2 * D)]


def placement_for(policy, D, v):
    """The V shape for zbv and dualpipev with two chunks, loop otherwise (as
    the C side's order_spec_init)."""
    return vshape_placement(D) if v == 2 and policy in ("zbv", "dualpipev") else loop_placement(D, v)


# ------------------------------------------------- PyTorch's interleaved builder

def _get_1f1b_rank_ops(n_local_stages, pp_group_size, warmup_ops, fwd_bwd_ops, cooldown_ops, rank,
                       forward_stage_index, backward_stage_index, num_1f1b_microbatches=0,
                       enable_zero_bubble=False):
    """schedules._get_1f1b_rank_ops.  Its backward is BACKWARD_INPUT with zero
    bubble and FULL_BACKWARD without: B in our notation either way (a split
    order has its W ops, an unsplit one none)."""
    fwd_stage_mb_index = defaultdict(int)
    bwd_stage_mb_index = defaultdict(int)
    weight_stage_mb_index = defaultdict(int)
    rank_ops = [None for _ in range(rank)]
    post_warmup_ops = (n_local_stages * pp_group_size + 2 * (pp_group_size - 1 - rank)) - (warmup_ops + rank)
    if enable_zero_bubble:
        post_warmup_ops = pp_group_size - rank - 1
    total_ops = warmup_ops + fwd_bwd_ops + cooldown_ops
    backward_op_ids = []
    weight_op_count = 0
    FULL_BACKWARD_OR_BACKWARD_INPUT = B

    for op in range(total_ops):
        if op < warmup_ops:
            fwd_stage_index = forward_stage_index(op)
            mb_index = fwd_stage_mb_index[fwd_stage_index]
            fwd_stage_mb_index[fwd_stage_index] = mb_index + 1
            rank_ops.append((F, fwd_stage_index, mb_index))
            if op == warmup_ops - 1:
                rank_ops.extend([None] * post_warmup_ops)
        elif warmup_ops <= op < warmup_ops + fwd_bwd_ops:
            fwd_stage_index = forward_stage_index(op)
            fwd_mb_index = fwd_stage_mb_index[fwd_stage_index]
            fwd_stage_mb_index[fwd_stage_index] = fwd_mb_index + 1
            rank_ops.append((F, fwd_stage_index, fwd_mb_index))
            bwd_stage_index = backward_stage_index(op)
            bwd_mb_index = bwd_stage_mb_index[bwd_stage_index]
            bwd_stage_mb_index[bwd_stage_index] = bwd_mb_index + 1
            rank_ops.append((FULL_BACKWARD_OR_BACKWARD_INPUT, bwd_stage_index, bwd_mb_index))
            backward_op_ids.append(op)
            if enable_zero_bubble and op - warmup_ops >= num_1f1b_microbatches:
                weight_stage_index = backward_stage_index(backward_op_ids[weight_op_count])
                weight_mb_index = weight_stage_mb_index[weight_stage_index]
                weight_stage_mb_index[weight_stage_index] = weight_mb_index + 1
                rank_ops.append((W, weight_stage_index, weight_mb_index))
                weight_op_count += 1
        else:
            if not enable_zero_bubble:
                rank_ops.append(None)
            bwd_stage_index = backward_stage_index(op)
            bwd_mb_index = bwd_stage_mb_index[bwd_stage_index]
            bwd_stage_mb_index[bwd_stage_index] = bwd_mb_index + 1
            rank_ops.append((FULL_BACKWARD_OR_BACKWARD_INPUT, bwd_stage_index, bwd_mb_index))
            backward_op_ids.append(op)
            if enable_zero_bubble and op - warmup_ops >= num_1f1b_microbatches:
                weight_stage_index = backward_stage_index(backward_op_ids[weight_op_count])
                weight_mb_index = weight_stage_mb_index[weight_stage_index]
                weight_stage_mb_index[weight_stage_index] = weight_mb_index + 1
                rank_ops.append((W, weight_stage_index, weight_mb_index))
                weight_op_count += 1

    while enable_zero_bubble and weight_op_count < len(backward_op_ids):
        weight_stage_index = backward_stage_index(backward_op_ids[weight_op_count])
        weight_mb_index = weight_stage_mb_index[weight_stage_index]
        weight_stage_mb_index[weight_stage_index] = weight_mb_index + 1
        rank_ops.append((W, weight_stage_index, weight_mb_index))
        weight_op_count += 1
    return rank_ops


def _get_warmup_ops(rank, n_local_stages, microbatches_per_round, pp_group_size, n_microbatches,
                    multiply_factor=2):
    warmups_ops_last_stage = (n_local_stages - 1) * microbatches_per_round
    warmup_ops = warmups_ops_last_stage + multiply_factor * ((pp_group_size - 1) - rank)
    return min(warmup_ops, n_microbatches * n_local_stages)


def torch_interleaved_rank_ops(D, M, v, zero_bubble, check_rounds=True):
    """ScheduleInterleaved1F1B (zero_bubble False) or ScheduleInterleavedZeroBubble
    (True): __init__'s rounds check and _calculate_single_rank_operations, which
    differ only in the warm-up factor (2 / 1), W ops and rank r deferring r Ws.
    check_rounds=False skips the rounds check (zb-h1, v = 1, where the round size
    feeds nothing).  Returns the order and microbatches_per_round."""
    pp_group_size = D
    n_local_stages = v
    number_of_rounds = max(1, M // pp_group_size)
    microbatches_per_round = M // number_of_rounds
    if check_rounds and M % number_of_rounds != 0:
        raise Refused("%s requires the number of microbatches to be a multiple of the number of rounds "
                      "(%d), but got %d." % ("Zero bubble" if zero_bubble else "Interleaved 1F1B",
                                             number_of_rounds, M))
    order = {}
    for rank in range(D):
        warmup_ops = _get_warmup_ops(rank, n_local_stages, microbatches_per_round, pp_group_size, M,
                                     multiply_factor=1 if zero_bubble else 2)
        microbatch_ops = n_local_stages * M
        fwd_bwd_ops = microbatch_ops - warmup_ops
        cooldown_ops = microbatch_ops - fwd_bwd_ops

        def forward_stage_index(step, rank=rank):
            local_index = (step // microbatches_per_round) % n_local_stages
            return (local_index * pp_group_size) + rank

        def backward_stage_index(step, rank=rank, warmup_ops=warmup_ops):
            local_index = n_local_stages - 1 - ((step - warmup_ops) // microbatches_per_round) % n_local_stages
            return (local_index * pp_group_size) + rank

        num_1f1b_microbatches = rank if zero_bubble else 0
        ops = _get_1f1b_rank_ops(n_local_stages, pp_group_size, warmup_ops, fwd_bwd_ops, cooldown_ops, rank,
                                 forward_stage_index, backward_stage_index, num_1f1b_microbatches,
                                 enable_zero_bubble=zero_bubble)
        # None is padding (and _add_bubbles_to_actions only adds more): the order stays.
        order[rank] = [a for a in ops if a is not None]
    return order, microbatches_per_round


# -------------------------------------------------------------- the checks

def check_executable(order, placement, M, kinds=SPLIT):
    """Every op once per (stage, mb) on the stage's device; all lists run to
    the end with F(s-1,m) -> F(s,m) -> B(s,m), B(s+1,m) -> B(s,m), B -> W
    (infinite buffers: the rendezvous check is the verifier's)."""
    S = len(placement)
    for d, ops in order.items():
        want = sorted((k, s, m) for k in kinds for s in range(S) if placement[s] == d for m in range(M))
        assert sorted(ops) == want, "device %d: not every op exactly once" % d
    done = set()
    pos = {d: 0 for d in order}
    progress = True
    while progress:
        progress = False
        for d in order:
            while pos[d] < len(order[d]):
                k, s, m = order[d][pos[d]]
                if k == F:
                    ready = s == 0 or (F, s - 1, m) in done
                elif k == B:
                    ready = (F, s, m) in done and (s == S - 1 or (B, s + 1, m) in done)
                else:
                    ready = (B, s, m) in done
                if not ready:
                    break
                done.add((k, s, m))
                pos[d] += 1
                progress = True
    stuck = {d: order[d][pos[d]] for d in order if pos[d] < len(order[d])}
    assert not stuck, "dependencies cannot be satisfied; devices wait at %s" % stuck


# ------------------------------------------------------------ golden files

def fmt(order):
    return "".join("%d: %s\n" % (d, " ".join("%s%d.%d" % op for op in order[d])) for d in sorted(order))


def case(policy, D, M, v, group, order=None, kinds=UNSPLIT):
    """One case: the order (checked first), or refused when it is None."""
    head = "case %s D=%d M=%d v=%d group=%d" % (policy, D, M, v, group)
    if order is None:
        return head + " refused\n"
    check_executable(order, placement_for(policy, D, v), M, kinds)
    return head + "\n" + fmt(order)


def write_goldens(subdir, generators):
    """Writes tests/golden/<subdir>/<name>.txt for each (name, generator)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", subdir)
    os.makedirs(root, exist_ok=True)
    for name, gen in generators:
        text = "".join(gen())
        with open(os.path.join(root, name + ".txt"), "w") as f:
            f.write(text)
        print("%s: %d cases, %d bytes" % (name, text.count("case "), len(text)), file=sys.stderr)
