devices = 2
virtual = 2
placement = [0, 0, 0, 1]
