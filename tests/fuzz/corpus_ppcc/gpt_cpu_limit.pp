devices = 2
microbatches = 4
schedule 1f1b
memory { limit = 1.5GiB }
hardware cpu { memory = 512MiB }
model gpt { layers = 2 hidden = 64 heads = 2 seq = 32 batch = 8 optimizer = sgd lr = 0.1 }
