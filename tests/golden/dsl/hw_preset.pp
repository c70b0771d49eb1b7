# an unknown preset
model gpt { layers = 4 }
hardware h800 { }
