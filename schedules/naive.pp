# naive.pp — naive model parallelism, the first picture of every pipeline
# tutorial: the model's layers split over the devices, the batch going
# down them and its gradient back up, one device busy at a time.
#
# microbatches = 1 is the textbook's figure; with M micro-batches each one
# runs its whole forward and backward before the next starts (gradient
# accumulation, no overlap): makespan M x D x (F + B), bubble 1 - 1/D.
# GPipe (gpipe.pp) is the same split with the micro-batches overlapped.
#
#   ppcc schedules/naive.pp --timeline
#   ppcc schedules/naive.pp --compare naive,gpipe,1f1b -D microbatches=8

devices = 4
microbatches = 1     # one batch, not split

schedule naive

# Relative op times: a backward costs about twice a forward.
cost {
    F = 1
    B = 2
}

model mlp {
    layers = 8
    hidden = 64
    batch = 32
    optimizer = sgd
    lr = 0.01
}
