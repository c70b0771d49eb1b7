# pipedream.pp — PipeDream with weight stashing (Narayanan et al., SOSP 2019).
#
# 1F1B's compute order, but no flush-and-update at the end of a step: each
# device updates its stage after EVERY backward, with that micro-batch's
# gradient alone.  A micro-batch's backward uses the weights its forward
# saw: the runtime stashes that version until the backward is done, so
# device d holds up to D - d + 1 versions of its stage's weights.
# Vertical sync (PipeDream section 3.3): every stage uses for a micro-batch
# the weight version stage 0 used, at the cost of D versions on every
# device; turn it on with `schedule pipedream { vertical_sync = 1 }` or
# -D schedule.vertical_sync=1.
# The update rule and what --check compares against: docs/async.md.
#
#   ppcc schedules/pipedream.pp -o plan.json && pprun plan.json --check

devices = 4
microbatches = 8

schedule pipedream

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
