model cnn
model.optimizer = adam
