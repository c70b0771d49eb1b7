# Stage 1 lives on device 1: F1.1 cannot run on device 0.
devices = 2
microbatches = 2
schedule custom
order {
    device 0: F0.0 F0.1 F1.1 B0.0 B0.1
    device 1: F1.0 B1.0 B1.1
}
