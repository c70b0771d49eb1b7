# zb-h2.pp — zero bubble H2 (Qi et al., ICLR 2024, figure 3).
#
# More memory for less bubble: device d warms up with 2(D-d)-1 forwards
# (2D-1 activations on device 0, about twice 1F1B's D), then runs B, the W
# it deferred d steps earlier, and the next F; the tail pays the deferred
# Ws while the last backwards travel to device 0 (a parallelogram).  With
# F = B = W and no comm the makespan is 3M + D - 1, the lower bound.
# Order derived from the paper (docs/auto.md).
#
#   ppcc schedules/zb-h2.pp --timeline
#   ppcc schedules/zb-h2.pp --compare zb-h1,zb-h2,auto

devices = 4
microbatches = 8

schedule zb-h2

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
