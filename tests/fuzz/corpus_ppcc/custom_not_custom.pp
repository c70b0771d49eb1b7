# An order only means something to the custom policy.
devices = 2
microbatches = 1
schedule 1f1b
order {
    device 0: F0.0 B0.0
    device 1: F1.0 B1.0
}
