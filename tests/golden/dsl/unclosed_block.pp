devices = 4
cost {
    F = 1
    B = 2
