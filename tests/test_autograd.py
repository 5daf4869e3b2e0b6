"""Autograd: reverse mode, forward mode, gradcheck for every differentiable op.

Every op registered by the core (``dlcore.autograd.differentiable_ops()``) must
have a case in GRAD_CASES; ``test_every_differentiable_op_has_a_gradcheck_case``
fails otherwise, so a new op cannot ship without a gradient test.
"""
from __future__ import annotations

import gc
import math

import numpy as np
import pytest

import dlcore
import dlcore.nn.functional as F
from dlcore.autograd import GradcheckError, gradcheck, grad, jvp, numerical_gradient

F64 = dlcore.float64
_OTHER_DEVICE = "cuda" if dlcore.cuda.is_available() else "cpu"


def leaf(*shape, low=-1.0, high=1.0, seed=0, positive=False):
    rng = np.random.default_rng(seed + sum(shape) * 7 + len(shape))
    a = rng.uniform(0.2 if positive else low, high + (1.0 if positive else 0.0), size=shape)
    return dlcore.tensor(a, dtype=F64).requires_grad_()


def noncontig(*shape, seed=0, positive=False):
    """A leaf that is a transposed (non-contiguous) view: shape given is the final shape."""
    base = leaf(*reversed(shape), seed=seed, positive=positive).detach()
    t = base.permute(*reversed(range(len(shape)))) if len(shape) > 1 else base[::1]
    assert len(shape) < 2 or not t.is_contiguous()
    return t.requires_grad_()


def spaced(*shape, seed=0):
    """Distinct values (no ties), so max/min gradients are well defined under finite differences."""
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    vals = rng.permutation(n).astype(np.float64) * 0.37 - n * 0.1
    return dlcore.tensor(vals.reshape(shape), dtype=F64).requires_grad_()


IDX = dlcore.tensor([2, 0, 2, 1])


def grad_of(f):
    """x -> df/dx with create_graph, so gradcheck differentiates the backward ops (double backward).
    (Forward mode does not run through a backward pass: these cases check reverse mode only.)"""
    def g(x):
        with dlcore.enable_grad():
            xx = x if x.requires_grad else x.detach().requires_grad_()
            return grad(f(xx), xx, create_graph=True)[0]
    return g

