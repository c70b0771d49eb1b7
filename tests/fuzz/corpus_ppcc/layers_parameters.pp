devices = 3
microbatches = 6
schedule interleaved
virtual = 2
layer_costs {
    embedding { F = 0.5 B = 0.5 activation = 1 weights = 4 input = 0.5 }
    block 8 { F = 1 B = 1 W = 1 activation = 2 weights = 1 }
    head { F = 3 B = 3 W = 1 activation = 4 weights = 4 }
}
memory { limit = 40 }
model mlp { hidden = 16 batch = 12 balance = parameters }
