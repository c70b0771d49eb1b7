# gpt.pp — a small GPT-2-style transformer (docs/gpt.md) on 4 devices with 1F1B.
#
# Byte-level: every byte of the text is a token (vocabulary 256).  The token
# and position embeddings sit on the first stage, the final LayerNorm, the
# head (tied to the token embedding) and the loss on the last, and the 4
# blocks are split between the stages by the balance: one each by default,
# or e.g. -D 'model.balance=[0,2,2,0]' to leave the ends to the embedding
# and the head.  pprun loads and checks this plan but refuses to train it:
# the transformer is not in pprun yet (docs/gpt.md).  The op times below
# are the file's own, in relative units.
#
#   ppcc schedules/gpt.pp --timeline
#   ppcc schedules/gpt.pp -D schedule=zb-h1 -D heads=8 --stats

devices = 4
microbatches = 8

schedule 1f1b

cost {
    F = 1
    B = 2
}

model gpt {
    layers = 4           # transformer blocks
    hidden = 128
    heads = 4            # head size hidden / heads = 32
    seq = 64             # tokens a sequence predicts; each is drawn as seq + 1 bytes
    batch = 32           # sequences per step, a multiple of microbatches
    optimizer = adamw    # beta1 0.9, beta2 0.95, eps 1e-8, weight_decay 0.1 by default
    lr = 1e-3
    data = "../data/docs.txt"   # relative to this file's directory (data/README.md)
}
