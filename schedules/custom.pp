# custom.pp — an explicit, hand-written compute order (schedule custom).
#
# Each row lists, in issue order, the compute ops one device runs:
# F<stage>.<mb> (forward), B<stage>.<mb> (backward) and, to split the
# backward as the zero-bubble schedules do, W<stage>.<mb> (weight gradient;
# once any W is listed, every (stage, mb) needs one).  ppcc inserts the
# sends and receives, then checks the order like any policy's: each op
# exactly once on its stage's device, nothing before what it needs, no
# deadlock — errors point at the offending token (docs/dsl.md, "Orders").
#
# This order is 1F1B with one more warm-up forward on every device: device
# d runs 4 - d forwards before its first backward, instead of 3 - d, so it
# holds one more activation (peak 5, 4, 3, 2 against 1F1B's 4, 3, 2, 1).
# On this cost model its makespan is 36.5 against 1F1B's 37 (compare
# `ppcc schedules/1f1b.pp -D cost.comm=0.25 --stats`; with overlap = false
# both take 37.75): a starting point
# to edit, not a much better schedule.
#
#   ppcc schedules/custom.pp --timeline
#   ppcc schedules/custom.pp -o plan.json && pprun plan.json --check

devices = 4          # stage d on device d (placement loop)
microbatches = 8     # the order below names micro-batches 0..7

schedule custom

order {
    device 0: F0.0 F0.1 F0.2 F0.3 F0.4 B0.0 F0.5 B0.1 F0.6 B0.2 F0.7 B0.3 B0.4 B0.5 B0.6 B0.7
    device 1: F1.0 F1.1 F1.2 F1.3 B1.0 F1.4 B1.1 F1.5 B1.2 F1.6 B1.3 F1.7 B1.4 B1.5 B1.6 B1.7
    device 2: F2.0 F2.1 F2.2 B2.0 F2.3 B2.1 F2.4 B2.2 F2.5 B2.3 F2.6 B2.4 F2.7 B2.5 B2.6 B2.7
    device 3: F3.0 F3.1 B3.0 F3.2 B3.1 F3.3 B3.2 F3.4 B3.3 F3.5 B3.4 F3.6 B3.5 F3.7 B3.6 B3.7
}

# Relative op times: a backward costs about twice a forward; a transfer a
# quarter of a forward.
cost {
    F = 1
    B = 2
    comm = 0.25
}

# The reference model (docs/model.md): 8 residual GELU layers, 2 per stage.
model mlp {
    layers = 8
    hidden = 64
    batch = 32
    optimizer = sgd
    lr = 0.01
}
