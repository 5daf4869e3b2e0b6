"""Minibatch loading: the lecture's ``sample_training_data(data, 256)`` as an iterable."""
from __future__ import annotations

from typing import Callable, Optional

from .. import _core
from .._core import Tensor
from .dataset import Dataset


def _collate(samples):
    first = samples[0]
    if isinstance(first, Tensor):
        return _core.stack(list(samples), 0)
    if isinstance(first, (tuple, list)):
        return tuple(_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, (bool, int, float)):
        return __import__("dlcore").tensor(list(samples))
    raise TypeError(f"DataLoader cannot batch examples of type {type(first).__name__}")


class DataLoader:
    """Iterate over minibatches of a dataset.

    ``shuffle=True`` draws a new permutation each epoch from ``generator`` (or a
    Generator seeded with ``seed``, or the default generator). Datasets with a
    ``gather(indices)`` method (TensorDataset, Subset of it) give each batch with
    one index op per tensor; others are batched example by example and stacked.
    ``transform`` is applied to the first tensor of each batch (e.g. batched augmentation).
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 generator: Optional[_core.Generator] = None, seed: Optional[int] = None,
                 transform: Optional[Callable] = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if generator is not None and seed is not None:
            raise ValueError("DataLoader: give either generator or seed, not both")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.generator = generator if generator is not None else (_core.Generator(seed) if seed is not None else None)
        self.transform = transform

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.dataset)
        order = _core.randperm(n, self.generator) if self.shuffle else _core._arange_int(0, n, 1)
        fast = hasattr(self.dataset, "gather")
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if fast:
                batch = self.dataset.gather(idx)
            else:
                batch = _collate([self.dataset[i] for i in idx.tolist()])
            if self.transform is not None:
                if isinstance(batch, tuple):
                    batch = (self.transform(batch[0]),) + tuple(batch[1:])
                else:
                    batch = self.transform(batch)
            yield batch
