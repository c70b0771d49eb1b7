devices = 4
model mlp { layers = 2 }
