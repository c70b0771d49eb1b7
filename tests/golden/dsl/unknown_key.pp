devicse = 4
foo = 1
cost { Q = 1 }
model mlp { layer = 8 }
