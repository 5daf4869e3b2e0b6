"""The CUDA backend: every op on the GPU against the CPU, and the device API around it.

Layout of this file:

1. Tests that run everywhere: the ``dlcore.cuda`` queries, ``dlcore.device``, and the errors a
   build (or machine) without CUDA gives when asked for ``cuda``.
2. GPU tests (``requires_device``: skipped without a CUDA build and a GPU), each comparing the GPU
   with the CPU backend, which the rest of the suite checks against numpy and PyTorch:
   every differentiable op of ``test_autograd.GRAD_CASES``/``COMPOSITE_CASES`` forward, backward
   and forward-mode, in float64 and float32; spot checks of elementwise ops, reductions, indexing,
   creation and matmul; both GEMM paths (cuBLAS and, in a subprocess with
   ``DLCORE_CUDA_GEMM=fallback``, dlcore's own kernel); the nn ops; gradcheck on GPU inputs;
   the optimisers; moving modules and checkpoints; LeNet and the CLI trained on the GPU.
3. CUDA-only tests (``requires_cuda``): the caching allocator's counters, out-of-memory errors,
   device-mixing errors and DLPack exchange with PyTorch and CuPy.

``DLCORE_TEST_DEVICE=cpu python -m pytest tests/test_cuda.py`` runs the tests of part 2 with the
CPU as the "device" (CPU against CPU): a check of this file's own code on a machine without a GPU.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlcore
import dlcore.nn.functional as F
from dlcore import nn
from dlcore.autograd import gradcheck, jvp

HERE = Path(__file__).resolve().parent
DEV = os.environ.get("DLCORE_TEST_DEVICE", "cuda")
DEV_T = dlcore.device(DEV)
ON_GPU = DEV_T.type == "cuda"
HAS_CUDA = dlcore.cuda.is_available()

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA build of dlcore (DLCORE_CUDA=ON) and a GPU")
requires_device = pytest.mark.skipif(ON_GPU and not HAS_CUDA,
                                     reason="needs a CUDA build of dlcore (DLCORE_CUDA=ON) and a GPU "
                                            "(DLCORE_TEST_DEVICE=cpu runs these CPU against CPU)")

F32, F64, I64, BOOL = dlcore.float32, dlcore.float64, dlcore.int64, dlcore.bool
TOL = {F32: (1e-4, 1e-5), F64: (1e-10, 1e-12)}  # (rtol, atol as a fraction of the largest |expected|)


def _load_test_autograd():
    """tests/test_autograd.py as a module (pytest puts tests/ on sys.path; else load it by path)."""
    try:
        import test_autograd as mod
    except ImportError:
        spec = importlib.util.spec_from_file_location("test_autograd", HERE / "test_autograd.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["test_autograd"] = mod
        spec.loader.exec_module(mod)
    return mod


TA = _load_test_autograd()


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def to_dev(x, device=DEV):
    """``x`` detached, on ``device``, requiring grad when ``x`` does. A dense permuted view (a
    transposed input) keeps its strides, so the kernels' strided paths run on the device too."""
    src = x.detach()
    out = src.to(device)
    st = src.stride()
    if src.ndim > 1 and not src.is_contiguous() and out.stride() != st:
        perm = sorted(range(src.ndim), key=lambda d: -abs(st[d]))
        inv = [perm.index(d) for d in range(src.ndim)]
        view = src.permute(*perm).contiguous().to(device).permute(*inv)
        if view.stride() == st:
            out = view
    return out.requires_grad_() if x.requires_grad else out


def host(x):
    """A tensor as a numpy array (copied to the host); anything else as np.asarray."""
    return x.detach().cpu().numpy() if isinstance(x, dlcore.Tensor) else np.asarray(x)


def assert_close(got, expected, rtol=None, atol=None, device=None, exact=False):
    """``got`` (a tensor on any device) against ``expected`` (a CPU tensor or numpy array): same
    dtype (when ``expected`` is a tensor) and shape; values within rtol and atol * max|expected|
    (the dtype's TOL by default), NaN where expected has NaN; integers and bools exactly."""
    assert isinstance(got, dlcore.Tensor), f"expected a Tensor, got {type(got).__name__}"
    if device is not None:
        assert got.device == device, f"result on {got.device}, expected {device}"
    if isinstance(expected, dlcore.Tensor):
        assert got.dtype == expected.dtype, f"dtype {got.dtype}, expected {expected.dtype}"
    g, e = host(got), host(expected)
    assert g.shape == e.shape, f"shape {g.shape}, expected {e.shape}"
    if exact or e.dtype.kind in "biu":
        np.testing.assert_array_equal(g, e)
        return
    r, a = TOL.get(got.dtype, TOL[F32])
    r = r if rtol is None else rtol
    a = a if atol is None else atol
    finite = np.abs(e[np.isfinite(e)]) if e.size else np.zeros(0)
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=r, atol=a * scale, equal_nan=True)


