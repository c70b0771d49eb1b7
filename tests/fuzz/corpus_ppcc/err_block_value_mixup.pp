devices { }
cost = 3
model { layers = 8 }
pipeline { cost { F = 1 } }
cost { stage 9 { F = 1 } stage x { F = 1 } }
