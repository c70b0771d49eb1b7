# fields without a preset: the block needs one
model gpt { layers = 4 }
hardware { efficiency = 0.5 }
hardware.memory = 80GB
