devices = 4
microbatches = auto
microbatches.bubble = 0.4
microbatches.max = 12
schedule 1f1b
layer_costs {
    block 6 { F = 1 B = 2 activation = 1 weights = 1 }
    head { F = 2 B = 2 activation = 2 weights = 2 }
}
model mlp { hidden = 8 batch = 24 balance = compute }
