# a negative size: one value, refused by its key (was: a number and a stray unit)
memory { limit = -1.5GiB }
hardware h100 { memory = -80GB }
model gpt { layers = 4 hidden = 64 heads = 2 seq = 32 batch = 32 }
