# zbv.pp — zero bubble V (Qi et al., ICLR 2024, section 6; PyTorch's
# ScheduleZBVZeroBubble).
#
# Two stages per device on a V: device r holds stage r and stage 2D-1-r,
# so the model starts and ends on device 0 and the pipeline has no ramp at
# either end.  With F = B = W the bubble is near zero; peak memory is 2D
# half-size chunks on every device, 1F1B's D full stages.
#
#   ppcc schedules/zbv.pp --timeline

devices = 4
virtual = 2            # two stages per device: 8 stages in all
placement = vshape     # s < 4 on device s, else on device 7 - s
microbatches = 8

schedule zbv

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
