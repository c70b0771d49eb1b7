# 2bw.pp — PipeDream-2BW (Narayanan et al., ICML 2021): double-buffered weights.
#
# 1F1B's compute order; the step's micro-batch gradients accumulate into one
# update, but the forwards and backwards of step t run on the weights of
# step t - 1, so the real system needs no pipeline flush between steps.
# Two versions of each stage's weights are kept.
# The update rule and what --check compares against: docs/async.md.
#
#   ppcc schedules/2bw.pp -o plan.json && pprun plan.json --steps 3 --check

devices = 4
microbatches = 8

schedule 2bw

cost {
    F = 1
    B = 2
}

model mlp {
    layers = 8
    hidden = 64
    batch = 32
    optimizer = sgd
    lr = 0.01
}
