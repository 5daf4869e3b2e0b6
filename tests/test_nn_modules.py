"""Tests of dlcore.nn modules: the Module machinery (registration, traversal, modes, state
dicts, dtype conversion, printing), Parameter, Sequential, ModuleList, every layer and loss
module (outputs *and* input/parameter gradients) against small numpy references and against
PyTorch with copied weights (``-m torch``), BatchNorm running statistics, and dlcore.nn.init
(including PyTorch's default initialisation of Linear and Conv2d, checked statistically).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import dlcore
import dlcore.nn as nn
from dlcore.nn import init

F32, F64 = np.float32, np.float64
DTYPES = [F32, F64]
DT_IDS = ["f32", "f64"]
DL_DTYPE = {F32: dlcore.float32, F64: dlcore.float64}


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def dl(a, dtype=None):
    """numpy -> dlcore tensor holding a private copy."""
    a = np.array(a, dtype=dtype, copy=True)
    return dlcore.from_numpy(a)


def npy(t):
    return t.detach().numpy().copy()


def close(got, ref, dtype, rtol=None, err_msg=""):
    got = npy(got) if isinstance(got, dlcore.Tensor) else np.asarray(got)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{err_msg}: shape {got.shape}, expected {ref.shape}"
    if rtol is None:
        rtol = 2e-5 if np.dtype(dtype) == F32 else 1e-10
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=rtol, atol=rtol * scale, err_msg=err_msg)


def cast_module(m, dtype):
    return m.to(DL_DTYPE[np.dtype(dtype).type])


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(5, 3, bias=False)
        self.scale = nn.Parameter(dlcore.ones(3))
        self.not_a_param = dlcore.zeros(2)  # plain tensor attribute: not registered

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


# ----------------------------------------------------------------------------------------
# Module machinery
# ----------------------------------------------------------------------------------------

def test_parameter_is_a_leaf_tensor_requiring_grad():
    p = nn.Parameter(dlcore.zeros(2, 3))
    assert isinstance(p, dlcore.Tensor)
    assert p.requires_grad and p.is_leaf and p.shape == (2, 3)
    q = nn.Parameter(dlcore.zeros(2), requires_grad=False)
    assert not q.requires_grad
    assert "Parameter containing" in repr(p)
    with pytest.raises(TypeError):
        nn.Parameter(np.zeros(2))


def test_forward_and_call():
    m = TwoLayer()
    x = dlcore.randn(6, 4)
    y = m(x)
    assert y.shape == (6, 3)
    np.testing.assert_array_equal(npy(y), npy(m.forward(x)))

    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError):
        NoForward()(x)


def test_parameters_named_parameters_children_modules():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    params = list(m.parameters())
    assert len(params) == 4 and all(isinstance(p, nn.Parameter) for p in params)
    assert params[1] is m.fc1.weight
    assert [type(c) for c in m.children()] == [nn.Linear, nn.ReLU, nn.Linear]
    mods = list(m.modules())
    assert mods[0] is m and len(mods) == 4
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert m.num_parameters() == 4 * 5 + 5 + 5 * 3 + 3
    # a shared parameter is listed once
    s = nn.Sequential(m.fc1, m.fc1)
    assert len(list(s.parameters())) == 2


def test_setattr_registers_and_unregisters():
    m = TwoLayer()
    assert "not_a_param" not in dict(m.named_parameters())
    m.extra = nn.Linear(2, 2)
    assert "extra.weight" in dict(m.named_parameters())
    del m.extra
    assert "extra.weight" not in dict(m.named_parameters())
    with pytest.raises(TypeError):
        m.scale = dlcore.zeros(3)  # a plain tensor cannot replace a Parameter
    with pytest.raises(AttributeError):
        m.does_not_exist


def test_train_eval_propagate():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(2)))
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m.train(False)
    assert not any(x.training for x in m.modules())


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    m = TwoLayer()
    m(dlcore.randn(3, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=set_to_none)
    for p in m.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            np.testing.assert_array_equal(p.grad.numpy(), 0)


def test_state_dict_keys_and_round_trip():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    sd = m.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked", "3.weight", "3.bias"]
    assert sd["1.num_batches_tracked"].dtype == dlcore.int64 and sd["1.num_batches_tracked"].shape == ()
    m(dlcore.randn(8, 3))  # updates running stats
    m2 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    res = m2.load_state_dict(m.state_dict())
    assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the loaded values are copies: changing the source does not change the target
    with dlcore.no_grad():
        m[0].weight.fill_(7.0)
    assert not np.any(m2[0].weight.numpy() == 7.0)


def test_load_state_dict_strict_errors_list_every_problem():
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    sd = m.state_dict()
    bad = OrderedDict(sd)
    del bad["1.bias"]
    bad["0.weight"] = dlcore.zeros(5, 3)
    bad["2.weight"] = dlcore.zeros(1)
    before = npy(m[0].bias)
    with pytest.raises(RuntimeError) as ei:
        m.load_state_dict(bad)
    msg = str(ei.value)
    assert "1.bias" in msg and "missing" in msg
    assert "2.weight" in msg and "unexpected" in msg
    assert "0.weight" in msg and "(5, 3)" in msg and "(4, 3)" in msg
    np.testing.assert_array_equal(npy(m[0].bias), before)  # nothing copied on error
    # strict=False tolerates missing / unexpected keys (but not shape mismatches)
    ok = OrderedDict(sd)
    del ok["1.bias"]
    ok["extra"] = dlcore.zeros(1)
    res = m.load_state_dict(ok, strict=False)
    assert list(res.missing_keys) == ["1.bias"] and list(res.unexpected_keys) == ["extra"]
    with pytest.raises(RuntimeError, match="0.weight"):
        m.load_state_dict({"0.weight": dlcore.zeros(5, 3)}, strict=False)


def test_to_dtype_converts_floating_parameters_and_buffers():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    w = npy(m[0].weight)
    out = m.to(dlcore.float64)
    assert out is m
    assert all(p.dtype == dlcore.float64 for p in m.parameters())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert m[1].running_mean.dtype == dlcore.float64 and m[1].running_var.dtype == dlcore.float64
    assert m[1].num_batches_tracked.dtype == dlcore.int64
    np.testing.assert_array_equal(m[0].weight.numpy(), w.astype(F64))
    y = m(dlcore.randn(5, 3, dtype=dlcore.float64))
    assert y.dtype == dlcore.float64
    y.sum().backward()
    assert m[0].weight.grad.dtype == dlcore.float64
    m.float()
    assert all(p.dtype == dlcore.float32 for p in m.parameters())
    m.to("cpu")


def test_to_dtype_keeps_parameter_objects_so_an_existing_optimizer_still_trains():
    """PyTorch's Module.to converts parameters in place (param.data = ...): the Parameter objects an
    optimizer already holds stay the module's parameters."""
    m = nn.Linear(3, 2)
    params = list(m.parameters())
    opt = dlcore.optim.SGD(m.parameters(), lr=0.1)
    m.to(dlcore.float64)
    assert all(a is b for a, b in zip(params, m.parameters())), "to() replaced the Parameter objects"
    before = npy(m.weight)
    m(dlcore.randn(4, 3, dtype=dlcore.float64)).sum().backward()
    opt.step()
    assert not np.array_equal(npy(m.weight), before), "the optimizer no longer updates the module"


