devices = 4
virtual = 3
placement = vshape
