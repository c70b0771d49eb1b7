# On device 1, B1.1 comes before the F1.1 it needs.
devices = 2
microbatches = 2
schedule custom
order {
    device 0: F0.0 F0.1 B0.0 B0.1
    device 1: F1.0 B1.0 B1.1 F1.1
}
