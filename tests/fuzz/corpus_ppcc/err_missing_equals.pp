devices = 4
microbatches 8 16   # one value too many
