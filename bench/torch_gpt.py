#!/usr/bin/env python3
"""torch_gpt.py — the transformer of model gpt (DESIGN.md, "The transformer")
in PyTorch eager on the CPU, the baseline bench/gpt_vs_torch_cpu.sh compares
pprun with: token and position embeddings, pre-LayerNorm blocks (LN, causal
multi-head self-attention with bias, residual; LN, tanh-GELU MLP, residual),
a final LayerNorm, the LM head tied to the token embedding, the mean
cross-entropy over every predicted token of the batch, torch.optim.AdamW
(β 0.9, 0.95, ε 1e-8, weight decay 0.1 on matrices and embeddings only),
fp32.  --microbatches M accumulates the gradients of M micro-batches (each
loss the sum over its tokens / the batch's tokens, as pprun sums them) before
the one update of a step; --microbatches 1 takes the whole batch at once.
--attention math: q·kᵀ, masked softmax, ·v as plain matmuls (what pprun
computes); sdpa: F.scaled_dot_product_attention(is_causal=True).  Synthetic
tokens.  --threads N intra-op threads, one inter-op thread; each step timed
on the host clock after --warmup steps, the median printed as
"torch step ms <value>".

  python3 bench/torch_gpt.py --layers 4 --hidden 256 --heads 4 --seq 128 \
      --batch 32 --microbatches 8 --steps 6 --threads 1 [--attention sdpa]
"""
import argparse
import math
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=0, help="default 4 x hidden")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--microbatches", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--attention", choices=["math", "sdpa"], default="math")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as Fn
    except ImportError:
        print("torch_gpt: PyTorch is not installed", file=sys.stderr)
        return 77
    if a.batch % a.microbatches:
        print("torch_gpt: --batch must be a multiple of --microbatches", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    H, L, A, T, V = a.hidden, a.layers, a.heads, a.seq, a.vocab
    F = a.ffn or 4 * H
    hd = H // A

    def mat(r, c, sd):
        return (torch.randn(r, c) * sd).requires_grad_()

    def vec(n, v):
        return torch.full((n,), float(v)).requires_grad_()

    resid = 0.02 / math.sqrt(2 * L)
    wte, wpe = mat(V, H, 0.02), mat(T, H, 0.01)
    blocks = [dict(ln1w=vec(H, 1), ln1b=vec(H, 0), attnw=mat(H, 3 * H, 0.02), attnb=vec(3 * H, 0),
                   projw=mat(H, H, resid), projb=vec(H, 0), ln2w=vec(H, 1), ln2b=vec(H, 0),
                   fcw=mat(H, F, 0.02), fcb=vec(F, 0), fcprojw=mat(F, H, resid), fcprojb=vec(H, 0))
              for _ in range(L)]
    lnfw, lnfb = vec(H, 1), vec(H, 0)
    decay = [wte, wpe] + [p for b in blocks for k, p in b.items() if k.endswith("w") and p.dim() == 2]
    no_decay = [lnfw, lnfb] + [p for b in blocks for k, p in b.items() if p.dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    mask = torch.full((T, T), float("-inf")).triu(1)
    pos = torch.arange(T)

    def attention(q, k, v):  # [b, A, T, hd]
        if a.attention == "sdpa":
            return Fn.scaled_dot_product_attention(q, k, v, is_causal=True)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        return torch.softmax(s, dim=-1) @ v

    def forward(x):  # x [b, T] -> logits [b, T, V]
        b = x.shape[0]
        h = wte[x] + wpe[pos]
        for p in blocks:
            y = Fn.layer_norm(h, (H,), p["ln1w"], p["ln1b"], 1e-5)
            qkv = y @ p["attnw"] + p["attnb"]
            q, k, v = (t.view(b, T, A, hd).transpose(1, 2) for t in qkv.split(H, dim=-1))
            att = attention(q, k, v).transpose(1, 2).reshape(b, T, H)
            h = h + (att @ p["projw"] + p["projb"])
            y = Fn.layer_norm(h, (H,), p["ln2w"], p["ln2b"], 1e-5)
            h = h + (Fn.gelu(y @ p["fcw"] + p["fcb"], approximate="tanh") @ p["fcprojw"] + p["fcprojb"])
        return Fn.layer_norm(h, (H,), lnfw, lnfb, 1e-5) @ wte.t()

    ntokens = a.batch * T

    def step(seqs):  # seqs [batch, T + 1]
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for mb in seqs.chunk(a.microbatches):
            logits = forward(mb[:, :T])
            loss = Fn.cross_entropy(logits.reshape(-1, V), mb[:, 1:].reshape(-1),
                                    reduction="sum") / ntokens
            loss.backward()
            total += loss.item()
        opt.step()
        return total

    g = torch.Generator().manual_seed(2)
    data = [torch.randint(0, V, (a.batch, T + 1), generator=g) for _ in range(4)]
    for k in range(a.warmup):
        step(data[k % 4])
    times = []
    for k in range(a.steps):
        t0 = time.perf_counter()
        loss = step(data[k % 4])
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(f"torch {torch.__version__} on the CPU, {torch.get_num_threads()} threads: L={L} H={H} "
          f"heads={A} T={T} V={V} batch={a.batch} M={a.microbatches} attention={a.attention} "
          f"fp32, loss {loss:.4f}")
    print(f"torch step ms {times[len(times) // 2]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