# op name -> list of (function, inputs); inputs include broadcasting and non-contiguous cases.
GRAD_CASES = {
    "add": [(lambda a, b: a + b, lambda: (leaf(3, 4), leaf(4))), (lambda a, b: a + b, lambda: (noncontig(3, 4), leaf(3, 1)))],
    "sub": [(lambda a, b: a - b, lambda: (leaf(2, 3), leaf(1, 3))), (lambda a: 2.0 - a, lambda: (noncontig(2, 3),))],
    "mul": [(lambda a, b: a * b, lambda: (leaf(3, 4), noncontig(3, 4))), (lambda a, b: a * b, lambda: (leaf(2, 1, 3), leaf(4, 1)))],
    "div": [(lambda a, b: a / b, lambda: (leaf(3, 4), leaf(4, positive=True))), (lambda a: 1.0 / a, lambda: (leaf(5, positive=True),))],
    "pow": [(lambda a, b: a ** b, lambda: (leaf(3, 4, positive=True), leaf(4))), (lambda a: a ** 3, lambda: (noncontig(2, 3),)),
            (lambda a: 2.0 ** a, lambda: (leaf(4),))],
    "maximum": [(dlcore.maximum, lambda: (spaced(3, 4), spaced(4, seed=1))), (lambda a: dlcore.maximum(a, dlcore.tensor(0.0, dtype=F64)), lambda: (spaced(2, 3),))],
    "minimum": [(dlcore.minimum, lambda: (spaced(3, 4), spaced(3, 1, seed=2)))],
    "neg": [(lambda a: -a, lambda: (noncontig(2, 3),))],
    "abs": [(lambda a: a.abs(), lambda: (spaced(3, 3),))],
    "exp": [(dlcore.exp, lambda: (noncontig(3, 2),))],
    "log": [(dlcore.log, lambda: (leaf(3, 2, positive=True),))],
    "sqrt": [(dlcore.sqrt, lambda: (leaf(4, positive=True),))],
    "sin": [(dlcore.sin, lambda: (noncontig(2, 3),))],
    "cos": [(dlcore.cos, lambda: (leaf(5),))],
    "tanh": [(dlcore.tanh, lambda: (noncontig(3, 2),))],
    "sigmoid": [(dlcore.sigmoid, lambda: (leaf(2, 3),))],
    "relu": [(dlcore.relu, lambda: (spaced(3, 3),))],
    "where": [(lambda a, b: dlcore.where(a > 0, a, b), lambda: (spaced(3, 4), leaf(4)))],
    "matmul": [(lambda a, b: a @ b, lambda: (leaf(3, 4), noncontig(4, 2))),
               (lambda a, b: a @ b, lambda: (leaf(2, 3, 4), leaf(4, 5))),
               (lambda a, b: a @ b, lambda: (leaf(4), leaf(2, 4, 3))),
               (lambda a, b: a @ b, lambda: (leaf(3), leaf(3))),
               (lambda a, b: a @ b, lambda: (leaf(2, 1, 2, 3), leaf(3, 3, 2)))],
    "sum": [(lambda a: a.sum(), lambda: (noncontig(3, 4),)), (lambda a: a.sum((0, 2), keepdim=True), lambda: (leaf(2, 3, 2),)),
            (lambda a: a.sum(1), lambda: (leaf(2, 3),))],
    "amax": [(lambda a: a.amax(1), lambda: (spaced(3, 4),)), (lambda a: a.max(), lambda: (spaced(2, 3),))],
    "amin": [(lambda a: a.amin((0, 1)), lambda: (spaced(2, 3, 2),))],
    "max_dim": [(lambda a: a.max(1).values, lambda: (spaced(3, 4),)), (lambda a: a.max(0, keepdim=True)[0], lambda: (spaced(3, 2),))],
    "min_dim": [(lambda a: a.min(-1).values, lambda: (spaced(2, 5),))],
    "reshape": [(lambda a: a.reshape(6, 2), lambda: (noncontig(3, 4),)), (lambda a: a.flatten(), lambda: (leaf(2, 3),))],
    "transpose": [(lambda a: a.transpose(0, 2) * 1.5, lambda: (leaf(2, 3, 4),)), (lambda a: a.T, lambda: (leaf(2, 3),))],
    "permute": [(lambda a: a.permute(2, 0, 1), lambda: (leaf(2, 3, 2),))],
    "squeeze": [(lambda a: a.squeeze(), lambda: (leaf(1, 3, 1),))],
    "unsqueeze": [(lambda a: a.unsqueeze(1), lambda: (leaf(2, 3),))],
    "expand": [(lambda a: a.expand(2, 3, 4), lambda: (leaf(3, 1),))],
    "slice": [(lambda a: a[1:, ::2], lambda: (leaf(3, 5),))],
    "select": [(lambda a: a[1], lambda: (leaf(3, 4),)), (lambda a: a[:, -1], lambda: (noncontig(3, 4),))],
    "index_select": [(lambda a: a[IDX], lambda: (leaf(3, 2),)), (lambda a: a[:, [0, 0, 2]], lambda: (leaf(2, 3),))],
    "cat": [(lambda a, b: dlcore.cat([a, b], 1), lambda: (leaf(2, 3), noncontig(2, 2))),
            (lambda a, b: dlcore.stack([a, b], 0), lambda: (leaf(2, 3), leaf(2, 3, seed=3)))],
    "clone": [(lambda a: a.clone() * 2.0, lambda: (noncontig(2, 3),)), (lambda a: a.contiguous(), lambda: (noncontig(3, 2),))],
    # float32 round trip: finite differences need a larger step (float32 rounding ~6e-8)
    # A round trip through the GPU where there is one; on a CPU-only machine .to('cpu') is the
    # identity (no node), and tests/test_cuda.py checks the error for 'cuda'.
    "to_device": [(lambda a: (a.to(_OTHER_DEVICE) * 2.0).to("cpu"), lambda: (leaf(2, 3),))],
    "to_dtype": [(lambda a: a.float().double() * 1.0, lambda: (leaf(3),), dict(eps=1e-3, atol=1e-3))],
    # ---- nn ops (dlcore.nn.functional) ----
    "conv2d": [(lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1), lambda: (leaf(1, 2, 4, 4), leaf(3, 2, 3, 3, seed=1), leaf(3, seed=2))),
               (lambda x, w: F.conv2d(x, w, stride=2, padding=(1, 0), dilation=(1, 2), groups=2),
                lambda: (leaf(1, 4, 6, 7), leaf(2, 2, 2, 3, seed=3)))],
    # the gradients of conv2d are ops too, so double backward works
    "conv2d_input_grad": [(lambda dy, w: dlcore._core.nn.conv2d_input_grad(dy, w, (2, 3, 5, 5), (1, 1), (1, 1), (1, 1), 1),
                           lambda: (leaf(2, 4, 5, 5), leaf(4, 3, 3, 3, seed=4)))],
    "conv2d_weight_grad": [(lambda x, dy: dlcore._core.nn.conv2d_weight_grad(x, dy, (4, 1, 2, 2), (2, 2), (0, 0), (1, 1), 2),
                            lambda: (leaf(1, 2, 5, 5), leaf(1, 4, 2, 2, seed=5)))],
    "max_pool2d": [(lambda x: F.max_pool2d(x, 2), lambda: (spaced(2, 2, 4, 4),)),
                   (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), lambda: (spaced(1, 2, 5, 5),))],
    "max_pool2d_scatter": [(grad_of(lambda x: (F.max_pool2d(x, 2) ** 2).sum()), lambda: (spaced(1, 1, 4, 4),), dict(check_forward_mode=False))],
    "max_pool2d_gather": [(grad_of(lambda x: (F.max_pool2d(x, 2) ** 3).sum()), lambda: (spaced(1, 2, 4, 4),), dict(check_forward_mode=False))],
    "avg_pool2d": [(lambda x: F.avg_pool2d(x, 2), lambda: (leaf(2, 2, 4, 4),)),
                   (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), lambda: (leaf(1, 2, 5, 5),))],
    "avg_pool2d_backward": [(grad_of(lambda x: (F.avg_pool2d(x, 2) ** 3).sum()), lambda: (leaf(1, 1, 4, 4),), dict(check_forward_mode=False))],
    "softmax": [(lambda x: F.softmax(x, 1), lambda: (leaf(3, 4),)), (lambda x: F.softmax(x, 0), lambda: (noncontig(3, 2),))],
    "log_softmax": [(lambda x: F.log_softmax(x, -1), lambda: (leaf(3, 4),))],
    "cross_entropy": [(lambda x: F.cross_entropy(x, dlcore.tensor([0, 2, 1])), lambda: (leaf(3, 4),)),
                      (lambda x: F.cross_entropy(x, dlcore.tensor([3, 0]), reduction="sum", label_smoothing=0.1), lambda: (leaf(2, 4),)),
                      (lambda x: F.cross_entropy(x, dlcore.tensor([[0, 1], [2, 2]]), reduction="none"), lambda: (leaf(2, 3, 2),))],
    "multi_margin": [(lambda x: F.multiclass_hinge_loss(x, dlcore.tensor([0, 2, 1])), lambda: (spaced(3, 4),)),
                     (lambda x: F.multi_margin_loss(x, dlcore.tensor([1, 0]), p=2, margin=0.7, reduction="none"), lambda: (spaced(2, 3),))],
    # gradients of slicing/gathering are themselves differentiable (double backward)
    "slice_backward": [(lambda g: dlcore._core._slice_backward(g, (4, 3), 0, 1, 4, 2), lambda: (leaf(2, 3),))],
    "index_add": [(lambda s: dlcore._core._index_add((3, 2), 0, IDX, s), lambda: (leaf(4, 2),))],
}