def assert_same(got, expected, **kw):
    """assert_close over results that may be tuples/lists of tensors, or Python scalars."""
    if isinstance(expected, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(expected)
        for gi, ei in zip(got, expected):
            assert_same(gi, ei, **kw)
    elif isinstance(expected, dlcore.Tensor):
        assert_close(got, expected, **kw)
    else:
        assert got == expected or (isinstance(got, float) and math.isnan(got) and math.isnan(expected))


def same_outcome(fn, cpu_args, dev_args, device=DEV_T, **kw):
    """fn on the CPU tensors and on the device tensors: the same values (tensors on ``device``),
    or the same exception type."""
    try:
        expected = fn(*cpu_args)
    except Exception as e:  # noqa: BLE001  (whatever the CPU raises, the device must raise too)
        with pytest.raises(type(e)):
            fn(*dev_args)
        return None
    got = fn(*dev_args)
    assert_same(got, expected, device=device, **kw)
    return got


def pair(arr, view=None):
    """(CPU tensor, device tensor) holding copies of numpy ``arr``, each passed through ``view``
    (so a strided view is made the same way on both devices)."""
    c = dlcore.from_numpy(np.array(arr, copy=True))
    d = c.to(DEV) if DEV_T != c.device else c.clone()
    return (view(c), view(d)) if view else (c, d)


def rnd(*shape, seed=0, dtype=F64, positive=False):
    """A float leaf (requires grad) of standard normals (or values in [0.5, 1.5))."""
    rng = np.random.default_rng(seed + 101 * len(shape) + sum(shape))
    a = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
    return dlcore.tensor(a, dtype=dtype).requires_grad_()


def distinct(*shape, seed=0, dtype=F64):
    """A leaf of distinct values (no ties: max/argmax well defined)."""
    n = int(np.prod(shape))
    vals = np.random.default_rng(seed).permutation(n).astype(np.float64) * 0.37 - n * 0.1
    return dlcore.tensor(vals.reshape(shape), dtype=dtype).requires_grad_()


def labels(*shape, classes, seed=0):
    return dlcore.tensor(np.random.default_rng(seed).integers(0, classes, shape))


@contextlib.contextmanager
def host_constants_on(device):
    """While active, ``dlcore.tensor(...)`` without ``device=`` and ``test_autograd.IDX`` are on
    ``device``. Some cases of test_autograd build their class targets or indices that way inside
    their functions (cross_entropy, multi_margin, maximum with a 0-d constant, index_select with
    IDX, index_add, the nll_loss composite); as plain CPU tensors those would be a device-mixing
    error on the GPU, while the op itself is what these tests check. (Mixing is tested on its
    own below; a Python-list index, as in index_select case 1, is left as it is: it must work on
    the GPU as it does in PyTorch.)"""
    orig_tensor, orig_idx, default = dlcore.tensor, TA.IDX, device

    def tensor_on(data, dtype=None, requires_grad=False, *, device=None):
        return orig_tensor(data, dtype, requires_grad, device=default if device is None else device)

    dlcore.tensor = tensor_on
    TA.IDX = orig_idx.to(device)
    try:
        yield
    finally:
        dlcore.tensor = orig_tensor
        TA.IDX = orig_idx


def run_fb(f, inputs, weights):
    """out = f(*inputs); backward of sum(out * w). Returns (out detached, grads of the inputs)."""
    out = f(*inputs)
    w = weights.to(out.device, out.dtype)
    (out * w).sum().backward()
    return out.detach(), [x.grad if x.requires_grad else None for x in inputs]


def compare_on_device(f, make_cpu_inputs, dtype, out_device=None, check_jvp=True, seed=0):
    """Run f forward and backward (and forward mode) on CPU inputs and on device copies of them
    (same values and strides), and compare outputs, input gradients and tangents."""
    cpu_in = list(make_cpu_inputs())
    if dtype == F32:
        cpu_in = [x.detach().float().requires_grad_(x.requires_grad) if x.is_floating_point() else x for x in cpu_in]
    try:
        probe = f(*cpu_in)
    except (TypeError, ValueError) as e:
        if dtype == F32:
            pytest.skip(f"not a float32 op on the CPU either: {e}")
        raise
    rng = np.random.default_rng(seed)
    w = dlcore.tensor(rng.standard_normal(probe.shape), dtype=probe.dtype)
    cpu_in = [x.detach().requires_grad_(x.requires_grad) if x.is_floating_point() else x for x in cpu_in]
    dev_in = [to_dev(x) for x in cpu_in]
    out_c, grads_c = run_fb(f, cpu_in, w)
    with host_constants_on(DEV):
        out_d, grads_d = run_fb(f, dev_in, w)
    assert_close(out_d, out_c, device=out_device or DEV_T)
    for i, (gd, gc, xd) in enumerate(zip(grads_d, grads_c, dev_in)):
        assert (gd is None) == (gc is None), f"input {i}: gradient {gd} on the device, {gc} on the CPU"
        if gc is not None:
            assert_close(gd, gc, device=xd.device)
    if check_jvp:
        floats = [x for x in cpu_in if x.is_floating_point()]
        if len(floats) == len(cpu_in):  # forward mode: a tangent for every input
            ts = [dlcore.tensor(rng.standard_normal(x.shape), dtype=x.dtype) for x in cpu_in]
            _, tc = jvp(f, [x.detach() for x in cpu_in], ts)
            with host_constants_on(DEV):
                _, td = jvp(f, [x.detach() for x in dev_in], [to_dev(t) for t in ts])
            assert_close(td, tc)


# ---------------------------------------------------------------------------------------------
# 1. everywhere: queries, devices, and the errors without CUDA
# ---------------------------------------------------------------------------------------------

def test_cuda_queries_are_consistent():
    built, n = dlcore.cuda.is_built(), dlcore.cuda.device_count()
    assert isinstance(built, bool) and isinstance(n, int) and n >= 0
    assert dlcore.cuda.is_available() == (built and n > 0)
    assert dlcore.cuda.gemm_backend() in (("cublas", "fallback") if built else ("none",))
    if not built:
        assert n == 0
    dlcore.cuda.synchronize()  # a no-op without a GPU
    dlcore.cuda.empty_cache()
    if dlcore.cuda.is_available():
        assert isinstance(dlcore.cuda.get_device_name(), str) and dlcore.cuda.get_device_name()
        st = dlcore.cuda.memory_stats()
        assert set(st) == {"allocated_bytes", "reserved_bytes", "peak_allocated_bytes", "malloc_calls"}
        assert dlcore.cuda.memory_allocated() == st["allocated_bytes"] <= dlcore.cuda.max_memory_allocated()
        assert dlcore.cuda.memory_reserved() >= dlcore.cuda.memory_allocated()


def test_device_objects():
    d = dlcore.device("cuda:1")
    assert (d.type, d.index, str(d)) == ("cuda", 1, "cuda:1")
    assert repr(d) == "device(type='cuda', index=1)"
    assert d == "cuda:1" and d != "cuda:0" and d == dlcore.device("cuda", 1)
    assert hash(d) == hash(dlcore.device("cuda:1"))
    assert dlcore.device("cuda") == "cuda:0" and dlcore.device("cuda").index == 0
    cpu = dlcore.device("cpu")
    assert (cpu.type, cpu.index, str(cpu), repr(cpu)) == ("cpu", None, "cpu", "device(type='cpu')")
    assert cpu != d and cpu == dlcore.device(cpu) and cpu != "not a device"
    for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", "cpu:0", "", " cuda", "cuda:1:2"]:
        with pytest.raises(ValueError, match="device"):
            dlcore.device(bad)
    with pytest.raises(ValueError):
        dlcore.device("cpu", 1)
    with pytest.raises(ValueError):
        dlcore.device("cuda", -1)
    with pytest.raises(ValueError, match="tpu"):
        dlcore.zeros(2, device="tpu")


def test_cpu_device_arguments():
    t = dlcore.tensor([1.0, 2.0], device="cpu")
    assert t.device == "cpu" and not t.is_cuda
    assert dlcore.zeros(2, device=dlcore.device("cpu")).device == "cpu"
    assert dlcore.arange(3, device="cpu").tolist() == [0, 1, 2]
    assert t.cpu()._same_storage(t) and t.to("cpu")._same_storage(t)
    u = t.to("cpu", F64)
    assert u.dtype == F64 and u.device == "cpu"
    assert t.__dlpack_device__() == (1, 0)


def test_to_own_device_returns_self():
    t = dlcore.ones(3)
    assert t.to("cpu") is t
    assert t.cpu() is t
    assert t.to(dlcore.float32) is t
    assert t.to("cpu", dlcore.float32) is t


@pytest.mark.skipif(dlcore.cuda.is_built(), reason="checks the CPU-only build")
def test_cpu_only_build_errors_name_the_device():
    t = dlcore.ones(3)
    for make in (lambda: t.to("cuda"), lambda: t.cuda(), lambda: t.to("cuda", F64), lambda: t.to(device="cuda")):
        with pytest.raises(RuntimeError, match=r"cuda:0.*DLCORE_CUDA"):
            make()
    with pytest.raises(RuntimeError, match="cuda:1"):
        t.cuda(1)
    for make in (lambda: dlcore.zeros(2, device="cuda"), lambda: dlcore.tensor([1.0], device="cuda"),
                 lambda: dlcore.randn(2, device="cuda"), lambda: dlcore.arange(3, device="cuda"),
                 lambda: nn.Linear(2, 2).to("cuda"), lambda: dlcore.cuda.memory_stats()):
        with pytest.raises(RuntimeError, match="cuda:0"):
            make()
    assert dlcore.cuda.gemm_backend() == "none"
    with pytest.raises(RuntimeError, match="cuda:1"):
        nn.Linear(2, 2).cuda(1)
    with pytest.raises(RuntimeError, match="cuda:0"):
        dlcore.cuda.get_device_name()
    dlcore.cuda.synchronize()  # no-ops without CUDA
    dlcore.cuda.empty_cache()


def test_cuda_queries_refuse_a_cpu_device():
    for query in (dlcore.cuda.memory_stats, dlcore.cuda.memory_allocated, dlcore.cuda.get_device_name):
        with pytest.raises(ValueError, match="expected a cuda device, got cpu"):
            query("cpu")


@pytest.mark.skipif(not dlcore.cuda.is_built() or dlcore.cuda.is_available(),
                    reason="checks a CUDA build on a machine without a GPU (as CI's)")
def test_cuda_build_without_gpu_errors():
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        dlcore.ones(3).to("cuda")
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        dlcore.zeros(2, device="cuda")


@pytest.mark.skipif(HAS_CUDA, reason="checks the error without a usable GPU")
def test_cli_device_cuda_without_gpu_is_a_usage_error(capsys):
    from dlcore.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "--device", "cuda", "--epochs", "0", "--quiet"])
    assert e.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--device", "gpu", "--epochs", "0", "--quiet"])
    assert e.value.code == 2


# ---------------------------------------------------------------------------------------------
# 2a. every differentiable op (test_autograd's cases) on the device against the CPU
# ---------------------------------------------------------------------------------------------

def _grad_cases():
    for name, cases in TA.GRAD_CASES.items():
        for k, (f, make, *opts) in enumerate(cases):
            yield pytest.param(name, f, make, opts[0] if opts else {}, id=f"{name}-{k}")
    for k, (f, make) in enumerate(TA.COMPOSITE_CASES):
        yield pytest.param("composite", f, make, {}, id=f"composite-{k}")


@requires_device
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,f,make,opts", list(_grad_cases()))
def test_op_matches_cpu_forward_backward_and_jvp(name, f, make, opts, dtype):
    # the to_device case returns to the CPU: its output is there, its input gradient on the device
    compare_on_device(f, make, dtype, out_device=dlcore.device("cpu") if name == "to_device" else None,
                      check_jvp=opts.get("check_forward_mode", True))


# ---------------------------------------------------------------------------------------------
# 2b. elementwise ops, reductions, indexing, creation, conversions
# ---------------------------------------------------------------------------------------------

NP_OF = {F32: np.float32, F64: np.float64, I64: np.int64, BOOL: np.bool_}


