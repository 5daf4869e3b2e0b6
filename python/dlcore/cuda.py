"""The CUDA backend: availability, devices, synchronisation and memory.

Tensors go to a GPU with ``t.to('cuda')`` / ``t.cuda()``, ``device=`` in the creation
functions, and ``model.to('cuda')``. Kernels run asynchronously on the device's
stream (the legacy default stream, which PyTorch uses too); reading a value on the
host (``.item()``, ``.cpu()``, ``.numpy()`` of a copy) waits for them, and
:func:`synchronize` waits explicitly (for timing).

A CPU-only build (the default) answers ``is_available() == False``, and asking for a
CUDA tensor raises ``RuntimeError`` naming the device.
"""
from __future__ import annotations

from typing import Dict, Union

from . import _core

_cu = _core.cuda

DeviceLike = Union[_core.device, str, int, None]


def is_built() -> bool:
    """Whether this dlcore was compiled with the CUDA backend (``DLCORE_CUDA=ON``)."""
    return _cu.is_built()


def is_available() -> bool:
    """Whether CUDA tensors can be made: a CUDA build, a driver and at least one GPU."""
    return _cu.is_built() and _cu.device_count() > 0


def device_count() -> int:
    """Number of visible GPUs (0 in a CPU-only build or without a driver)."""
    return _cu.device_count()


def _index(device: DeviceLike) -> int:
    d = _core.device("cuda" if device is None else device)  # an int N means cuda:N
    if d.type != "cuda":
        raise ValueError(f"expected a cuda device, got {d}")
    return d.index


def get_device_name(device: DeviceLike = None) -> str:
    """The GPU's name, e.g. 'NVIDIA H100 80GB HBM3'."""
    return _cu.device_name(_index(device))


def synchronize() -> None:
    """Wait until every queued kernel has finished (no-op without CUDA)."""
    _cu.synchronize()


def memory_stats(device: DeviceLike = None) -> Dict[str, int]:
    """The caching allocator's counters: allocated_bytes (live tensors), reserved_bytes (held from
    cudaMalloc), peak_allocated_bytes and malloc_calls (cudaMalloc calls so far)."""
    return dict(_cu.memory_stats(_index(device)))


def memory_allocated(device: DeviceLike = None) -> int:
    return memory_stats(device)["allocated_bytes"]


def max_memory_allocated(device: DeviceLike = None) -> int:
    return memory_stats(device)["peak_allocated_bytes"]


def memory_reserved(device: DeviceLike = None) -> int:
    return memory_stats(device)["reserved_bytes"]


def empty_cache() -> None:
    """Return the cached, unused GPU memory to the driver."""
    _cu.empty_cache()


def gemm_backend() -> str:
    """'cublas', 'fallback' (dlcore's own GEMM kernel; forced with DLCORE_CUDA_GEMM=fallback) or 'none'."""
    return _cu.gemm_backend()


__all__ = ["is_built", "is_available", "device_count", "get_device_name", "synchronize", "memory_stats",
           "memory_allocated", "max_memory_allocated", "memory_reserved", "empty_cache", "gemm_backend"]
