"""Automatic differentiation: reverse mode (``backward``, ``grad``), forward mode
(``jvp``) and the numerical gradient check (``gradcheck``).

The graph and the engine live in C++ (``cpp/src/autograd``); this module is the
Python face of it.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["backward", "grad", "jvp", "numerical_gradient", "gradcheck", "GradcheckError", "no_grad",
           "enable_grad", "set_grad_enabled", "is_grad_enabled", "differentiable_ops"]

TensorOrTensors = Union[Tensor, Sequence[Tensor]]
is_grad_enabled = _core.is_grad_enabled
differentiable_ops = _core.differentiable_ops


class _GradMode:
    """Context manager and decorator that sets grad mode (thread-local) and restores it."""

    mode = True

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core._set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _core._set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """No graph is recorded inside: ``with dlcore.no_grad(): ...`` or ``@dlcore.no_grad()``."""

    mode = False


class enable_grad(_GradMode):
    """Turns recording back on inside a ``no_grad`` region."""

    mode = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` acts at once (like PyTorch) and also works as a context manager."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = _core.is_grad_enabled()
        _core._set_grad_enabled(self.mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _core._set_grad_enabled(self._prev)
        return False


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def backward(tensors: TensorOrTensors, grad_tensors=None, retain_graph: Optional[bool] = None,
             create_graph: bool = False) -> None:
    """Accumulate d(tensors)/d(leaf) into the ``.grad`` of every leaf that requires grad."""
    roots = _as_list(tensors)
    grads = _as_list(grad_tensors) or [None] * len(roots)
    if retain_graph is None:
        retain_graph = create_graph
    _core._run_backward(roots, grads, bool(retain_graph), bool(create_graph), [], False)


def grad(outputs: TensorOrTensors, inputs: TensorOrTensors, grad_outputs=None, retain_graph: Optional[bool] = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated into ``.grad``).

    With ``create_graph=True`` the result has a graph of its own, so it can be
    differentiated again (second derivatives).
    """
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    if not ins:
        raise ValueError("grad: `inputs` is empty")
    gouts = _as_list(grad_outputs) or [None] * len(outs)
    if retain_graph is None:
        retain_graph = create_graph
    return tuple(_core._run_backward(outs, gouts, bool(retain_graph), bool(create_graph), ins, bool(allow_unused)))


def jvp(f: Callable, primals: TensorOrTensors, tangents: TensorOrTensors):
    """Forward mode: ``(f(*primals), J_f(primals) @ tangents)`` in one forward pass.

    Each op propagates the tangent with its JVP rule, defined beside its VJP.
    Returns tensors (or tuples when ``f`` returns a tuple), detached from any graph.
    """
    ps, ts = _as_list(primals), _as_list(tangents)
    if len(ps) != len(ts):
        raise ValueError(f"jvp: got {len(ps)} primals but {len(ts)} tangents")
    duals = [_core._make_dual(p, t) for p, t in zip(ps, ts)]
    prev = _core._forward_ad_enabled()
    _core._set_forward_ad_enabled(True)
    try:
        out = f(*duals)
    finally:
        _core._set_forward_ad_enabled(prev)
    outs = _as_list(out)
    primal_out, tangent_out = [], []
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"jvp: f must return tensors, got {type(o).__name__}")
        t = _core._tangent(o)
        if t is None:
            t = _core._full(o.shape, 0.0, o.dtype, o.device)
        primal_out.append(o.detach())
        tangent_out.append(t)
    if isinstance(out, Tensor):
        return primal_out[0], tangent_out[0]
    return tuple(primal_out), tuple(tangent_out)


def _outputs_of(f, args) -> list:
    with no_grad():
        return [o for o in _as_list(f(*args))]


def _perturbed(args, i, j, delta):
    """args with element j (flat index) of input i moved by delta (float64, no graph)."""
    x = args[i].detach().clone()
    flat = x.reshape(-1)
    flat[j] = flat[j].item() + delta
    return [x if k == i else a for k, a in enumerate(args)]