def test_state_dict_shares_memory_with_the_module():
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    with dlcore.no_grad():
        m.weight.fill_(3.0)
    np.testing.assert_array_equal(sd["weight"].numpy(), 3.0)
    assert not sd["weight"].requires_grad


def test_load_state_dict_casts_dtype():
    m, m64 = nn.Linear(3, 2), nn.Linear(3, 2).double()
    m.load_state_dict(m64.state_dict())
    assert m.weight.dtype == dlcore.float32
    np.testing.assert_allclose(m.weight.numpy(), m64.weight.numpy(), rtol=1e-6)


def test_repr_prints_the_tree():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Sequential(nn.Linear(32, 10), nn.Dropout(0.25)))
    r = repr(m)
    lines = r.splitlines()
    assert lines[0] == "Sequential("
    assert lines[-1] == ")"
    assert "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in lines
    assert "  (1): ReLU()" in lines
    assert "  (4): Sequential(" in lines
    assert "    (0): Linear(in_features=32, out_features=10, bias=True)" in lines
    assert "    (1): Dropout(p=0.25)" in lines
    assert repr(nn.ReLU()) == "ReLU()"


def test_sequential_and_module_list():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and s[0] is a and s[-1] is c and list(s) == [a, b, c]
    sl = s[1:]
    assert isinstance(sl, nn.Sequential) and len(sl) == 2 and sl[1] is c
    x = dlcore.randn(4, 2)
    close(s(x), npy(c(b(a(x)))), F32)
    named = nn.Sequential(OrderedDict([("first", nn.Linear(2, 2)), ("second", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["first.weight", "first.bias"]
    assert named.first is named[0]
    with pytest.raises(TypeError):
        nn.Sequential(a, "not a module")
    s.append(nn.Sigmoid())
    assert len(s) == 4

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    t = Tower()
    assert len(t.layers) == 3 and t.layers[1] is list(t.layers)[1]
    assert [n for n, _ in t.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]
    assert len(list(t.parameters())) == 6
    t.layers.append(nn.Linear(2, 2))
    assert len(list(t.parameters())) == 8
    with pytest.raises(TypeError):
        t.layers.append(3)
    assert t(dlcore.randn(5, 2)).shape == (5, 2)


# ----------------------------------------------------------------------------------------
# layers against numpy references (no PyTorch needed)
# ----------------------------------------------------------------------------------------

def _run(module, x, dy):
    xt = dl(x).requires_grad_()
    y = module(xt)
    y.backward(dl(dy, dtype=x.dtype))
    return y, xt.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_linear_numpy_reference(dtype):
    rng = np.random.default_rng(0)
    m = cast_module(nn.Linear(4, 3), dtype)
    x = rng.standard_normal((5, 4)).astype(dtype)
    dy = rng.standard_normal((5, 3)).astype(dtype)
    W, b = npy(m.weight).astype(F64), npy(m.bias).astype(F64)
    y, gx = _run(m, x, dy)
    close(y, x.astype(F64) @ W.T + b, dtype)
    close(gx, dy.astype(F64) @ W, dtype)
    close(m.weight.grad, dy.astype(F64).T @ x.astype(F64), dtype)
    close(m.bias.grad, dy.astype(F64).sum(0), dtype)
    m2 = nn.Linear(4, 3, bias=False)
    assert m2.bias is None and [n for n, _ in m2.named_parameters()] == ["weight"]
    with pytest.raises(ValueError):
        m(dlcore.randn(2, 5))


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_activation_modules_numpy_reference(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 6)) * 3).astype(dtype)
    x[0, :2] = 0.0
    dy = rng.standard_normal(x.shape).astype(dtype)
    x64, dy64 = x.astype(F64), dy.astype(F64)
    sg = 1 / (1 + np.exp(-x64))
    cases = [
        (nn.ReLU(), np.maximum(x64, 0), np.where(x64 > 0, dy64, 0.0)),
        (nn.LeakyReLU(), np.where(x64 > 0, x64, 0.01 * x64), np.where(x64 > 0, dy64, 0.01 * dy64)),
        (nn.LeakyReLU(0.2), np.where(x64 > 0, x64, 0.2 * x64), np.where(x64 > 0, dy64, 0.2 * dy64)),
        (nn.Tanh(), np.tanh(x64), dy64 * (1 - np.tanh(x64) ** 2)),
        (nn.Sigmoid(), sg, dy64 * sg * (1 - sg)),
    ]
    for m, ref, gref in cases:
        y, gx = _run(m, x, dy)
        close(y, ref, dtype, err_msg=repr(m))
        close(gx, gref, dtype, err_msg=repr(m))
    for dim in (-1, 0):
        e = np.exp(x64 - x64.max(dim, keepdims=True))
        s = e / e.sum(dim, keepdims=True)
        y, gx = _run(nn.Softmax(dim=dim), x, dy)
        close(y, s, dtype, err_msg=f"softmax dim={dim}")
        close(gx, s * (dy64 - (dy64 * s).sum(dim, keepdims=True)), dtype, err_msg=f"softmax grad dim={dim}")


def test_flatten_module():
    x = np.arange(2 * 3 * 4 * 5, dtype=F32).reshape(2, 3, 4, 5)
    dy = np.arange(2 * 60, dtype=F32).reshape(2, 60)
    y, gx = _run(nn.Flatten(), x, dy)
    np.testing.assert_array_equal(npy(y), x.reshape(2, 60))
    np.testing.assert_array_equal(npy(gx), dy.reshape(x.shape))
    assert nn.Flatten(0)(dl(x)).shape == (120,)
    assert nn.Flatten(1, 2)(dl(x)).shape == (2, 12, 5)


def _naive_conv(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - s) // stride + 1
    out = np.zeros((n, k, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + r, j * stride:j * stride + s]
            out[:, :, i, j] = np.einsum("ncrs,kcrs->nk", patch, w) + b
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_conv2d_numpy_reference(dtype):
    rng = np.random.default_rng(2)
    m = cast_module(nn.Conv2d(2, 3, 3, stride=2, padding=1), dtype)
    assert m.weight.shape == (3, 2, 3, 3) and m.bias.shape == (3,)
    x = rng.standard_normal((2, 2, 5, 6)).astype(dtype)
    W, b = npy(m.weight).astype(F64), npy(m.bias).astype(F64)
    ref = _naive_conv(x.astype(F64), W, b, 2, 1)
    dy = rng.standard_normal(ref.shape).astype(dtype)
    y, gx = _run(m, x, dy)
    close(y, ref, dtype)
    # gradients by finite differences of the (linear) naive reference: exact for a linear map
    close(m.bias.grad, dy.astype(F64).sum((0, 2, 3)), dtype)
    gw = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[idx] = 1.0
        gw[idx] = (_naive_conv(x.astype(F64), e, np.zeros(3), 2, 1) * dy).sum()
    close(m.weight.grad, gw, dtype)
    gxr = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[idx] = 1.0
        gxr[idx] = (_naive_conv(e, W, np.zeros(3), 2, 1) * dy).sum()
    close(gx, gxr, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_pooling_modules_numpy_reference(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 6)).astype(dtype)
    x64 = x.astype(F64)
    win = x64.reshape(2, 3, 2, 2, 3, 2)  # 2x2 windows
    dy = rng.standard_normal((2, 3, 2, 3)).astype(dtype)
    # max pool: gradient goes to each window's max
    y, gx = _run(nn.MaxPool2d(2), x, dy)
    close(y, win.max((3, 5)), dtype)
    mask = (win == win.max((3, 5), keepdims=True))
    close(gx, (mask * dy.astype(F64)[:, :, :, None, :, None]).reshape(x.shape), dtype)
    # avg pool
    y, gx = _run(nn.AvgPool2d(2), x, dy)
    close(y, win.mean((3, 5)), dtype)
    close(gx, np.broadcast_to(dy.astype(F64)[:, :, :, None, :, None] / 4, win.shape).reshape(x.shape), dtype)
    # adaptive avg pool: global and a divisible output size
    y, gx = _run(nn.AdaptiveAvgPool2d(1), x, np.ones((2, 3, 1, 1), dtype))
    close(y, x64.mean((2, 3), keepdims=True), dtype)
    close(gx, np.full(x.shape, 1 / 24), dtype)
    y, gx = _run(nn.AdaptiveAvgPool2d((2, 3)), x, dy)
    close(y, win.mean((3, 5)), dtype)
    # stride and padding arguments
    y = nn.MaxPool2d(3, stride=1, padding=1)(dl(x))
    xp = np.pad(x64, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ref = np.max([xp[:, :, i:i + 4, j:j + 6] for i in range(3) for j in range(3)], axis=0)
    close(y, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)], ids=["bn1d", "bn2d"])
def test_batchnorm_numpy_reference(shape, dtype):
    rng = np.random.default_rng(4)
    m = cast_module((nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(3), dtype)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    bshape = (1, 3) if len(shape) == 2 else (1, 3, 1, 1)
    with dlcore.no_grad():
        m.weight.copy_(dl([1.5, 0.5, 2.0], dtype))
        m.bias.copy_(dl([0.1, -0.2, 0.3], dtype))
    g, b = np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3])
    rm, rv = np.zeros(3), np.ones(3)
    n = int(np.prod(shape) // 3)
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        x64 = x.astype(F64)
        mu, var = x64.mean(axes), x64.var(axes)
        xhat = (x64 - mu.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5)
        dy = rng.standard_normal(shape).astype(dtype)
        m.zero_grad()
        y, gx = _run(m, x, dy)
        close(y, xhat * g.reshape(bshape) + b.reshape(bshape), dtype)
        d64 = dy.astype(F64)
        close(m.bias.grad, d64.sum(axes), dtype)
        close(m.weight.grad, (d64 * xhat).sum(axes), dtype)
        dxhat = d64 * g.reshape(bshape)
        gref = (dxhat - dxhat.mean(axes, keepdims=True) - xhat * (dxhat * xhat).mean(axes, keepdims=True)) \
            / np.sqrt(var.reshape(bshape) + 1e-5)
        close(gx, gref, dtype)
        rm = 0.9 * rm + 0.1 * mu
        rv = 0.9 * rv + 0.1 * var * n / (n - 1)
        close(m.running_mean, rm, dtype)
        close(m.running_var, rv, dtype)
    assert int(m.num_batches_tracked.item()) == 3
    m.eval()
    x = rng.standard_normal(shape).astype(dtype)
    ref = (x.astype(F64) - rm.reshape(bshape)) / np.sqrt(rv.reshape(bshape) + 1e-5) * g.reshape(bshape) \
        + b.reshape(bshape)
    close(m(dl(x)), ref, dtype)
    assert int(m.num_batches_tracked.item()) == 3  # eval does not count batches
    close(m.running_mean, rm, dtype)
    with pytest.raises(ValueError):
        m(dlcore.randn(*shape[:1], 4, *shape[2:]))


def test_dropout_module():
    dlcore.manual_seed(0)
    x = dlcore.ones(200, 100)
    d = nn.Dropout(0.3)
    y = npy(d(x))
    kept = y[y != 0]
    np.testing.assert_allclose(kept, 1 / 0.7, rtol=1e-6)
    assert abs((y == 0).mean() - 0.3) < 0.02
    d.eval()
    np.testing.assert_array_equal(npy(d(x)), 1.0)
    np.testing.assert_array_equal(npy(nn.Dropout(0.0)(x)), 1.0)
    np.testing.assert_array_equal(npy(nn.Dropout(1.0)(x)), 0.0)
    # gradient uses the same mask
    d.train()
    xt = dlcore.ones(50, 40).requires_grad_()
    y = d(xt)
    y.sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), npy(y), rtol=1e-6)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


