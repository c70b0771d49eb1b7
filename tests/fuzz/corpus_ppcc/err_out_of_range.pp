devices = 0
virtual = 65
microbatches = 2000000
cost { B = -1 }
model mlp { lr = 0 hidden = 100000 }
schedule 1f1b { group = 0 }