def np_data(shape, dt, seed=0):
    rng = np.random.default_rng(seed)
    if dt == BOOL:
        return rng.random(shape) < 0.5
    if dt == I64:
        return rng.integers(-9, 10, shape).astype(np.int64)
    return rng.standard_normal(shape).astype(NP_OF[dt])


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "maximum": dlcore.maximum, "minimum": dlcore.minimum, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}
EXACT = {"add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"}
DTYPE_PAIRS = [(F32, F32), (F64, F64), (F64, F32), (I64, I64), (I64, F32), (BOOL, BOOL), (BOOL, I64), (F64, BOOL)]
LAYOUTS = {  # (shape of a, view of a, shape of b, view of b): broadcasting and non-contiguous views
    "same": ((4, 5), None, (4, 5), None),
    "broadcast": ((3, 1, 5), None, (4, 1), None),
    "transposed": ((5, 4), lambda t: t.T, (4, 5), None),
    "strided": ((4, 10), lambda t: t[:, ::2], (1, 5), None),
    "scalar": ((3, 4), None, (), None),
    "empty": ((0, 4), None, (4,), None),
}


@requires_device
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dts", DTYPE_PAIRS, ids=lambda p: f"{p[0].name}-{p[1].name}")
def test_binary_ops(dts, layout):
    sa, va, sb, vb = LAYOUTS[layout]
    a_c, a_d = pair(np_data(sa, dts[0], 1), va)
    b_c, b_d = pair(np_data(sb, dts[1], 2) + (np.asarray(3, NP_OF[dts[1]]) if dts[1] in (F32, F64) else 0), vb)
    for name, op in BINARY.items():
        same_outcome(op, (a_c, b_c), (a_d, b_d), exact=name in EXACT)
        same_outcome(op, (b_c, a_c), (b_d, a_d), exact=name in EXACT)


@requires_device
@pytest.mark.parametrize("dt", [F32, F64, I64, BOOL])
def test_python_scalars_pow_and_where(dt):
    a_c, a_d = pair(np_data((3, 4), dt, 3), lambda t: t.T)
    ops = [lambda a: a + 2, lambda a: 2.5 * a, lambda a: a - True, lambda a: 1 - a, lambda a: a / 4,
           lambda a: a ** 2, lambda a: 2.0 ** a, lambda a: -a, lambda a: a.abs(), lambda a: a > 0,
           lambda a: dlcore.where(a > 0, a, a * 3), lambda a: dlcore.where(a > 0, a, 0.5),
           lambda a: a.float(), lambda a: a.double(), lambda a: a.long(), lambda a: a.bool(),
           lambda a: a.to(F64).to(I64), lambda a: a.relu()]
    for op in ops:
        same_outcome(op, (a_c,), (a_d,))


UNARY = {"exp": dlcore.exp, "log": dlcore.log, "sqrt": dlcore.sqrt, "sin": dlcore.sin, "cos": dlcore.cos,
         "tanh": dlcore.tanh, "sigmoid": dlcore.sigmoid, "relu": dlcore.relu, "abs": dlcore.abs, "neg": dlcore.neg}


@requires_device
@pytest.mark.parametrize("dt", [F32, F64])
def test_unary_ops_including_extremes(dt):
    vals = np.array([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 3.0, -3.0, 20.0, -20.0, 88.0, -88.0, 700.0, -700.0,
                     np.inf, -np.inf, np.nan])
    base = np.concatenate([vals, np.random.default_rng(0).standard_normal(1000) * 5]).astype(NP_OF[dt])
    # within a few ulps; subnormal results count as zero (the CPU's float32 exp flushes them)
    rtol, tiny = (2e-6, float(np.finfo(np.float32).tiny)) if dt == F32 else (1e-13, float(np.finfo(np.float64).tiny))
    for name, op in UNARY.items():
        for view in (None, lambda t: t[::3]):
            x_c, x_d = pair(base, view)
            got, exp = op(x_d), op(x_c)
            assert got.device == DEV_T and got.dtype == exp.dtype
            np.testing.assert_allclose(host(got), host(exp), rtol=rtol, atol=tiny, equal_nan=True, err_msg=name)


REDUCTIONS = [
    lambda t: t.sum(), lambda t: t.sum(1), lambda t: t.sum((0, 2), keepdim=True), lambda t: t.sum(-1),
    lambda t: t.mean(), lambda t: t.mean(1), lambda t: t.var(), lambda t: t.var(0), lambda t: t.var(2, correction=0),
    lambda t: t.amax(), lambda t: t.amax(1), lambda t: t.amin((0, 1)), lambda t: t.max(), lambda t: t.min(),
    lambda t: t.max(1), lambda t: t.min(0, keepdim=True), lambda t: t.max(-1),
    lambda t: t.argmax(), lambda t: t.argmin(), lambda t: t.argmax(1), lambda t: t.argmin(2),
    lambda t: t.any(), lambda t: t.all(), lambda t: t.any(1),
]


@requires_device
@pytest.mark.parametrize("dt", [F32, F64, I64, BOOL])
@pytest.mark.parametrize("view", [None, lambda t: t[:, ::2, 1:], lambda t: t.permute(2, 0, 1)],
                         ids=["contiguous", "strided", "permuted"])
def test_reductions(dt, view):
    x_c, x_d = pair(np_data((5, 8, 9), dt, 4), view)
    for op in REDUCTIONS:
        same_outcome(op, (x_c,), (x_d,))


@requires_device
def test_reductions_over_long_and_short_dims():
    for shape, dim in [((3, 4099, 5), 1), ((4099, 3), 0), ((2, 70000), 1), ((70000, 2), 1), ((1, 1, 1), 1)]:
        for dt in (F32, F64, I64):
            x_c, x_d = pair(np_data(shape, dt, 5))
            for op in (lambda t: t.sum(dim), lambda t: t.amax(dim), lambda t: t.argmin(dim), lambda t: t.sum()):
                same_outcome(op, (x_c,), (x_d,), atol=1e-4 if dt == F32 else None)  # float32 sums of 70000


@requires_device
def test_large_sums_against_float64():
    x = dlcore.rand(10_000_000, device=DEV)
    xn = host(x).astype(np.float64)
    for got, exp in [(x.sum(), xn.sum()), (x.mean(), xn.mean()),
                     (x.reshape(1000, 10_000).sum(1), xn.reshape(1000, 10_000).sum(1)),
                     (x.reshape(1000, 10_000).sum(0), xn.reshape(1000, 10_000).sum(0)),
                     ((x - 0.5).sum(), (xn - 0.5).sum())]:
        assert got.device == DEV_T
        np.testing.assert_allclose(host(got), exp, rtol=1e-4, atol=1e-3 * np.sqrt(xn.size))
    k = dlcore.randint(-1000, 1000, (3_000_001,), device=DEV)
    assert k.sum().item() == int(host(k).sum())
    assert (x > 0.5).sum().item() == int((xn > 0.5).sum())
    x[1_234_567] = 5.0  # a planted maximum
    assert x.argmax().item() == 1_234_567 and x.amax().item() == 5.0


@requires_device
def test_argmax_ties_and_nan_follow_numpy():
    a = np.array([[1.0, 3.0, 3.0, 2.0], [np.nan, 2.0, np.nan, 9.0], [-1.0, -1.0, -1.0, -1.0]])
    for dt in (F32, F64):
        x = dlcore.tensor(a, dtype=dt, device=DEV)
        assert host(x.argmax(1)).tolist() == np.argmax(a, 1).tolist()
        assert host(x.argmin(1)).tolist() == np.argmin(a, 1).tolist()
        assert x.argmax().item() == int(np.argmax(a)) and x.argmin().item() == int(np.argmin(a))
        assert host(x.max(1).indices).tolist() == np.argmax(a, 1).tolist()
        np.testing.assert_array_equal(host(x.amax(1)), np.max(a, 1))
        np.testing.assert_array_equal(host(x.max(0).values), np.max(a, 0))
    ties = dlcore.zeros(1000, device=DEV)
    assert ties.argmax().item() == 0 and ties.argmin().item() == 0
    big = dlcore.zeros(100_000, device=DEV)
    big[70_000] = float("nan")
    big[90_000] = float("nan")
    assert big.argmax().item() == 70_000 and math.isnan(big.amax().item())


@requires_device
def test_empty_tensors():
    for dt in (F32, I64, BOOL):
        x_c, x_d = pair(np_data((0, 4), dt))
        for op in (lambda t: t.sum(), lambda t: t.sum(0), lambda t: t.sum(1), lambda t: t * 2, lambda t: t.T,
                   lambda t: t.amax(), lambda t: t.amax(1), lambda t: t.argmax(), lambda t: t.reshape(4, 0),
                   lambda t: dlcore.cat([t, t]), lambda t: t.contiguous(), lambda t: t[:, 1:],
                   lambda t: t.mean(0), lambda t: t.to(F64), lambda t: t.cpu().to(DEV), lambda t: t.all(),
                   lambda t: t.any()):
            same_outcome(op, (x_c,), (x_d,))
    e = dlcore.empty(0, device=DEV)
    assert e.device == DEV_T and e.numel() == 0 and host(e).shape == (0,)
    a_c, a_d = pair(np_data((0, 3), F32))
    b_c, b_d = pair(np_data((3, 5), F32))
    same_outcome(lambda a, b: a @ b, (a_c, b_c), (a_d, b_d))
    same_outcome(lambda a, b: a.T @ a, (a_c, b_c), (a_d, b_d))  # K = 0: zeros


