# dualpipe.pp — DeepSeek's DualPipe (DeepSeek-V3): two copies of the model
# as two pipelines fed from both ends (docs/dualpipe.md).
#
# Device r holds stage r of pipeline A and stage D-1-r of pipeline B: the
# plan's 2D stages on the V placement, stage D+s being B's stage s (a copy
# of stage s, on device D-1-s).  Micro-batches 0..M/2-1 enter A at device
# 0, the others enter B at device D-1; each stage's two copies sum their
# gradients before the update.  Needs D and M even, M >= 2D.  Memory: 2x
# parameters, D+1 stage activations.
#
#   ppcc schedules/dualpipe.pp --timeline

devices = 4
virtual = 2
placement = vshape
microbatches = 8       # even, at least 2 x devices

schedule dualpipe

cost {
    F = 1
    B = 1
    W = 1
    comm = 0
}

model mlp {
    layers = 8         # one copy of the model: 2 a stage, stage 4+s holding a copy of stage s's
    hidden = 64
    batch = 32
    lr = 0.01
}
