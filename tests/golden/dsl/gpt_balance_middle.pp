# only the first and the last stage (embedding, head) may hold no block
devices = 4
model gpt { layers = 4 balance = [0, 4, 0, 0] }