# ops defined as compositions (their gradients come from the ops above)
COMPOSITE_CASES = [
    (lambda x, w, b: F.linear(x, w, b), lambda: (leaf(3, 4), leaf(2, 4, seed=1), leaf(2, seed=2))),
    (lambda x: F.leaky_relu(x, 0.1), lambda: (spaced(3, 3),)),
    (lambda x: F.nll_loss(F.log_softmax(x, 1), dlcore.tensor([1, 0])), lambda: (leaf(2, 3),)),
    (lambda x, t: F.mse_loss(x, t), lambda: (leaf(3, 2), leaf(3, 2, seed=9))),
    (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), lambda: (leaf(4, 3, 2, 2), leaf(3, seed=1), leaf(3, seed=2))),
    (lambda x: F.adaptive_avg_pool2d(x, 1), lambda: (leaf(2, 3, 4, 4),)),
    (lambda a, b: F.l2_penalty([a, b]), lambda: (leaf(3), leaf(2, 2))),
    (lambda a: a.mean(), lambda: (noncontig(3, 4),)),
    (lambda a: a.var(1), lambda: (leaf(3, 4),)),
    (lambda a: a.var(), lambda: (leaf(5),)),
    (lambda a, b: (a * b + dlcore.sin(a)).sum() / (b.abs() + 1.0).sum(), lambda: (leaf(3, 4), leaf(4, seed=5))),
]


