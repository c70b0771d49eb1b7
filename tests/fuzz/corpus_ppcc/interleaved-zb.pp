# interleaved-zb.pp — interleaved zero bubble (the paper's ZB1P on a loop
# placement; PyTorch's ScheduleInterleavedZeroBubble).
#
# Interleaved 1F1B (depth first, rounds of about `devices` micro-batches)
# with the backward split into B and W, and Ws deferred into the bubbles
# as in zb-h1.  PyTorch's rule: microbatches must be a multiple of
# max(1, microbatches / devices).
#
#   ppcc schedules/interleaved-zb.pp --timeline

devices = 4
virtual = 2
placement = loop
microbatches = 8

schedule interleaved-zb

cost {
    F = 1
    B = 1
    W = 1
    comm = 0
}

model mlp {
    layers = 16
    hidden = 64
    batch = 32
    lr = 0.01
}
