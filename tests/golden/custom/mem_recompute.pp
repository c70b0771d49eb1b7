# With recompute, each forward keeps only its input (0.25) until the R that
# ppcc inserts right before its B rebuilds the rest: device 0 holds 4 x 0.25
# after its forwards, and R0.0 brings it to 1.75, over the limit of 1.5.
# R is not written in the order, so the note points at B0.0.
devices = 2
microbatches = 4
schedule custom
overlap = false # the sets alone: a posted recv's buffer would add to device 1
memory { limit = 1.5 recompute = always input = 0.25 }
order {
    device 0: F0.0 F0.1 F0.2 F0.3 B0.0 B0.1 B0.2 B0.3
    device 1: F1.0 B1.0 F1.1 B1.1 F1.2 B1.2 F1.3 B1.3
}
