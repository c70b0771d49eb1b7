# schedule custom needs an order block.
devices = 2
microbatches = 1
schedule custom
