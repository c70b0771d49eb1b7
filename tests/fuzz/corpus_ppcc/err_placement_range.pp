devices = 2
virtual = 2
placement = [0, 1, 5, x]