def test_every_differentiable_op_has_a_gradcheck_case():
    ops = set(dlcore.autograd.differentiable_ops())
    missing = sorted(ops - set(GRAD_CASES))
    assert not missing, f"differentiable ops without a gradcheck case: {missing}"
    assert len(ops) >= 30


def _cases():
    for name, cases in GRAD_CASES.items():
        for k, (f, make, *opts) in enumerate(cases):
            yield pytest.param(f, make, opts[0] if opts else {}, id=f"{name}-{k}")


@pytest.mark.parametrize("f,make,opts", list(_cases()))
def test_gradcheck_reverse_and_forward(f, make, opts):
    assert gradcheck(f, make(), **opts)


@pytest.mark.parametrize("f,make", COMPOSITE_CASES)
def test_gradcheck_composites(f, make):
    assert gradcheck(f, make())


@pytest.mark.parametrize("f,make,opts", list(_cases()))
def test_forward_matches_reverse(f, make, opts):
    """u . (J v) computed by forward mode equals (u^T J) . v computed by reverse mode."""
    if opts.get("check_forward_mode") is False:
        pytest.skip("reverse-mode-only case (double backward)")
    inputs = make()
    rng = np.random.default_rng(1)
    vs = [dlcore.tensor(rng.standard_normal(x.shape), dtype=F64) for x in inputs]
    out, tout = jvp(f, [x.detach() for x in inputs], vs)
    u = dlcore.tensor(rng.standard_normal(out.shape), dtype=F64)
    y = f(*inputs)
    gs = grad(y, list(inputs), u, allow_unused=True)
    lhs = float((u * tout).sum())
    rhs = sum(float((g * v).sum()) for g, v in zip(gs, vs) if g is not None)
    tol = 1e-5 if opts else 1e-9  # cases with options go through float32
    assert math.isclose(lhs, rhs, rel_tol=tol, abs_tol=tol)


def test_lecture_example():
    x1 = dlcore.tensor(2.0, dtype=dlcore.float64, requires_grad=True)
    x2 = dlcore.tensor(3.0, dtype=dlcore.float64, requires_grad=True)
    f = x1 * x2 + dlcore.sin(x1)
    f.backward()
    assert x1.grad.item() == pytest.approx(3.0 + math.cos(2.0), rel=1e-15)
    assert x2.grad.item() == pytest.approx(2.0, rel=1e-15)
    one = dlcore.tensor(1.0, dtype=F64)
    zero = dlcore.tensor(0.0, dtype=F64)
    value, dfdx1 = jvp(lambda a, b: a * b + dlcore.sin(a), (x1, x2), (one, zero))
    assert value.item() == pytest.approx(6.0 + math.sin(2.0))
    assert dfdx1.item() == pytest.approx(3.0 + math.cos(2.0))
    assert gradcheck(lambda a, b: a * b + dlcore.sin(a), (x1, x2))


