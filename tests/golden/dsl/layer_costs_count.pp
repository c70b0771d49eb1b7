# model.layers must agree with the list
devices = 2
layer_costs {
    block 6 { F = 1 B = 2 }
}
model mlp { layers = 8 }
