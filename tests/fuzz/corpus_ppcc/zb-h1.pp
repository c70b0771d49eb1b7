# zb-h1.pp — zero bubble H1 (Qi et al., ICLR 2024; PyTorch's ZB1P order).
#
# The backward is split into B (input gradient, on the critical path) and
# W (weight gradient, needed only at the update).  Rank r runs its first r
# steady backwards without their W and pays the deferred Ws later, in
# what would be 1F1B's bubbles: idle (D-1)(F+B-W) per device instead of
# (D-1)(F+B+W), at 1F1B's peak memory (D activations on the busiest device).
#
#   ppcc schedules/zb-h1.pp --timeline
#   ppcc schedules/zb-h1.pp -D microbatches=32 --stats

devices = 4
microbatches = 8

schedule zb-h1

# Relative op times: B is the input-gradient half, W the weight half.
cost {
    F = 1
    B = 1
    W = 1
    comm = 0
}

model mlp {
    layers = 8
    hidden = 64
    batch = 32
    lr = 0.01
}