def test_grad_accumulates_and_broadcast_reduces():
    a = leaf(3, 4)
    b = leaf(4)
    (a * b).sum().backward()
    (a * b).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), 2 * a.detach().numpy().sum(0), rtol=1e-12)
    assert b.grad.shape == (4,)


def test_grad_fn_names_and_leaves():
    a = leaf(2)
    y = (a * 2).exp()
    assert a.is_leaf and a.grad_fn is None
    assert not y.is_leaf
    assert y.grad_fn.name() == "ExpBackward"
    assert "MulBackward" in repr(y.grad_fn.next_functions[0][0])
    assert not y.detach().requires_grad


def test_no_grad_context_and_decorator():
    a = leaf(2)
    with dlcore.no_grad():
        y = a * 2
        with dlcore.enable_grad():
            z = a * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @dlcore.no_grad()
    def f(x):
        return x * 3

    assert not f(a).requires_grad
    assert dlcore.is_grad_enabled()


def test_second_derivatives():
    x = dlcore.tensor([0.5, -1.0, 2.0], dtype=F64, requires_grad=True)
    y = (x ** 3 + dlcore.sin(x) * x).sum()
    (g,) = grad(y, x, create_graph=True)
    (h,) = grad(g.sum(), x)
    xv = x.detach().numpy()
    np.testing.assert_allclose(h.numpy(), 6 * xv + 2 * np.cos(xv) - xv * np.sin(xv), rtol=1e-12)
    # matmul and reductions too
    A = leaf(3, 3)
    v = leaf(3)
    q = (v @ (A @ v))
    (gv,) = grad(q, v, create_graph=True)
    (hv,) = grad(gv.sum(), v)
    Av = A.detach().numpy()
    np.testing.assert_allclose(hv.numpy(), (Av + Av.T).sum(0), rtol=1e-12)


def test_hooks_inspect_and_replace():
    a = leaf(3)
    seen = []
    h = a.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = a * 2
    y.register_hook(lambda g: g * 10)  # changes the gradient flowing back
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(3, 20.0))
    assert len(seen) == 1
    h.remove()
    a.grad = None
    (a * 1).sum().backward()
    assert len(seen) == 1


def test_retain_grad_and_autograd_grad_inputs():
    a = leaf(2, 2)
    y = a * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.detach().numpy())
    b = leaf(3)
    z = (b * b).sum()
    (gb,) = grad(z, b)
    assert b.grad is None  # grad() does not accumulate
    np.testing.assert_allclose(gb.numpy(), 2 * b.detach().numpy())


def test_inplace_ops_and_version_counter():
    a = leaf(3)
    y = a * 2
    y += 1  # in-place on a non-leaf: history moves onto the add
    y.mul_(3)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(3, 6.0))
    # modifying a saved tensor after use -> error at backward, not a wrong gradient
    b = leaf(3)
    c = b * 1.0
    d = c * c  # saves c
    c.add_(1.0)
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation.*version"):
        d.sum().backward()


def test_inplace_on_leaf_requiring_grad_raises():
    a = leaf(3)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        a.add_(1.0)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        a -= 1.0
    with pytest.raises(RuntimeError, match="leaf"):
        a.zero_()
    with dlcore.no_grad():
        a -= 1.0  # allowed: this is how optimisers update parameters
        a.zero_()
    assert float(a.sum()) == 0.0


def test_inplace_into_view_with_grad_raises():
    buf = dlcore.zeros(3, dtype=F64)
    y = leaf(1)
    with pytest.raises(RuntimeError, match="view"):
        buf[0:1] = y


