# gpt3-175b.pp — the tutorials' GPT-3 175B case: 96 blocks, hidden 12288,
# 96 heads, 2048 positions, on 8 pipeline stages with 64 micro-batches of
# one sequence, activation recompute on every stage, AdamW, bf16, A100s
# (8 a node, so the pipeline stays on NVLink).
#
# What it shows: the head-and-embedding imbalance is small at this depth
# (the LM head costs 3 % of a stage of 12 blocks), so the bubble is close
# to the tutorials' (S - 1) / (M + S - 1) = 7 / 71 = 9.9 %; recompute puts
# a forward again (R) before every backward, which MFU does not count.
# Megatron runs each of these stages 8-way tensor parallel: one stage's 12
# blocks hold 21.7 billion parameters, 348 GB with AdamW's state (docs/gpt.md,
# "Costs"), far over one device; ppcc models the pipeline dimension only, so
# memory.limit = 0 lets it compile, and --stats shows what one device would
# hold (peak_mem, about 368-378 GB); drop the limit to see the A100's 80 GB
# refuse it, naming the device, the op and the bytes.
#
#   ppcc schedules/gpt3-175b.pp --stats
#   ppcc schedules/gpt3-175b.pp --compare gpipe,1f1b,zb-h1

devices = 8
microbatches = 64

schedule 1f1b

memory {
    recompute = always
    limit = 0            # none: see above
}

hardware a100 { }

model gpt {
    layers = 96
    hidden = 12288
    heads = 96
    seq = 2048
    vocab = 51200        # GPT-2's 50257, padded as Megatron pads it
    tie = 0
    batch = 64           # one sequence a micro-batch (one pipeline's share of the global batch)
    optimizer = adamw
    lr = 6e-5
    precision = bf16
}
