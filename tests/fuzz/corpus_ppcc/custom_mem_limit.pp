# The order passes every order check, but device 0 runs all four forwards
# before its first backward: the fourth holds a fourth set of activations,
# over the limit of 3.  The verifier's error points at F0.3.
devices = 2
microbatches = 4
schedule custom
memory { limit = 3 }
order {
    device 0: F0.0 F0.1 F0.2 F0.3 B0.0 B0.1 B0.2 B0.3
    device 1: F1.0 B1.0 F1.1 B1.1 F1.2 B1.2 F1.3 B1.3
}
