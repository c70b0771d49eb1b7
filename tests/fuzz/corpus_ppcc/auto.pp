# auto.pp — let ppcc search for the schedule (docs/auto.md).
#
# `auto` tries every named policy that accepts this shape, greedy list
# schedules (B or F first, W deferred, in-flight caps) and local moves,
# judging each by lowering, verification under memory.limit and
# simulation; it keeps the smallest makespan and prints what it found
# against the named policies on stderr.
#
#   ppcc schedules/auto.pp --stats
#   ppcc schedules/auto.pp --compare gpipe,1f1b,zb-h1,zb-h2,zbv,auto

devices = 4
microbatches = 8

schedule auto

# Non-uniform stages: the last one carries the loss head.
cost {
    F = 1
    B = 1.5
    W = 0.5
    comm = 0.1
    stage 3 {
        F = 1.5
        B = 2
    }
}

memory {
    limit = 5        # activations per device (act = 1 per stage and micro-batch)
}

model mlp {
    layers = 8
    hidden = 64
    batch = 32
    lr = 0.01
}
