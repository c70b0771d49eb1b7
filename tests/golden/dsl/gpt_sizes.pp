# negative, zero and out-of-range sizes
model gpt { layers = -2 heads = 0 seq = 100000 vocab = 1 ffn = 1.5 tie = 2 }
