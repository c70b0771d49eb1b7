devices = 4
}
microbatches = 8
