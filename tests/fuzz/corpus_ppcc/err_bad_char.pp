devices = 4
microbatches = 8 @
cost { F = 1; B = 2 }
