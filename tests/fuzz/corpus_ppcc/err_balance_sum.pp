devices = 4
model mlp {
    layers = 8
    balance = [2, 2, 2, 3]
}