def test_backward_errors():
    a = leaf(2, 3)
    y = a * 2
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2, 3\)"):
        y.backward()
    y.backward(dlcore.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        (a * 2).backward(dlcore.ones(3, dtype=F64))
    with pytest.raises(RuntimeError, match="does not require grad"):
        dlcore.ones(3).sum().backward()
    z = (a * a).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()
    w = (a * a).sum()
    w.backward(retain_graph=True)
    w.backward()  # retained: works twice
    with pytest.raises(TypeError, match="floating-point"):
        dlcore.arange(3).requires_grad_()
    b = leaf(2)
    with pytest.raises(RuntimeError, match="not used"):
        grad((a * 2).sum(), [a, b])
    assert grad((a * 2).sum(), [a, b], allow_unused=True)[1] is None


def test_gradcheck_reports_wrong_gradients():
    class Bad:
        pass

    a = leaf(3)
    # a hook that corrupts the gradient makes reverse mode disagree with finite differences
    def f(x):
        y = x * 1.0
        y.register_hook(lambda g: g * 2) if y.requires_grad else None
        return y.sum()

    with pytest.raises(GradcheckError, match=r"input 0.*numerical.*analytical"):
        gradcheck(f, (a,), check_forward_mode=False)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda x: x.sum(), (dlcore.ones(2, requires_grad=True),))


def test_numerical_gradient_matches_analytic():
    a = leaf(2, 3)
    f = lambda x: (x.exp() * x).sum()  # noqa: E731
    (num,) = numerical_gradient(f, (a,), eps=1e-6)
    f(a).backward()
    np.testing.assert_allclose(num.numpy(), a.grad.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda x: x * 2, (a,))


def test_float32_gradients_keep_dtype():
    a = dlcore.randn(3, 4, requires_grad=True)
    w = dlcore.randn(4, 2, dtype=F64)
    (a @ w.float()).sum().backward()
    assert a.grad.dtype == dlcore.float32


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_memory_flat_over_many_iterations():
    w = dlcore.randn(16, 16, requires_grad=True)
    x = dlcore.randn(8, 16)

    def step():
        y = (x @ w).tanh()
        loss = (y * y).mean() + w.abs().sum() * 1e-3
        loss.backward()
        with dlcore.no_grad():
            w.sub_(w.grad * 0.01)
        w.grad = None

    for _ in range(500):
        step()
    gc.collect()
    before = _rss_mb()
    for _ in range(10_000):
        step()
    gc.collect()
    assert _rss_mb() - before < 10.0


def test_graphs_without_backward_are_freed():
    """Dropping an output frees its whole graph (nodes never hold their own outputs: no cycles)."""
    a = dlcore.randn(1 << 20, requires_grad=True)  # 4 MB; each graph below saves several such tensors

    def build():
        y = (a * 2).exp() * a
        return y.sum()

    for _ in range(5):
        build()
    gc.collect()
    before = _rss_mb()
    for _ in range(200):  # would keep ~2.4 GB alive if graphs leaked
        z = build()
        z2 = z * 1.0  # the output referenced from a later node, then both dropped
        del z, z2
    gc.collect()
    assert _rss_mb() - before < 100.0


@pytest.mark.torch
def test_random_expressions_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for trial in range(20):
        an = rng.uniform(0.5, 1.5, size=(3, 4))
        bn = rng.uniform(0.5, 1.5, size=(4,))
        cn = rng.uniform(-1, 1, size=(4, 2))
        exprs = [
            lambda m, a, b, c: ((a * b).exp() @ c).tanh().sum(),
            lambda m, a, b, c: (m.maximum(a, b * 1.1) / (a + 1.0)).log().mean() + (a ** b).sum(),
            lambda m, a, b, c: ((a - b).sigmoid() @ c).relu().amax() + a[1:, ::2].sum() * c.var(),
            lambda m, a, b, c: m.cat([a, a * 2], 0).sqrt().sum(0).max() - (a.T @ a).abs().mean(),
        ]
        f = exprs[trial % len(exprs)]
        ts = [torch.tensor(x, requires_grad=True) for x in (an, bn, cn)]
        ds = [dlcore.tensor(x, dtype=F64, requires_grad=True) for x in (an, bn, cn)]
        f(torch, *ts).backward()
        f(dlcore, *ds).backward()
        for t, d in zip(ts, ds):
            assert (t.grad is None) == (d.grad is None)
            if t.grad is None:
                continue
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)
