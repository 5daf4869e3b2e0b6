"""dlcore's CUDA backend against PyTorch CUDA, same process, medians after warm-up.

    python bench/cuda_bench.py [--out FILE] [--repeat 5] [--min-time 0.2] [--quick]

* matmul 4096x4096 float32, TFLOP/s: dlcore through cuBLAS, dlcore's own GEMM kernel (in a
  subprocess with DLCORE_CUDA_GEMM=fallback) and torch with TF32 off (true fp32 like dlcore;
  torch with TF32 on is shown for reference).
* conv2d forward and forward+backward (input and weight gradients) at bench/nn.py's shapes,
  GFLOP/s (2*N*K*(C/groups)*R*S*P*Q per pass; forward+backward = 3 passes): torch with cuDNN
  TF32 off (like for like) and with its default (cuDNN TF32 on).
* a training step (forward, cross-entropy, backward, SGD momentum 0.9) of dlcore.models.LeNet5
  (1x28x28) and ConvNet (3x32x32) against torch.nn models of identical layer shapes, eager,
  at batch 128 and 512, ms/step.

Every figure is the median of --repeat timed runs, each of enough calls to last --min-time
seconds, between device synchronisations. Ratios are torch time / dlcore time: > 1 means
dlcore is faster. Prints a markdown table and writes it to --out. Exits 0 with a message
when dlcore has no usable GPU. (--device cpu runs the same code on the CPU, with --quick
sizes, to check this script on a machine without a GPU; its numbers mean nothing.)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback

import timing  # bench/timing.py, next to this script
import dlcore
import dlcore.nn.functional as F

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--out", help="also write the report (markdown) to this file")
p.add_argument("--repeat", type=int, default=5)
p.add_argument("--min-time", type=float, default=0.2, help="seconds each timed run lasts at least")
p.add_argument("--quick", action="store_true", help="small sizes (for checking the script)")
p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
p.add_argument("--fallback-matmul", type=int, default=0, help=argparse.SUPPRESS)  # internal: the subprocess
args = p.parse_args()

DEV = args.device
ON_GPU = DEV.startswith("cuda")
CONV_SHAPES = timing.CONV_SHAPES
MATMUL_N = 1024 if args.quick else 4096
BATCHES = (16,) if args.quick else (128, 512)
if args.quick:
    CONV_SHAPES = CONV_SHAPES[:2]


def emit(lines, path=None):
    text = "\n".join(lines) + "\n"
    print(text, end="", flush=True)
    if path:
        with open(path, "w") as f:
            f.write(text)


if ON_GPU and not dlcore.cuda.is_available():
    why = ("this dlcore was built without the CUDA backend (install with -C cmake.define.DLCORE_CUDA=ON)"
           if not dlcore.cuda.is_built() else "no GPU or driver was found")
    emit([f"cuda_bench: dlcore.cuda.is_available() is False: {why}; nothing to benchmark."], args.out)
    sys.exit(0)


def dl_sync():
    dlcore.cuda.synchronize()


def median_time(fn, sync):
    """Median seconds per call of fn (bench/timing.py), each timed run between two synchronisations."""
    return timing.median_time(fn, args.repeat, args.min_time, 1 << 14, sync)


if args.fallback_matmul:  # the subprocess: time dlcore's own GEMM kernel, print one JSON line
    n = args.fallback_matmul
    a, b = dlcore.randn(n, n, device=DEV), dlcore.randn(n, n, device=DEV)
    t = median_time(lambda: a @ b, dl_sync)
    print("FALLBACK " + json.dumps({"seconds": t, "gemm_backend": dlcore.cuda.gemm_backend()}))
    sys.exit(0)

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as TF
    if ON_GPU and not torch.cuda.is_available():
        print("cuda_bench: torch has no CUDA here; dlcore numbers only", file=sys.stderr)
        torch = None
except ImportError:
    torch = None


def t_sync():
    if ON_GPU:
        torch.cuda.synchronize()


class tf32:
    """Context: torch's TF32 switches for matmul (cuBLAS) and cuDNN; torch's defaults are
    matmul off, cuDNN on. Restored after."""

    def __init__(self, matmul, cudnn):
        self.flags = (matmul, cudnn)

    def __enter__(self):
        self.prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.flags

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.prev


notes = []


def attempt(what, fn):
    """fn(), or None with the error noted (one failing measurement does not stop the others)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        notes.append(f"{what}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        traceback.print_exc(file=sys.stderr)
        return None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def ratio(dl_t, ref_t):
    return "-" if dl_t is None or ref_t is None else f"{ref_t / dl_t:.2f}x"


# ---- matmul ----

def bench_matmul():
    n = MATMUL_N
    flop = 2.0 * n ** 3
    a, b = dlcore.randn(n, n, device=DEV), dlcore.randn(n, n, device=DEV)
    dl = attempt("matmul dlcore", lambda: median_time(lambda: a @ b, dl_sync))
    fb = None
    if ON_GPU:
        def fallback():
            env = dict(os.environ, DLCORE_CUDA_GEMM="fallback")
            cmd = [sys.executable, os.path.abspath(__file__), "--fallback-matmul", str(n), "--repeat",
                   str(args.repeat), "--min-time", str(args.min_time)]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            line = [x for x in r.stdout.splitlines() if x.startswith("FALLBACK ")]
            if r.returncode != 0 or not line:
                raise RuntimeError(f"subprocess failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
            res = json.loads(line[0][len("FALLBACK "):])
            if res["gemm_backend"] != "fallback":
                raise RuntimeError(f"DLCORE_CUDA_GEMM=fallback gave gemm_backend {res['gemm_backend']!r}")
            return res["seconds"]
        fb = attempt("matmul dlcore fallback kernel", fallback)
    tt = tt32 = None
    if torch is not None:
        at, bt = torch.randn(n, n, device=DEV), torch.randn(n, n, device=DEV)
        with tf32(False, False):
            tt = attempt("matmul torch", lambda: median_time(lambda: at @ bt, t_sync))
        if ON_GPU:
            with tf32(True, True):
                tt32 = attempt("matmul torch TF32", lambda: median_time(lambda: at @ bt, t_sync))
    gemm = dlcore.cuda.gemm_backend() if ON_GPU else "cpu"
    tfs = lambda t: None if t is None else flop / t / 1e12
    return [f"| matmul {n}x{n}x{n} float32 | {fmt(tfs(dl))} ({gemm}) | {fmt(tfs(fb))} | {fmt(tfs(tt))} | "
            f"{ratio(dl, tt)} | {fmt(tfs(tt32))} |"]


# ---- conv2d ----

def bench_conv():
    rows = []
    for (n, c, h, w), k, r, pad in CONV_SHAPES:
        oh, ow = h + 2 * pad - r + 1, w + 2 * pad - r + 1
        gflop = 2.0 * n * k * c * r * r * oh * ow / 1e9
        name = f"conv {n}x{c}x{h}x{w}->{k} {r}x{r} p{pad}"
        x = dlcore.randn(n, c, h, w, device=DEV, requires_grad=True)
        wt = (dlcore.randn(k, c, r, r, device=DEV) * 0.1).requires_grad_()
        gy = dlcore.ones(n, k, oh, ow, device=DEV)

        def dl_f():
            with dlcore.no_grad():
                F.conv2d(x, wt, padding=pad)

        def dl_fb():
            F.conv2d(x, wt, padding=pad).backward(gy)
            x.grad = None
            wt.grad = None

        res = {"dl_f": attempt(f"{name} dlcore fwd", lambda: median_time(dl_f, dl_sync)),
               "dl_fb": attempt(f"{name} dlcore fwd+bwd", lambda: median_time(dl_fb, dl_sync))}
        if torch is not None:
            xt = torch.randn(n, c, h, w, device=DEV, requires_grad=True)
            wtt = (torch.randn(k, c, r, r, device=DEV) * 0.1).requires_grad_()
            gyt = torch.ones(n, k, oh, ow, device=DEV)

            def t_f():
                with torch.no_grad():
                    TF.conv2d(xt, wtt, padding=pad)

            def t_fb():
                TF.conv2d(xt, wtt, padding=pad).backward(gyt)
                xt.grad = None
                wtt.grad = None

            for on in (False, True):  # cuDNN TF32 off (true fp32), on (torch's default)
                with tf32(False, on):
                    res[f"t_f{on}"] = attempt(f"{name} torch fwd tf32={on}", lambda: median_time(t_f, t_sync))
                    res[f"t_fb{on}"] = attempt(f"{name} torch fwd+bwd tf32={on}", lambda: median_time(t_fb, t_sync))
        gf = lambda key, passes=1: None if res.get(key) is None else passes * gflop / res[key]
        rows.append(f"| {name} | {fmt(gf('dl_f'))} | {fmt(gf('t_fFalse'))} | {fmt(gf('t_fTrue'))} | "
                    f"{fmt(gf('dl_fb', 3))} | {fmt(gf('t_fbFalse', 3))} | {fmt(gf('t_fbTrue', 3))} | "
                    f"{ratio(res['dl_fb'], res.get('t_fbFalse'))} |")
    return rows


# ---- training steps ----

def torch_model(name):
    """torch.nn models with the layer shapes of dlcore.models.LeNet5(1, 10, 28) and ConvNet(3, 10, 32)."""
    if name == "LeNet5":
        return tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
            tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(16 * 5 * 5, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
            tnn.Linear(84, 10))
    layers, c = [], 3
    for w in (32, 64, 128):
        layers += [tnn.Conv2d(c, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                   tnn.Conv2d(w, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(), tnn.MaxPool2d(2)]
        c = w
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(c, 10))


MODELS = {"LeNet5": (lambda: dlcore.models.LeNet5(1, 10, 28), (1, 28, 28)),
          "ConvNet": (lambda: dlcore.models.ConvNet(3, 10), (3, 32, 32))}


def bench_training():
    rows = []
    for name, (make, chw) in MODELS.items():
        for batch in BATCHES:
            label = f"{name} batch {batch}"
            dlcore.manual_seed(0)
            model = make().to(DEV)
            x = dlcore.randn(batch, *chw, device=DEV)
            y = dlcore.randint(0, 10, (batch,), device=DEV)

            def dl_step(opt):
                def step():
                    opt.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                return step

            def dl_time():
                try:
                    return median_time(dl_step(dlcore.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)), dl_sync)
                except Exception as e:  # noqa: BLE001
                    notes.append(f"{label} dlcore: the SGD momentum step failed ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:200]}); timed with plain SGD instead (marked *)")
                    return ("*", median_time(dl_step(dlcore.optim.SGD(model.parameters(), lr=0.01)), dl_sync))

            dl = attempt(f"{label} dlcore", dl_time)
            mark = ""
            if isinstance(dl, tuple):
                mark, dl = dl
            res = {}
            if torch is not None:
                torch.manual_seed(0)
                tm = torch_model(name).to(DEV)
                n_dl, n_t = model.num_parameters(), sum(q.numel() for q in tm.parameters())
                assert n_dl == n_t, f"{name}: {n_dl} parameters in dlcore, {n_t} in the torch model"
                topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
                xt = torch.randn(batch, *chw, device=DEV)
                yt = torch.randint(0, 10, (batch,), device=DEV)

                def t_step():
                    topt.zero_grad()
                    TF.cross_entropy(tm(xt), yt).backward()
                    topt.step()

                for on in (False, True):  # all fp32; torch's defaults (cuDNN TF32 on)
                    with tf32(False, on):
                        res[on] = attempt(f"{label} torch tf32={on}", lambda: median_time(t_step, t_sync))
            ms = lambda t: None if t is None else t * 1e3
            rows.append(f"| {label} | {fmt(ms(dl), 2)}{mark} | {fmt(ms(res.get(False)), 2)} | "
                        f"{fmt(ms(res.get(True)), 2)} | {ratio(dl, res.get(False))} |")
    return rows


# ---- report ----

def header():
    lines = [f"# dlcore CUDA benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')})", ""]
    if ON_GPU:
        lines.append(f"- device: {dlcore.cuda.get_device_name()} | dlcore {dlcore.__version__} | "
                     f"GEMM backend: {dlcore.cuda.gemm_backend()}")
    else:
        lines.append(f"- device: {DEV} (a check of the script: these numbers mean nothing) | "
                     f"dlcore {dlcore.__version__}")
    if shutil.which("nvidia-smi"):
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
        lines.append(f"- nvidia-smi: {r.stdout.strip() or r.stderr.strip()}")
    if torch is not None:
        lines.append(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version() if ON_GPU else '-'} (eager, cudnn.benchmark "
                     f"{torch.backends.cudnn.benchmark})")
    else:
        lines.append("- torch: not available (dlcore numbers only)")
    lines.append(f"- median of {args.repeat} runs of >= {args.min_time}s after warm-up; "
                 "ratio = torch time / dlcore time (> 1: dlcore faster), against torch with TF32 off")
    return lines


lines = header()
lines += ["", "| matmul | dlcore TFLOP/s | dlcore own kernel | torch fp32 | ratio | torch TF32 |",
          "|---|---|---|---|---|---|"]
lines += bench_matmul()
lines += ["", "| conv2d (GFLOP/s) | dlcore fwd | torch fwd fp32 | torch fwd TF32 (default) | dlcore fwd+bwd | "
          "torch fwd+bwd fp32 | torch fwd+bwd TF32 (default) | fwd+bwd ratio |", "|---|---|---|---|---|---|---|---|"]
lines += bench_conv()
lines += ["", "| training step (ms) | dlcore | torch fp32 | torch default (cuDNN TF32) | ratio |",
          "|---|---|---|---|---|"]
lines += bench_training()
if notes:
    lines += ["", "Notes:"] + [f"- {n}" for n in notes]
emit(lines, args.out)
