# A split backward: W0.0 before its B0.0.
devices = 2
microbatches = 1
schedule custom
order {
    device 0: F0.0 W0.0 B0.0
    device 1: F1.0 B1.0 W1.0
}
