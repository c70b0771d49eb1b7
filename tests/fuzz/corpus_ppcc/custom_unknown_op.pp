# An op word that is not F/B/W<stage>.<mb>.
devices = 2
microbatches = 2
schedule custom
order {
    device 0: F0.0 X0.1 F0.1 B0.0 B0.1
    device 1: F1.0 B1.0 F1.1 B1.1 F1 "B1.1" 3
}
