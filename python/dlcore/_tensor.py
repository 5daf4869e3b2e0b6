"""Tensor creation and the Python-side conveniences of ``dlcore.Tensor``.

The heavy lifting is in C++ (``dlcore._core``); this module only parses
arguments the way PyTorch users expect and formats output.
"""
from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Tensor, dtype

DTypeLike = Union[dtype, str, type, np.dtype, None]
DeviceLike = Union[_core.device, str, int, None]

float32 = dtype.float32
float64 = dtype.float64
int64 = dtype.int64
bool_ = dtype.bool

_NUMPY_OF = {dtype.float32: np.float32, dtype.float64: np.float64, dtype.int64: np.int64, dtype.bool: np.bool_}


def _default_dtype_for(arr: np.ndarray, data: Any) -> dtype:
    """dtype that ``tensor(data)`` infers: PyTorch's defaults (Python floats -> float32)."""
    kind = arr.dtype.kind
    if kind == "b":
        return dtype.bool
    if kind in "iu":
        return dtype.int64
    if kind == "f":
        if isinstance(data, np.ndarray) and arr.dtype == np.float64:
            return dtype.float64  # a float64 array keeps its precision
        return dtype.float32
    raise TypeError(
        f"cannot make a tensor from data of type {arr.dtype} ({type(data).__name__}); "
        "expected numbers (bool, int, float), nested sequences of them, or a numeric array")


def tensor(data: Any, dtype: DTypeLike = None, requires_grad: bool = False, *, device: DeviceLike = None) -> Tensor:
    """A new tensor holding a copy of ``data`` (a Tensor, numpy array, nested list or scalar)."""
    if isinstance(data, Tensor):  # a new leaf, like torch.tensor(t); one copy whatever changes
        out = data.detach().to(dtype=dtype, device=device, copy=True)
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as e:
            raise ValueError(f"cannot make a tensor from {type(data).__name__}: {e}") from None
        if arr.dtype == object:
            raise TypeError(f"cannot make a tensor from {data!r:.80}: elements must be numbers of one nesting depth")
        dt = _default_dtype_for(arr, data) if dtype is None else _core_dtype(dtype)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot make a tensor from data of type {arr.dtype}: expected numbers")
        if arr.dtype.kind == "f" and dt == _core.dtype.int64 and not np.all(np.isfinite(arr)):
            raise ValueError("cannot convert non-finite values (nan/inf) to int64")
        out = _core.from_numpy(np.array(arr, dtype=_NUMPY_OF[dt], copy=True, order="C"))
        if device is not None:
            out = _core._to_device(out, device)
    if requires_grad:
        out.requires_grad_(True)
    return out


