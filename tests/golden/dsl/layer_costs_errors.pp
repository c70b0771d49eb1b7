# every error of a layer_costs block in one run
devices = 2
layer_costs {
    embedding { F = 1  weight = 4 }
    block 0 { F = 1 }
    block 2.5 { F = 1 }
    head { F = 1  F = 2  B = -1 }
    loss = 3
    attention_and_mlp_block 4 { F = 1 }
    norm { activation = 1  input = 2 }
}
