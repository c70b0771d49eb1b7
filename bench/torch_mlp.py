#!/usr/bin/env python3
"""torch_mlp.py — the reference MLP in PyTorch eager, the baseline pprun is
compared with (tools/gpu-check): L layers of x + gelu(x W + b) (tanh GELU,
W [in, out]), MSE loss (1/(2N)) sum (y - t)^2, plain SGD, the global batch
split into micro-batches whose gradients are summed, one update per step.
Same precision choice as pprun (fp32 | tf32 | bf16 autocast).  On the GPU
(default) timed with CUDA events after warm-up, the mean step; on the CPU
(--device cpu, fp32, --threads N intra-op threads, one inter-op thread) each
step timed on the host clock, the median.  Prints "torch step ms <value>".

  python3 bench/torch_mlp.py --layers 8 --hidden 1024 --batch 512 \
      --microbatches 8 --steps 20 [--precision fp32] [--device cpu --threads 2]
"""
import argparse
import sys

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--microbatches", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU: intra-op threads")
    a = ap.parse_args()
    if a.device == "cpu" and a.precision != "fp32":
        print("torch_mlp: the CPU runs fp32 only", file=sys.stderr)
        return 2
    try:
        import torch
    except ImportError:
        print("torch_mlp: PyTorch is not installed", file=sys.stderr)
        return 77
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
    elif not torch.cuda.is_available():
        print("torch_mlp: no GPU visible", file=sys.stderr)
        return 77
    else:
        torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    dev = torch.device(a.device)
    g = torch.Generator(device=dev).manual_seed(1)
    H, L, N, M = a.hidden, a.layers, a.batch, a.microbatches
    scale = 1.0 / (H * L) ** 0.5  # docs/model.md
    W = [((torch.rand(H, H, device=dev, generator=g) * 2 - 1) * scale).requires_grad_()
         for _ in range(L)]
    b = [((torch.rand(H, device=dev, generator=g) * 2 - 1) * 0.1 * scale).requires_grad_()
         for _ in range(L)]
    params = W + b
    opt = torch.optim.SGD(params, lr=a.lr)

    def step(x, t):
        opt.zero_grad(set_to_none=False)
        for xm, tm in zip(x.chunk(M), t.chunk(M)):
            with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                y = xm
                for l in range(L):
                    y = y + torch.nn.functional.gelu(y @ W[l] + b[l], approximate="tanh")
            loss = ((y.float() - tm) ** 2).sum() / (2 * N)
            loss.backward()
        opt.step()
        return loss

    xs = [torch.rand(N, H, device=dev, generator=g) * 2 - 1 for _ in range(4)]
    ts = [torch.rand(N, H, device=dev, generator=g) * 2 - 1 for _ in range(4)]
    for k in range(a.warmup):
        step(xs[k % 4], ts[k % 4])
    if a.device == "cpu":
        import time
        times = []
        for k in range(a.steps):
            t0 = time.perf_counter()
            step(xs[k % 4], ts[k % 4])
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(f"torch {torch.__version__} on the CPU, {torch.get_num_threads()} threads: "
              f"L={L} H={H} N={N} M={M} fp32")
        print(f"torch step ms {times[len(times) // 2]:.4f}")
        return 0
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for k in range(a.steps):
        step(xs[k % 4], ts[k % 4])
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / a.steps
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: "
          f"L={L} H={H} N={N} M={M} {a.precision}")
    print(f"torch step ms {ms:.4f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
