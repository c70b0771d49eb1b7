# A correct order; test_custom.c lowers it by hand with device 0's recv of
# the gradient moved to the front, which the verifier's replay rejects.
devices = 2
microbatches = 1
schedule custom
order {
    device 0: F0.0 B0.0
    device 1: F1.0 B1.0
}
