"""Image transforms that work on one image (C, H, W) or a whole batch (N, C, H, W).

Random transforms draw from ``generator`` (default: the seeded default
generator) and run as one C++ kernel per batch.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .. import _core
from .._core import Tensor


def _batched(x: Tensor):
    if not isinstance(x, Tensor) or x.ndim not in (3, 4):
        raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Normalize:
    """(x - mean[c]) / std[c] per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"Normalize: mean has {len(mean)} entries but std has {len(std)}")
        if any(s == 0 for s in std):
            raise ValueError(f"Normalize: std must be non-zero, got {list(std)}")
        self.mean, self.std = list(mean), list(std)

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _batched(x)
        c = xb.shape[1]
        if c != len(self.mean):
            raise ValueError(f"Normalize: image has {c} channels but mean/std have {len(self.mean)}")
        m = __import__("dlcore").tensor(self.mean, dtype=x.dtype, device=x.device).reshape(1, c, 1, 1)
        s = __import__("dlcore").tensor(self.std, dtype=x.dtype, device=x.device).reshape(1, c, 1, 1)
        y = (xb - m) / s
        return y[0] if single else y

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """Random (size x size) crop after zero ``padding`` on every side (the CIFAR-10 augmentation)."""

    def __init__(self, size, padding: int = 0, generator: Optional[_core.Generator] = None) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding, self.generator = padding, generator

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _batched(x)
        n, _, h, w = xb.shape
        oh, ow = self.size
        if oh > h + 2 * self.padding or ow > w + 2 * self.padding:
            padded = (h + 2 * self.padding, w + 2 * self.padding)
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {padded}")
        top = _core._randint(0, h + 2 * self.padding - oh + 1, (n,), None, self.generator) - self.padding
        left = _core._randint(0, w + 2 * self.padding - ow + 1, (n,), None, self.generator) - self.padding
        flip = _core._full((n,), 0.0, _core.dtype.bool)
        y = _core.data.crop_flip(xb, top, left, flip, oh, ow)
        return y[0] if single else y

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p."""

    def __init__(self, p: float = 0.5, generator: Optional[_core.Generator] = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _batched(x)
        n, _, h, w = xb.shape
        flip = _core._rand((n,), None, self.generator) < self.p
        zeros = _core._full_int((n,), 0)
        y = _core.data.crop_flip(xb, zeros, zeros, flip, h, w)
        return y[0] if single else y

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