# ----------------------------------------------------------------------------------------
# losses against numpy references
# ----------------------------------------------------------------------------------------

def _reduce(v, reduction):
    return v.mean() if reduction == "mean" else v.sum() if reduction == "sum" else v


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_loss_modules_numpy_reference(reduction, dtype):
    rng = np.random.default_rng(5)
    s = (rng.standard_normal((7, 4)) * 2).astype(dtype)
    y = rng.integers(0, 4, 7)
    s64 = s.astype(F64)
    lse = np.log(np.exp(s64 - s64.max(1, keepdims=True)).sum(1)) + s64.max(1)
    logp = s64 - lse[:, None]
    p = np.exp(logp)
    onehot = np.eye(4)[y]
    r = np.arange(7)
    w = 1.0 / 7 if reduction == "mean" else 1.0

    def loss_and_grad(m, inp):
        t = dl(inp).requires_grad_()
        out = m(t, dl(y))
        if reduction == "none":
            out.backward(dlcore.ones(*out.shape, dtype=out.dtype))
        else:
            out.backward()
        return out, t.grad

    out, g = loss_and_grad(nn.CrossEntropyLoss(reduction=reduction), s)
    close(out, _reduce(-logp[r, y], reduction), dtype)
    close(g, (p - onehot) * w, dtype)

    out, g = loss_and_grad(nn.NLLLoss(reduction=reduction), s)
    close(out, _reduce(-s64[r, y], reduction), dtype)
    close(g, -onehot * w, dtype)

    for margin in (1.0, 0.5):
        h = np.maximum(0, s64 - s64[r, y][:, None] + margin) * (1 - onehot)
        active = (h > 0).astype(F64)
        gh = active - onehot * active.sum(1, keepdims=True)
        out, g = loss_and_grad(nn.MulticlassHingeLoss(margin=margin, reduction=reduction), s)
        close(out, _reduce(h.sum(1), reduction), dtype, err_msg="hinge")
        close(g, gh * w, dtype, err_msg="hinge grad")
        for pw in (1, 2):
            hp = h ** pw
            gp = (pw * h ** (pw - 1) * active)
            gp = gp - onehot * gp.sum(1, keepdims=True)
            out, g = loss_and_grad(nn.MultiMarginLoss(p=pw, margin=margin, reduction=reduction), s)
            close(out, _reduce(hp.sum(1) / 4, reduction), dtype, err_msg=f"multi_margin p={pw}")
            close(g, gp / 4 * w, dtype, err_msg=f"multi_margin grad p={pw}")

    tgt = rng.standard_normal((7, 4)).astype(dtype)
    t = dl(s).requires_grad_()
    out = nn.MSELoss(reduction=reduction)(t, dl(tgt))
    (out.backward(dlcore.ones(*out.shape, dtype=out.dtype)) if reduction == "none" else out.backward())
    d = s64 - tgt.astype(F64)
    close(out, _reduce(d ** 2, reduction), dtype)
    close(t.grad, 2 * d / (28 if reduction == "mean" else 1), dtype)


