# One W is listed, so every (stage, mb) needs its W; and a W without its B.
devices = 2
microbatches = 2
schedule custom
order {
    device 0: F0.0 F0.1 B0.0 W0.0 B0.1 W0.1
    device 1: F1.0 B1.0 F1.1 W1.1
}
