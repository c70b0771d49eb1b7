#!/usr/bin/env python3
"""mlp_reference.py DUMP_DIR PLAN.json — recomputes a `pprun --dump` run.

Independently of pprun: reads x, t, w_init, b_init from DUMP_DIR and lr from
the plan, trains the reference MLP of docs/model.md in float64 with numpy
(layer: y = x + gelu(x W + b), tanh GELU; loss (1/(2N)) sum (y - t)^2;
SGD), and compares with w_final, b_final and loss.  Exit 0 if the largest
relative error (max |a - b| / max |b| per array) is within --tol, else 1.
"""
import argparse
import json
import os
import sys

import numpy as np


def gelu(z):
    return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))


def gelu_grad(z):
    c = np.sqrt(2.0 / np.pi)
    u = c * (z + 0.044715 * z ** 3)
    t = np.tanh(u)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * z * z)


def train(x, t, W, b, lr):
    W, b = W.astype(np.float64).copy(), b.astype(np.float64).copy()
    losses = []
    for k in range(x.shape[0]):
        a = x[k].astype(np.float64)
        n = a.shape[0]
        inputs, zs = [], []
        for l in range(W.shape[0]):
            z = a @ W[l] + b[l]
            inputs.append(a)
            zs.append(z)
            a = a + gelu(z)
        diff = a - t[k]
        losses.append((diff ** 2).sum() / (2 * n))
        dy = diff / n
        for l in reversed(range(W.shape[0])):
            dz = dy * gelu_grad(zs[l])
            dW = inputs[l].T @ dz
            db = dz.sum(axis=0)
            dy = dy + dz @ W[l].T
            W[l] -= lr * dW
            b[l] -= lr * db
    return W, b, np.array(losses)


def rel(a, ref):
    scale = np.abs(ref).max()
    diff = np.abs(a.astype(np.float64) - ref).max()
    return 0.0 if diff == 0 else diff / scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("plan")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    load = lambda name: np.load(os.path.join(args.dump, name))
    x, t = load("x.npy"), load("t.npy")
    w0, b0 = load("w_init.npy"), load("b_init.npy")
    for name, arr in (("x", x), ("t", t), ("w_init", w0), ("b_init", b0)):
        assert arr.dtype == np.float32, f"{name}.npy is {arr.dtype}, want float32"
    with open(args.plan) as f:
        model = json.load(f)["model"]
    L, H, N = model["layers"], model["hidden"], model["batch"]
    assert x.shape[1:] == (N, H) and t.shape == x.shape, x.shape
    assert w0.shape == (L, H, H) and b0.shape == (L, H), (w0.shape, b0.shape)
    W, b, loss = train(x, t, w0, b0, model["lr"])
    ew, eb = rel(load("w_final.npy"), W), rel(load("b_final.npy"), b)
    el = rel(load("loss.npy"), loss)
    moved = rel(w0, W)
    print(f"reference: weights {ew:.3g}, biases {eb:.3g}, loss {el:.3g} "
          f"(training moved weights by {moved:.3g}; tolerance {args.tol:g})")
    ok = max(ew, eb, el) <= args.tol and moved > 10 * args.tol
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
