"""Reductions (sum, mean, var, amax/amin, max/min, argmax/argmin) against numpy."""
import numpy as np
import pytest

import dlcore
from conftest import assert_same, check, rand_array


def _shapes_and_dims(seed=1):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(10):
        nd = int(rng.integers(1, 5))
        shape = tuple(int(s) for s in rng.integers(1, 7, size=nd))
        k = int(rng.integers(1, nd + 1))
        dims = tuple(int(d) for d in rng.choice(nd, size=k, replace=False))
        dims = tuple(d - nd if rng.random() < 0.3 else d for d in dims)  # some negative
        cases.append((shape, dims if k > 1 else dims[0]))
    return cases + [((5,), 0), ((3, 4), -1), ((2, 3, 4), (0, 2)), ((2, 3, 4), (2, 0, 1)), ((1000,), 0),
                    ((33, 65), 0), ((33, 65), 1), ((1, 1), (0, 1))]


CASES = _shapes_and_dims()


def float_tol(a, axis):
    """Absolute tolerance for float32 sums: proportional to the sum of magnitudes."""
    return 2e-6 * float(np.max(np.sum(np.abs(a.astype(np.float64)), axis=axis), initial=1.0))


# ---------------------------------------------------------------- sum

@pytest.mark.parametrize("shape,dim", CASES, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_float32(shape, dim, keepdim, rng):
    a = rand_array(rng, shape, np.float32)
    atol = float_tol(a, dim)
    check(lambda x: x.sum(dim, keepdim=keepdim), lambda x: x.astype(np.float64).sum(dim, keepdims=keepdim), a,
          dtype=np.float32, rtol=1e-5, atol=atol)
    check(lambda x: dlcore.sum(x, dim=dim, keepdim=keepdim),
          lambda x: x.astype(np.float64).sum(dim, keepdims=keepdim), a, dtype=np.float32, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("dt,exp", [(np.float64, np.float64), (np.int64, np.int64), (np.bool_, np.int64)])
@pytest.mark.parametrize("shape,dim", CASES[:6] + [((4, 5), None), ((2, 3, 4), (0, 2))], ids=str)
def test_sum_dtypes(dt, exp, shape, dim, rng):
    a = rand_array(rng, shape, dt)
    check(lambda x: x.sum(dim), lambda x: x.sum(dim, dtype=exp), a, dtype=exp)


def test_sum_all_and_0d(rng):
    a = rand_array(rng, (3, 4), np.float64)
    r = check(lambda x: x.sum(), lambda x: x.sum(), a)
    assert r.shape == ()
    check(lambda x: x.sum(), lambda x: x.sum(), np.array(2.5))
    check(lambda x: x.sum(0), lambda x: x.sum(0), np.array(3, np.int64))  # dim 0 / -1 allowed on 0-d
    check(lambda x: x.sum(keepdim=True), lambda x: x.sum(keepdims=True), a)


def test_sum_int64_exact():
    a = np.array([2 ** 60, 3, 2 ** 60, -5], dtype=np.int64)
    check(lambda x: x.sum(), lambda x: x.sum(), a)


def test_sum_empty():
    check(lambda x: x.sum(), lambda x: x.sum(), np.zeros((0,), np.float32))
    check(lambda x: x.sum(0), lambda x: x.sum(0), np.zeros((0, 3), np.float32))
    check(lambda x: x.sum(1), lambda x: x.sum(1), np.zeros((0, 3), np.int64))
    check(lambda x: x.sum(), lambda x: x.sum(dtype=np.int64), np.zeros((2, 0), bool), dtype=np.int64)


def test_sum_noncontiguous(rng):
    a = rand_array(rng, (6, 8, 10), np.float64)
    for dim in [None, 0, 1, 2, (0, 2), (1, 2)]:
        check(lambda x: x.permute(2, 0, 1)[::3, 1:, ::2].sum(dim),
              lambda x: x.transpose(2, 0, 1)[::3, 1:, ::2].sum(dim), a)
        check(lambda x: x.expand(2, 6, 8, 10).sum(dim), lambda x: np.broadcast_to(x, (2, 6, 8, 10)).sum(dim), a)


def test_sum_large_float32_accurate(rng):
    a = rng.random(1_000_003).astype(np.float32)
    check(lambda x: x.sum(), lambda x: x.astype(np.float64).sum(), a, dtype=np.float32, rtol=1e-5)
    b = np.full(1 << 24, 1.0, np.float32)  # naive float32 accumulation gets stuck at 2**24
    check(lambda x: x.sum() + 1, lambda x: np.float64(x.size + 1), b, dtype=np.float32, rtol=1e-6)
    check(lambda x: x[1:].sum(), lambda x: np.float64(x.size - 1), b, dtype=np.float32, rtol=1e-6)


# ---------------------------------------------------------------- mean / var

@pytest.mark.parametrize("shape,dim", CASES[:10] + [((4, 5), None)], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_mean(shape, dim, keepdim, rng):
    a = rand_array(rng, shape, np.float32)
    kd = keepdim if dim is not None else False
    check(lambda x: x.mean(dim, keepdim=kd), lambda x: x.astype(np.float64).mean(dim, keepdims=kd), a,
          dtype=np.float32, rtol=1e-5, atol=1e-6)
    b = a.astype(np.float64)
    check(lambda x: dlcore.mean(x, dim, keepdim=kd), lambda x: x.mean(dim, keepdims=kd), b)


def test_mean_int_gives_float32():
    a = np.array([[1, 2], [4, 4]], dtype=np.int64)
    check(lambda x: x.mean(), lambda x: x.mean(), a, dtype=np.float32)
    check(lambda x: x.mean(1), lambda x: x.mean(1), a, dtype=np.float32)
    check(lambda x: x.T.mean(1), lambda x: x.T.mean(1), a, dtype=np.float32)


def test_mean_empty_is_nan():
    r = dlcore.zeros(0).mean()
    assert r.shape == () and r.dtype == dlcore.float32 and np.isnan(r.item())
    r = dlcore.zeros(0, 3).mean(0)
    assert r.shape == (3,) and np.all(np.isnan(r.numpy()))


@pytest.mark.parametrize("shape,dim", [((7,), None), ((4, 6), 0), ((4, 6), 1), ((3, 4, 5), (0, 2)), ((3, 4, 5), -1),
                                       ((200,), 0)], ids=str)
@pytest.mark.parametrize("kw,ddof", [({}, 1), ({"unbiased": True}, 1), ({"unbiased": False}, 0),
                                     ({"correction": 0}, 0), ({"correction": 1}, 1), ({"correction": 2}, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_var(shape, dim, kw, ddof, keepdim, rng):
    a = rand_array(rng, shape, np.float64) * 10 + 100  # offset exposes naive sum-of-squares formulas
    check(lambda x: x.var(dim, keepdim=keepdim, **kw), lambda x: x.var(dim, ddof=ddof, keepdims=keepdim), a,
          rtol=1e-9)
    f = a.astype(np.float32)
    check(lambda x: dlcore.var(x, dim, keepdim=keepdim, **kw),
          lambda x: x.astype(np.float64).var(dim, ddof=ddof, keepdims=keepdim), f, dtype=np.float32, rtol=1e-3)


def test_var_noncontiguous(rng):
    a = rand_array(rng, (8, 10), np.float64)
    check(lambda x: x.T[::2].var(1), lambda x: x.T[::2].var(1, ddof=1), a)
    check(lambda x: x[1::3, ::2].var(), lambda x: x[1::3, ::2].var(ddof=1), a)


def test_var_single_element_unbiased_is_nan():
    with np.errstate(all="ignore"):
        r = dlcore.tensor([3.0]).var()
    assert np.isnan(r.item())
    assert dlcore.tensor([3.0]).var(correction=0).item() == 0.0


# ---------------------------------------------------------------- amax / amin / max / min

@pytest.mark.parametrize("shape,dim", CASES, ids=str)
@pytest.mark.parametrize("dt", [np.float32, np.int64])
@pytest.mark.parametrize("keepdim", [False, True])
def test_amax_amin(shape, dim, dt, keepdim, rng):
    a = rand_array(rng, shape, dt)
    check(lambda x: x.amax(dim, keepdim=keepdim), lambda x: x.max(dim, keepdims=keepdim), a)
    check(lambda x: dlcore.amin(x, dim, keepdim=keepdim), lambda x: x.min(dim, keepdims=keepdim), a)


def test_max_min_no_dim(rng):
    a = rand_array(rng, (5, 7), np.float64)
    r = check(lambda x: x.max(), lambda x: x.max(), a)
    assert r.shape == ()
    check(lambda x: x.min(), lambda x: x.min(), a)
    check(lambda x: dlcore.max(x.T[1:]), lambda x: x.T[1:].max(), a)
    check(lambda x: dlcore.min(x), lambda x: x.min(), np.array([2 ** 62 + 1, 2 ** 62], np.int64))
    check(lambda x: x.max(), lambda x: x.max(), np.array(-4.0))


def test_max_min_of_bool_keep_bool():
    # numpy and PyTorch: max/min/amax/amin keep the input dtype, also for bool
    a = np.array([[False, True, False], [False, False, False]])
    check(lambda x: x.max(), lambda x: x.max(), a)
    check(lambda x: x.amin(1), lambda x: x.min(1), a)
    check(lambda x: x.max(1).values, lambda x: x.max(1), a)


def test_max_min_nan_propagates():
    a = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, -1.0]], np.float32)
    check(lambda x: x.max(), lambda x: x.max(), a)
    check(lambda x: x.amax(1), lambda x: x.max(1), a)
    check(lambda x: x.amin(0), lambda x: x.min(0), a)
    check(lambda x: x.max(1).values, lambda x: x.max(1), a)
    check(lambda x: x.argmax(1), lambda x: x.argmax(1), a)
    check(lambda x: x.argmin(), lambda x: x.argmin(), a)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("shape,dim", [((6,), 0), ((4, 5), 0), ((4, 5), 1), ((3, 4, 5), -2), ((2, 3, 40), 2),
                                       ((1, 7), 0)], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_values_and_first_indices(name, shape, dim, keepdim, rng):
    a = rng.integers(0, 3, size=shape).astype(np.int64)  # many ties -> first occurrence matters
    npv = getattr(np, name)
    npi = getattr(np, "arg" + name)
    for x_np in (a, a.astype(np.float32)):
        res = getattr(dlcore.from_numpy(x_np), name)(dim, keepdim=keepdim)
        assert isinstance(res, tuple) and res._fields == ("values", "indices")
        values, indices = res
        assert_same(values, npv(x_np, axis=dim, keepdims=keepdim))
        assert_same(indices, npi(x_np, axis=dim, keepdims=keepdim).astype(np.int64))
        v2, i2 = getattr(dlcore, name)(dlcore.from_numpy(x_np), dim, keepdim)
        np.testing.assert_array_equal(i2.numpy(), indices.numpy())


def test_max_dim_noncontiguous(rng):
    a = rng.integers(0, 4, size=(6, 9)).astype(np.int64)
    values, indices = dlcore.from_numpy(a).T[::2].max(1)
    assert_same(values, a.T[::2].max(1))
    assert_same(indices, a.T[::2].argmax(1))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("shape,dim", [((7,), None), ((4, 5), None), ((4, 5), 0), ((4, 5), -1), ((3, 4, 5), 1),
                                       ((3, 1), 1)], ids=str)
def test_argmax_argmin(name, shape, dim, rng):
    a = rng.integers(0, 3, size=shape).astype(np.int64)
    check(lambda x: getattr(x, name)(dim), lambda x: getattr(np, name)(x, axis=dim), a, dtype=np.int64)
    check(lambda x: getattr(dlcore, name)(x.float(), dim), lambda x: getattr(np, name)(x, axis=dim), a,
          dtype=np.int64)
    if dim is not None:
        check(lambda x: getattr(x, name)(dim, keepdim=True),
              lambda x: getattr(np, name)(x, axis=dim, keepdims=True), a, dtype=np.int64)
    # flattened index of a transposed (non-contiguous) tensor is in its logical (row-major) order
    check(lambda x: getattr(x.T, name)(), lambda x: getattr(np, name)(x.T), a, dtype=np.int64)


# ---------------------------------------------------------------- empty / bad dims

def test_amax_over_empty_dim_raises():
    with pytest.raises(ValueError):
        dlcore.zeros(0, 3).amax(0)
    with pytest.raises(ValueError):
        dlcore.zeros(0).max()
    with pytest.raises(ValueError):
        dlcore.zeros(2, 0).max(1)
    with pytest.raises(ValueError):
        dlcore.zeros(2, 0).argmax(1)
    with pytest.raises(ValueError):
        dlcore.zeros(0).argmin()


def test_amax_over_nonempty_dim_of_empty_tensor():
    check(lambda x: x.amax(1), lambda x: x.max(1), np.zeros((0, 3), np.float32))


@pytest.mark.parametrize("fn", [lambda t, d: t.sum(d), lambda t, d: t.mean(d), lambda t, d: t.amax(d),
                                lambda t, d: t.var(d), lambda t, d: dlcore.amin(t, d)])
def test_duplicate_dims_raise(fn):
    with pytest.raises(ValueError, match="1"):
        fn(dlcore.zeros(2, 3, 4), (1, 1))
    with pytest.raises(ValueError):
        fn(dlcore.zeros(2, 3, 4), (0, -3))


@pytest.mark.parametrize("fn", [lambda t, d: t.sum(d), lambda t, d: t.mean(d), lambda t, d: t.amax(d),
                                lambda t, d: t.var(d), lambda t, d: t.max(d), lambda t, d: t.argmax(d),
                                lambda t, d: t.sum((0, d))])
@pytest.mark.parametrize("dim", [3, -4, 10])
def test_out_of_range_dims_raise(fn, dim):
    with pytest.raises(IndexError, match=str(dim)):
        fn(dlcore.zeros(2, 3, 4), dim)
