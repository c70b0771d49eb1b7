# v-min.pp — V-Min (Qi et al., "Pipeline Parallelism with Controllable
# Memory", NeurIPS 2024, arXiv 2405.15362; docs/v-schedules.md).
#
# Two stages per device on a V, as zbv, the backward split into B and W,
# built by repeating one micro-batch's building block every 6 slots.
# Its lifespans are the shortest a V allows: at most ceil((D+4)/3)
# micro-batches' worth per device (here 2 of 1F1B's 4), at a bubble of
# about 2D/3M with F = B = W (more when they differ).
#
#   ppcc schedules/v-min.pp --timeline
#   ppcc schedules/v-min.pp --compare 1f1b,zbv,v-half,v-min

devices = 4
virtual = 2            # two stages per device: 8 stages in all
placement = vshape     # s < 4 on device s, else on device 7 - s
microbatches = 8

schedule v-min

cost {
    F = 1
    B = 1
    W = 1
    comm = 0
}

model mlp {
    layers = 8         # one layer per stage
    hidden = 64
    batch = 32
    lr = 0.01
}
