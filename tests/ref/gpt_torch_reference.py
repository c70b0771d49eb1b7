#!/usr/bin/env python3
"""gpt_torch_reference.py DUMP PLAN [--tolerance T]: recomputes a `pprun --dump`
of a transformer with PyTorch (DESIGN.md, "The transformer"; docs/gpt.md):
the dumped initial parameters trained on the dumped tokens by torch's own
layers, autograd and torch.optim.AdamW (or SGD) give the dumped final
parameters and losses.  Exit 0 when they agree within the tolerance, 1 when
not, 77 without torch.  Only the dump and the plan's model settings are read.
"""
import json
import math
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch or numpy not importable: skipped")
    sys.exit(77)


def main():
    dump, plan_path = sys.argv[1], sys.argv[2]
    tol = float(sys.argv[sys.argv.index("--tolerance") + 1]) if "--tolerance" in sys.argv else 1e-5
    m = json.load(open(plan_path))["model"]
    H, A, Ff, T, V = m["hidden"], m["heads"], m["ffn"], m["seq"], m["vocab"]
    L, tie = m["layers"], m["tie"]
    torch.manual_seed(0)
    torch.set_num_threads(1)

    def load(kind, name):
        return torch.tensor(np.load(f"{dump}/{kind}/{name}.npy"), dtype=torch.float32)

    names = ["wte", "wpe", "lnf.w", "lnf.b"] + ([] if tie else ["head.w"])
    for b in range(L):
        names += [f"blocks.{b}.{t}" for t in ["ln1.w", "ln1.b", "attn.w", "attn.b", "proj.w", "proj.b",
                                              "ln2.w", "ln2.b", "fc.w", "fc.b", "fcproj.w", "fcproj.b"]]
    P = {n: load("init", n).requires_grad_(True) for n in names}
    tokens = torch.tensor(np.load(f"{dump}/tokens.npy"), dtype=torch.long)
    dumped_loss = np.load(f"{dump}/loss.npy")

    def ln(x, w, b):
        return F.layer_norm(x, (H,), w, b, eps=1e-5)

    def forward(x):
        n = x.shape[0]
        h = P["wte"][x] + P["wpe"][:T]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        for b in range(L):
            p = lambda t: P[f"blocks.{b}.{t}"]
            a = ln(h, p("ln1.w"), p("ln1.b"))
            q, k, v = (a @ p("attn.w") + p("attn.b")).split(H, dim=-1)
            q, k, v = (t.view(n, T, A, H // A).transpose(1, 2) for t in (q, k, v))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(H // A)
            att = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
            att = att.transpose(1, 2).reshape(n, T, H)
            h = h + att @ p("proj.w") + p("proj.b")
            u = ln(h, p("ln2.w"), p("ln2.b")) @ p("fc.w") + p("fc.b")
            h = h + F.gelu(u, approximate="tanh") @ p("fcproj.w") + p("fcproj.b")
        y = ln(h, P["lnf.w"], P["lnf.b"])
        return y @ (P["wte"].t() if tie else P["head.w"])

    decay = [P[n] for n in names if n in ("wte", "wpe", "head.w") or
             any(n.endswith(s) for s in ("attn.w", "proj.w", "fc.w", "fcproj.w"))]
    rest = [P[n] for n in names if all(P[n] is not d for d in decay)]
    if m["optimizer"] == "adamw":
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": m["weight_decay"]},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=m["lr"], betas=(m["beta1"], m["beta2"]), eps=m["eps"], foreach=False)
    else:
        opt = torch.optim.SGD(decay + rest, lr=m["lr"])
    losses = []
    for step in range(tokens.shape[0]):
        opt.zero_grad()
        x, t = tokens[step, :, :-1], tokens[step, :, 1:]
        loss = F.cross_entropy(forward(x).reshape(-1, V), t.reshape(-1))
        loss.backward()
        for b in range(L):  # the key bias's gradient is zero in exact arithmetic (docs/gpt.md)
            P[f"blocks.{b}.attn.b"].grad[H:2 * H] = 0
        opt.step()
        losses.append(loss.item())

    worst, where = 0.0, ""
    scale = max(float(load("final", n).abs().max()) for n in names)
    for n in names:
        e = float((P[n].detach() - load("final", n)).abs().max()) / scale
        if e > worst:
            worst, where = e, n
    el = max(abs(a - b) / abs(b) for a, b in zip(dumped_loss, losses))
    ok = worst <= tol and el <= tol
    print(f"torch reference: largest relative error {worst:.3g} ({where}); loss {el:.3g}: "
          f"{'ok' if ok else 'FAILED'} (tolerance {tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
