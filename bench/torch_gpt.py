#!/usr/bin/env python3
"""torch_gpt.py — the transformer of `model gpt` (../shared/DESIGN.md, "The
transformer"; docs/gpt.md) in PyTorch eager, the baseline pprun is compared
with (bench/gpt_gpu.sh on a GPU, bench/gpt_vs_torch_cpu.sh with --device cpu
on the CPU): token + position embeddings, pre-LN blocks
(causal multi-head attention with bias, an MLP with tanh GELU), a final LN,
the LM head tied to the token embedding, the mean cross-entropy over every
predicted token of the global batch, AdamW (weight decay on matrices and
embeddings only), the batch split into micro-batches whose gradients are
summed, one update per step, synthetic tokens.  Attention as pprun computes
it (--attention manual: scores materialised, causal mask, softmax, then
the values) or through torch's fused scaled_dot_product_attention (sdpa).
Same precision choice as pprun (fp32 | tf32 | bf16 autocast).  Timed with
CUDA events after warm-up, the mean step (on --device cpu, fp32 only, the
host clock, the median).  Prints "torch step ms <value>" and
"torch tokens/s <value>".

  python3 bench/torch_gpt.py --layers 12 --hidden 768 --heads 12 --seq 1024 \\
      --vocab 50257 --batch 16 --microbatches 2 --steps 10 [--precision bf16]
"""
import argparse
import math
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=0, help="0: 4 x hidden")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--microbatches", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--attention", choices=["manual", "sdpa"], default="manual")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU: intra-op threads")
    a = ap.parse_args()
    if a.device == "cpu" and a.precision != "fp32":
        print("torch_gpt: the CPU runs fp32 only", file=sys.stderr)
        return 2
    if a.hidden % a.heads or a.batch % a.microbatches:
        print("torch_gpt: heads must divide hidden and microbatches batch", file=sys.stderr)
        return 2
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_gpt: PyTorch is not installed", file=sys.stderr)
        return 77
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
    elif not torch.cuda.is_available():
        print("torch_gpt: no GPU visible", file=sys.stderr)
        return 77
    else:
        torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    dev = torch.device(a.device)
    H, L, T, V, nh = a.hidden, a.layers, a.seq, a.vocab, a.heads
    Fh = a.ffn or 4 * H
    hd = H // nh
    g = torch.Generator(device=dev).manual_seed(1)

    def param(*shape, std=0.02, value=None):
        if value is not None:
            t = torch.full(shape, value, device=dev)
        else:
            t = torch.randn(*shape, device=dev, generator=g) * std
        return t.requires_grad_()

    wte, wpe = param(V, H), param(T, H)
    blocks = []
    for _ in range(L):
        blocks.append(dict(
            ln1w=param(H, value=1.0), ln1b=param(H, value=0.0),
            attnw=param(H, 3 * H), attnb=param(3 * H, value=0.0),
            projw=param(H, H), projb=param(H, value=0.0),
            ln2w=param(H, value=1.0), ln2b=param(H, value=0.0),
            fcw=param(H, Fh), fcb=param(Fh, value=0.0),
            fcprojw=param(Fh, H), fcprojb=param(H, value=0.0)))
    lnfw, lnfb = param(H, value=1.0), param(H, value=0.0)
    decay = [wte, wpe] + [b[k] for b in blocks for k in ("attnw", "projw", "fcw", "fcprojw")]
    no_decay = [lnfw, lnfb] + [b[k] for b in blocks
                               for k in ("ln1w", "ln1b", "attnb", "projb", "ln2w", "ln2b", "fcb",
                                         "fcprojb")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    mask = torch.ones(T, T, device=dev, dtype=torch.bool).tril()
    pos = torch.arange(T, device=dev)

    def attention(q, k, v):  # [n, nh, T, hd]
        if a.attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~mask, float("-inf"))
        return torch.softmax(s, dim=-1) @ v

    def forward(x):  # x [n, T] -> logits [n, T, V]
        n = x.shape[0]
        h = wte[x] + wpe[pos]
        for b in blocks:
            y = F.layer_norm(h, (H,), b["ln1w"], b["ln1b"], 1e-5)
            qkv = y @ b["attnw"] + b["attnb"]
            q, k, v = (t.view(n, T, nh, hd).transpose(1, 2) for t in qkv.split(H, dim=-1))
            att = attention(q, k, v).transpose(1, 2).reshape(n, T, H)
            h = h + (att @ b["projw"] + b["projb"])
            y = F.layer_norm(h, (H,), b["ln2w"], b["ln2b"], 1e-5)
            h = h + (F.gelu(y @ b["fcw"] + b["fcb"], approximate="tanh") @ b["fcprojw"] +
                     b["fcprojb"])
        y = F.layer_norm(h, (H,), lnfw, lnfb, 1e-5)
        return y @ wte.t()

    total = a.batch * T  # the global count: micro-batch losses sum to the batch's mean

    def step(tokens):
        opt.zero_grad(set_to_none=False)
        for mb in tokens.chunk(a.microbatches):
            with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                logits = forward(mb[:, :T])
            loss = F.cross_entropy(logits.float().reshape(-1, V), mb[:, 1:].reshape(-1),
                                   reduction="sum") / total
            loss.backward()
        opt.step()

    batches = [torch.randint(0, V, (a.batch, T + 1), device=dev, generator=g)
               for _ in range(4)]
    for i in range(a.warmup):
        step(batches[i % 4])
    if a.device == "cuda":
        torch.cuda.synchronize()
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for i in range(a.steps):
            step(batches[i % 4])
        t1.record()
        t1.synchronize()
        ms = t0.elapsed_time(t1) / a.steps
    else:
        times = []
        for i in range(a.steps):
            s = time.perf_counter()
            step(batches[i % 4])
            times.append((time.perf_counter() - s) * 1e3)
        ms = statistics.median(times)
    print(f"torch step ms {ms:.3f}")
    print(f"torch tokens/s {a.batch * T / (ms * 1e-3):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