def test_loss_modules_defaults_and_validation():
    assert nn.CrossEntropyLoss().reduction == "mean"
    assert nn.MultiMarginLoss().p == 1 and nn.MultiMarginLoss().margin == 1.0
    assert nn.MulticlassHingeLoss().margin == 1.0
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError):
        nn.MSELoss()(dlcore.zeros(3, 2), dlcore.zeros(3))
    with pytest.raises(Exception):
        nn.CrossEntropyLoss()(dlcore.zeros(3, 2), dlcore.tensor([0, 1]))


# ----------------------------------------------------------------------------------------
# layers and losses against PyTorch with copied weights
# ----------------------------------------------------------------------------------------

LAYERS = [
    ("linear", lambda m: m.Linear(6, 4), (5, 6)),
    ("linear_nobias", lambda m: m.Linear(6, 4, bias=False), (3, 2, 6)),
    ("conv", lambda m: m.Conv2d(3, 4, 3), (2, 3, 7, 6)),
    ("conv_s2p1", lambda m: m.Conv2d(3, 4, (3, 2), stride=2, padding=1), (2, 3, 7, 6)),
    ("conv_dil_grp", lambda m: m.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False), (2, 4, 6, 6)),
    ("conv_same", lambda m: m.Conv2d(2, 3, 5, padding="same"), (2, 2, 6, 5)),
    ("maxpool", lambda m: m.MaxPool2d(2), (2, 3, 6, 6)),
    ("maxpool_ceil", lambda m: m.MaxPool2d(3, stride=2, ceil_mode=True), (2, 2, 7, 6)),
    ("avgpool_nopad_count", lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 2, 7, 5)),
    ("maxpool_s1p1", lambda m: m.MaxPool2d(3, stride=1, padding=1), (2, 2, 5, 5)),
    ("avgpool", lambda m: m.AvgPool2d(2), (2, 3, 6, 6)),
    ("avgpool_s1p1", lambda m: m.AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 5)),
    ("adaptive1", lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 5, 4)),
    ("adaptive2", lambda m: m.AdaptiveAvgPool2d((2, 2)), (2, 3, 6, 4)),
    ("flatten", lambda m: m.Flatten(), (2, 3, 4, 2)),
    ("relu", lambda m: m.ReLU(), (4, 5)),
    ("leaky", lambda m: m.LeakyReLU(0.1), (4, 5)),
    ("leaky_default", lambda m: m.LeakyReLU(), (4, 5)),
    ("tanh", lambda m: m.Tanh(), (4, 5)),
    ("sigmoid", lambda m: m.Sigmoid(), (4, 5)),
    ("softmax", lambda m: m.Softmax(dim=1), (4, 5)),
    ("softmax0", lambda m: m.Softmax(dim=0), (4, 5)),
    ("softmax4d", lambda m: m.Softmax(dim=1), (2, 3, 2, 2)),
    ("identity", lambda m: m.Identity(), (3, 4)),
    ("bn1d", lambda m: m.BatchNorm1d(5), (6, 5)),
    ("bn2d", lambda m: m.BatchNorm2d(3, momentum=0.2, eps=1e-3), (4, 3, 3, 2)),
    ("bn2d_noaffine", lambda m: m.BatchNorm2d(3, affine=False), (4, 3, 3, 2)),
    ("mlp", lambda m: m.Sequential(m.Linear(4, 8), m.ReLU(), m.Linear(8, 3)), (5, 4)),
    ("cnn", lambda m: m.Sequential(m.Conv2d(1, 2, 3, padding=1), m.ReLU(), m.MaxPool2d(2), m.Flatten(),
                                   m.Linear(2 * 3 * 3, 3)), (2, 1, 6, 6)),
]


