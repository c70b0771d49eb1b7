# a gpt's settings on an mlp, adamw's on sgd
model mlp { heads = 4 seq = 64 optimizer = adamw }
