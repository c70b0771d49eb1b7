# gpt2-small-4gpu.pp — GPT-2 small (124M parameters: 12 blocks, hidden 768,
# 12 heads, 1024 positions, GPT-2's 50257-token vocabulary, tied head) on 4
# H100s of one node with 1F1B, in bf16 with AdamW.
#
# What it shows: with a hardware description the times are seconds from the
# model's FLOPs (docs/gpt.md, "Costs"), each transfer is latency + bytes /
# bandwidth over NVLink, and --stats, the timeline and --compare predict
# tokens/s per device and MFU.  The even split puts 3 blocks on each stage,
# but the last stage also holds the LM head (2 x 768 x 50257 FLOPs a token
# for each of F, B and W: four and a half blocks' worth), so it is the
# bottleneck: -D model.balance=auto compiles every block split and finds
# [4,4,4,0], the head alone on the last stage, 35 % faster; the compute
# rule finds it too, the parameters rule (wte on both ends) [0,6,6,0].
#
#   ppcc schedules/gpt2-small-4gpu.pp --stats
#   ppcc schedules/gpt2-small-4gpu.pp --compare gpipe,1f1b,zb-h1,interleaved
#   ppcc schedules/gpt2-small-4gpu.pp -D model.balance=auto --stats
#   ppcc schedules/gpt2-small-4gpu.pp -D model.balance=parameters --stats

devices = 4
microbatches = 16

schedule 1f1b

hardware h100 { }

model gpt {
    layers = 12
    hidden = 768
    heads = 12
    seq = 1024
    vocab = 50257
    tie = 1
    batch = 64           # sequences per step: 4 a micro-batch
    optimizer = adamw
    lr = 6e-4
    precision = bf16
}
