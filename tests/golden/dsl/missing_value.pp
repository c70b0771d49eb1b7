devices =
microbatches = 8
