# a layout's stages are the schedule's: devices x virtual
devices = 4
virtual = 2
schedule interleaved
model gpt { layers = 6 layout = "Et|(t|)*4,tL" }
