# each setting in range, but wte (vocab x hidden) is more than an array of pprun holds
model gpt { hidden = 65536 heads = 64 vocab = 1000000 }