def _copy_to_torch(torch, m, tm, dtype):
    tm.to(torch.float64 if dtype == F64 else torch.float32)
    sd = {k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()}
    tm.load_state_dict(sd, strict=True)
    return tm


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_vs_torch(name, make, shape, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    dlcore.manual_seed(1)
    m = cast_module(make(nn), dtype)
    tm = make(torch.nn)
    _copy_to_torch(torch, m, tm, dtype)
    # same parameter names, in the same order, with the same shapes
    assert [(n, tuple(p.shape)) for n, p in m.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    for step in range(2):  # two steps: BatchNorm running statistics must keep matching
        x = (rng.standard_normal(shape) * 2).astype(dtype)
        xd = dl(x).requires_grad_()
        xt = torch.tensor(x, requires_grad=True)
        yd, yt = m(xd), tm(xt)
        dy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        m.zero_grad()
        tm.zero_grad()
        yd.backward(dl(dy))
        yt.backward(torch.from_numpy(dy))
        close(yd, yt.detach().numpy(), dtype, err_msg=f"{name} output")
        close(xd.grad, xt.grad.numpy(), dtype, err_msg=f"{name} input grad")
        tparams = dict(tm.named_parameters())
        for n, p in m.named_parameters():
            close(p.grad, tparams[n].grad.numpy(), dtype, err_msg=f"{name} grad of {n}")
    tsd = tm.state_dict()
    for k, v in m.state_dict().items():
        close(v.numpy().astype(F64), tsd[k].numpy().astype(F64), dtype, err_msg=f"{name} state {k}")
    m.eval()
    tm.eval()
    x = rng.standard_normal(shape).astype(dtype)
    close(m(dl(x)), tm(torch.from_numpy(x)).detach().numpy(), dtype, err_msg=f"{name} eval output")


LOSSES = [
    ("ce", lambda m, r: m.CrossEntropyLoss(reduction=r)),
    ("ce_smooth", lambda m, r: m.CrossEntropyLoss(reduction=r, label_smoothing=0.2)),
    ("nll", lambda m, r: m.NLLLoss(reduction=r)),
    ("mm", lambda m, r: m.MultiMarginLoss(reduction=r)),
    ("mm_p2", lambda m, r: m.MultiMarginLoss(p=2, margin=0.7, reduction=r)),
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,make", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_vs_torch(name, make, reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    s = (rng.standard_normal((8, 5)) * 2).astype(dtype)
    y = rng.integers(0, 5, 8)
    sd, st = dl(s).requires_grad_(), torch.tensor(s, requires_grad=True)
    ld = make(nn, reduction)(sd, dl(y))
    lt = make(torch.nn, reduction)(st, torch.from_numpy(y))
    close(ld, lt.detach().numpy(), dtype, err_msg=name)
    up = rng.standard_normal(tuple(lt.shape)).astype(dtype)
    ld.backward(dl(up))
    lt.backward(torch.from_numpy(up))
    close(sd.grad, st.grad.numpy(), dtype, err_msg=f"{name} grad")


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_hinge_vs_torch(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    ad, at = dl(a).requires_grad_(), torch.tensor(a, requires_grad=True)
    ld = nn.MSELoss(reduction=reduction)(ad, dl(b))
    lt = torch.nn.MSELoss(reduction=reduction)(at, torch.from_numpy(b))
    close(ld, lt.detach().numpy(), F64)
    ld.sum().backward()
    lt.sum().backward()
    close(ad.grad, at.grad.numpy(), F64)
    # the multiclass SVM loss is C * torch's multi_margin_loss (torch divides the sum by C)
    y = rng.integers(0, 3, 6)
    hd = nn.MulticlassHingeLoss(reduction=reduction)(dl(a), dl(y))
    ht = torch.nn.MultiMarginLoss(reduction=reduction)(torch.from_numpy(a), torch.from_numpy(y)) * 3
    close(hd, ht.numpy(), F64)


@pytest.mark.torch
def test_batchnorm_running_stats_and_eval_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    m = nn.BatchNorm2d(3, momentum=0.3).double()
    tm = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    for i in range(6):
        x = rng.standard_normal((5, 3, 4, 4)) * (i + 1) + i
        m(dl(x))
        tm(torch.from_numpy(x))
    close(m.running_mean, tm.running_mean.numpy(), F64)
    close(m.running_var, tm.running_var.numpy(), F64)
    assert int(m.num_batches_tracked.item()) == int(tm.num_batches_tracked) == 6
    m.eval()
    tm.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    close(m(dl(x)), tm(torch.from_numpy(x)).detach().numpy(), F64)
    # without running stats, eval uses the batch statistics (as torch)
    m2, tm2 = nn.BatchNorm1d(4, track_running_stats=False).double(), \
        torch.nn.BatchNorm1d(4, track_running_stats=False).double()
    m2.eval()
    tm2.eval()
    x = rng.standard_normal((6, 4))
    close(m2(dl(x)), tm2(torch.from_numpy(x)).detach().numpy(), F64)
    assert set(m2.state_dict()) == set(tm2.state_dict())


# ----------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------

def _uniform_check(w, bound, tol=0.03):
    w = np.asarray(w, dtype=F64).ravel()
    assert np.all(np.abs(w) <= bound * (1 + 1e-6)), f"values beyond the bound {bound}"
    assert np.abs(w).max() > bound * 0.99
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=tol)
    assert abs(w.mean()) < bound * 0.02


def _normal_check(w, std, tol=0.03):
    w = np.asarray(w, dtype=F64).ravel()
    np.testing.assert_allclose(w.std(), std, rtol=tol)
    assert abs(w.mean()) < std * 0.02
    # gaussian tails: ~4.6% beyond 2 std
    assert 0.035 < (np.abs(w) > 2 * std).mean() < 0.057


def test_default_init_linear_matches_pytorch_formula():
    dlcore.manual_seed(0)
    m = nn.Linear(500, 400)
    bound = 1 / math.sqrt(500)
    _uniform_check(npy(m.weight), bound)
    b = npy(m.bias)
    assert np.all(np.abs(b) <= bound) and np.abs(b).max() > 0.9 * bound and b.std() > 0.4 * bound
    # different layers get different values
    assert not np.array_equal(npy(nn.Linear(500, 400).weight), npy(m.weight))


def test_default_init_conv2d_matches_pytorch_formula():
    dlcore.manual_seed(0)
    m = nn.Conv2d(64, 128, 3)
    fan_in = 64 * 9
    bound = 1 / math.sqrt(fan_in)
    _uniform_check(npy(m.weight), bound)
    b = npy(m.bias)
    assert np.all(np.abs(b) <= bound) and np.abs(b).max() > 0.8 * bound
    g = nn.Conv2d(8, 16, (3, 5), groups=2)
    fan_in = 4 * 15
    _uniform_check(npy(g.weight), 1 / math.sqrt(fan_in), tol=0.1)


@pytest.mark.torch
def test_default_init_bounds_equal_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    dlcore.manual_seed(0)
    for make, fan_in in ((lambda m: m.Linear(300, 200), 300), (lambda m: m.Conv2d(16, 32, 5), 16 * 25)):
        a, t = make(nn), make(torch.nn)
        bound = 1 / math.sqrt(fan_in)
        for (n, p), (tn, tp) in zip(a.named_parameters(), t.named_parameters()):
            assert n == tn and tuple(p.shape) == tuple(tp.shape)
            pa, pt = np.abs(npy(p)), np.abs(tp.detach().numpy())
            assert pa.max() <= bound * (1 + 1e-6) and pt.max() <= bound * (1 + 1e-6)
            if p.numel() >= 1000:  # statistics of a small bias are too noisy to compare
                np.testing.assert_allclose(pa.max(), pt.max(), rtol=0.01)
                np.testing.assert_allclose(p.numpy().std(), tp.detach().numpy().std(), rtol=0.05)


def test_init_functions_statistics():
    dlcore.manual_seed(3)
    w = dlcore.empty(400, 300)
    fan_in, fan_out = 300, 400
    assert init.kaiming_uniform_(w) is w
    _uniform_check(w.numpy(), math.sqrt(2.0) * math.sqrt(3.0 / fan_in))
    init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    _uniform_check(w.numpy(), math.sqrt(6.0 / fan_out))
    init.kaiming_normal_(w)
    _normal_check(w.numpy(), math.sqrt(2.0 / fan_in))
    init.kaiming_normal_(w, a=0.2, mode="fan_out")
    _normal_check(w.numpy(), math.sqrt(2.0 / (1 + 0.04)) / math.sqrt(fan_out))
    init.xavier_uniform_(w)
    _uniform_check(w.numpy(), math.sqrt(6.0 / (fan_in + fan_out)))
    init.xavier_uniform_(w, gain=2.0)
    _uniform_check(w.numpy(), 2.0 * math.sqrt(6.0 / (fan_in + fan_out)))
    init.xavier_normal_(w)
    _normal_check(w.numpy(), math.sqrt(2.0 / (fan_in + fan_out)))
    init.normal_(w)
    _normal_check(w.numpy(), 1.0)
    init.normal_(w, mean=3.0, std=0.5)
    np.testing.assert_allclose(w.numpy().mean(), 3.0, atol=0.01)
    np.testing.assert_allclose(w.numpy().std(), 0.5, rtol=0.03)
    init.uniform_(w)
    assert w.numpy().min() >= 0 and w.numpy().max() < 1 and abs(w.numpy().mean() - 0.5) < 0.01
    init.uniform_(w, -2.0, 3.0)
    assert w.numpy().min() >= -2 and w.numpy().max() <= 3 and abs(w.numpy().mean() - 0.5) < 0.03
    assert init.zeros_(w) is w
    np.testing.assert_array_equal(w.numpy(), 0.0)
    init.ones_(w)
    np.testing.assert_array_equal(w.numpy(), 1.0)
    # conv-shaped tensors use the receptive field in the fans
    c = dlcore.empty(32, 16, 3, 3)
    init.kaiming_normal_(c, nonlinearity="relu")
    _normal_check(c.numpy(), math.sqrt(2.0 / (16 * 9)), tol=0.05)
    init.xavier_uniform_(c)
    _uniform_check(c.numpy(), math.sqrt(6.0 / (16 * 9 + 32 * 9)), tol=0.05)
    with pytest.raises(ValueError):
        init.xavier_uniform_(dlcore.empty(5))
    with pytest.raises(ValueError):
        init.kaiming_uniform_(w, mode="fan_avg")


def test_init_on_parameters_records_no_graph_and_generators_reproduce():
    m = nn.Linear(20, 10)
    init.normal_(m.weight)
    assert m.weight.is_leaf and m.weight.requires_grad and m.weight.grad_fn is None
    a = init.uniform_(dlcore.empty(50), generator=dlcore.Generator(7)).numpy().copy()
    b = init.uniform_(dlcore.empty(50), generator=dlcore.Generator(7)).numpy().copy()
    np.testing.assert_array_equal(a, b)
    dlcore.manual_seed(42)
    w1 = npy(nn.Linear(8, 8).weight)
    dlcore.manual_seed(42)
    w2 = npy(nn.Linear(8, 8).weight)
    np.testing.assert_array_equal(w1, w2)
    assert nn.Linear(3, 2, dtype=dlcore.float64).weight.dtype == dlcore.float64


@pytest.mark.torch
def test_calculate_gain_vs_torch():
    torch = pytest.importorskip("torch")
    for nl, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                      ("leaky_relu", 0.2), ("conv2d", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
