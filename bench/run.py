"""Side-by-side benchmarks: dlcore vs numpy (and PyTorch when installed), same process.

    python bench/run.py [--threads 2] [--repeat 7] [--only core,autograd]

Prints a markdown table. Every figure is the median of --repeat runs; ratios are
computed from medians taken in this same run (the machine is shared and noisy).
"""
from __future__ import annotations

import argparse
import os
import sys

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--repeat", type=int, default=7)
p.add_argument("--only", default="core,autograd")
args = p.parse_args()

# Thread counts must be fixed before numpy/OpenBLAS and torch start their pools.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402

import dlcore  # noqa: E402
from timing import median_time  # noqa: E402

try:
    import torch  # noqa: E402
    torch.set_num_threads(args.threads)
except ImportError:
    torch = None

dlcore.set_num_threads(args.threads)


def bench(fn, min_time=0.05):
    return median_time(fn, args.repeat, min_time, 1 << 20)


rows = []


def row(name, unit, dl, ref_np=None, ref_torch=None, scale=None):
    """scale: converts seconds to a throughput (e.g. GFLOP/s) when given; else times are shown in us."""
    def fmt(t):
        if t is None:
            return "-"
        return f"{scale / t:.1f}" if scale else f"{t * 1e6:.2f}"

    def ratio(t):  # >1 means dlcore is faster
        return "-" if t is None else f"{t / dl:.2f}x"

    rows.append((name, unit, fmt(dl), fmt(ref_np), ratio(ref_np), fmt(ref_torch), ratio(ref_torch)))


def core():
    n = 1_000_000
    a_np = np.random.rand(n).astype(np.float32)
    b_np = np.random.rand(n).astype(np.float32)
    a, b = dlcore.from_numpy(a_np), dlcore.from_numpy(b_np)
    at = bt = None
    if torch is not None:
        at, bt = torch.from_numpy(a_np), torch.from_numpy(b_np)
    for name, f_dl, f_np, f_t in [
        ("add 1e6 f32", lambda: a + b, lambda: a_np + b_np, lambda: at + bt),
        ("mul 1e6 f32", lambda: a * b, lambda: a_np * b_np, lambda: at * bt),
        ("sum 1e6 f32", lambda: a.sum(), lambda: a_np.sum(), lambda: at.sum()),
    ]:
        row(name, "us", bench(f_dl), bench(f_np), bench(f_t) if torch else None)
    for s in (256, 512, 1024, 2048):
        x_np = np.random.rand(s, s).astype(np.float32)
        y_np = np.random.rand(s, s).astype(np.float32)
        x, y = dlcore.from_numpy(x_np), dlcore.from_numpy(y_np)
        flops = 2.0 * s ** 3 / 1e9
        t_t = None
        if torch is not None:
            xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np)
            t_t = bench(lambda: xt @ yt)
        row(f"matmul {s} f32", "GFLOP/s", bench(lambda: x @ y), bench(lambda: x_np @ y_np), t_t, scale=flops)
    s_np = np.random.rand(16).astype(np.float32)
    s1, s2 = dlcore.from_numpy(s_np), dlcore.from_numpy(s_np.copy())
    t_t = None
    if torch is not None:
        st1, st2 = torch.from_numpy(s_np), torch.from_numpy(s_np.copy())
        t_t = bench(lambda: st1 + st2, min_time=0.2)
    row("add 16 f32 (call overhead)", "us", bench(lambda: s1 + s2, min_time=0.2),
        bench(lambda: s_np + s_np, min_time=0.2), t_t)


def autograd():
    if not hasattr(dlcore, "autograd"):
        return
    x = dlcore.rand(16, requires_grad=True)

    def chain_dl():
        y = x
        for _ in range(100):
            y = y + x
        y.sum().backward()
        x.grad = None

    t_t = None
    if torch is not None:
        xt = torch.rand(16, requires_grad=True)

        def chain_t():
            y = xt
            for _ in range(100):
                y = y + xt
            y.sum().backward()
            xt.grad = None
        t_t = bench(chain_t) / 100
    row("autograd per op (100 adds, fwd+bwd)", "us", bench(chain_dl) / 100, None, t_t)


sections = {"core": core, "autograd": autograd}
for name in args.only.split(","):
    sections[name]()

print(f"dlcore {dlcore.__version__} | threads={args.threads} | gemm isa={dlcore._core.gemm_isa()} | "
      f"numpy {np.__version__}" + (f" | torch {torch.__version__}" if torch else "") + f" | median of {args.repeat}")
print()
print("| benchmark | unit | dlcore | numpy | dlcore vs numpy | torch | dlcore vs torch |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
print("Ratios > 1 mean dlcore is faster (throughput ratio for GFLOP/s rows, time ratio otherwise).")
sys.stdout.flush()
