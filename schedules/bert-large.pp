# bert-large.pp — the tutorials' BERT-Large case: 24 layers, hidden 1024, 16
# heads, 512 positions, on 4 stages of 6 layers each with 16 micro-batches,
# A100s of one node, AdamW, bf16.
#
# What it shows: a classic even split (6 | 6 | 6 | 6 layers), where the
# first stage also holds the embeddings and the last the 30522-way output
# layer, so the stages are not equal after all: --stats predicts the step,
# -D 'model.balance=[7,6,6,5]' moves a layer off the heavy last stage, and
# -D model.balance=auto finds [7,7,6,4], 14 % faster than the even split.
# BERT is an encoder; it is written as model gpt, whose blocks have BERT's
# shapes and FLOPs (the attention mask does not change the counts), so the
# costs are BERT-Large's.
#
#   ppcc schedules/bert-large.pp --stats
#   ppcc schedules/bert-large.pp -D 'model.balance=[7,6,6,5]' --stats
#   ppcc schedules/bert-large.pp -D model.balance=auto --stats

devices = 4
microbatches = 16

schedule 1f1b

hardware a100 { }

model gpt {
    layers = 24
    hidden = 1024
    heads = 16
    seq = 512
    vocab = 30522
    tie = 1
    batch = 256          # 16 sequences a micro-batch
    optimizer = adamw
    lr = 1e-4
    precision = bf16
}
