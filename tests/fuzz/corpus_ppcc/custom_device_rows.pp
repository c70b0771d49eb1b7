# Device 1 listed twice, device 5 does not exist, device 2 has no row.
devices = 3
microbatches = 1
schedule custom
order {
    device 0: F0.0 B0.0
    device 1: F1.0 B1.0
    device 1: F1.0
    device 5: F0.0
    stage 2: F2.0 B2.0
}