INDEXING = [
    lambda t: t[1], lambda t: t[-1, 2], lambda t: t[1:4, ::2], lambda t: t[..., 1], lambda t: t[None, :, 2],
    lambda t: t[::-1], lambda t: t[:, ::-2], lambda t: t[t > 0], lambda t: t[(t > 0)[:, 0]],
    lambda t: t[dlcore.tensor([3, 0, 0, 5], device=t.device)], lambda t: t[:, dlcore.tensor([[1, 2], [0, 0]],
                                                                                             device=t.device)],
    lambda t: t.index_select(1, dlcore.tensor([4, 4, 1], device=t.device)),
    lambda t: t.T.reshape(-1), lambda t: t.flatten(), lambda t: t.permute(1, 0).contiguous(),
    lambda t: t.unsqueeze(0).expand(3, 6, 5).contiguous(), lambda t: t[:, :1].broadcast_to((6, 4)),
    lambda t: t.squeeze(), lambda t: t[2:3].squeeze(0), lambda t: dlcore.stack([t, t * 2], 1),
    lambda t: dlcore.cat([t, t[:2]], 0), lambda t: dlcore.cat([t.T, t.T], 1), lambda t: t.clone(),
    lambda t: t.T.clone(), lambda t: t.view(30) if t.is_contiguous() else t.reshape(30),
]


@requires_device
@pytest.mark.parametrize("dt", [F32, F64, I64, BOOL])
def test_indexing_and_shape_ops(dt):
    x_c, x_d = pair(np_data((6, 5), dt, 6))
    for op in INDEXING:
        same_outcome(op, (x_c,), (x_d,), exact=True)


@requires_device
def test_host_index_arrays_on_device_tensors():
    """Lists and numpy arrays as indices of a GPU tensor (PyTorch accepts these, and CPU index tensors)."""
    x_c, x_d = pair(np_data((5, 4), F32))
    for key in ([3, 0, 3], np.array([1, 2]), (slice(None), [0, 0, 2]), [True, False, True, False, True]):
        assert_close(x_d[key], x_c[key], device=DEV_T, exact=True)


SETITEM = [
    lambda t: t.__setitem__((slice(1, 3), slice(None, None, 2)), 7),
    lambda t: t.__setitem__(0, -1.5),
    lambda t: t.__setitem__(t > 0.5, 0),
    lambda t: t.__setitem__((slice(None), 1), dlcore.arange(5, device=t.device).to(t.dtype)),
    lambda t: t.__setitem__((slice(None), 1), dlcore.arange(5).to(t.dtype)),  # a CPU value copied in
    lambda t: t[1:].add_(2),
    lambda t: t.T[::2].mul_(3),
    lambda t: t[:, 2].sub_(1),
    lambda t: t.fill_(4),
    lambda t: t[2].zero_(),
    lambda t: t.copy_(dlcore.ones(5, dtype=F64)),  # broadcast, another dtype, from the CPU
    lambda t: t[:2].copy_(t[3:]),
    lambda t: t.div_(2) if t.is_floating_point() else t.add_(t),
    lambda t: t.pow_(2) if t.is_floating_point() else t.mul_(t),
]


@requires_device
@pytest.mark.parametrize("dt", [F32, F64, I64])
def test_setitem_and_inplace_ops_write_through_views(dt):
    for op in SETITEM:
        x_c, x_d = pair(np_data((6, 5), dt, 7))
        v_c, v_d = x_c[1:], x_d[1:]  # a view: in-place writes must reach the base
        same_outcome(lambda v: op(v), (v_c,), (v_d,))
        assert_close(x_d, x_c, exact=dt == I64)


CREATE = {
    "zeros": lambda d: dlcore.zeros(2, 3, device=d),
    "ones-int64": lambda d: dlcore.ones(4, dtype=I64, device=d),
    "full-float": lambda d: dlcore.full((2, 2), 1.5, device=d),
    "full-int": lambda d: dlcore.full(3, 2**62 + 1, device=d),
    "full-bool": lambda d: dlcore.full(3, True, device=d),
    "arange-int": lambda d: dlcore.arange(10, device=d),
    "arange-float": lambda d: dlcore.arange(0.0, 1.0, 0.125, dtype=F64, device=d),
    "linspace": lambda d: dlcore.linspace(-1, 1, 7, device=d),
    "eye": lambda d: dlcore.eye(3, 4, dtype=F64, device=d),
    "tensor": lambda d: dlcore.tensor([[1, 2], [3, 4]], device=d),
    "tensor-float64": lambda d: dlcore.tensor(np.linspace(0, 1, 5), device=d),
    "tensor-of-tensor": lambda d: dlcore.tensor(dlcore.arange(3.0), device=d),
    "as_tensor": lambda d: dlcore.as_tensor(np.arange(4.0), device=d),
    "rand": lambda d: dlcore.rand(3, 4, device=d),
    "randn-float64": lambda d: dlcore.randn(5, dtype=F64, device=d),
    "randint": lambda d: dlcore.randint(0, 10, (6,), device=d),
    "randperm": lambda d: dlcore.randperm(10, device=d),
    "rand-generator": lambda d: dlcore.rand(4, generator=dlcore.Generator(7), device=d),
    "zeros_like": lambda d: dlcore.zeros_like(dlcore.ones(2, 3, device=d)),
    "ones_like-int": lambda d: dlcore.ones_like(dlcore.ones(2, dtype=I64, device=d)),
    "full_like": lambda d: dlcore.full_like(dlcore.ones(2, device=d), 3.0),
    "zeros_like-to-cpu": lambda d: dlcore.zeros_like(dlcore.ones(2, device=d), device="cpu"),
}


@requires_device
@pytest.mark.parametrize("name", list(CREATE))
def test_creation_on_device(name):
    dlcore.manual_seed(3)
    exp = CREATE[name]("cpu")
    dlcore.manual_seed(3)
    got = CREATE[name](DEV)
    assert_close(got, exp, device=dlcore.device("cpu") if name.endswith("to-cpu") else DEV_T, exact=True)
    e = dlcore.empty(2, 3, dtype=F64, device=DEV)
    assert (e.shape, e.dtype, e.device) == ((2, 3), F64, DEV_T)
    assert dlcore.empty_like(e).device == DEV_T
    assert dlcore.rand(3, device=DEV, requires_grad=True).requires_grad


@requires_device
def test_moving_conversions_and_scalars():
    x = dlcore.tensor([[1.5, -2.5], [3.0, 0.0]])
    for d in (x.to(DEV), x.cuda() if ON_GPU else x.to(DEV), x.to(DEV_T), x.to(device=DEV), x.to(DEV, F64),
              x.to(dlcore.zeros(1, device=DEV))):
        assert d.device == DEV_T and np.array_equal(host(d), host(x))
    assert x.to(DEV, F64).dtype == F64 and x.to(DEV, I64).tolist() == [[1, -2], [3, 0]]
    d = x.to(DEV)
    assert d.is_cuda == ON_GPU
    assert d.cpu().device == "cpu" and d.to("cpu").device == "cpu"
    assert d.to(DEV)._same_storage(d)
    assert d[0, 1].item() == -2.5 and float(d[1, 0]) == 3.0 and int(d[1, 0]) == 3 and bool(d[0, 0])
    assert d.tolist() == [[1.5, -2.5], [3.0, 0.0]]
    if ON_GPU:
        assert "device='cuda:0'" in repr(d)
        assert d.T.__dlpack_device__() == (2, 0)
    else:
        assert "device=" not in repr(d)
    assert np.array_equal(host(d.T.contiguous()), host(x).T)
    assert d.sum().device == DEV_T and d.T.device == DEV_T and d[0].device == DEV_T


# ---------------------------------------------------------------------------------------------
# 2c. matmul through both GEMM paths (cuBLAS in this process, the fallback kernel in a subprocess)
# ---------------------------------------------------------------------------------------------

GEMM_SHAPES = [((1, 1), (1, 1)), ((17, 33), (33, 65)), ((3, 17, 33), (33, 65)), ((2, 1, 5, 7), (3, 7, 4)),
               ((65,), (65,)), ((33,), (33, 17)), ((17, 33), (33,)), ((4, 1, 9), (4, 9, 1)),
               ((128, 256), (256, 64)), ((5, 1024), (1024, 3)), ((1, 300), (300, 1)), ((0, 5), (5, 3)),
               ((4, 0), (0, 3)), ((64, 64), (64, 64)), ((2, 129, 31), (2, 31, 257))]


