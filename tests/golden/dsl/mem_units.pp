# memory in bytes: every memory setting needs its unit
memory { limit = 80GB input = 0.5 }