def numerical_gradient(f: Callable, inputs: TensorOrTensors, eps: float = 1e-6) -> tuple:
    """Central differences of a scalar-valued ``f``: one gradient tensor per input.

    d f / d x_j ~ (f(x + eps e_j) - f(x - eps e_j)) / (2 eps). Use float64 inputs.
    """
    args = _as_list(inputs)
    out = _outputs_of(f, args)
    if len(out) != 1 or out[0].numel() != 1:
        raise ValueError(f"numerical_gradient: f must return a single scalar, got shapes {[o.shape for o in out]}")
    grads = []
    for i, a in enumerate(args):
        g = np.zeros(a.numel(), dtype=np.float64)
        for j in range(a.numel()):
            hi = _outputs_of(f, _perturbed(args, i, j, eps))[0].item()
            lo = _outputs_of(f, _perturbed(args, i, j, -eps))[0].item()
            g[j] = (hi - lo) / (2 * eps)
        grads.append(_core.from_numpy(g.reshape(a.shape)).to(a.device, a.dtype))
    return tuple(grads)


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` with the input, output, element and both values."""


def _numerical_jacobians(f, args, eps, n_out_elems):
    """J[k][i]: (numel(out_k), numel(in_i)) by central differences."""
    jac = [[None] * len(args) for _ in n_out_elems]
    for i, a in enumerate(args):
        cols = []
        for j in range(a.numel()):
            hi = _outputs_of(f, _perturbed(args, i, j, eps))
            lo = _outputs_of(f, _perturbed(args, i, j, -eps))
            cols.append([(h.double().cpu().numpy().reshape(-1) - lw.double().cpu().numpy().reshape(-1)) / (2 * eps)
                         for h, lw in zip(hi, lo)])
        for k, n in enumerate(n_out_elems):
            jac[k][i] = np.stack([c[k] for c in cols], axis=1) if cols else np.zeros((n, 0))
    return jac


def _reverse_jacobians(f, args, n_out_elems):
    outs = [o for o in _as_list(f(*args))]
    jac = [[np.zeros((n, a.numel())) for a in args] for n in n_out_elems]
    for k, o in enumerate(outs):
        if not o.requires_grad:
            continue
        for m in range(o.numel()):
            seed = np.zeros(o.numel(), dtype=np.float64)
            seed[m] = 1.0
            g = _core.from_numpy(seed.reshape(o.shape)).to(o.device, o.dtype)
            gs = grad(o, args, g, retain_graph=True, allow_unused=True)
            for i, gi in enumerate(gs):
                if gi is not None:
                    jac[k][i][m, :] = gi.double().cpu().numpy().reshape(-1)
    return jac


def _forward_jacobians(f, args, n_out_elems):
    jac = [[np.zeros((n, a.numel())) for a in args] for n in n_out_elems]
    for i, a in enumerate(args):
        for j in range(a.numel()):
            tangents = []
            for k, b in enumerate(args):
                t = np.zeros(b.numel(), dtype=np.float64)
                if k == i:
                    t[j] = 1.0
                tangents.append(_core.from_numpy(t.reshape(b.shape)).to(b.device, b.dtype))
            _, touts = jvp(f, [b.detach() for b in args], tangents)
            for k, t in enumerate(_as_list(touts)):
                jac[k][i][:, j] = t.double().cpu().numpy().reshape(-1)
    return jac


def _compare(kind, analytic, numeric, atol, rtol):
    for k, row in enumerate(numeric):
        for i, n in enumerate(row):
            a = analytic[k][i]
            bad = np.abs(a - n) > atol + rtol * np.abs(n)
            if bad.any():
                m, j = np.unravel_index(np.argmax(np.abs(a - n) * bad), a.shape)
                raise GradcheckError(
                    f"gradcheck ({kind}): Jacobian mismatch for output {k} with respect to input {i} "
                    f"at output element {m}, input element {j}: numerical {n[m, j]:.10g}, "
                    f"analytical {a[m, j]:.10g} (atol={atol}, rtol={rtol})")


def gradcheck(f: Callable, inputs: TensorOrTensors, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              check_forward_mode: bool = True) -> bool:
    """Compare reverse-mode, forward-mode and central-difference Jacobians of ``f`` at ``inputs``.

    Inputs must be float64 tensors that require grad. Returns True, or raises
    :class:`GradcheckError` naming the input, the output, the worst element and both values.
    """
    args = _as_list(inputs)
    for i, a in enumerate(args):
        if not isinstance(a, Tensor):
            raise TypeError(f"gradcheck: input {i} is not a Tensor")
        if a.requires_grad and a.dtype != _core.dtype.float64:
            raise ValueError(f"gradcheck: input {i} has dtype {a.dtype}; use float64 for finite differences")
    if not any(a.requires_grad for a in args):
        raise ValueError("gradcheck: no input requires grad")
    n_out = [o.numel() for o in _outputs_of(f, args)]
    numeric = _numerical_jacobians(f, args, eps, n_out)
    for i, a in enumerate(args):  # inputs that do not require grad have no analytic Jacobian
        if not a.requires_grad:
            for row in numeric:
                row[i] = np.zeros_like(row[i])
    _compare("reverse mode", _reverse_jacobians(f, args, n_out), numeric, atol, rtol)
    if check_forward_mode:
        fwd = _forward_jacobians(f, args, n_out)
        for i, a in enumerate(args):
            if not a.requires_grad:
                for row in fwd:
                    row[i] = np.zeros_like(row[i])
        _compare("forward mode", fwd, numeric, atol, rtol)
    return True


# ---- Tensor methods ----

class RemovableHandle:
    """Returned by ``Tensor.register_hook``; ``remove()`` turns the hook off."""

    def __init__(self):
        self.active = True

    def remove(self) -> None:
        self.active = False


def _register_hook(self: Tensor, hook: Callable) -> RemovableHandle:
    """``hook(grad)`` runs when this tensor's gradient is computed; it may return a replacement."""
    handle = RemovableHandle()

    def wrapper(g):
        return hook(g) if handle.active else None

    self._register_hook(wrapper)
    return handle


def _backward(self: Tensor, gradient: Optional[Tensor] = None, retain_graph: Optional[bool] = None,
              create_graph: bool = False) -> None:
    """Reverse pass from this tensor; gradients accumulate into leaves' ``.grad``.

    A non-scalar tensor needs ``gradient`` (the vector of the vector-Jacobian product).
    The graph is freed afterwards unless ``retain_graph=True``.
    """
    backward(self, gradient, retain_graph, create_graph)


Tensor.backward = _backward
Tensor.register_hook = _register_hook
