devices = 4
microbatches = 8
devices = 8
cost { F = 1 }
cost { F = 2 stage 1 { B = 3 } stage 1 { B = 4 } }
