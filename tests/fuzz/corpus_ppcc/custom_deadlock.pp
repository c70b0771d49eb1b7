# Device 0 waits for B1.0 before running F0.1; device 1 runs F1.1 (which
# needs F0.1) before B1.0.  No communication order can save this.
devices = 2
microbatches = 2
schedule custom
order {
    device 0: F0.0 B0.0 F0.1 B0.1
    device 1: F1.0 F1.1 B1.0 B1.1
}
