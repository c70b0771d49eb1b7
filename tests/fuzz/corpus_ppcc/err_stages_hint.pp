devices = 4
stages = 8
