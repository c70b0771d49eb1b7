# looped-bfs.pp — breadth-first pipeline parallelism (Lamy-Poirier 2022;
# PyTorch's ScheduleLoopedBFS).
#
# Each device runs every micro-batch through its first stage, then its
# second, ...; then all backwards, last stage and last micro-batch first.
# A GPipe per chunk: every activation (virtual x microbatches) stays alive
# until its backward, in exchange for long runs of one stage (good for
# data-parallel overlap).  The backward is not split.
#
#   ppcc schedules/looped-bfs.pp --timeline

devices = 4
virtual = 2            # stage s on device s mod 4
placement = loop
microbatches = 8

schedule looped-bfs

cost {
    F = 1
    B = 2
}

model mlp {
    layers = 8
    hidden = 64
    batch = 32
    lr = 0.01
}
