"""Classification training: ``fit``, ``evaluate`` and ``predict``.

The loop is plain Python over minibatches; everything per element runs in C++.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from .autograd import no_grad
from .serialization import load_checkpoint, save_checkpoint

__all__ = ["History", "fit", "evaluate", "predict", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.safetensors"
INTERRUPTED_NAME = "interrupted.safetensors"


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run."""

    epoch: List[int] = field(default_factory=list)
    train_loss: List[float] = field(default_factory=list)
    train_acc: List[float] = field(default_factory=list)
    val_loss: List[Optional[float]] = field(default_factory=list)
    val_acc: List[Optional[float]] = field(default_factory=list)
    lr: List[float] = field(default_factory=list)
    time: List[float] = field(default_factory=list)
    interrupted: bool = False

    def as_dict(self) -> Dict[str, list]:
        return {k: list(getattr(self, k)) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                                    "time")}

    def to_csv(self, path: str) -> None:
        d = self.as_dict()
        with open(path, "w") as f:
            f.write(",".join(d) + "\n")
            for row in zip(*d.values()):
                f.write(",".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
                                 for v in row) + "\n")

    @classmethod
    def from_dict(cls, d: Dict) -> "History":
        h = cls()
        for k, v in d.items():
            if hasattr(h, k):
                setattr(h, k, list(v))
        return h


def _check_logits(out, yb) -> None:
    if not isinstance(out, Tensor) or out.ndim != 2:
        raise ValueError(f"the model must return class scores of shape (batch, classes), got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    if out.shape[0] != yb.shape[0]:
        raise ValueError(f"the model returned {out.shape[0]} rows of scores for a batch of {yb.shape[0]} labels")


class _StopFlag:
    """Ctrl-C sets a flag (checked after each step) instead of interrupting mid-update."""

    def __init__(self) -> None:
        self.stop = False
        self._prev = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.stop:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc) -> bool:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
        return False


def _progress(total: int, desc: str, verbose: bool):
    show = verbose and sys.stderr.isatty()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency; keep working without it
        return None
    return tqdm(total=total, desc=desc, disable=not show, leave=False, dynamic_ncols=True)


