"""Optimisers and learning-rate schedulers with PyTorch's names and update rules.

Each parameter update is one fused C++ kernel call (``dlcore._core.optim``),
not a chain of tensor ops.
"""
from __future__ import annotations

import math
from typing import Dict, List

from .. import _core
from .._core import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]


class Optimizer:
    """Base class: parameter groups (dicts with 'params' and hyper-parameters) and per-parameter state."""

    def __init__(self, params, defaults: Dict) -> None:
        self.defaults = dict(defaults)
        self.param_groups: List[Dict] = []
        self.state: Dict[int, Dict] = {}  # keyed by id(param)
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, got a single Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: Dict) -> None:
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        if not ps:
            raise ValueError("optimizer got a parameter group with no parameters")
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimise Tensors, got {type(p).__name__}")
            if not p.is_floating_point():
                raise TypeError(f"optimizer can only optimise float tensors, got dtype {p.dtype}")
            if not p.is_leaf:
                raise ValueError("optimizer can't optimise a non-leaf Tensor (it has a grad_fn)")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in ps):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: Dict) -> None:
        lr = group["lr"]
        if not isinstance(lr, (int, float)) or lr < 0 or math.isnan(lr):
            raise ValueError(f"invalid learning rate: {lr} (must be >= 0)")
        if group.get("weight_decay", 0.0) < 0:
            raise ValueError(f"invalid weight_decay: {group['weight_decay']} (must be >= 0)")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()

    def step(self) -> None:
        raise NotImplementedError

    def _params(self) -> List[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> Dict:
        """{'state': {index: {name: tensor or number}}, 'param_groups': [hyper-parameters with param indices]}."""
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        state = {index[k]: {n: (v.clone() if isinstance(v, Tensor) else v) for n, v in s.items()}
                 for k, s in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, optimizer has {len(self.param_groups)}")
        params = self._params()
        for g, sg in zip(self.param_groups, groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded parameter group has {len(sg['params'])} parameters, "
                                 f"optimizer's has {len(g['params'])}")
            for k, v in sg.items():
                if k != "params":
                    g[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            st = {}
            for n, v in s.items():
                if isinstance(v, Tensor):
                    if v.shape != p.shape:
                        raise ValueError(f"optimizer state '{n}' of parameter {i} has shape {v.shape}, "
                                         f"the parameter has shape {p.shape}")
                    v = v.to(p.device, p.dtype).contiguous().clone()
                st[n] = v
            self.state[id(p)] = st


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (the L2 regulariser)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        if momentum < 0:
            raise ValueError(f"invalid momentum: {momentum} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                                      weight_decay=weight_decay))

    def step(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state.setdefault(id(p), {})
                buf, first = None, False
                if g["momentum"] != 0:
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = _core._empty(p.shape, p.dtype, p.device)
                        st["momentum_buffer"] = buf
                        first = True
                _core.optim.sgd_step(p, p.grad, buf, float(g["lr"]), float(g["momentum"]), float(g["dampening"]),
                                     bool(g["nesterov"]), float(g["weight_decay"]), first)


class Adam(Optimizer):
    """Adam (bias-corrected); ``weight_decay`` adds wd * p to the gradient (L2), as PyTorch's Adam."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"invalid betas: {betas} (each must be in [0, 1))")
        if eps < 0:
            raise ValueError(f"invalid eps: {eps}")
        super().__init__(params, dict(lr=lr, betas=(float(b1), float(b2)), eps=eps, weight_decay=weight_decay))

    def step(self) -> None:
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state.setdefault(id(p), {})
                if "step" not in st:
                    st["step"] = 0
                    st["exp_avg"] = _core._full(p.shape, 0.0, p.dtype, p.device)
                    st["exp_avg_sq"] = _core._full(p.shape, 0.0, p.dtype, p.device)
                st["step"] += 1
                _core.optim.adam_step(p, p.grad, st["exp_avg"], st["exp_avg_sq"], st["step"], float(g["lr"]), b1, b2,
                                      float(g["eps"]), float(g["weight_decay"]), self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * wd before the Adam update."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


from . import lr_scheduler  # noqa: E402,F401
