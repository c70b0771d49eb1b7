devices = 4
virtual = 2
stages = 4
