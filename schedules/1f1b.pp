# 1f1b.pp — one-forward-one-backward (PipeDream-Flush / Megatron's default).
#
# After a warm-up of (devices - 1 - rank) forwards, each device alternates
# one forward and one backward, so at most `devices` micro-batches are in
# flight on device 0 instead of all of them (GPipe).  Same bubble as GPipe,
# (D - 1) / (M + D - 1), with far less activation memory.
#
#   ppcc schedules/1f1b.pp --timeline
#   ppcc schedules/1f1b.pp -D microbatches=32 --stats

devices = 4          # pipeline depth: one stage per device
microbatches = 8     # the global batch is split into this many slices

schedule 1f1b

# Relative op times: a backward costs about twice a forward.
cost {
    F = 1
    B = 2
}

# The reference model (docs/model.md): 8 residual GELU layers, 2 per stage.
model mlp {
    layers = 8
    hidden = 64
    batch = 32       # rows per step; must be a multiple of microbatches
    optimizer = sgd
    lr = 0.01
}
