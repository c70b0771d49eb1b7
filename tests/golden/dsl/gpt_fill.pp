# 2 blocks cannot fill 4 stages by an even split; a balance that leaves a
# middle stage empty is refused too
devices = 4
model gpt { layers = 2 }