def _gemm_operand(shape, seed, transposed):
    a = np.random.default_rng(seed).standard_normal(shape)
    if transposed and len(shape) >= 2:  # the same values, stored transposed (a non-contiguous view)
        return np.ascontiguousarray(np.swapaxes(a, -1, -2)), lambda t: t.transpose(-1, -2)
    return a, None


def check_gemm_and_conv():
    """matmul (values and gradients) and conv2d on the device against the CPU, for odd sizes,
    batched and broadcast products, vectors, empty dims and transposed operands."""
    for dt in (F32, F64):
        for k, (sa, sb) in enumerate(GEMM_SHAPES):
            for ta in (False, True):
                for tb in (False, True):
                    an, va = _gemm_operand(sa, k, ta)
                    bn, vb = _gemm_operand(sb, k + 100, tb)
                    a_c, a_d = pair(an.astype(NP_OF[dt]), va)
                    b_c, b_d = pair(bn.astype(NP_OF[dt]), vb)
                    exp = a_c @ b_c
                    got = a_d @ b_d
                    assert_close(got, exp, device=DEV_T)
                    a_c.requires_grad_(), a_d.requires_grad_(), b_c.requires_grad_(), b_d.requires_grad_()
                    w = dlcore.tensor(np.random.default_rng(k).standard_normal(exp.shape), dtype=dt)
                    (a_c @ b_c * w).sum().backward()
                    (a_d @ b_d * w.to(DEV)).sum().backward()
                    assert_close(a_d.grad, a_c.grad, device=DEV_T)
                    assert_close(b_d.grad, b_c.grad, device=DEV_T)
        for xs, ws, kw in [((2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)), ((1, 8, 7, 5), (6, 4, 1, 1), dict(groups=2)),
                           ((3, 5, 17, 11), (7, 5, 3, 2), dict(stride=2, dilation=(2, 1)))]:
            compare_on_device(lambda x, w, b: F.conv2d(x, w, b, **kw),
                              lambda: (rnd(*xs, seed=1), rnd(*ws, seed=2), rnd(ws[0], seed=3)), dt, check_jvp=False)


@requires_device
def test_matmul_and_conv_default_gemm():
    check_gemm_and_conv()
    if ON_GPU:
        assert dlcore.cuda.gemm_backend() in ("cublas", "fallback")


@requires_cuda
def test_matmul_and_conv_fallback_gemm_kernel():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import dlcore, test_cuda as T; "
            "T.check_gemm_and_conv(); b = dlcore.cuda.gemm_backend(); "
            "assert b == 'fallback', b; print('fallback GEMM ok')")
    env = dict(os.environ, DLCORE_CUDA_GEMM="fallback", DLCORE_TEST_DEVICE="cuda")
    r = subprocess.run([sys.executable, "-c", code, str(HERE)], capture_output=True, text=True, env=env,
                       timeout=100)
    assert r.returncode == 0, f"fallback GEMM check failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    assert "fallback GEMM ok" in r.stdout


# ---------------------------------------------------------------------------------------------
# 2d. nn ops, forward and backward against the CPU
# ---------------------------------------------------------------------------------------------

NN_CASES = {  # name: (function, CPU inputs); class targets are int64 inputs, moved like the others
    "conv2d-pad1": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
                    lambda: (rnd(2, 3, 8, 8), rnd(4, 3, 3, 3, seed=1), rnd(4, seed=2))),
    "conv2d-stride2-rect": (lambda x, w: F.conv2d(x, w, stride=2, padding=(1, 2)),
                            lambda: (rnd(2, 3, 9, 10), rnd(5, 3, 3, 5, seed=1))),
    "conv2d-dilation": (lambda x, w: F.conv2d(x, w, padding=2, dilation=2),
                        lambda: (rnd(1, 2, 9, 9), rnd(3, 2, 3, 3, seed=1))),
    "conv2d-groups": (lambda x, w, b: F.conv2d(x, w, b, groups=3),
                      lambda: (rnd(2, 6, 6, 6), rnd(9, 2, 3, 3, seed=1), rnd(9, seed=2))),
    "conv2d-depthwise": (lambda x, w: F.conv2d(x, w, padding=1, groups=4),
                         lambda: (rnd(2, 4, 7, 7), rnd(4, 1, 3, 3, seed=1))),
    "conv2d-1x1": (lambda x, w, b: F.conv2d(x, w, b),
                   lambda: (rnd(3, 8, 5, 5), rnd(4, 8, 1, 1, seed=1), rnd(4, seed=2))),
    "conv2d-1x1-stride2": (lambda x, w: F.conv2d(x, w, stride=2),
                           lambda: (rnd(2, 4, 7, 7), rnd(3, 4, 1, 1, seed=1))),
    "conv2d-batch1-same": (lambda x, w: F.conv2d(x, w, padding="same"),
                           lambda: (rnd(1, 3, 11, 6), rnd(2, 3, 5, 3, seed=1))),
    "conv2d-lenet": (lambda x, w, b: F.conv2d(x, w, b, padding=2),
                     lambda: (rnd(4, 1, 16, 16), rnd(6, 1, 5, 5, seed=1), rnd(6, seed=2))),
    "conv2d-wide": (lambda x, w: F.conv2d(x, w, padding=1),
                    lambda: (rnd(2, 32, 12, 12), rnd(48, 32, 3, 3, seed=1))),
    "conv2d-noncontig-input": (lambda x, w: F.conv2d(x.permute(0, 3, 1, 2), w, padding=1),
                               lambda: (rnd(2, 6, 7, 3), rnd(4, 3, 3, 3, seed=1))),
    "max_pool2d-2": (lambda x: F.max_pool2d(x, 2), lambda: (distinct(2, 3, 8, 8),)),
    "max_pool2d-3s2p1": (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), lambda: (distinct(2, 2, 9, 7),)),
    "max_pool2d-ceil": (lambda x: F.max_pool2d(x, 2, ceil_mode=True), lambda: (distinct(1, 2, 7, 5),)),
    "max_pool2d-dilation": (lambda x: F.max_pool2d(x, 2, stride=1, dilation=2), lambda: (distinct(1, 2, 6, 6),)),
    "max_pool2d-3d-input": (lambda x: F.max_pool2d(x, (2, 3)), lambda: (distinct(3, 6, 9),)),
    "avg_pool2d-2": (lambda x: F.avg_pool2d(x, 2), lambda: (rnd(2, 3, 8, 8),)),
    "avg_pool2d-3s2p1": (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), lambda: (rnd(2, 2, 9, 7),)),
    "avg_pool2d-ceil-exclude-pad": (
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        lambda: (rnd(1, 2, 8, 8),)),
    "adaptive_avg_pool2d-1": (lambda x: F.adaptive_avg_pool2d(x, 1), lambda: (rnd(2, 5, 6, 6),)),
    "adaptive_avg_pool2d-2": (lambda x: F.adaptive_avg_pool2d(x, 2), lambda: (rnd(2, 5, 6, 4),)),
    "softmax-dim1": (lambda x: F.softmax(x, 1), lambda: (rnd(4, 7),)),
    "softmax-dim0-3d": (lambda x: F.softmax(x, 0), lambda: (rnd(5, 3, 4),)),
    "softmax-wide": (lambda x: F.softmax(x, -1), lambda: (rnd(3, 5000),)),
    "log_softmax-large-logits": (lambda x: F.log_softmax(x * 200.0, 1), lambda: (rnd(6, 10),)),
    "log_softmax-middle-dim": (lambda x: F.log_softmax(x, 1), lambda: (rnd(2, 5, 3),)),
    "cross_entropy-mean": (lambda x, y: F.cross_entropy(x, y),
                           lambda: (rnd(8, 10), labels(8, classes=10))),
    "cross_entropy-sum-smoothing": (lambda x, y: F.cross_entropy(x, y, reduction="sum", label_smoothing=0.2),
                                    lambda: (rnd(7, 5), labels(7, classes=5, seed=1))),
    "cross_entropy-none-3d": (lambda x, y: F.cross_entropy(x, y, reduction="none", label_smoothing=0.1),
                              lambda: (rnd(3, 4, 5), labels(3, 5, classes=4, seed=2))),
    "cross_entropy-many-classes": (lambda x, y: F.cross_entropy(x, y),
                                   lambda: (rnd(4, 3000), labels(4, classes=3000, seed=3))),
    "nll_loss": (lambda x, y: F.nll_loss(F.log_softmax(x, 1), y),
                 lambda: (rnd(6, 4), labels(6, classes=4, seed=4))),
    "multiclass_hinge": (lambda x, y: F.multiclass_hinge_loss(x, y),
                         lambda: (distinct(6, 5), labels(6, classes=5))),
    "multi_margin-p2": (lambda x, y: F.multi_margin_loss(x, y, p=2, margin=0.7),
                        lambda: (distinct(5, 4, seed=1), labels(5, classes=4, seed=1))),
    "multi_margin-none": (lambda x, y: F.multi_margin_loss(x, y, reduction="none"),
                          lambda: (distinct(5, 4, seed=2), labels(5, classes=4, seed=2))),
    "batch_norm-train-4d": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                            lambda: (rnd(4, 3, 5, 5), rnd(3, seed=1), rnd(3, seed=2))),
    "batch_norm-train-2d": (lambda x: F.batch_norm(x, None, None, training=True), lambda: (rnd(16, 6),)),
    "batch_norm-eval-3d": (lambda x, m, v, w: F.batch_norm(x, m, v, w, None, training=False),
                           lambda: (rnd(4, 3, 7), rnd(3, seed=1).detach(), rnd(3, seed=2, positive=True).detach(),
                                    rnd(3, seed=3))),
    "linear": (lambda x, w, b: F.linear(x, w, b), lambda: (rnd(5, 7), rnd(3, 7, seed=1), rnd(3, seed=2))),
    "linear-3d": (lambda x, w: F.linear(x, w), lambda: (rnd(2, 5, 7), rnd(3, 7, seed=1))),
    "mse_loss": (lambda x, t: F.mse_loss(x, t), lambda: (rnd(4, 5), rnd(4, 5, seed=1))),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda: (distinct(4, 5),)),
    "dropout-p0": (lambda x: F.dropout(x, 0.0), lambda: (rnd(4, 5),)),
    "dropout-eval": (lambda x: F.dropout(x, 0.5, training=False), lambda: (rnd(4, 5),)),
}


