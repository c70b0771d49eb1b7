# decoder-7b-8gpu.pp — a 7B-class decoder (32 blocks, hidden 4096, 32 heads,
# MLP 16384, 4096 positions, a 32000-token vocabulary, untied head: 6.7
# billion parameters, GPT-3 6.7B's and Llama's width and depth) on the 8
# H100s of one node, 32 micro-batches of one sequence, zero-bubble ZB-H1.
#
# What it shows: a real model in seconds and tokens/s per device; with
# 4096 positions the attention is a large share of a block's FLOPs (s / 6h
# = 17 %), and the head costs about half a block, so the even split (4
# blocks a stage) is the best one balance = auto finds here, unlike GPT-2
# small's (gpt2-small-4gpu.pp); --compare shows what the zero-bubble and V-shaped
# policies gain over 1F1B (each row's chunking splits the 32 blocks over
# its stages).
#
#   ppcc schedules/decoder-7b-8gpu.pp --stats
#   ppcc schedules/decoder-7b-8gpu.pp -D model.balance=auto --stats
#   ppcc schedules/decoder-7b-8gpu.pp --compare 1f1b,interleaved,zb-h1,zbv

devices = 8
microbatches = 32

schedule zb-h1

hardware h100 { }

model gpt {
    layers = 32
    hidden = 4096
    heads = 32
    ffn = 16384
    seq = 4096
    vocab = 32000
    tie = 0
    batch = 32
    optimizer = adamw
    lr = 3e-4
    precision = bf16
}