def _model_device(model):
    """The device of the model's first parameter (cpu for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return _core.device("cpu")


def _on(device, xb, yb):
    """A batch moved to ``device`` (the loaders produce host tensors)."""
    return xb.to(device), yb.to(device)


def fit(model, train_loader, loss_fn: Callable, optimizer, epochs: int, val_loader=None, scheduler=None,
        callbacks: Sequence[Callable] = (), checkpoint_dir: Optional[str] = None, resume: bool = False,
        verbose: bool = True, config: Optional[Dict] = None, device=None) -> History:
    """Train for ``epochs`` epochs; returns the :class:`History`.

    * ``device``: where to train (e.g. ``'cuda'``); the model is moved there and every
      batch follows it. By default the model's own device is used.

    * ``callbacks``: each is called as ``cb(epoch, logs)`` after every epoch; returning True stops training.
    * ``checkpoint_dir``: after every epoch the model, optimiser, scheduler, RNG states and
      history go to ``checkpoint_dir/checkpoint.safetensors`` (atomically); ``resume=True``
      continues from it, reproducing the uninterrupted run exactly (same seed and threads).
    * Ctrl-C finishes the current step, saves the state at that step to
      ``checkpoint_dir/interrupted.safetensors`` (``checkpoint.safetensors`` keeps the last
      completed epoch, from which ``resume=True`` continues exactly) and returns the history so far.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if device is not None:
        model.to(device)
    device = _model_device(model)
    history = History()
    start = 0
    gens = [g for g in (getattr(train_loader, "generator", None),) if g is not None]
    ckpt = os.path.join(checkpoint_dir, CHECKPOINT_NAME) if checkpoint_dir else None
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs checkpoint_dir")
        if os.path.exists(ckpt):
            info = load_checkpoint(ckpt, model, optimizer, scheduler, gens)
            start = info["epoch"]
            history = History.from_dict(info["extra"].get("history", {}))

    def save(epoch_done: int, path: Optional[str] = ckpt) -> None:
        if path:
            save_checkpoint(path, model, optimizer, scheduler, epoch_done, config,
                            extra={"history": history.as_dict()}, generators=gens)

    with _StopFlag() as flag:
        for epoch in range(start, epochs):
            model.train()
            t0 = time.perf_counter()
            # Sums stay on the device; they are read back (a synchronisation on a GPU)
            # only for the progress bar, every few steps, and at the end of the epoch.
            loss_sum, correct_sum, seen = None, None, 0
            bar = _progress(len(train_loader), f"epoch {epoch + 1}/{epochs}", verbose)
            for step, (xb, yb) in enumerate(train_loader):
                xb, yb = _on(device, xb, yb)
                out = model(xb)
                _check_logits(out, yb)
                loss = loss_fn(out, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                n = yb.shape[0]
                batch_loss = loss.detach().double() * n  # summed in float64, as a Python float would be
                batch_correct = (out.detach().argmax(1) == yb).sum()
                loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
                correct_sum = batch_correct if correct_sum is None else correct_sum + batch_correct
                seen += n
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        rate = seen / max(time.perf_counter() - t0, 1e-9)
                        bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct_sum.item() / seen:.3f}",
                                        img_s=f"{rate:.0f}")
                if flag.stop:
                    break
            if bar is not None:
                bar.close()
            total_loss = loss_sum.item() if loss_sum is not None else 0.0
            correct = int(correct_sum.item()) if correct_sum is not None else 0
            if flag.stop and seen < len(train_loader.dataset) and not train_loader.drop_last:
                history.interrupted = True
                if checkpoint_dir:  # mid-epoch state, kept apart from the last complete epoch
                    save(epoch, os.path.join(checkpoint_dir, INTERRUPTED_NAME))
                break
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            val = evaluate(model, val_loader, loss_fn) if val_loader is not None else None
            history.epoch.append(epoch + 1)
            history.train_loss.append(total_loss / max(seen, 1))
            history.train_acc.append(correct / max(seen, 1))
            history.val_loss.append(val["loss"] if val else None)
            history.val_acc.append(val["accuracy"] if val else None)
            history.lr.append(lr)
            history.time.append(time.perf_counter() - t0)
            if verbose:
                msg = (f"epoch {epoch + 1}/{epochs}: loss {history.train_loss[-1]:.4f} "
                       f"acc {history.train_acc[-1]:.4f}")
                if val:
                    msg += f" | val loss {val['loss']:.4f} acc {val['accuracy']:.4f}"
                print(msg + f" | {history.time[-1]:.1f}s", file=sys.stderr)
            save(epoch + 1)
            logs = {k: v[-1] for k, v in history.as_dict().items()}
            if any(cb(epoch + 1, logs) is True for cb in callbacks):
                break
            if flag.stop:
                history.interrupted = True
                break
    return history


def evaluate(model, loader, loss_fn: Optional[Callable] = None, num_classes: Optional[int] = None,
             device=None) -> Dict:
    """Accuracy, mean loss (when ``loss_fn`` is given) and the confusion matrix [true, predicted].
    Batches go to ``device`` (default: the model's device)."""
    if device is not None:
        model.to(device)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    preds, trues = [], []
    try:
        with no_grad():
            for xb, yb in loader:
                xb, yb = _on(device, xb, yb)
                out = model(xb)
                _check_logits(out, yb)
                if loss_fn is not None:
                    total_loss += loss_fn(out, yb).item() * yb.shape[0]
                p = out.argmax(1)
                correct += int((p == yb).sum())
                seen += yb.shape[0]
                preds.append(p.cpu().numpy().copy())
                trues.append(yb.cpu().numpy().copy())
    finally:
        model.train(was_training)
    p = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    t = np.concatenate(trues) if trues else np.zeros(0, np.int64)
    k = num_classes or int(max(p.max(initial=-1), t.max(initial=-1)) + 1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    return {"accuracy": correct / max(seen, 1), "loss": total_loss / max(seen, 1) if loss_fn else None,
            "confusion": confusion, "count": seen}


def predict(model, x: Tensor, batch_size: int = 256):
    """(classes, probabilities) for inputs ``x`` (N, ...), computed in eval mode without a graph,
    on the model's device (the results stay there)."""
    from .nn.functional import softmax

    device = _model_device(model)
    was_training = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for i in range(0, x.shape[0], batch_size):
                outs.append(softmax(model(x[i:i + batch_size].to(device)), 1))
    finally:
        model.train(was_training)
    probs = _core.cat(outs, 0) if outs else _core._empty((0, 0), None)
    return probs.argmax(1), probs
