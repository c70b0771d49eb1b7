devices = 2
microbatches = 2
schedule 1f1b
cost {
    F = 1e308
    comm = 2e15
}
