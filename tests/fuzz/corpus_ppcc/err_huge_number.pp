devices = 4
cost { F = 1e999 }
