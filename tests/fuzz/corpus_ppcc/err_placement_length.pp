devices = 4
placement = [0, 1]
