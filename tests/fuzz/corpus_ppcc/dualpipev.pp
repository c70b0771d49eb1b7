# dualpipev.pp — DualPipeV (DeepSeek's cut-down DualPipe; PyTorch's
# ScheduleDualPipeV), on the V-shape placement of zbv.
#
# The steady state pairs the forward of one chunk with the full backward
# of the other (F0+B1, F1+B0), which a runtime can overlap to hide
# communication; the tail splits B/W to fill the drain.  Needs at least
# 2 x devices micro-batches.  Peak memory: 2D+1 chunk activations.
#
#   ppcc schedules/dualpipev.pp --timeline

devices = 4
virtual = 2
placement = vshape
microbatches = 8       # at least 2 x devices

schedule dualpipev

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
