gpus = 12
microbatches = 2
schedule 1f1b
model mlp {
    layers = 12
    hidden = 16
    batch = 48
}
