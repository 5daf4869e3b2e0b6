"""Convolution, pooling and cross-entropy: dlcore vs PyTorch CPU, same process, medians.

    python bench/nn.py [--threads 1,2] [--repeat 5]

GFLOP/s for conv2d counts 2*N*K*(C/groups)*R*S*P*Q per pass (forward+backward = 3 passes:
output, input gradient, weight gradient). Ratios > 1 mean dlcore is faster.
"""
from __future__ import annotations

import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("--threads", default="1,2")
p.add_argument("--repeat", type=int, default=5)
args = p.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(max(int(t) for t in args.threads.split(","))))

import numpy as np  # noqa: E402

import dlcore  # noqa: E402
from timing import CONV_SHAPES, median_time  # noqa: E402
import dlcore.nn.functional as F  # noqa: E402

try:
    import torch  # noqa: E402
    import torch.nn.functional as TF  # noqa: E402
except ImportError:
    torch = None

PEAK = 470.0  # fp32 FMA GFLOP/s of this machine on 2 threads (AVX-512)


def bench(fn, min_time=0.1):
    return median_time(fn, args.repeat, min_time, 4096)


def conv_cases(threads):
    rows = []
    rng = np.random.default_rng(0)
    for (n, c, h, w), k, r, pad in CONV_SHAPES:
        xn = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wn = (rng.standard_normal((k, c, r, r)) * 0.1).astype(np.float32)
        pq = (h + 2 * pad - r + 1) * (w + 2 * pad - r + 1)
        gflop = 2.0 * n * k * c * r * r * pq / 1e9
        x = dlcore.from_numpy(xn).requires_grad_()
        wt = dlcore.from_numpy(wn).requires_grad_()
        gy = dlcore.ones(n, k, h + 2 * pad - r + 1, w + 2 * pad - r + 1)

        def dl_fwd():
            with dlcore.no_grad():
                F.conv2d(x, wt, padding=pad)

        def dl_fb():
            F.conv2d(x, wt, padding=pad).backward(gy)
            x.grad = None
            wt.grad = None

        t_f, t_fb = bench(dl_fwd), bench(dl_fb)
        tt_f = tt_fb = None
        if torch is not None:
            xt = torch.from_numpy(xn).requires_grad_()
            wtt = torch.from_numpy(wn).requires_grad_()
            gyt = torch.ones(n, k, h + 2 * pad - r + 1, w + 2 * pad - r + 1)

            def t_fwd():
                with torch.no_grad():
                    TF.conv2d(xt, wtt, padding=pad)

            def t_fbw():
                TF.conv2d(xt, wtt, padding=pad).backward(gyt)
                xt.grad = None
                wtt.grad = None

            tt_f, tt_fb = bench(t_fwd), bench(t_fbw)
        name = f"conv {n}x{c}x{h}x{w}->{k} {r}x{r} p{pad}"
        rows.append((name, threads, gflop / t_f, gflop / tt_f if tt_f else None,
                     3 * gflop / t_fb, 3 * gflop / tt_fb if tt_fb else None))
    return rows


def other_cases(threads):
    rows = []
    rng = np.random.default_rng(1)
    xn = rng.standard_normal((128, 32, 32, 32)).astype(np.float32)
    x = dlcore.from_numpy(xn).requires_grad_()

    def dl_pool():
        F.max_pool2d(x, 2).sum().backward()
        x.grad = None

    tt = None
    if torch is not None:
        xt = torch.from_numpy(xn).requires_grad_()

        def t_pool():
            TF.max_pool2d(xt, 2).sum().backward()
            xt.grad = None
        tt = bench(t_pool)
    rows.append(("max_pool2d 2x2 fwd+bwd 128x32x32x32", threads, bench(dl_pool), tt))
    for c in (10, 1000):
        ln = rng.standard_normal((128, c)).astype(np.float32)
        yn = rng.integers(0, c, 128)
        lg = dlcore.from_numpy(ln).requires_grad_()
        y = dlcore.from_numpy(yn.astype(np.int64))

        def dl_ce():
            F.cross_entropy(lg, y).backward()
            lg.grad = None

        tt = None
        if torch is not None:
            lt = torch.from_numpy(ln).requires_grad_()
            ytt = torch.from_numpy(yn.astype(np.int64))

            def t_ce():
                TF.cross_entropy(lt, ytt).backward()
                lt.grad = None
            tt = bench(t_ce)
        rows.append((f"cross_entropy fwd+bwd 128x{c}", threads, bench(dl_ce), tt))
    return rows


conv_rows, other_rows = [], []
for th in [int(t) for t in args.threads.split(",")]:
    dlcore.set_num_threads(th)
    if torch is not None:
        torch.set_num_threads(th)
    conv_rows += conv_cases(th)
    other_rows += other_cases(th)

print(f"dlcore {dlcore.__version__} | gemm isa={dlcore._core.gemm_isa()}"
      + (f" | torch {torch.__version__}" if torch else "") + f" | median of {args.repeat}\n")
print("| conv2d (stride 1) | threads | dlcore fwd GFLOP/s | torch fwd | dlcore fwd+bwd GFLOP/s | torch fwd+bwd | "
      "fwd+bwd ratio | dlcore % of 470 peak |")
print("|---|---|---|---|---|---|---|---|")


def f(v):
    return "-" if v is None else f"{v:.1f}"


for name, th, a, b, c, d in conv_rows:
    ratio = f"{c / d:.2f}x" if d else "-"
    print(f"| {name} | {th} | {f(a)} | {f(b)} | {f(c)} | {f(d)} | {ratio} | {100 * c / PEAK:.0f}% |")
print()
print("| op | threads | dlcore (us) | torch (us) | ratio |")
print("|---|---|---|---|---|")
for name, th, a, b in other_rows:
    print(f"| {name} | {th} | {a * 1e6:.1f} | {'-' if b is None else f'{b * 1e6:.1f}'} | "
          f"{'-' if b is None else f'{b / a:.2f}x'} |")
