"""dlcore: tensors, automatic differentiation and fast CPU kernels with a C++ core.

The API mirrors numpy and PyTorch names where the concept is the same.
"""
from __future__ import annotations

from . import _core
from ._core import (Generator, Tensor, abs, add, amax, amin, argmax, argmin, broadcast_shapes, broadcast_to, cat,
                    clone, contiguous, cos, div, eq, exp, flatten, from_dlpack, ge, get_num_threads, gt,
                    index_select, le, log, lt, matmul, maximum, mean, minimum, mul, ne, neg, permute, pow,
                    promote_types, randperm, relu, reshape, set_num_threads, sigmoid, sin, sqrt, squeeze, stack,
                    sub, sum, tanh, transpose, unsqueeze, var, where)
from ._core import device, dtype
from ._tensor import (MaxMin, arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                      initial_seed, linspace, manual_seed, ones, ones_like, rand, randint, randn, tensor, zeros,
                      zeros_like)

from . import autograd, cuda, data, nn, optim
from . import classic, datasets, models
from . import train
from .autograd import enable_grad, no_grad, set_grad_enabled
from ._core import is_grad_enabled

from .serialization import load, load_checkpoint, save, save_checkpoint

__version__ = _core.__version__

float32 = dtype.float32
float64 = dtype.float64
int64 = dtype.int64
bool = dtype.bool  # noqa: A001  (mirrors torch.bool)
float = float32  # noqa: A001
double = float64
long = int64


def max(input: Tensor, dim=None, keepdim=False):  # noqa: A001
    """Largest value, or (values, indices) along ``dim``."""
    return input.max(dim, keepdim)


def min(input: Tensor, dim=None, keepdim=False):  # noqa: A001
    """Smallest value, or (values, indices) along ``dim``."""
    return input.min(dim, keepdim)


def numel(input: Tensor) -> int:
    return input.numel()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)
