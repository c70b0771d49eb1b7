schedule "1f1b
devices = 4
