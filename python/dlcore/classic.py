"""The classic baselines of a computer-vision course, with scikit-learn's fit/predict/score.

* :class:`NearestNeighbor`: k-nearest neighbours with L1 or L2 distances, computed in
  the C++ core in blocks (memory stays bounded for 50,000 x 10,000 pairs).
* :class:`LinearClassifier`: a linear score function s = xW + b trained with the
  multiclass SVM (hinge) or softmax loss plus L2 regularisation, by dlcore's own
  autograd and SGD.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core, nn, optim
from ._core import Tensor
from .autograd import no_grad

__all__ = ["NearestNeighbor", "LinearClassifier"]


def _as_2d(X, name: str = "X") -> Tensor:
    if not isinstance(X, Tensor):
        X = __import__("dlcore").tensor(np.asarray(X))
    if X.ndim < 1:
        raise ValueError(f"{name} must have a first (example) dim, got shape {X.shape}")
    return X.reshape(X.shape[0], -1).to(_core.dtype.float64) if X.ndim != 2 else X.to(_core.dtype.float64)


def _as_labels(y, n: int) -> Tensor:
    if not isinstance(y, Tensor):
        y = __import__("dlcore").tensor(np.asarray(y))
    if y.dtype != _core.dtype.int64:
        raise TypeError(f"labels must be integers (int64), got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"labels of shape {y.shape} do not match {n} examples")
    if n and int(y.min()) < 0:
        raise ValueError(f"labels must be non-negative, got {int(y.min())}")
    return y


class NearestNeighbor:
    """k-nearest-neighbour classifier.

    Ties are broken as scikit-learn's KNeighborsClassifier (brute force): equal distances
    by the lower training index, a tied vote by the smallest label.
    """

    def __init__(self, k: int = 1, distance: str = "l2") -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', got {distance!r}")
        self.k, self.distance = k, distance
        self._X: Optional[Tensor] = None

    def fit(self, X, y) -> "NearestNeighbor":
        """Memorise the training data (that is all nearest neighbour does)."""
        X = _as_2d(X)
        self._y = _as_labels(y, X.shape[0])
        if X.shape[0] < self.k:
            raise ValueError(f"k={self.k} is larger than the {X.shape[0]} training examples")
        self._X = X.contiguous()
        self.n_classes_ = int(self._y.max()) + 1 if self._y.numel() else 0
        return self

    def kneighbors(self, X):
        """(indices, distances), each (M, k), nearest first."""
        if self._X is None:
            raise RuntimeError("NearestNeighbor: call fit() before predict()")
        X = _as_2d(X)
        if X.shape[1] != self._X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features per example, the training data has {self._X.shape[1]}")
        return _core.data.knn_search(X, self._X, self.k, 1 if self.distance == "l1" else 2)

    def predict(self, X) -> Tensor:
        idx, _ = self.kneighbors(X)
        labels = self._y.numpy()[idx.numpy()]  # (M, k)
        counts = np.zeros((labels.shape[0], self.n_classes_), dtype=np.int64)
        np.add.at(counts, (np.arange(labels.shape[0])[:, None], labels), 1)
        return _core.from_numpy(counts.argmax(1).astype(np.int64))  # argmax: smallest label on ties

    def score(self, X, y) -> float:
        """Accuracy on (X, y)."""
        pred = self.predict(X)
        y = _as_labels(y, pred.shape[0])
        return float((pred == y).sum()) / max(pred.shape[0], 1)


class LinearClassifier:
    """Linear classifier s = xW + b trained by minibatch SGD on the mean data loss plus ``reg * ||W||^2``.

    ``loss='svm'``: the multiclass hinge loss; ``loss='softmax'``: cross-entropy.
    """

    def __init__(self, loss: str = "softmax", reg: float = 1e-4, lr: float = 0.1, epochs: int = 100,
                 batch_size: int = 200, momentum: float = 0.9, seed: int = 0) -> None:
        if loss not in ("svm", "softmax"):
            raise ValueError(f"loss must be 'svm' or 'softmax', got {loss!r}")
        if reg < 0 or lr <= 0 or epochs < 1 or batch_size < 1:
            raise ValueError(f"invalid hyper-parameters: reg={reg}, lr={lr}, epochs={epochs}, batch_size={batch_size}")
        self.loss, self.reg, self.lr, self.epochs = loss, reg, lr, epochs
        self.batch_size, self.momentum, self.seed = batch_size, momentum, seed
        self.W: Optional[nn.Parameter] = None

    def _features(self, X) -> Tensor:
        X = _as_2d(X).to(_core.dtype.float32)
        if self.W is not None and X.shape[1] != self.W.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features per example, the classifier was fit on {self.W.shape[0]}")
        return X

    def fit(self, X, y) -> "LinearClassifier":
        from .data import DataLoader, TensorDataset
        from .nn import functional as F

        X = self._features(X)
        y = _as_labels(y, X.shape[0])
        n_classes = int(y.max()) + 1
        gen = _core.Generator(self.seed)
        self.W = nn.Parameter(_core._randn((X.shape[1], n_classes), None, gen) * 0.001)
        self.b = nn.Parameter(_core._full((n_classes,), 0.0, None))
        opt = optim.SGD([self.W, self.b], lr=self.lr, momentum=self.momentum)
        data_loss = F.multiclass_hinge_loss if self.loss == "svm" else F.cross_entropy
        loader = DataLoader(TensorDataset(X, y), batch_size=self.batch_size, shuffle=True, generator=gen)
        self.loss_history_ = []
        for _ in range(self.epochs):
            for xb, yb in loader:
                loss = data_loss(xb @ self.W + self.b, yb) + self.reg * F.l2_penalty(self.W)
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.loss_history_.append(loss.item())
        return self

    def decision_function(self, X) -> Tensor:
        if self.W is None:
            raise RuntimeError("LinearClassifier: call fit() before predict()")
        with no_grad():
            return self._features(X) @ self.W + self.b

    def predict(self, X) -> Tensor:
        return self.decision_function(X).argmax(1)

    def score(self, X, y) -> float:
        pred = self.predict(X)
        y = _as_labels(y, pred.shape[0])
        return float((pred == y).sum()) / max(pred.shape[0], 1)
