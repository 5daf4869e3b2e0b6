"""Shared helpers for the dlcore tensor-core tests.

Every op test compares dlcore against numpy: ``check(op_dl, op_np, *inputs)``
converts numpy inputs to dlcore tensors (zero-copy, so strided numpy views stay
strided), runs both ops and compares shape, dtype and values.
"""
from __future__ import annotations

import numpy as np
import pytest

import dlcore

NP_OF = {dlcore.float32: np.float32, dlcore.float64: np.float64, dlcore.int64: np.int64, dlcore.bool: np.bool_}
DL_OF = {np.dtype(v): k for k, v in NP_OF.items()}

# The documented promotion order between tensors: bool < int64 < float32 < float64.
_RANK = {np.dtype(np.bool_): 0, np.dtype(np.int64): 1, np.dtype(np.float32): 2, np.dtype(np.float64): 3}
_BY_RANK = {v: k for k, v in _RANK.items()}


def promote(a, b) -> np.dtype:
    """Independent implementation of the documented tensor-tensor promotion rule (numpy dtypes in/out)."""
    return _BY_RANK[max(_RANK[np.dtype(a)], _RANK[np.dtype(b)])]


def np_dtype(t) -> np.dtype:
    return np.dtype(NP_OF[t.dtype])


def to_dl(x):
    """numpy array -> dlcore tensor sharing its memory; scalars and others pass through."""
    if isinstance(x, np.generic):  # numpy scalars (e.g. from ops on 0-d arrays) -> 0-d tensors
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        return dlcore.from_numpy(x)
    return x


def tolerances(dt, rtol=None, atol=None):
    dt = np.dtype(dt)
    if dt == np.float32:
        return (1e-5 if rtol is None else rtol), (1e-6 if atol is None else atol)
    if dt == np.float64:
        return (1e-12 if rtol is None else rtol), (1e-12 if atol is None else atol)
    return 0, 0


def assert_same(got, expected, dtype=None, rtol=None, atol=None):
    """``got`` is a dlcore tensor; ``expected`` a numpy array/scalar; ``dtype`` the expected dtype (numpy)."""
    assert isinstance(got, dlcore.Tensor), f"expected a dlcore.Tensor, got {type(got).__name__}"
    expected = np.asarray(expected)
    exp_dt = np.dtype(expected.dtype if dtype is None else dtype)
    assert got.dtype == DL_OF[exp_dt], f"dtype {got.dtype!r}, expected {exp_dt}"
    assert tuple(got.shape) == expected.shape, f"shape {tuple(got.shape)}, expected {expected.shape}"
    g = got.numpy()
    assert g.dtype == exp_dt
    e = expected.astype(exp_dt) if exp_dt.kind != "f" or expected.dtype.kind in "fc" else expected.astype(np.float64)
    if exp_dt.kind == "f":
        r, a = tolerances(exp_dt, rtol, atol)
        np.testing.assert_allclose(g.astype(np.float64), np.asarray(e, dtype=np.float64), rtol=r, atol=a,
                                   equal_nan=True)
    else:
        np.testing.assert_array_equal(g, e)


def check(op_dl, op_np, *inputs, dtype=None, rtol=None, atol=None):
    """Run ``op_dl`` on dlcore versions of ``inputs`` and ``op_np`` on the numpy ones; compare.

    ``dtype`` is the expected result dtype (numpy dtype); default: numpy's result dtype.
    Inputs are also checked to be left unchanged by the op.
    """
    copies = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in inputs]
    got = op_dl(*[to_dl(x) for x in inputs])
    expected = op_np(*inputs)
    assert_same(got, expected, dtype=dtype, rtol=rtol, atol=atol)
    for before, x in zip(copies, inputs):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, before, err_msg="op modified its input")
    return got


def rand_array(rng, shape, dtype):
    """Random array of a dlcore-supported dtype (numpy dtype or dlcore dtype)."""
    dt = np.dtype(NP_OF[dtype]) if isinstance(dtype, dlcore.dtype) else np.dtype(dtype)
    if dt == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dt == np.int64:
        return np.asarray(rng.integers(-9, 10, size=shape), dtype=np.int64)
    return np.asarray(rng.standard_normal(shape), dtype=dt)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def restore_threads():
    n = dlcore.get_num_threads()
    yield n
    dlcore.set_num_threads(n)
