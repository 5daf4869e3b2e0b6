"""Map-style datasets: ``len(ds)`` and ``ds[i]``."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np

from .. import _core
from .._core import Tensor


class Dataset:
    """A map-style dataset: subclasses define ``__len__`` and ``__getitem__``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Examples are rows of tensors sharing their first dim, e.g. ``TensorDataset(images, labels)``.

    The DataLoader gathers whole minibatches from it with one index op per tensor
    (no per-example Python loop).
    """

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, not a dlcore.Tensor")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is 0-d; every tensor needs a first (example) dim")
        n = tensors[0].shape[0]
        bad = [t.shape for t in tensors if t.shape[0] != n]
        if bad:
            raise ValueError(f"TensorDataset: tensors differ in their first dim: {[t.shape for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def gather(self, indices: Tensor):
        """A whole minibatch at once: each tensor indexed by an int64 index tensor."""
        return tuple(t.index_select(0, indices if indices.device == t.device else indices.to(t.device))
                     for t in self.tensors)


class Subset(Dataset):
    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        if not isinstance(indices, Tensor):
            indices = _core.from_numpy(np.asarray(list(indices), dtype=np.int64).reshape(-1))
        self.indices = indices
        n = len(dataset)
        if self.indices.numel() and (int(self.indices.max()) >= n or int(self.indices.min()) < -n):
            raise IndexError(f"Subset: indices out of range for a dataset of {n} examples")

    def __len__(self) -> int:
        return self.indices.numel()

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    @property
    def gather(self):
        """Batched gather, present only when the underlying dataset has one (the DataLoader checks hasattr)."""
        inner = getattr(self.dataset, "gather", None)
        if inner is None:
            raise AttributeError(f"{type(self.dataset).__name__} has no batched gather")
        return lambda indices: inner(self.indices.index_select(0, indices))


class ConcatDataset(Dataset):
    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        self.offsets = []
        total = 0
        for d in self.datasets:
            self.offsets.append(total)
            total += len(d)
        self._len = total

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int):
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"index {index} out of range for a dataset of {self._len} examples")
        k = max(i for i, o in enumerate(self.offsets) if o <= index)
        return self.datasets[k][index - self.offsets[k]]


def random_split(dataset: Dataset, lengths: Sequence, generator: Optional[_core.Generator] = None) -> List[Subset]:
    """Split into non-overlapping random subsets of the given lengths (ints, or fractions summing to 1)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(int(x) != x or x < 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} must be non-negative ints summing to the dataset size {n} "
                         "(or fractions summing to 1)")
    perm = _core.randperm(n, generator)
    out, at = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[at:at + int(k)]))
        at += int(k)
    return out
