"""Saving and loading tensors and training checkpoints, safely.

Files are safetensors (``safetensors`` package): a JSON header and raw tensor
bytes, so loading never runs code. dlcore adds a SHA-256 of the tensor data to
the metadata, so a truncated *or* tampered file is rejected, and writes
atomically (temporary file, fsync, rename), so a crash mid-write leaves the
previous file intact.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "CheckpointError"]

FORMAT = "dlcore-1"
_DTYPES = {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)}


class CheckpointError(ValueError):
    """A file that is not a valid dlcore checkpoint (corrupt, truncated, tampered, or mismatched)."""


def _digest(arrays: Dict[str, np.ndarray], meta: Dict[str, str]) -> str:
    """SHA-256 over the tensors (names, dtypes, shapes, bytes) and the metadata (but the digest itself)."""
    h = hashlib.sha256()
    for k in sorted(meta):
        if k != "sha256":
            h.update(f"meta|{k}|{meta[k]}|".encode())
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.array(a, order="C", copy=False if a.flags.c_contiguous else True).tobytes())
    return h.hexdigest()


def _atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(state_dict: Dict[str, Tensor], path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Write ``{name: tensor}`` to ``path`` (safetensors + checksum), atomically."""
    from safetensors.numpy import save as st_save

    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"state_dict keys must be strings, got {k!r}")
        if not isinstance(v, Tensor):
            raise TypeError(f"state_dict['{k}'] is a {type(v).__name__}, not a Tensor")
        arrays[k] = np.array(v.detach().cpu().numpy(), order="C", copy=True)  # keeps 0-d shapes
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["format"] = FORMAT
    meta["sha256"] = _digest(arrays, meta)
    _atomic_write(path, st_save(arrays, metadata=meta))


def _read(path: str):
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    if len(data) < 8:
        raise CheckpointError(f"{path}: not a dlcore checkpoint (file of {len(data)} bytes is truncated)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8 or header_len > 100_000_000:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (header claims {header_len} bytes, "
                              f"file has {len(data) - 8})")
    try:
        header = json.loads(data[8:8 + header_len])
        arrays = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({e})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dlcore checkpoint (format {meta.get('format')!r})")
    for name, a in arrays.items():
        if a.dtype not in _DTYPES:
            raise CheckpointError(f"{path}: tensor '{name}' has unsupported dtype {a.dtype}")
    if _digest(arrays, meta) != meta.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch: the file was modified or damaged after it was written")
    return arrays, meta


def load(path: str) -> "OrderedDict[str, Tensor]":
    """Read a file written by :func:`save`: ``{name: tensor}`` (never executes code)."""
    arrays, _ = _read(path)
    return OrderedDict((k, _core.from_numpy(np.array(v, copy=True))) for k, v in arrays.items())


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def save_checkpoint(path: str, model, optimizer=None, scheduler=None, epoch: int = 0, config=None,
                    extra: Optional[Dict] = None, generators=()) -> None:
    """Model, optimiser and scheduler state, epoch, RNG states and a config, in one atomic file."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"epoch": str(int(epoch)), "config": json.dumps(_jsonable(config or {})),
            "model_class": type(model).__name__,
            "rng": json.dumps([int(x) for x in _core.default_generator().get_state()]),
            "generators": json.dumps([[int(x) for x in g.get_state()] for g in generators]),
            "extra": json.dumps(_jsonable(extra or {}))}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for i, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, Tensor):
                    tensors[f"optim.{i}.{k}"] = v
                else:
                    scalars.setdefault(str(i), {})[k] = v
        meta["optimizer"] = json.dumps({"param_groups": _jsonable(sd["param_groups"]), "scalars": _jsonable(scalars),
                                        "class": type(optimizer).__name__})
    if scheduler is not None:
        meta["scheduler"] = json.dumps(_jsonable(scheduler.state_dict()))
    save(tensors, path, meta)


def load_checkpoint(path: str, model=None, optimizer=None, scheduler=None, generators=()) -> Dict:
    """Restore what :func:`save_checkpoint` wrote; returns {'epoch', 'config', 'extra', 'model_class'}.

    Names and shapes are checked against the model (a checkpoint of another model
    raises with the list of mismatches).
    """
    arrays, meta = _read(path)
    tensors = {k: _core.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}
    if model is not None:
        if meta.get("model_class") and meta["model_class"] != type(model).__name__:
            raise CheckpointError(f"{path}: checkpoint of a {meta['model_class']}, not a {type(model).__name__}")
        try:
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        except RuntimeError as e:
            raise CheckpointError(f"{path}: {e}") from None
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{path}: no optimizer state in this checkpoint")
        o = json.loads(meta["optimizer"])
        state: Dict = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, i, name = k.split(".", 2)
                state.setdefault(int(i), {})[name] = v
        for i, sc in o["scalars"].items():
            state.setdefault(int(i), {}).update(sc)
        groups = o["param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(json.loads(meta["scheduler"]))
    _core.default_generator().set_state(json.loads(meta["rng"]))
    for g, st in zip(generators, json.loads(meta.get("generators", "[]"))):
        g.set_state(st)
    return {"epoch": int(meta["epoch"]), "config": json.loads(meta["config"]), "extra": json.loads(meta["extra"]),
            "model_class": meta.get("model_class")}
