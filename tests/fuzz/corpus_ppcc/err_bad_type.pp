devices = abc
microbatches = 4.5
cost { F = fast }
schedule = 3
model mlp { lr = "high" }
placement = spiral