@requires_device
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(NN_CASES))
def test_nn_op_matches_cpu(name, dtype):
    f, make = NN_CASES[name]
    compare_on_device(f, make, dtype)


@requires_device
def test_max_pool2d_ties_pick_the_same_index():
    x_c, x_d = pair(np.zeros((1, 2, 6, 6), np.float32))
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1)):
        same_outcome(lambda x: F.max_pool2d(x, return_indices=True, **kw), (x_c,), (x_d,))


@requires_device
def test_dropout_mask_statistics():
    dlcore.manual_seed(0)
    x = dlcore.randn(200_000, device=DEV, requires_grad=True)
    y = F.dropout(x, 0.5)
    assert y.device == DEV_T
    y.backward(dlcore.ones_like(y))
    yn, xn, gn = host(y), host(x), host(x.grad)
    dropped = yn == 0
    assert abs(dropped.mean() - 0.5) < 0.01
    np.testing.assert_allclose(yn[~dropped], 2 * xn[~dropped], rtol=1e-6)
    np.testing.assert_array_equal(gn, np.where(dropped, 0.0, 2.0))
    z = F.dropout(x, 0.2)
    assert abs((host(z) == 0).mean() - 0.2) < 0.01
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.5, training=False) is x
    assert float(F.dropout(x, 1.0).abs().sum()) == 0.0
    m = nn.Dropout(0.5).to(DEV)
    m.eval()
    assert m(x) is x


@requires_device
def test_batchnorm_module_running_stats_and_eval():
    for cls, shape in ((nn.BatchNorm2d, (8, 3, 5, 5)), (nn.BatchNorm1d, (16, 3))):
        mods = []
        for d in ("cpu", DEV):
            dlcore.manual_seed(0)
            mods.append(cls(3).to(d))
        x_c, x_d = pair(np_data(shape, F32, 8) * 2 + 1)
        for _ in range(3):
            assert_close(mods[1](x_d), mods[0](x_c), device=DEV_T)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            b_c, b_d = getattr(mods[0], name), getattr(mods[1], name)
            assert b_d.device == DEV_T
            assert_close(b_d, b_c)
        for m in mods:
            m.eval()
        assert_close(mods[1](x_d), mods[0](x_c), device=DEV_T)


@requires_device
def test_linear_and_conv_modules_on_device():
    for make in (lambda: nn.Linear(20, 7), lambda: nn.Conv2d(3, 5, 3, padding=1, stride=2)):
        dlcore.manual_seed(0)
        m_c = make()
        dlcore.manual_seed(0)
        m_d = make()
        params_before = [id(p) for p in m_d.parameters()]
        assert m_d.to(DEV) is m_d
        assert [id(p) for p in m_d.parameters()] == params_before  # moved in place
        assert all(p.device == DEV_T and p.requires_grad and p.is_leaf for p in m_d.parameters())
        x_c, x_d = pair(np_data((4, 20) if isinstance(m_c, nn.Linear) else (2, 3, 9, 9), F32, 9))
        y_c, y_d = m_c(x_c), m_d(x_d)
        assert_close(y_d, y_c, device=DEV_T)
        y_c.sum().backward()
        y_d.sum().backward()
        for p_c, p_d in zip(m_c.parameters(), m_d.parameters()):
            assert_close(p_d.grad, p_c.grad, device=DEV_T)
        m_d.cpu()
        assert all(p.device == "cpu" and p.grad.device == "cpu" for p in m_d.parameters())


# ---------------------------------------------------------------------------------------------
# 2e. gradcheck directly on device inputs (float64)
# ---------------------------------------------------------------------------------------------

def _on(t):
    return to_dev(t)


GRADCHECK_CASES = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
               lambda: (rnd(1, 2, 5, 5), rnd(3, 2, 3, 3, seed=1), rnd(3, seed=2))),
    "conv2d-groups": (lambda x, w: F.conv2d(x, w, groups=2, dilation=2), lambda: (rnd(1, 4, 6, 6),
                                                                                  rnd(2, 2, 2, 2, seed=1))),
    "matmul": (lambda a, b: a @ b, lambda: (rnd(3, 4), rnd(2, 4, 5, seed=1))),
    "matmul-transposed": (lambda a, b: a.T @ b, lambda: (rnd(4, 3), rnd(4, 2, seed=1))),
    "cross_entropy": (lambda x: F.cross_entropy(x, labels(4, classes=5).to(DEV), label_smoothing=0.1),
                      lambda: (rnd(4, 5),)),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), lambda: (distinct(1, 2, 5, 5),)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False), lambda: (rnd(1, 2, 5, 5),)),
    "softmax": (lambda x: F.softmax(x, 1), lambda: (rnd(3, 4),)),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda: (rnd(3, 4),)),
    "exp": (dlcore.exp, lambda: (rnd(2, 3),)),
    "sum-var": (lambda x: x.var(1) + x.sum(0, keepdim=True).T, lambda: (rnd(3, 3),)),
    "batch_norm": (lambda x, w: F.batch_norm(x, None, None, w, None, training=True), lambda: (rnd(4, 2, 2, 2),
                                                                                              rnd(2, seed=1))),
}


@requires_device
@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
def test_gradcheck_on_device(name):
    f, make = GRADCHECK_CASES[name]
    inputs = [_on(x) for x in make()]
    assert all(x.device == DEV_T and x.dtype == F64 for x in inputs)
    assert gradcheck(f, inputs)


@requires_device
def test_double_backward_on_device():
    x = _on(rnd(2, 3, 4, 4))
    w = _on(rnd(2, 3, 3, 3, seed=1))
    y = (F.conv2d(x, w, padding=1) ** 2).sum()
    (gx,) = dlcore.autograd.grad(y, x, create_graph=True)
    (hw,) = dlcore.autograd.grad(gx.sum(), w)
    xc, wc = rnd(2, 3, 4, 4), rnd(2, 3, 3, 3, seed=1)
    (gxc,) = dlcore.autograd.grad((F.conv2d(xc, wc, padding=1) ** 2).sum(), xc, create_graph=True)
    (hwc,) = dlcore.autograd.grad(gxc.sum(), wc)
    assert_close(gx, gxc, device=DEV_T)
    assert_close(hw, hwc, device=DEV_T)


# ---------------------------------------------------------------------------------------------
# 2f. optimisers, moving models, gradients across devices, checkpoints
# ---------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda ps: dlcore.optim.SGD(ps, lr=0.1),
    "sgd-momentum": lambda ps: dlcore.optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd-momentum-dampening": lambda ps: dlcore.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3),
    "sgd-nesterov-wd": lambda ps: dlcore.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: dlcore.optim.Adam(ps, lr=0.01),
    "adam-wd": lambda ps: dlcore.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
    "adamw": lambda ps: dlcore.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


