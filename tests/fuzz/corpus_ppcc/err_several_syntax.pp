# three broken items; all are reported
devices = = 4
microbatches = 8
cost { F = }
model mlp { layers = [1, 2 }
lr = 0.1
