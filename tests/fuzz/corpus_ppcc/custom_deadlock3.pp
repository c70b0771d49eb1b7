# Three devices, two stages each (stage s on device s mod 3), each waiting
# for the next: device 0 for F2.0 (device 2) before F0.1, device 2 for
# F1.1 (device 1) before F2.0, device 1 for F0.1 (device 0) first of all.
devices = 3
virtual = 2
microbatches = 2
schedule custom
order {
    device 0: F0.0 F3.0 F0.1 F3.1 B3.0 B3.1 B0.0 B0.1
    device 1: F1.1 F1.0 F4.0 F4.1 B4.0 B4.1 B1.0 B1.1
    device 2: F2.1 F2.0 F5.0 F5.1 B5.0 B5.1 B2.0 B2.1
}