@requires_device
@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_match_cpu(name, dtype):
    rng = np.random.default_rng(0)
    w0, b0, x0 = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal((5, 6))
    runs = []
    for d in ("cpu", DEV):
        w = dlcore.tensor(w0, dtype=dtype, device=d, requires_grad=True)
        b = dlcore.tensor(b0, dtype=dtype, device=d, requires_grad=True)
        x = dlcore.tensor(x0, dtype=dtype, device=d)
        opt = OPTIMIZERS[name]([w, b])
        for _ in range(10):
            opt.zero_grad()
            loss = ((x @ w.T + b).tanh() ** 2).sum() + (w * w).sum() * 0.01
            loss.backward()
            opt.step()
        runs.append((w, b, opt))
    (wc, bc, oc), (wd, bd, od) = runs
    assert_close(wd, wc, device=DEV_T)
    assert_close(bd, bc, device=DEV_T)
    for st in od.state.values():
        for v in st.values():
            if isinstance(v, dlcore.Tensor):
                assert v.device == DEV_T, f"optimiser state on {v.device}, parameter on {DEV}"


@requires_device
def test_gradients_flow_back_across_devices():
    a = dlcore.tensor([1.0, 2.0, 3.0], requires_grad=True)  # CPU leaf -> device -> CPU
    y = (a.to(DEV) * dlcore.tensor([2.0, 3.0, 4.0], device=DEV)).sum()
    y.backward()
    assert a.grad.device == "cpu" and a.grad.tolist() == [2.0, 3.0, 4.0]
    b = dlcore.tensor([1.0, -1.0], device=DEV, requires_grad=True)  # device leaf -> CPU
    (b.cpu() ** 2).sum().backward()
    assert b.grad.device == DEV_T and host(b.grad).tolist() == [2.0, -2.0]
    c = dlcore.tensor([0.5], dtype=F64, requires_grad=True)
    z = c.to(DEV, F32)
    assert z.dtype == F32 and z.device == DEV_T
    (z * 4).sum().backward()
    assert c.grad.dtype == F64 and c.grad.device == "cpu" and c.grad.item() == 4.0


@requires_device
def test_module_moves_in_place_with_buffers():
    dlcore.manual_seed(0)
    model = dlcore.models.ConvNet(width=4)
    params = list(model.parameters())
    opt = dlcore.optim.SGD(model.parameters(), lr=0.1)  # made before the move: keeps working
    model.to(DEV)
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    for name, t in model.state_dict().items():
        assert t.device == DEV_T, f"{name} on {t.device}"
    bn = model.features[1]
    assert bn.num_batches_tracked.dtype == I64
    x = dlcore.randn(4, 3, 32, 32, device=DEV)
    y = dlcore.randint(0, 10, (4,), device=DEV)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert int(bn.num_batches_tracked) == 1
    model.to(F64)
    assert all(p.dtype == F64 and p.device == DEV_T for p in model.parameters())
    assert bn.num_batches_tracked.dtype == I64
    model.cpu()
    assert all(t.device == "cpu" for t in model.state_dict().values())


@requires_device
def test_checkpoint_from_device_loads_on_cpu_and_back(tmp_path):
    def make():
        dlcore.manual_seed(0)
        m = dlcore.models.LeNet5(1, 10, 16)
        return m, dlcore.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)

    model, opt = make()
    model.to(DEV)
    x = dlcore.randn(8, 1, 16, 16, device=DEV)
    y = dlcore.randint(0, 10, (8,), device=DEV)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    path = str(tmp_path / "ckpt.safetensors")
    dlcore.save_checkpoint(path, model, opt, epoch=2)
    cpu_model, cpu_opt = make()
    assert dlcore.load_checkpoint(path, cpu_model, cpu_opt)["epoch"] == 2
    for (k, a), b in zip(model.state_dict().items(), cpu_model.state_dict().values()):
        assert b.device == "cpu"
        assert_close(b, a.cpu(), exact=True)
    dev_model, dev_opt = make()
    dev_model.to(DEV)
    dlcore.load_checkpoint(path, dev_model, dev_opt)
    for a, b in zip(model.parameters(), dev_model.parameters()):
        assert b.device == DEV_T
        assert_close(b, a.cpu(), exact=True)
    for st in dev_opt.state.values():
        assert st["momentum_buffer"].device == DEV_T


# ---------------------------------------------------------------------------------------------
# 2g. end to end: LeNet on the bundled digits, fit() and the CLI
# ---------------------------------------------------------------------------------------------

def _digits_16():
    """The bundled 8x8 digits upsampled to 16x16 (LeNet5's smallest input) and standardised."""
    out = []
    for train in (True, False):
        x, y = dlcore.datasets.load_digits(train=train)
        a = host(x).repeat(2, axis=2).repeat(2, axis=3)
        out.append((dlcore.from_numpy(np.ascontiguousarray((a - 0.3) / 0.4, dtype=np.float32)), y))
    return out


@requires_device
def test_lenet_trains_on_device_like_on_cpu():
    from dlcore.train import evaluate, fit

    (xtr, ytr), (xte, yte) = _digits_16()
    results = {}
    for d in ("cpu", DEV):
        dlcore.manual_seed(0)
        model = dlcore.models.LeNet5(1, 10, 16)
        # plain SGD: momentum and Adam are checked on their own above
        opt = dlcore.optim.SGD(model.parameters(), lr=0.2)
        sched = dlcore.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8)
        train = dlcore.data.DataLoader(dlcore.data.TensorDataset(xtr, ytr), batch_size=32, shuffle=True, seed=0)
        test = dlcore.data.DataLoader(dlcore.data.TensorDataset(xte, yte), batch_size=256)
        hist = fit(model, train, nn.CrossEntropyLoss(), opt, 8, scheduler=sched, verbose=False, device=d)
        assert all(p.device == dlcore.device(d) for p in model.parameters())
        results[d] = (evaluate(model, test)["accuracy"], hist)
    (acc_c, h_c), (acc_d, h_d) = results["cpu"], results[DEV]
    assert acc_d >= 0.95 and acc_c >= 0.95, f"accuracy: {DEV} {acc_d:.4f}, cpu {acc_c:.4f}"
    assert abs(acc_d - acc_c) <= 0.015, f"accuracy: {DEV} {acc_d:.4f}, cpu {acc_c:.4f}"
    assert h_d.train_loss[0] == pytest.approx(h_c.train_loss[0], rel=1e-3)  # the first epoch before divergence


@requires_device
def test_cli_trains_on_device(capsys):
    from dlcore.cli import main
    assert main(["train", "--device", DEV, "--epochs", "3", "--quiet"]) == 0
    out = capsys.readouterr()
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out.out).group(1))
    assert acc >= 0.9, out.out + out.err
    assert f"device {DEV_T}" in out.err


# ---------------------------------------------------------------------------------------------
# 3. CUDA only: allocator, out of memory, device mixing, numpy, DLPack
# ---------------------------------------------------------------------------------------------

@requires_cuda
def test_allocator_counters_and_empty_cache():
    dlcore.cuda.synchronize()
    before = dlcore.cuda.memory_allocated()
    x = dlcore.empty(1 << 20, device="cuda")  # 4 MiB
    assert dlcore.cuda.memory_allocated() - before >= 4 << 20
    assert dlcore.cuda.max_memory_allocated() >= dlcore.cuda.memory_allocated()
    del x
    assert dlcore.cuda.memory_allocated() == before
    dlcore.cuda.empty_cache()
    st = dlcore.cuda.memory_stats()
    assert st["reserved_bytes"] == st["allocated_bytes"]  # only live blocks stay reserved
    assert dlcore.cuda.memory_stats("cuda:0") == dlcore.cuda.memory_stats(0) == st


@requires_cuda
def test_training_loop_memory_is_steady():
    dlcore.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10)).cuda()
    opt = dlcore.optim.SGD(model.parameters(), lr=0.01)
    x = dlcore.randn(32, 1, 16, 16, device="cuda")
    y = dlcore.randint(0, 10, (32,), device="cuda")
    mallocs, allocated = [], []
    for _ in range(50):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        del loss
        dlcore.cuda.synchronize()
        st = dlcore.cuda.memory_stats()
        mallocs.append(st["malloc_calls"])
        allocated.append(st["allocated_bytes"])
    assert len(set(mallocs[5:])) == 1, f"cudaMalloc calls per step keep growing: {mallocs}"
    assert len(set(allocated[5:])) == 1, f"allocated bytes after each step differ: {allocated}"
    assert dlcore.cuda.max_memory_allocated() >= allocated[-1]


@requires_cuda
def test_out_of_memory_is_a_clean_error():
    def inside_an_op():
        dlcore.ones(1, device="cuda").expand(1 << 20, 1 << 20).contiguous()  # 4 TiB

    before = dlcore.cuda.memory_allocated()
    with pytest.raises(RuntimeError, match="out of memory") as e:
        dlcore.empty(2**45, device="cuda")  # float32: 128 TiB
    assert str(2**47) in str(e.value)
    with pytest.raises(RuntimeError, match="out of memory"):
        inside_an_op()
    assert dlcore.cuda.memory_allocated() == before  # nothing leaked
    assert (dlcore.ones(1000, device="cuda") * 2).sum().item() == 2000.0


