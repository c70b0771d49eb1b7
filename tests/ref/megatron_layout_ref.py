#!/usr/bin/env python3
"""megatron_layout_ref.py PPCC — ppcc's Megatron layout strings against
Megatron-LM's own parser (megatron.core's PipelineParallelLayerLayout,
docs/megatron.md).

1. written: for a gpt's splits (lists, balance = auto, virtual stages),
   `ppcc --emit megatron-layout` is a string Megatron parses and validates
   for that model, and Megatron puts on each (pipeline rank, virtual chunk)
   the blocks ppcc's plan puts on the stage it places there, the embedding
   with the first stage and the loss with the last;
2. read: strings Megatron reads (its docs' shapes, groups, counts, commas)
   give ppcc the blocks per stage Megatron's parser gives; every string
   Megatron refuses, ppcc refuses too.

Needs megatron-core (and torch): exits 77 (skipped) when it cannot be imported.
"""
import json
import os
import subprocess
import sys
import warnings

PPCC = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEDULES = os.path.join(HERE, "..", "..", "schedules")
warnings.filterwarnings("ignore")
try:
    from megatron.core.transformer.enums import LayerType
    from megatron.core.transformer.pipeline_parallel_layer_layout import PipelineParallelLayerLayout
except Exception as e:  # ImportError, or torch failing to start
    print("megatron.core is not importable (%s): skipped" % e)
    sys.exit(77)

fails = 0
checks = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, file=sys.stderr)


def ppcc(*args):
    return subprocess.run([PPCC, *args], capture_output=True, text=True)


def plan_of(args):
    r = ppcc(*args, "-o", "-")
    if r.returncode:
        return None, r.stderr
    return json.loads(r.stdout), ""


GPT = os.path.join(SCHEDULES, "gpt.pp")
written = [
    [GPT, "-D", "data=none"],
    [GPT, "-D", "data=none", "-D", "layers=10", "-D", "model.balance=[0,4,4,2]"],
    [GPT, "-D", "data=none", "-D", "layers=9", "-D", "model.balance=[3,2,2,2]"],
    [GPT, "-D", "data=none", "-D", "layers=16", "-D", "virtual=2", "-D", "schedule=interleaved"],
    [GPT, "-D", "data=none", "-D", "layers=13", "-D", "virtual=2", "-D", "schedule=interleaved",
     "-D", "model.balance=[1,2,2,2,2,2,2,0]"],
    [GPT, "-D", "data=none", "-D", "devices=1", "-D", "layers=3"],
    [os.path.join(SCHEDULES, "gpt2-small-4gpu.pp"), "-D", "model.balance=auto"],
    [os.path.join(SCHEDULES, "gpt2-small-4gpu.pp"), "-D", "model.balance=parameters"],
]
for args in written:
    checks += 1
    name = " ".join(os.path.basename(a) for a in args)
    r = ppcc(*args, "--emit", "megatron-layout", "-o", "-")
    plan, err = plan_of(args)
    if r.returncode or plan is None:
        fail("%s: ppcc exited %d: %s%s" % (name, r.returncode, r.stderr, err))
        continue
    text = r.stdout.strip()
    D = plan["pipeline"]["devices"]
    blocks = plan["model"]["blocks_per_stage"]
    try:
        lay = PipelineParallelLayerLayout(text, D)
        lay.validate_layer_layout(num_layers=plan["model"]["layers"], mtp_num_layers=None)
    except Exception as e:
        fail("%s: Megatron refuses %r: %s" % (name, text, e))
        continue
    v = lay.virtual_pipeline_model_parallel_size
    if D * v != plan["pipeline"]["stages"]:
        fail("%s: %r is %d x %d stages, the plan has %d" % (name, text, D, v, plan["pipeline"]["stages"]))
        continue
    for chunk in range(v):
        for rank in range(D):
            stage = chunk * D + rank
            held = lay.layout[rank][chunk]
            if plan["pipeline"]["placement"][stage] != rank or held.count(LayerType.decoder) != blocks[stage] or \
                    (LayerType.embedding in held) != (stage == 0) or \
                    (LayerType.loss in held) != (stage == len(blocks) - 1):
                fail("%s: %r: Megatron's rank %d chunk %d holds %s, ppcc's stage %d %d blocks on device %d" %
                     (name, text, rank, chunk, [t.name for t in held], stage, blocks[stage],
                      plan["pipeline"]["placement"][stage]))

# read: Megatron's parse of a string against ppcc's
readable = ["Et*3|(tt|)*2,L", "Ettt|(tt|)*2,L", "E,t|t,t|t|tL", "Et|t*2|t,,*,3|tL", "(Et|)*1,t|t|tL",
            "Et*0t|t*1|t|tL", "E|(t*2|)*2,tL", "Et|(t|)*2,tL", "Et|t*1,2|t|tL", "E|(tt|),*2,tL"]
for text in readable:
    checks += 1
    want = [row.count(LayerType.decoder) for row in PipelineParallelLayerLayout.parse_str_to_list(text)]
    plan, err = plan_of([GPT, "-D", "data=none", "-D", "layers=%d" % sum(want), "-D", "devices=%d" % len(want),
                         "-D", "layout=" + text])
    if plan is None or plan["model"]["blocks_per_stage"] != want:
        fail("%r: Megatron reads %s, ppcc %s" % (text, want, plan and plan["model"]["blocks_per_stage"] or err))

refused = ["Et|tx|t|tL", "Et*2*3|t|t|tL", "Et|(t|)|t|tL", "Et |t|t|tL", "Et|(t|(t|)*2)*1,L", "tE|t|t|tL",
           "Et|t|t|tLt", "EEt|t|t|tL", "Et|t|t|t", "Et|t)|t|tL", "Et|t*|t|tL"]
for text in refused:
    checks += 1
    try:
        lay = PipelineParallelLayerLayout(text, 4)
        lay.validate_layer_layout(num_layers=lay.flatten_layout.count(LayerType.decoder), mtp_num_layers=None)
        fail("%r: Megatron reads it; the list expects a string it refuses" % text)
        continue
    except Exception:
        pass
    r = ppcc(GPT, "-D", "data=none", "-D", "layers=4", "-D", "layout=" + text, "--stats")
    if r.returncode != 1 or "model.layout" not in r.stderr and "layout=" not in r.stderr:
        fail("%r: Megatron refuses it, ppcc exited %d: %s" % (text, r.returncode, r.stderr))

import importlib.metadata as md
print("megatron-core %s: %d checks, %d failed" % (md.version("megatron-core"), checks, fails))
sys.exit(1 if fails else 0)
