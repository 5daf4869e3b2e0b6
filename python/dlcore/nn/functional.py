"""Functional neural-network ops, PyTorch's names and defaults (``torch.nn.functional``).

The heavy ops (convolution, pooling, softmax, cross-entropy, margin losses) are
C++ ops with their own gradients (``dlcore._core.nn``); the rest are short
compositions of differentiable tensor ops, so they are differentiable too.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from .. import _core
from .._core import Tensor
from ..autograd import no_grad

IntOrPair = Union[int, Tuple[int, int], Sequence[int]]

__all__ = ["conv2d", "linear", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "flatten", "relu", "leaky_relu",
           "tanh", "sigmoid", "softmax", "log_softmax", "dropout", "batch_norm", "cross_entropy", "nll_loss",
           "multiclass_hinge_loss", "multi_margin_loss", "mse_loss", "l2_penalty"]


def _pair(v: IntOrPair, name: str) -> Tuple[int, int]:
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if isinstance(v, int):
        return (v, v)
    try:
        a, b = v
        return (int(a), int(b))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None


def _check_tensor(x, name: str, op: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a dlcore.Tensor, got {type(x).__name__}")


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrPair = 1,
           padding: Union[IntOrPair, str] = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of NCHW ``input`` with ``weight`` (K, C/groups, R, S)."""
    _check_tensor(input, "input", "conv2d")
    _check_tensor(weight, "weight", "conv2d")
    dil = _pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if _pair(stride, "stride") != (1, 1):
                raise ValueError("conv2d: padding='same' needs stride 1")
            r, s = weight.shape[2], weight.shape[3]
            if (dil[0] * (r - 1)) % 2 or (dil[1] * (s - 1)) % 2:
                raise ValueError(f"conv2d: padding='same' needs an odd (dilated) kernel, got {r}x{s}")
            padding = (dil[0] * (r - 1) // 2, dil[1] * (s - 1) // 2)
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _core.nn.conv2d(input, weight, bias, _pair(stride, "stride"), _pair(padding, "padding"), dil, int(groups))


def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``input @ weight.T + bias``; weight is (out_features, in_features)."""
    _check_tensor(input, "input", "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} does not match weight of shape {weight.shape} "
                         f"(expected last dim {weight.shape[1]})")
    out = input @ weight.T
    if bias is not None:
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias of shape {bias.shape} does not match {weight.shape[0]} outputs")
        out = out + bias
    return out


def max_pool2d(input: Tensor, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False, return_indices: bool = False):
    """Max over windows; the gradient routes to each window's arg-max. ``stride`` defaults to the kernel size."""
    _check_tensor(input, "input", "max_pool2d")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    out, idx = _core.nn.max_pool2d(input, k, s, _pair(padding, "padding"), _pair(dilation, "dilation"),
                                   bool(ceil_mode))
    return (out, idx) if return_indices else out


def avg_pool2d(input: Tensor, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over windows. ``stride`` defaults to the kernel size."""
    _check_tensor(input, "input", "avg_pool2d")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    return _core.nn.avg_pool2d(input, k, s, _pair(padding, "padding"), bool(ceil_mode), bool(count_include_pad))


def adaptive_avg_pool2d(input: Tensor, output_size: IntOrPair) -> Tensor:
    """Average pooling to a fixed output size: 1x1 (global average) or a size that divides the input."""
    _check_tensor(input, "input", "adaptive_avg_pool2d")
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected (N, C, H, W) or (C, H, W), got shape {input.shape}")
    oh, ow = _pair(output_size, "output_size")
    h, w = input.shape[-2], input.shape[-1]
    if (oh, ow) == (1, 1):
        return input.mean((-2, -1), keepdim=True)
    if oh <= 0 or ow <= 0 or h % oh or w % ow:
        raise ValueError(f"adaptive_avg_pool2d: output size {(oh, ow)} must divide the input size {(h, w)}")
    return avg_pool2d(input, (h // oh, w // ow))


def flatten(input: Tensor, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Flatten dims start_dim..end_dim (default: all but the batch dim)."""
    return input.flatten(start_dim, end_dim)


def relu(input: Tensor) -> Tensor:
    return _core.relu(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return _core.where(input > 0, input, input * negative_slope)


def tanh(input: Tensor) -> Tensor:
    return _core.tanh(input)


def sigmoid(input: Tensor) -> Tensor:
    return _core.sigmoid(input)


def softmax(input: Tensor, dim: int) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed stably (max subtracted first)."""
    return _core.nn.softmax(input, dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """x - logsumexp(x) along ``dim``, stable for large logits."""
    return _core.nn.log_softmax(input, dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p (from the seeded generator) and scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = (_core._rand(input.shape, input.dtype, None, input.device) >= p).to(input.dtype)
    return input * (keep * (1.0 / (1.0 - p)))


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise per channel (dim 1) of 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) input.

    Training uses the batch statistics and updates the running ones in place
    (``running = (1 - momentum) * running + momentum * batch``, unbiased variance);
    evaluation uses the running statistics.
    """
    _check_tensor(input, "input", "batch_norm")
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) input, "
                         f"got shape {input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {name} of shape {t.shape} does not match {c} channels "
                             f"(input shape {input.shape})")
    dims = (0,) + tuple(range(2, input.ndim))
    bshape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // c if c else 0
        if n <= 1:
            raise ValueError(f"batch_norm: training needs more than 1 value per channel, got input shape {input.shape}")
        mean = input.mean(dims, keepdim=True)
        var = input.var(dims, correction=0, keepdim=True)
        if running_mean is not None and running_var is not None:
            with no_grad():
                running_mean.mul_(1.0 - momentum).add_(mean.detach().reshape(c) * momentum)
                running_var.mul_(1.0 - momentum).add_(var.detach().reshape(c) * (momentum * n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean = running_mean.reshape(bshape)
        var = running_var.reshape(bshape)
    y = (input - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(bshape)
    if bias is not None:
        y = y + bias.reshape(bshape)
    return y


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against int64 class indices (N,): fused log-softmax + NLL."""
    _check_tensor(input, "input", "cross_entropy")
    _check_tensor(target, "target", "cross_entropy")
    return _core.nn.cross_entropy(input, target, reduction, float(label_smoothing))


def nll_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) at int64 class indices (N,)."""
    _check_tensor(input, "input", "nll_loss")
    _check_tensor(target, "target", "nll_loss")
    return _core.nn.nll_loss(input, target, reduction)


def multiclass_hinge_loss(input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """The multiclass SVM loss: L_i = sum over j != y_i of max(0, s_j - s_{y_i} + margin)."""
    _check_tensor(input, "input", "multiclass_hinge_loss")
    _check_tensor(target, "target", "multiclass_hinge_loss")
    return _core.nn.multi_margin(input, target, 1, float(margin), False, reduction)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      reduction: str = "mean") -> Tensor:
    """PyTorch's multi_margin_loss: the hinge sum (to the power p) divided by the number of classes."""
    _check_tensor(input, "input", "multi_margin_loss")
    _check_tensor(target, "target", "multi_margin_loss")
    return _core.nn.multi_margin(input, target, int(p), float(margin), True, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``input`` and ``target`` must have the same shape."""
    _check_tensor(input, "input", "mse_loss")
    if not isinstance(target, Tensor) or input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {input.shape} and target of shape "
                         f"{getattr(target, 'shape', None)} must match")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    d = input - target
    sq = d * d
    if reduction == "mean":
        return sq.mean()
    if reduction == "sum":
        return sq.sum()
    return sq


def l2_penalty(tensors) -> Tensor:
    """Sum of squared entries of all tensors: the lambda * ||w||^2 term of a regularised objective."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    total = None
    for t in tensors:
        s = (t * t).sum()
        total = s if total is None else total + s
    if total is None:
        raise ValueError("l2_penalty: got no tensors")
    return total
