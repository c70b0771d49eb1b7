microbatches = 8
model mlp {
    batch = 30
}
