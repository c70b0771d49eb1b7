# balance.pp — layers as the unit of cost and memory, and balance = auto
# (docs/costs.md).
#
# Each stage costs the sum of its layers' F, B and W and holds the sum of
# their activations per micro-batch; a device holds the weights of its
# stages' layers from the start.  The embedding and the head are heavier
# than a block, so the even split (3 layers a stage) leaves the last
# stage the bottleneck.  balance = auto compiles the splits (every one,
# when there are few) and keeps the one with the smallest makespan under
# memory.limit; it prints the split, the makespan against the even split
# and the bottleneck stage on stderr.
#
#   ppcc schedules/balance.pp --stats
#   ppcc schedules/balance.pp -D model.balance=even --stats     # 129 against 117
#   ppcc schedules/balance.pp -D model.balance=compute --stats  # the greedy prefix
#   ppcc schedules/balance.pp -D memory.limit=0 --stats         # 108, with 35 on device 0

devices = 4
microbatches = 8

schedule 1f1b

# Times per micro-batch, memory in the file's unit (activation sets).
layer_costs {
    embedding { F = 0.5  B = 0.5          activation = 1  weights = 4 }
    block 10  { F = 1    B = 1    W = 1   activation = 2  weights = 1 }
    head      { F = 3    B = 3    W = 1   activation = 4  weights = 4 }
}

memory {
    limit = 28       # per device: weights + activations in flight
}

model mlp {
    hidden = 64      # the layers pprun trains: 12 (the list's), of width 64
    batch = 32
    optimizer = sgd
    lr = 0.01
    balance = auto
}
