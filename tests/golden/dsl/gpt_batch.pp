microbatches = 8
model gpt { batch = 12 }
