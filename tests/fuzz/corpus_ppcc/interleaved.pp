# interleaved.pp — interleaved 1F1B (Megatron-LM's virtual pipeline).
#
# Each device holds `virtual` = 2 non-adjacent chunks of the model (stage s
# on device s mod 4, so device 0 runs stages 0 and 4).  Smaller stages make
# the fill and drain phases shorter: the bubble shrinks by about 1/virtual,
# at the price of more communication.
#
#   ppcc schedules/interleaved.pp --timeline
#   ppcc schedules/interleaved.pp -D virtual=4 -D layers=32

pipeline {
    devices = 4
    virtual = 2          # stages per device: 8 stages in all
    microbatches = 8
    placement = loop     # stage s on device s mod devices
}

# Micro-batches go through each chunk in groups of `devices` (Megatron's
# default); set another size with `schedule interleaved { group = N }` or
# -D schedule.group=N.
schedule interleaved

cost {
    F = 1
    B = 2
}

model mlp {
    layers = 16          # 2 layers per stage
    hidden = 64
    batch = 32
    optimizer = sgd
    lr = 0.01
}
