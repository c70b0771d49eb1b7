# gpipe.pp — GPipe: all forwards, then all backwards, then one update.
#
# Simple and synchronous; each device keeps the activations of every
# micro-batch until its backwards start.  Compare with 1f1b.pp, which has
# the same bubble and keeps at most `devices` micro-batches in flight.
#
#   ppcc schedules/gpipe.pp --timeline

devices = 4
microbatches = 8

schedule gpipe

cost {
    F = 1
    B = 2            # backward (input + weight gradients) ~ twice a forward
}

model mlp {
    layers = 8       # split 2, 2, 2, 2 over the stages
    hidden = 64
    batch = 32       # 4 rows per micro-batch
    optimizer = sgd
    lr = 0.01
}
