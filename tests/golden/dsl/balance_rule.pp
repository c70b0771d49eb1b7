# a balance is a list or one of the rules
devices = 2
model mlp { layers = 8 balance = fastest }
