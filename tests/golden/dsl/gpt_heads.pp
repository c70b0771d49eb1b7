# heads must divide hidden: each head takes hidden / heads features
model gpt { layers = 4 hidden = 100 heads = 8 }
