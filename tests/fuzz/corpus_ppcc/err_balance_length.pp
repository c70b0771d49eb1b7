devices = 4
model mlp { balance = [4, 4] }
