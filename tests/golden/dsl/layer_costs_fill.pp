# three layers cannot fill four stages
devices = 4
layer_costs {
    embedding { F = 1 }
    block { F = 1 }
    head { F = 1 }
}
