"""Tests of dlcore.optim (SGD, Adam, AdamW) and dlcore.optim.lr_scheduler: updates against
hand-written numpy references and against PyTorch for 20 steps (``-m torch``), parameter
groups, state_dict round trips that continue identically, schedules against
torch.optim.lr_scheduler, and input validation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dlcore
import dlcore.nn as nn
from dlcore.optim import SGD, Adam, AdamW
from dlcore.optim import lr_scheduler as dl_sched

F32, F64 = np.float32, np.float64
DTYPES = [F32, F64]
DT_IDS = ["f32", "f64"]
STEPS = 20

SHAPES = [(5, 3), (3,)]


def _problem(dtype, seed=0):
    """Initial weights and per-step data for a loss that depends on the weights (so the
    gradient changes along the trajectory): L = sum(w * a_t) + 0.5 * sum(w^2 * b_t)."""
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    data = [[(rng.standard_normal(s).astype(dtype), rng.random(s).astype(dtype)) for s in SHAPES]
            for _ in range(STEPS)]
    return w0, data


def _dl_loss(params, step_data):
    total = None
    for p, (a, b) in zip(params, step_data):
        term = (p * dlcore.from_numpy(a)).sum() + (p * p * dlcore.from_numpy(b)).sum() * 0.5
        total = term if total is None else total + term
    return total


def _run_dl(cls, kw, w0, data, groups=None, steps=None):
    params = [nn.Parameter(dlcore.from_numpy(w.copy())) for w in w0]
    opt = cls(params if groups is None else groups(params), **kw)
    for t, step_data in enumerate(data[:steps]):
        opt.zero_grad()
        _dl_loss(params, step_data).backward()
        opt.step()
    return [p.numpy().copy() for p in params], opt, params


def _run_torch(torch, cls, kw, w0, data, groups=None):
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in w0]
    opt = cls(params if groups is None else groups(params), **kw)
    for step_data in data:
        opt.zero_grad()
        loss = sum((p * torch.from_numpy(a)).sum() + (p * p * torch.from_numpy(b)).sum() * 0.5
                   for p, (a, b) in zip(params, step_data))
        loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in params]


def _assert_close(got, ref, dtype, rtol=1e-6, err_msg=""):
    for g, r in zip(got, ref):
        assert g.dtype == np.dtype(dtype), f"{err_msg}: dtype {g.dtype}"
        scale = float(np.abs(r).max())
        # float32: 1e-6 relative to the weights' magnitude (element-wise relative error is meaningless
        # for entries that pass near 0); float64: far tighter
        tol = rtol if np.dtype(dtype) == F32 else 1e-12
        np.testing.assert_allclose(g.astype(F64), r.astype(F64), rtol=tol, atol=tol * scale, err_msg=err_msg)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
]
ADAM_CONFIGS = [
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
    (AdamW, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-5, weight_decay=0.3)),
]


def _cfg_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


# ----------------------------------------------------------------------------------------
# numpy references (no PyTorch needed)
# ----------------------------------------------------------------------------------------

def _grad(w, a, b):
    return a.astype(F64) + w * b.astype(F64)


def _ref_sgd(w0, data, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    ws = [w.astype(F64) for w in w0]
    bufs = [None] * len(ws)
    for step_data in data:
        for i, (a, b) in enumerate(step_data):
            g = _grad(ws[i], a, b) + weight_decay * ws[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ws[i] = ws[i] - lr * g
    return ws


def _ref_adam(w0, data, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    ws = [w.astype(F64) for w in w0]
    m = [np.zeros_like(w) for w in ws]
    v = [np.zeros_like(w) for w in ws]
    for t, step_data in enumerate(data, 1):
        for i, (a, b) in enumerate(step_data):
            g = _grad(ws[i], a, b)
            if decoupled:
                ws[i] = ws[i] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * ws[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mh, vh = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            ws[i] = ws[i] - lr * mh / (np.sqrt(vh) + eps)
    return ws


@pytest.mark.parametrize("kw", SGD_CONFIGS, ids=_cfg_id)
def test_sgd_numpy_reference(kw):
    w0, data = _problem(F64)
    got, _, _ = _run_dl(SGD, kw, w0, data)
    _assert_close(got, _ref_sgd(w0, data, **kw), F64)


@pytest.mark.parametrize("cls,kw", ADAM_CONFIGS, ids=[f"{c.__name__}:{_cfg_id(k)}" for c, k in ADAM_CONFIGS])
def test_adam_numpy_reference(cls, kw):
    w0, data = _problem(F64)
    got, _, _ = _run_dl(cls, kw, w0, data)
    kw = dict(kw)
    if cls is AdamW:
        kw.setdefault("weight_decay", 1e-2)
    _assert_close(got, _ref_adam(w0, data, decoupled=cls is AdamW, **kw), F64)


def test_defaults_follow_pytorch():
    p = [nn.Parameter(dlcore.zeros(2))]
    g = SGD(p, lr=0.1).param_groups[0]
    assert (g["momentum"], g["dampening"], g["nesterov"], g["weight_decay"]) == (0, 0, False, 0)
    g = Adam(p).param_groups[0]
    assert g["lr"] == 1e-3 and tuple(g["betas"]) == (0.9, 0.999) and g["eps"] == 1e-8 and g["weight_decay"] == 0
    g = AdamW(p).param_groups[0]
    assert g["lr"] == 1e-3 and g["weight_decay"] == 1e-2


def test_params_without_grad_are_skipped_and_zero_grad():
    a, b = nn.Parameter(dlcore.ones(3)), nn.Parameter(dlcore.ones(3))
    opt = SGD([a, b], lr=0.5, momentum=0.9)
    (a * 2.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.0)
    np.testing.assert_array_equal(b.numpy(), 1.0)
    opt.zero_grad()
    assert a.grad is None
    (a * 2.0).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), 0.0)


# ----------------------------------------------------------------------------------------
# against PyTorch
# ----------------------------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("kw", SGD_CONFIGS, ids=_cfg_id)
def test_sgd_vs_torch(kw, dtype):
    torch = pytest.importorskip("torch")
    w0, data = _problem(dtype)
    got, _, _ = _run_dl(SGD, kw, w0, data)
    _assert_close(got, _run_torch(torch, torch.optim.SGD, kw, w0, data), dtype, err_msg=str(kw))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("cls,kw", ADAM_CONFIGS, ids=[f"{c.__name__}:{_cfg_id(k)}" for c, k in ADAM_CONFIGS])
def test_adam_vs_torch(cls, kw, dtype):
    torch = pytest.importorskip("torch")
    w0, data = _problem(dtype)
    got, _, _ = _run_dl(cls, kw, w0, data)
    tcls = getattr(torch.optim, cls.__name__)
    _assert_close(got, _run_torch(torch, tcls, kw, w0, data), dtype, err_msg=f"{cls.__name__} {kw}")


GROUP_CASES = [
    (SGD, dict(lr=0.1, momentum=0.9)),
    (Adam, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.05)),
]


@pytest.mark.torch
@pytest.mark.parametrize("cls,kw", GROUP_CASES, ids=[c.__name__ for c, _ in GROUP_CASES])
def test_param_groups_with_different_lr_vs_torch(cls, kw):
    torch = pytest.importorskip("torch")
    w0, data = _problem(F64, seed=3)

    def groups(ps):
        return [{"params": [ps[0]]}, {"params": [ps[1]], "lr": kw["lr"] * 0.1, "weight_decay": 0.2}]

    got, opt, _ = _run_dl(cls, kw, w0, data, groups=groups)
    assert len(opt.param_groups) == 2
    assert opt.param_groups[0]["lr"] == kw["lr"] and opt.param_groups[1]["lr"] == pytest.approx(kw["lr"] * 0.1)
    assert opt.param_groups[1]["weight_decay"] == 0.2
    ref = _run_torch(torch, getattr(torch.optim, cls.__name__), kw, w0, data, groups=groups)
    _assert_close(got, ref, F64)


def test_param_groups_numpy_reference():
    w0, data = _problem(F64, seed=4)
    got, _, _ = _run_dl(SGD, dict(lr=0.1), w0, data,
                        groups=lambda ps: [{"params": [ps[0]], "lr": 0.2}, {"params": [ps[1]], "momentum": 0.5}])
    ref0 = _ref_sgd([w0[0]], [[d[0]] for d in data], lr=0.2)
    ref1 = _ref_sgd([w0[1]], [[d[1]] for d in data], lr=0.1, momentum=0.5)
    _assert_close(got, ref0 + ref1, F64)


# ----------------------------------------------------------------------------------------
# state_dict round trip
# ----------------------------------------------------------------------------------------

ROUND_TRIP = [
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.9, dampening=0.2)),
    (Adam, dict(lr=0.01, weight_decay=0.01)),
    (AdamW, dict(lr=0.01)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("cls,kw", ROUND_TRIP, ids=[f"{c.__name__}:{_cfg_id(k)}" for c, k in ROUND_TRIP])
def test_state_dict_round_trip_continues_identically(cls, kw, dtype):
    w0, data = _problem(dtype, seed=5)
    full, _, _ = _run_dl(cls, kw, w0, data)
    half, opt, _ = _run_dl(cls, kw, w0, data, steps=STEPS // 2)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sorted(sd["state"]) == [0, 1]
    assert sd["param_groups"][0]["params"] == [0, 1]
    # a fresh optimizer (different lr on purpose: the loaded hyper-parameters win) on fresh parameters
    params = [nn.Parameter(dlcore.from_numpy(w.copy())) for w in half]
    opt2 = cls(params, **dict(kw, lr=123.0))
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    # the state dict is a snapshot: stepping the old optimizer does not change it
    before = {k: (v.numpy().copy() if isinstance(v, dlcore.Tensor) else v) for k, v in sd["state"][0].items()}
    for step_data in data[STEPS // 2:]:
        opt2.zero_grad()
        _dl_loss(params, step_data).backward()
        opt2.step()
    for g, f in zip([p.numpy() for p in params], full):
        np.testing.assert_array_equal(g, f)
    for k, v in before.items():
        now = opt.state_dict()["state"][0][k]
        np.testing.assert_array_equal(now.numpy() if isinstance(now, dlcore.Tensor) else now, v)


def test_load_state_dict_rejects_mismatched_optimizer():
    w0, data = _problem(F64)
    _, opt, _ = _run_dl(SGD, dict(lr=0.1, momentum=0.9), w0, data, steps=2)
    sd = opt.state_dict()
    with pytest.raises(ValueError):
        SGD([nn.Parameter(dlcore.zeros(5, 3, dtype=dlcore.float64))], lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError):
        SGD([nn.Parameter(dlcore.zeros(5, 3, dtype=dlcore.float64)), nn.Parameter(dlcore.zeros(4, dtype=dlcore.float64))],
            lr=0.1, momentum=0.9).load_state_dict(sd)


# ----------------------------------------------------------------------------------------
# schedulers
# ----------------------------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("MultiStepLR", dict(milestones=[2, 5, 9], gamma=0.3)),
    ("MultiStepLR", dict(milestones=[8, 3])),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=6)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.75, total_iters=7)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=4)),
]
EPOCHS = 15


def _lr_trace(mod, opt_mod, param_factory, name, kw):
    p0, p1 = param_factory(), param_factory()
    opt = opt_mod.SGD([{"params": [p0]}, {"params": [p1], "lr": 0.05}], lr=0.1, momentum=0.9)
    sched = getattr(mod, name)(opt, **kw)
    out = []
    for _ in range(EPOCHS):
        out.append([g["lr"] for g in opt.param_groups] + list(sched.get_last_lr()))
        opt.step()
        sched.step()
    out.append([g["lr"] for g in opt.param_groups] + list(sched.get_last_lr()))
    return np.array(out)


def _closed_form(name, kw, base, epoch):
    if name == "StepLR":
        return base * kw.get("gamma", 0.1) ** (epoch // kw["step_size"])
    if name == "MultiStepLR":
        return base * kw.get("gamma", 0.1) ** sum(m <= epoch for m in kw["milestones"])
    if name == "CosineAnnealingLR":
        lo = kw.get("eta_min", 0.0)
        return lo + (base - lo) * (1 + math.cos(math.pi * epoch / kw["T_max"])) / 2
    s, e, n = kw.get("start_factor", 1 / 3), kw.get("end_factor", 1.0), kw.get("total_iters", 5)
    return base * (s + (e - s) * min(epoch, n) / n)


@pytest.mark.parametrize("name,kw", SCHEDULES, ids=[f"{n}:{_cfg_id(k)}" for n, k in SCHEDULES])
def test_scheduler_closed_form(name, kw):
    got = _lr_trace(dl_sched, dlcore.optim, lambda: nn.Parameter(dlcore.zeros(1)), name, kw)
    for epoch, row in enumerate(got):
        exp = [_closed_form(name, kw, b, epoch) for b in (0.1, 0.05)]
        np.testing.assert_allclose(row, exp + exp, rtol=1e-9, atol=1e-15, err_msg=f"epoch {epoch}")


@pytest.mark.torch
@pytest.mark.parametrize("name,kw", SCHEDULES, ids=[f"{n}:{_cfg_id(k)}" for n, k in SCHEDULES])
def test_scheduler_vs_torch(name, kw):
    torch = pytest.importorskip("torch")
    import warnings
    got = _lr_trace(dl_sched, dlcore.optim, lambda: nn.Parameter(dlcore.zeros(1)), name, kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _lr_trace(torch.optim.lr_scheduler, torch.optim, lambda: torch.nn.Parameter(torch.zeros(1)), name, kw)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-15)


def test_lr_scheduler_importable_by_pytorch_path():
    """``from torch.optim.lr_scheduler import StepLR`` is the usual import; the same path must work here."""
    import importlib
    mod = importlib.import_module("dlcore.optim.lr_scheduler")
    assert mod.StepLR is dl_sched.StepLR
    assert {"StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR"} <= set(dir(mod))


def test_scheduler_state_dict_round_trip():
    p = nn.Parameter(dlcore.zeros(1))
    opt = SGD([p], lr=0.1)
    s = dl_sched.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    for _ in range(4):
        s.step()
    sd = s.state_dict()
    lr_now = opt.param_groups[0]["lr"]
    p2 = nn.Parameter(dlcore.zeros(1))
    opt2 = SGD([p2], lr=0.1)
    s2 = dl_sched.CosineAnnealingLR(opt2, T_max=10, eta_min=0.01)
    s2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == lr_now and s2.last_epoch == 4
    for _ in range(5):
        s.step()
        s2.step()
        assert s2.get_last_lr() == s.get_last_lr()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# ----------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_no_parameters_raises_value_error(cls):
    with pytest.raises(ValueError):
        cls([], lr=0.1)
    with pytest.raises(ValueError):
        cls(iter([]), lr=0.1)
    with pytest.raises(ValueError):
        cls(nn.ReLU().parameters(), lr=0.1)  # a module without parameters


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_negative_lr_raises_value_error(cls):
    with pytest.raises(ValueError, match="learning rate"):
        cls([nn.Parameter(dlcore.zeros(2))], lr=-0.1)
    with pytest.raises(ValueError):
        cls([{"params": [nn.Parameter(dlcore.zeros(2))], "lr": -1.0}], lr=0.1)


def test_other_bad_hyper_parameters():
    p = [nn.Parameter(dlcore.zeros(2))]
    with pytest.raises(ValueError):
        SGD(p, lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError):
        SGD(p, lr=0.1, nesterov=True)  # nesterov needs momentum (as PyTorch)
    with pytest.raises(ValueError):
        SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError):
        SGD(p, lr=0.1, weight_decay=-1.0)
    with pytest.raises(ValueError):
        Adam(p, betas=(1.0, 0.999))
    with pytest.raises(ValueError):
        Adam(p, eps=-1.0)
    with pytest.raises(TypeError):
        SGD(nn.Parameter(dlcore.zeros(2)), lr=0.1)  # a single tensor, not an iterable
    with pytest.raises(ValueError):
        a = nn.Parameter(dlcore.zeros(2))
        SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError):
        dl_sched.StepLR(SGD(p, lr=0.1), step_size=0)