def as_tensor(data: Any, dtype: DTypeLike = None, device: DeviceLike = None) -> Tensor:
    """Like :func:`tensor`, but shares memory with a Tensor or a numpy array of a supported dtype
    (when no conversion of dtype or device is needed)."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == _core_dtype(dtype)):
        return data if device is None else _core._to_device(data, device)
    if isinstance(data, np.ndarray) and data.dtype in (np.float32, np.float64, np.int64, np.bool_) \
            and (dtype is None or np.dtype(_NUMPY_OF[_core_dtype(dtype)]) == data.dtype):
        out = _core.from_numpy(data)
        return out if device is None else _core._to_device(out, device)
    return tensor(data, dtype, device=device)


def _core_dtype(dt: DTypeLike) -> dtype:
    if isinstance(dt, _core.dtype):
        return dt
    return _core._parse_dtype(dt)


def _grad(t: Tensor, requires_grad: bool) -> Tensor:
    return t.requires_grad_(True) if requires_grad else t


def _size(size: Sequence) -> tuple:
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, builtins.bool):
            raise TypeError(f"sizes must be ints, got {s!r} in {tuple(size)}")
    return tuple(int(s) for s in size)


def empty(*size, dtype: DTypeLike = None, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    return _grad(_core._empty(_size(size), dtype, device), requires_grad)


def zeros(*size, dtype: DTypeLike = None, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    return _grad(_core._full(_size(size), 0.0, dtype, device), requires_grad)


def ones(*size, dtype: DTypeLike = None, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    return _grad(_core._full(_size(size), 1.0, dtype, device), requires_grad)


def full(size, fill_value, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    """Tensor filled with ``fill_value``; the dtype follows the value (bool/int64/float32) unless given."""
    size = _size((size,)) if not isinstance(size, (int, np.integer)) else (int(size),)
    if dtype is None:
        dtype = (_core.dtype.bool if isinstance(fill_value, builtins.bool) else
                 _core.dtype.int64 if isinstance(fill_value, (int, np.integer)) else _core.dtype.float32)
    if _core_dtype(dtype) == _core.dtype.int64 and isinstance(fill_value, (int, np.integer)):
        return _core._full_int(size, int(fill_value), device)
    return _core._full(size, float(fill_value), dtype, device)


def _like_device(t: Tensor, device: DeviceLike):
    return t.device if device is None else device


def zeros_like(t: Tensor, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    return _core._full(t.shape, 0.0, t.dtype if dtype is None else dtype, _like_device(t, device))


def ones_like(t: Tensor, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    return _core._full(t.shape, 1.0, t.dtype if dtype is None else dtype, _like_device(t, device))


def full_like(t: Tensor, fill_value, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    return full(t.shape, fill_value, t.dtype if dtype is None else dtype, device=_like_device(t, device))


def empty_like(t: Tensor, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    return _core._empty(t.shape, t.dtype if dtype is None else dtype, _like_device(t, device))


def arange(start, end=None, step=1, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    """Values from ``start`` (default 0) up to, not including, ``end``; int64 when all arguments are ints."""
    if end is None:
        start, end = 0, start
    is_int = all(isinstance(v, (int, np.integer)) and not isinstance(v, builtins.bool) for v in (start, end, step))
    if dtype is None:
        dtype = _core.dtype.int64 if is_int else _core.dtype.float32
    if is_int and _core_dtype(dtype) == _core.dtype.int64:
        return _core._arange_int(int(start), int(end), int(step), device)
    return _core._arange(float(start), float(end), float(step), dtype, device)


def linspace(start, end, steps: int, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    return _core._linspace(float(start), float(end), int(steps), dtype, device)


def eye(n: int, m: Optional[int] = None, dtype: DTypeLike = None, *, device: DeviceLike = None) -> Tensor:
    return _core._eye(int(n), int(n if m is None else m), dtype, device)


def rand(*size, dtype: DTypeLike = None, device: DeviceLike = None, generator: Optional[_core.Generator] = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from the seeded generator (drawn on the host, so every device gets the
    same values for a seed)."""
    return _grad(_core._rand(_size(size), dtype, generator, device), requires_grad)


