# on hardware a gpt's times come from its dimensions
model gpt { layers = 4 }
hardware a100
cost { F = 1 comm = 0.1 }
