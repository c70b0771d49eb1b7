devices = 2
model mlp {
    balance = [3, 0]   # every stage needs a layer
}
