"""matmul / @ against numpy.matmul (float32 results compared with a float64 reference)."""
import operator

import numpy as np
import pytest

import dlcore
from conftest import check, rand_array

SIZES = [1, 7, 33, 130]


def mm_ref(x, y):
    """float64 reference for float inputs (exact products for ints)."""
    if x.dtype.kind == "f" or y.dtype.kind == "f":
        return np.matmul(x.astype(np.float64), y.astype(np.float64))
    return np.matmul(x, y)


def _tol(dt, k):
    if np.dtype(dt) == np.float32:
        return dict(rtol=1e-4, atol=1e-5 * max(1, k) ** 0.5)
    return dict(rtol=1e-10, atol=1e-12 * max(1, k))


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("n", SIZES)
def test_matmul_2d_float32(m, k, n, rng):
    a, b = rand_array(rng, (m, k), np.float32), rand_array(rng, (k, n), np.float32)
    check(operator.matmul, mm_ref, a, b, dtype=np.float32, **_tol(np.float32, k))


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 33, 1), (33, 130, 7), (130, 7, 33), (64, 64, 64)])
@pytest.mark.parametrize("dt", [np.float64, np.int64])
def test_matmul_2d_other_dtypes(m, k, n, dt, rng):
    a, b = rand_array(rng, (m, k), dt), rand_array(rng, (k, n), dt)
    check(dlcore.matmul, mm_ref, a, b, dtype=dt, **_tol(dt, k))
    check(lambda x, y: x.matmul(y), mm_ref, a, b, dtype=dt, **_tol(dt, k))


def test_matmul_int64_exact_large_values():
    a = np.array([[2 ** 40, 3], [1, -(2 ** 41)]], dtype=np.int64)
    b = np.array([[2 ** 20 + 1, 1], [5, 2 ** 20]], dtype=np.int64)
    check(operator.matmul, np.matmul, a, b)


@pytest.mark.parametrize("da,db,exp", [(np.float32, np.float64, np.float64), (np.int64, np.float32, np.float32),
                                       (np.float64, np.int64, np.float64)])
def test_matmul_mixed_dtypes(da, db, exp, rng):
    a, b = rand_array(rng, (5, 6), da), rand_array(rng, (6, 3), db)
    check(operator.matmul, mm_ref, a, b, dtype=exp, **_tol(exp, 6))


@pytest.mark.parametrize("sa,sb", [
    ((7,), (7,)), ((33,), (33, 5)), ((5, 33), (33,)), ((1,), (1, 4)), ((3, 2, 7), (7,)), ((7,), (2, 7, 4)),
    ((2, 5, 7), (2, 7, 3)), ((2, 5, 7), (7, 3)), ((5, 7), (4, 7, 3)), ((3, 1, 4, 5), (2, 5, 6)),
    ((1, 2, 3, 4), (5, 1, 4, 2)), ((2, 1, 33, 130), (3, 130, 7)),
], ids=str)
def test_matmul_1d_and_batched_broadcast(sa, sb, rng):
    a, b = rand_array(rng, sa, np.float32), rand_array(rng, sb, np.float32)
    check(operator.matmul, mm_ref, a, b, dtype=np.float32, **_tol(np.float32, sa[-1]))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    check(dlcore.matmul, np.matmul, a64, b64, **_tol(np.float64, sa[-1]))


@pytest.mark.parametrize("sa,sb", [((3, 0), (0, 4)), ((0,), (0,)), ((2, 3, 0), (0, 5)), ((0, 5), (5, 3)),
                                   ((4, 5), (5, 0)), ((0, 2, 3), (3, 4)), ((0,), (0, 3))], ids=str)
def test_matmul_empty(sa, sb, rng):
    a, b = rand_array(rng, sa, np.float32), rand_array(rng, sb, np.float32)
    check(operator.matmul, np.matmul, a, b)  # K=0 gives zeros, not garbage
    check(operator.matmul, np.matmul, a.astype(np.int64), b.astype(np.int64))


def test_matmul_k0_overwrites_uninitialized_output():
    for _ in range(3):  # the output buffer may be recycled memory: it must still be zero
        dlcore.empty(130, 130).fill_(np.nan)
        r = dlcore.zeros(130, 0) @ dlcore.zeros(0, 130)
        assert r.shape == (130, 130)
        assert (r.numpy() == 0).all()


@pytest.mark.parametrize("m,k,n", [(7, 33, 5), (130, 33, 7), (33, 130, 130), (1, 7, 1)])
def test_matmul_noncontiguous(m, k, n, rng):
    a = rand_array(rng, (k, m), np.float32)  # used transposed
    b = rand_array(rng, (2 * k, 3 * n), np.float32)  # used sliced with steps
    tol = _tol(np.float32, k)
    check(lambda x, y: x.T @ y[::2, 1::3], lambda x, y: mm_ref(x.T, y[::2, 1::3]), a, b, dtype=np.float32, **tol)
    check(lambda x, y: x.T @ y[1::2, ::3].T.T, lambda x, y: mm_ref(x.T, y[1::2, ::3]), a, b, dtype=np.float32,
          **tol)
    c = rand_array(rng, (n, k), np.float32)
    check(lambda x, y: x.T @ y.T, lambda x, y: mm_ref(x.T, y.T), a, c, dtype=np.float32, **tol)
    check(lambda x, y: x[:, 0] @ y.T, lambda x, y: mm_ref(x[:, 0], y.T), a, c, dtype=np.float32, **tol)
    check(lambda x, y: y[:, ::2].T.T @ x[::2], lambda x, y: mm_ref(y[:, ::2], x[::2]), a, c, dtype=np.float32,
          **tol)


def test_matmul_batched_noncontiguous_and_expanded(rng):
    a = rand_array(rng, (4, 3, 9, 7), np.float64)
    b = rand_array(rng, (7, 5), np.float64)
    check(lambda x, y: x.permute(1, 0, 2, 3)[:, ::2] @ y[:, ::2],
          lambda x, y: np.matmul(x.transpose(1, 0, 2, 3)[:, ::2], y[:, ::2]), a, b)
    c = rand_array(rng, (3, 5, 9), np.float64)
    check(lambda x, y: x.transpose(-1, -2) @ y.permute(0, 2, 1)[:, :, None, 1:].squeeze(2),
          lambda x, y: np.matmul(x.swapaxes(-1, -2), y.transpose(0, 2, 1)[:, :, 1:]), a, c)
    check(lambda x, y: x[:, 1] @ y.expand(4, 7, 5), lambda x, y: np.matmul(x[:, 1], y), a, b)


def test_matmul_does_not_alias_inputs():
    a = dlcore.tensor([[1.0, 2.0], [3.0, 4.0]])
    r = a @ a
    r[0, 0] = 100.0
    assert a[0, 0].item() == 1.0


def test_matmul_0d_raises():
    with pytest.raises(ValueError):
        dlcore.tensor(2.0) @ dlcore.tensor([1.0])


@pytest.mark.parametrize("sa,sb", [((2, 3), (2, 3)), ((3,), (4,)), ((2, 5, 3), (4, 3, 2)), ((4,), (3, 2))], ids=str)
def test_matmul_misaligned_raises_with_shapes(sa, sb):
    with pytest.raises(ValueError, match=r"\(" + ", ".join(map(str, sa)) + r",?\)") as ei:
        dlcore.zeros(*sa) @ dlcore.zeros(*sb)
    assert "(" + ", ".join(map(str, sb)) in str(ei.value)
