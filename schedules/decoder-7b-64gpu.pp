# decoder-7b-64gpu.pp — the 7B-class decoder of decoder-7b-8gpu.pp (32
# blocks, hidden 4096, 32 heads, MLP 16384, 4096 positions, 32000 tokens,
# untied: 6.7 billion parameters) on 64 H100s in 8 nodes of 8: a pipeline
# of 8 devices, ZB-V (two chunks a device, 16 stages of two blocks), times
# 8 data-parallel replicas, with the optimizer state sharded over them
# (ZeRO-1).  A step trains 256 sequences: 32 a replica, in 32 micro-batches
# of one.
#
# What it shows: the rank order puts the 8 replicas of a pipeline device on
# one node (rank = device x 8 + replica, docs/dsl.md), so each stage's
# gradients are reduce-scattered and, after the update, its parameters
# all-gathered on a ring of 8 ranks over NVLink (two blocks' 0.8 GB in bf16:
# 7/8 x 0.8 GB / 450 GB/s + 7 latencies, 1.6 ms each) while the pipeline's
# transfers cross the network; the reductions of device 7, whose backward
# ends first, overlap the other devices' backward, and each device's later
# chunk (stage 15 - d) reduce-scatters on its data-parallel lane under its
# earlier chunk's remaining backward, so device 0 ends the step with stage
# 0's shard and the two gathers (-D overlap=false: 1.79863s).  ZeRO-1 takes
# 11.4 GB of AdamW's state and bf16's master weights off device 0 (-D zero=0
# peaks at 69.55 GB).  -D gpus=64 searches 1 x 64 ... 64 x 1 instead
# (docs/auto.md, "How many stages?"): with 32 micro-batches a replica this
# split is the one that fits; with -D microbatches=auto too, 4 x 16 in 16
# micro-batches predicts 1.72006s, 8 x 8 and 16 x 4 use less memory (the
# frontier).
#
#   ppcc schedules/decoder-7b-64gpu.pp --stats
#   ppcc schedules/decoder-7b-64gpu.pp --compare 1f1b,zb-h1,zbv,auto
#   ppcc schedules/decoder-7b-64gpu.pp -D zero=0 --stats
#   ppcc schedules/decoder-7b-64gpu.pp -D gpus=64 -D microbatches=auto --stats
#
# prediction: makespan=1.75889s peak_mem=58.16GB dp_allreduce=0.0534107s zero_saved=11.39GB
# (ppcc --stats of this file; for peak_mem and zero_saved the largest
# device's; tests/test_schedule_claims.py keeps it true)

devices = 8
data_parallel = 8
zero = 1
virtual = 2
placement = vshape
microbatches = 32

schedule zbv

hardware h100 { }

model gpt {
    layers = 32
    hidden = 4096
    heads = 32
    ffn = 16384
    seq = 4096
    vocab = 32000
    tie = 0
    batch = 256
    optimizer = adamw
    lr = 3e-4
    precision = bf16
}