@requires_cuda
def test_mixing_devices_raises_naming_both():
    g = dlcore.ones(3, device="cuda")
    c = dlcore.ones(3)
    for op in (lambda: g + c, lambda: c * g, lambda: g @ dlcore.ones(3, 2), lambda: dlcore.where(g > 0, g, c),
               lambda: dlcore.maximum(c, g), lambda: g.add_(c),
               lambda: dlcore.ones(2, 3) + dlcore.tensor(1.0, device="cuda"),  # only a CPU 0-d tensor moves
               lambda: F.conv2d(dlcore.ones(1, 1, 3, 3, device="cuda"), dlcore.ones(1, 1, 2, 2)),
               lambda: F.cross_entropy(dlcore.ones(2, 3, device="cuda"), dlcore.tensor([0, 1])),
               lambda: g.index_select(0, dlcore.tensor([0, 1])),
               lambda: dlcore.cat([g, c]), lambda: dlcore.stack([c, g])):
        with pytest.raises(ValueError, match=r"(cuda:0.*cpu|cpu.*cuda:0)"):
            op()
    # a 0-d CPU tensor combines with a GPU tensor (as in PyTorch)
    for r in (g + dlcore.tensor(2.0), dlcore.tensor(2, dtype=I64) + g, dlcore.maximum(g, dlcore.tensor(3.0)) - 1,
              dlcore.where(g > 0, g * 3, dlcore.tensor(0.0)), g.clone().add_(dlcore.tensor(2.0))):
        assert r.device == "cuda:0" and r.tolist() == [3.0] * 3


@requires_cuda
def test_labels_and_indices_from_the_host_are_still_checked():
    # Labels / indices copied from the host carry their value range (no copy back for the
    # check); the range must not outlive an in-place write, and bad values still raise.
    x = dlcore.randn(4, 3, device="cuda")
    good = dlcore.tensor([0, 1, 2, 1]).to("cuda")
    assert F.cross_entropy(x, good).device == "cuda:0"
    with pytest.raises(IndexError, match="target 5 .example 3"):
        F.cross_entropy(x, dlcore.tensor([0, 1, 2, 5]).to("cuda"))
    good[2] = 7  # in place on the device: the noted range is stale now
    with pytest.raises(IndexError, match="target 7 .example 2"):
        F.cross_entropy(x, good)
    with pytest.raises(IndexError, match="target -1"):
        F.nll_loss(x, dlcore.tensor([0, -1, 0, 0], device="cuda"))
    g = dlcore.arange(10.0, device="cuda")
    assert g[[9, 0, -1]].tolist() == [9.0, 0.0, 9.0] and g[[9, 0]].device == "cuda:0"
    assert g[dlcore.tensor([1, 2])].tolist() == [1.0, 2.0]  # a host index tensor, as in PyTorch
    with pytest.raises(IndexError, match="index 10 is out of bounds"):
        g[[1, 10]]
    idx = dlcore.tensor([1, 2], device="cuda")
    idx[0] = 11
    with pytest.raises(IndexError, match="index 11 is out of bounds"):
        g.index_select(0, idx)


@requires_cuda
def test_autograd_refuses_gradients_and_tangents_on_another_device():
    x = dlcore.randn(3, 4, device="cuda", requires_grad=True)
    y = x * 2
    with pytest.raises(ValueError, match="gradient is on cpu"):
        y.backward(dlcore.ones(3, 4))
    with pytest.raises(ValueError, match="grad on cpu"):
        x.grad = dlcore.zeros(3, 4)
    with pytest.raises(ValueError, match="tangent is on cpu"):
        jvp(lambda a: a * 2, [x.detach()], [dlcore.ones(3, 4)])
    w = dlcore.randn(2, 1, 3, 3, device="cuda")
    with pytest.raises(ValueError, match="cuda:0.*cpu|cpu.*cuda:0"):
        dlcore._core.nn.conv2d_input_grad(dlcore.ones(1, 2, 3, 3), w, (1, 1, 5, 5), (1, 1), (0, 0), (1, 1), 1)


@requires_cuda
def test_device_paths_that_move_data():
    # copy_ with history from the host: the gradient goes back to the host tensor
    src = dlcore.randn(2, 3, requires_grad=True)
    dst = dlcore.zeros(2, 3, device="cuda", requires_grad=True).clone()
    dst.copy_(src)
    (dst * 3).sum().backward()
    assert src.grad.device == "cpu" and src.grad.tolist() == [[3.0] * 3] * 2
    # where with 0-d host operands in any position
    b = dlcore.arange(3.0, device="cuda")
    r = dlcore.where(dlcore.tensor(True), dlcore.tensor(7.0), b)
    assert r.device == "cuda:0" and r.tolist() == [7.0] * 3
    # a dataset kept on the GPU: the loader's host indices follow it
    ds = dlcore.data.TensorDataset(dlcore.arange(10.0, device="cuda"), dlcore.arange(10, device="cuda"))
    batches = list(dlcore.data.DataLoader(ds, batch_size=4, shuffle=True, seed=0))
    assert all(xb.device == "cuda:0" for xb, _ in batches)
    assert sorted(v for xb, _ in batches for v in xb.tolist()) == [float(i) for i in range(10)]


@requires_cuda
def test_numpy_of_a_gpu_tensor_is_a_type_error():
    g = dlcore.arange(4.0, device="cuda")
    with pytest.raises(TypeError, match="cpu"):
        g.numpy()
    with pytest.raises(TypeError):
        np.asarray(g)
    assert np.asarray(g.cpu()).tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.fixture
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    return torch


@requires_cuda
@pytest.mark.parametrize("dt", [F32, F64, I64, BOOL])
def test_dlpack_dlcore_to_torch_shares_memory(torch_cuda, dt):
    torch = torch_cuda
    base = dlcore.arange(12, device="cuda").reshape(3, 4)
    d = base > 5 if dt == BOOL else base.to(dt)
    t = torch.from_dlpack(d)
    assert t.is_cuda and t.shape == (3, 4) and t.data_ptr() == d.data_ptr()
    np.testing.assert_array_equal(t.cpu().numpy(), host(d))
    if dt != BOOL:
        d.mul_(2)  # write through dlcore ...
        dlcore.cuda.synchronize()
        np.testing.assert_array_equal(t.cpu().numpy(), host(d))  # ... read through torch
        t.add_(1)  # and the other way
        torch.cuda.synchronize()
        np.testing.assert_array_equal(host(d), t.cpu().numpy())
    v = torch.from_dlpack(d.T)
    assert v.stride() == d.T.stride()
    np.testing.assert_array_equal(v.cpu().numpy(), host(d).T)


@requires_cuda
def test_dlpack_torch_to_dlcore_shares_memory(torch_cuda):
    torch = torch_cuda
    t = torch.arange(12.0, device="cuda").reshape(3, 4)
    d = dlcore.from_dlpack(t)
    assert d.device == "cuda:0" and d.dtype == F32 and d.data_ptr() == t.data_ptr()
    t.mul_(3)
    torch.cuda.synchronize()
    assert host(d).tolist() == (np.arange(12.0).reshape(3, 4) * 3).tolist()
    d.add_(1)
    dlcore.cuda.synchronize()
    assert torch.equal(t.cpu(), torch.arange(12.0).reshape(3, 4) * 3 + 1)
    ncols = dlcore.from_dlpack(t.T)
    assert ncols.shape == (4, 3) and ncols.stride() == t.T.stride()
    assert host(ncols).tolist() == t.T.cpu().tolist()
    r = dlcore.from_dlpack(torch.randn(5, 7, device="cuda", dtype=torch.float64))
    assert r.dtype == F64
    assert_close(r.sum(1), dlcore.from_dlpack(torch.from_dlpack(r).sum(1)), rtol=1e-12)
    # a result computed by dlcore, read by torch, round trip
    back = torch.from_dlpack(dlcore.from_dlpack(t) * 2)
    assert torch.equal(back, t * 2)


@requires_cuda
def test_dlpack_with_cupy():
    cp = pytest.importorskip("cupy")
    try:
        a = cp.arange(10, dtype=cp.float32)
    except Exception as e:  # noqa: BLE001  (a CuPy that cannot use this GPU)
        pytest.skip(f"CuPy cannot run here: {e}")
    d = dlcore.from_dlpack(a)
    assert d.device == "cuda:0" and d.data_ptr() == a.data.ptr
    d.mul_(2)
    dlcore.cuda.synchronize()
    assert a.get().tolist() == [2.0 * i for i in range(10)]
    g = dlcore.linspace(0, 1, 5, device="cuda")
    c = cp.from_dlpack(g)
    assert c.data.ptr == g.data_ptr()
    c += 1
    cp.cuda.runtime.deviceSynchronize()
    np.testing.assert_allclose(host(g), np.linspace(0, 1, 5) + 1, rtol=1e-6)