def randn(*size, dtype: DTypeLike = None, device: DeviceLike = None, generator: Optional[_core.Generator] = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the seeded generator."""
    return _grad(_core._randn(_size(size), dtype, generator, device), requires_grad)


def randint(low, high=None, size=(), dtype: DTypeLike = None, generator: Optional[_core.Generator] = None, *,
            device: DeviceLike = None) -> Tensor:
    """Integers uniform in [low, high) (``randint(high, size)`` means low = 0)."""
    if high is None:
        low, high = 0, low
    elif not isinstance(high, (int, np.integer)) and size == ():
        low, high, size = 0, low, high  # randint(high, size)
    return _core._randint(int(low), int(high), _size((size,)) if not isinstance(size, int) else (size,), dtype,
                          generator, device)


def manual_seed(seed: int) -> _core.Generator:
    """Seed the default generator: the same seed gives the same random tensors."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, builtins.bool):
        raise TypeError(f"manual_seed expects an int, got {seed!r}")
    return _core.default_generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def initial_seed() -> int:
    return _core.default_generator().initial_seed()


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (float32, float64, int64 or bool); keeps it alive."""
    return _core.from_numpy(array)


# ---- methods added to Tensor in Python (formatting, conveniences) ----

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _max(self: Tensor, dim=None, keepdim: bool = False):
    """max(): the largest value; max(dim): (values, indices) along ``dim``."""
    if dim is None:
        return _core.amax(self)
    return MaxMin(*_core._max_dim(self, dim, keepdim))


def _min(self: Tensor, dim=None, keepdim: bool = False):
    if dim is None:
        return _core.amin(self)
    return MaxMin(*_core._min_dim(self, dim, keepdim))


def _to(self: Tensor, *args, dtype: DTypeLike = None, device: DeviceLike = None, copy: bool = False,
        non_blocking: bool = False) -> Tensor:
    """``t.to(dtype)``, ``t.to('cuda')``, ``t.to(device, dtype)`` or ``t.to(other_tensor)``.

    Returns ``self`` when nothing changes (unless ``copy=True``). Moving between devices is
    differentiable: the gradient flows back to the source device."""
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, _core.device) or (isinstance(a, str) and (a == "cpu" or a.startswith("cuda"))):
            device = a
        else:
            dtype = a
    if dtype is not None and not isinstance(dtype, _core.dtype):
        dtype = _core_dtype(dtype)
    out = self if dtype is None or self.dtype == dtype else self._to_dtype(dtype)
    if device is not None and out.device != device:
        out = _core._to_device(out, device)
    if copy and out is self:
        out = self.clone()
    return out


def _cuda(self: Tensor, device: DeviceLike = None) -> Tensor:
    """This tensor on a GPU (``cuda:0``, or the index/device given; an int N means cuda:N)."""
    return _core._to_device(self, "cuda" if device is None else device)


def _cpu(self: Tensor) -> Tensor:
    """This tensor in host memory (``self`` when it is there already)."""
    return self if self.device.type == "cpu" else _core._to_device(self, "cpu")


def _tolist(self: Tensor):
    return self.cpu().numpy().tolist()


def _iter(self: Tensor):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(self.shape[0]))


def _float_formatter(arr: np.ndarray):
    """PyTorch's float style: '1.' when all values are whole, else 4 decimals, scientific for wide ranges."""
    finite = np.abs(arr[np.isfinite(arr)])
    if finite.size == 0 or np.all(finite == np.round(finite)):
        if finite.size and finite.max() >= 1e8:
            return lambda v: f"{v:.4e}"
        width = max((len(f"{v:.0f}") for v in arr.reshape(-1)[:2000] if np.isfinite(v)), default=1) + 1
        return lambda v: (f"{v:.0f}." if np.isfinite(v) else str(v)).rjust(width)
    nz = finite[finite > 0]
    if nz.size and (nz.max() / nz.min() > 1000.0 or nz.max() > 1e8 or nz.min() < 1e-4):
        return lambda v: f"{v:.4e}"
    return lambda v: f"{v:.4f}"


def _repr(self: Tensor) -> str:
    arr = self.detach().cpu().numpy()
    if arr.dtype == np.bool_:
        body = np.array2string(arr, separator=", ", prefix="tensor(")
    elif arr.dtype.kind == "f":
        body = np.array2string(arr, separator=", ", prefix="tensor(", formatter={"float_kind": _float_formatter(arr)},
                               threshold=1000, edgeitems=3)
    else:
        body = np.array2string(arr, separator=", ", prefix="tensor(")
    extras = []
    if self.dtype not in (_core.dtype.float32, _core.dtype.int64, _core.dtype.bool) or (
            self.numel() == 0 and self.dtype != _core.dtype.float32):
        extras.append(f"dtype={self.dtype!r}")
    if self.numel() == 0 and self.ndim != 1:
        extras.insert(0, f"size={self.shape}")
    if self.device.type != "cpu":
        extras.append(f"device='{self.device}'")
    if getattr(self, "requires_grad", False):
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def _any(self: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return _core.amax(self.bool().long(), dim, keepdim) > 0


def _all(self: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    if self.numel() == 0 and dim is None:
        return tensor(True, device=self.device)
    return _core.amin(self.bool().long(), dim, keepdim) > 0


def _type_as(self: Tensor, other: Tensor) -> Tensor:
    return self.to(other.dtype)


def _install_methods() -> None:
    Tensor.max = _max
    Tensor.min = _min
    Tensor.to = _to
    Tensor.tolist = _tolist
    Tensor.__iter__ = _iter
    Tensor.__repr__ = _repr
    Tensor.__str__ = _repr
    Tensor.any = _any
    Tensor.all = _all
    Tensor.type_as = _type_as
    Tensor.cpu = _cpu
    Tensor.cuda = _cuda


_install_methods()
dtype.__repr__ = lambda self: f"dlcore.{self.name}"
dtype.__str__ = dtype.__repr__
