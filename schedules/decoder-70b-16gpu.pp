# decoder-70b-16gpu.pp — a 70B-class decoder (80 blocks, hidden 8192, 64
# heads, MLP 32768, 4096 positions, 32000 tokens, untied: 64.9 billion
# parameters, Llama 2 70B's depth and width) on 16 H100s in 2 nodes of 8,
# interleaved 1F1B with 5 chunks a device (80 stages of one block), 64
# micro-batches of one sequence.
#
# What it shows: the pipeline crosses the network twice a round (device 7
# to 8 and back, on 50 GB/s instead of NVLink's 450), which the prediction
# prices from each activation's bytes (64 MiB in bf16); interleaving cuts
# the bubble; -D hardware.devices_per_node=16 shows what an all-NVLink
# pipeline would gain.  Memory: each device holds 1/16 of the weights with
# AdamW's state (about 65 GB); without recompute the activations of the
# micro-batches in flight would take device 0 to 375 GB, and with
# recompute on every stage the peak is 76.8 GB, within the H100's 80 GB
# (-D recompute=never shows the limit error).
#
#   ppcc schedules/decoder-70b-16gpu.pp --stats
#   ppcc schedules/decoder-70b-16gpu.pp -D hardware.devices_per_node=16 --stats
#   ppcc schedules/decoder-70b-16gpu.pp -D recompute=never --stats

devices = 16
virtual = 5
microbatches = 64

schedule interleaved

memory { recompute = always }

hardware h100 { }

model gpt {
    layers = 80
    hidden = 8192
    heads = 64
    ffn = 32768
    seq = 4096
    vocab = 32000
    tie = 0
    batch = 64
    optimizer = adamw
    lr = 1.5e-4
    precision = bf16
}
