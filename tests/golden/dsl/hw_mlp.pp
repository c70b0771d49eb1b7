# hardware needs a model with dimensions
hardware h100
