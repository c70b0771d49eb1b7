model gpt { optimizer = sgd beta1 = 0.8 weight_decay = 0 precision = fp16 }
