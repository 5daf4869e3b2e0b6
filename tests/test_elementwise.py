"""Elementwise ops, broadcasting, type promotion, scalars and in-place ops, against numpy."""
import operator

import numpy as np
import pytest

import dlcore
from conftest import assert_same, check, promote, rand_array

DTYPES = [np.bool_, np.int64, np.float32, np.float64]


def _broadcast_pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        nd = int(rng.integers(1, 5))
        full = tuple(int(s) for s in rng.integers(1, 6, size=nd))
        a = tuple(1 if rng.random() < 0.3 else s for s in full)
        b = tuple(1 if rng.random() < 0.3 else s for s in full)
        b = b[int(rng.integers(0, nd + 1)):]  # drop leading dims
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return pairs


SHAPE_PAIRS = _broadcast_pairs(14) + [
    ((), ()), ((), (3,)), ((2, 3), ()), ((0,), (0,)), ((0,), (1,)), ((2, 0), (1, 0)), ((3, 0, 2), (2,)),
    ((1031,), (1031,)), ((17, 33), (33,)), ((17, 1), (1, 33)), ((4, 1, 3), (5, 1)),
]

BINOPS = {
    "add": (operator.add, np.add, dlcore.add, "add"),
    "sub": (operator.sub, np.subtract, dlcore.sub, "sub"),
    "mul": (operator.mul, np.multiply, dlcore.mul, "mul"),
}
CMPOPS = {
    "eq": (operator.eq, np.equal), "ne": (operator.ne, np.not_equal), "lt": (operator.lt, np.less),
    "le": (operator.le, np.less_equal), "gt": (operator.gt, np.greater), "ge": (operator.ge, np.greater_equal),
}


def arith_dtype(a, b):
    """Result dtype of + - * between tensors: two bools compute in int64."""
    r = promote(a, b)
    return np.dtype(np.int64) if r == np.bool_ else r


def _np_arith(fn, a, b):
    """numpy reference in a wide dtype (bool -> int64) so values are exact before the final cast."""
    def widen(x):
        x = np.asarray(x)
        return x.astype(np.int64) if x.dtype == np.bool_ else x
    return fn(widen(a), widen(b))


# ---------------------------------------------------------------- binary arithmetic

@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("name", list(BINOPS))
def test_binary_broadcast_float32(name, sa, sb, rng):
    op, npop, fn, meth = BINOPS[name]
    a, b = rand_array(rng, sa, np.float32), rand_array(rng, sb, np.float32)
    check(op, npop, a, b)
    check(fn, npop, a, b)
    check(lambda x, y: getattr(x, meth)(y), npop, a, b)


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS[:8] + [((2, 0), (1, 0)), ((), (4,))], ids=str)
def test_div_broadcast(sa, sb, rng):
    a, b = rand_array(rng, sa, np.float64), rand_array(rng, sb, np.float64) + 5.0
    check(operator.truediv, np.divide, a, b)
    check(dlcore.div, np.divide, a, b)
    check(lambda x, y: x.div(y), np.divide, a, b)


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_binary_dtype_promotion(name, da, db, rng):
    op, npop = BINOPS[name][0], BINOPS[name][1]
    a, b = rand_array(rng, (3, 4), da), rand_array(rng, (4,), db)
    check(op, lambda x, y: _np_arith(npop, x, y), a, b, dtype=arith_dtype(da, db))


def test_bool_arithmetic_is_int64():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    check(operator.add, lambda x, y: x.astype(np.int64) + y, a, b, dtype=np.int64)
    check(operator.mul, lambda x, y: x.astype(np.int64) * y, a, b, dtype=np.int64)
    check(operator.sub, lambda x, y: x.astype(np.int64) - y, a, b, dtype=np.int64)


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
def test_true_div_dtype(da, db, rng):
    a = rand_array(rng, (2, 5), da)
    b = rand_array(rng, (5,), db)
    b = np.where(b == 0, np.ones_like(b), b)  # avoid 0/0 noise; division by zero is tested separately
    r = promote(da, db)
    expected = np.dtype(np.float32) if r.kind in "bi" else r
    check(operator.truediv, lambda x, y: x.astype(np.float64) / y.astype(np.float64), a, b, dtype=expected)


def test_int_div_by_zero_gives_inf_nan():
    a = np.array([1, -1, 0], dtype=np.int64)
    b = np.zeros(3, dtype=np.int64)
    with np.errstate(all="ignore"):
        check(operator.truediv, lambda x, y: x.astype(np.float32) / y.astype(np.float32), a, b, dtype=np.float32)


def test_int64_arithmetic_exact_beyond_float():
    a = np.array([2 ** 62 + 1, -(2 ** 62) - 3], dtype=np.int64)
    b = np.array([3, 7], dtype=np.int64)
    check(operator.add, np.add, a, b)
    check(operator.sub, np.subtract, a, b)
    check(operator.mul, np.multiply, a, np.array([1, 1], dtype=np.int64))


# ---------------------------------------------------------------- Python scalars (weak)

@pytest.mark.parametrize("da,scalar,expected", [
    (np.float32, 2, np.float32), (np.float32, 2.5, np.float32), (np.float64, 2, np.float64),
    (np.float64, 0.1, np.float64), (np.int64, 3, np.int64), (np.int64, 2.5, np.float32),
    (np.bool_, 3, np.int64), (np.bool_, 1.5, np.float32),
])
@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_scalar_weak_promotion(name, da, scalar, expected, rng):
    op, npop = BINOPS[name][0], BINOPS[name][1]
    a = rand_array(rng, (3, 4), da)
    ref = lambda x, s: _np_arith(npop, x, np.float64(s) if isinstance(s, float) else s)  # noqa: E731
    check(lambda x: op(x, scalar), lambda x: ref(x, scalar), a, dtype=expected)
    check(lambda x: op(scalar, x), lambda x: _np_arith(npop, np.asarray(scalar), x), a, dtype=expected)


def test_float64_scalar_keeps_precision():
    a = np.array([1.0, 2.0])
    check(lambda x: x + 0.1, lambda x: x + 0.1, a)  # float64 arithmetic, not rounded through float32
    assert (dlcore.from_numpy(a) * (1 + 2 ** -40)).numpy()[0] != 1.0


@pytest.mark.parametrize("da,scalar,expected", [
    (np.float32, 2, np.float32), (np.float64, 3, np.float64), (np.int64, 2, np.float32),
    (np.int64, 2.5, np.float32), (np.bool_, 2, np.float32),
])
def test_scalar_truediv(da, scalar, expected, rng):
    a = rand_array(rng, (5,), da)
    a = np.where(a == 0, np.ones_like(a), a)
    check(lambda x: x / scalar, lambda x: x.astype(np.float64) / scalar, a, dtype=expected)
    check(lambda x: scalar / x, lambda x: scalar / x.astype(np.float64), a, dtype=expected)


def test_scalar_on_0d_and_empty():
    check(lambda x: x * 2.0 + 1, lambda x: x * 2 + 1, np.array(1.5, np.float32))
    check(lambda x: 3 - x, lambda x: 3 - x, np.zeros((0, 3), np.int64))


# ---------------------------------------------------------------- pow

def test_pow_float(rng):
    a = np.abs(rand_array(rng, (4, 5), np.float32)) + 0.1
    b = rand_array(rng, (5,), np.float32)
    check(operator.pow, np.power, a, b, rtol=1e-5)
    check(dlcore.pow, np.power, a, b, rtol=1e-5)
    check(lambda x: x ** 2, lambda x: x ** 2, a)
    check(lambda x: x ** 0.5, np.sqrt, a)
    check(lambda x: 2 ** x, lambda x: np.float32(2) ** x, b)
    check(lambda x: x.pow(3), lambda x: x ** 3, b)


def test_pow_negative_base_fractional_exponent_nan():
    with np.errstate(invalid="ignore"):
        check(lambda x: x ** 0.5, lambda x: x ** 0.5, np.array([-4.0, 4.0]))


def test_pow_int():
    a = np.array([[-3, -1, 0, 1, 2, 5]], dtype=np.int64)
    e = np.array([[3], [0], [2]], dtype=np.int64)
    check(operator.pow, np.power, a, e)
    check(lambda x: x ** 3, lambda x: x ** 3, a)
    check(lambda x: 2 ** x, lambda x: 2 ** x, np.arange(10, dtype=np.int64))
    check(lambda x: x ** 40, lambda x: x ** 40, np.array([2, -2, 1], dtype=np.int64))  # exact, not via float


def test_pow_int_float_mix():
    a = np.array([1, 2, 3], dtype=np.int64)
    check(lambda x: x ** 0.5, lambda x: np.sqrt(x), a, dtype=np.float32)
    check(lambda x: x ** 2.0, lambda x: x.astype(np.float64) ** 2, a, dtype=np.float32)


@pytest.mark.parametrize("do", [
    lambda: dlcore.tensor([2, 3]) ** -1,
    lambda: dlcore.tensor([2, 3]) ** dlcore.tensor([1, -2]),
    lambda: dlcore.pow(dlcore.tensor([[2]]), dlcore.tensor([0, -1])),
    lambda: dlcore.tensor([2, 3]).pow_(-1),
])
def test_int_pow_negative_exponent_raises(do):
    with pytest.raises(ValueError, match="negative"):
        do()


# ---------------------------------------------------------------- non-contiguous inputs

@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_binary_noncontiguous(name, rng):
    op, npop = BINOPS[name][0], BINOPS[name][1]
    a = rand_array(rng, (6, 10), np.float32)
    b = rand_array(rng, (10, 6), np.float32)
    check(lambda x, y: op(x.T, y), lambda x, y: npop(x.T, y), a, b)
    check(lambda x, y: op(x[::2, 1::3], y[1::3, ::2].T), lambda x, y: npop(x[::2, 1::3], y[1::3, ::2].T), a, b)
    check(lambda x, y: op(x[::2, 3], y[::4, 0]), lambda x, y: npop(x[::2, 3], y[::4, 0]), a, b)
    c = rand_array(rng, (4, 5, 6), np.float64)
    check(lambda x: op(x.permute(2, 0, 1), 1.5), lambda x: npop(x.transpose(2, 0, 1), 1.5), c)
    check(lambda x, y: op(x[1:, ::2, 1::2], y[::4, 1::2].T), lambda x, y: npop(x[1:, ::2, 1::2], y[::4, 1::2].T),
          c, b.astype(np.float64))


def test_binary_noncontiguous_expanded(rng):
    a = rand_array(rng, (5, 1), np.float32)
    b = rand_array(rng, (7,), np.float32)
    check(lambda x, y: x.expand(5, 7) * y.broadcast_to((5, 7)), lambda x, y: x * y, a, b)


def test_binary_large_strided_kernel_paths(rng):
    a = rand_array(rng, (257, 129), np.float32)
    b = rand_array(rng, (129, 257), np.float32)
    check(lambda x, y: x + y.T, lambda x, y: x + y.T, a, b)
    check(lambda x, y: x[:, 1:] * y.T[:, :-1], lambda x, y: x[:, 1:] * y.T[:, :-1], a, b)


# ---------------------------------------------------------------- comparisons

@pytest.mark.parametrize("name", list(CMPOPS))
@pytest.mark.parametrize("da,db", [(np.float32, np.float32), (np.int64, np.float32), (np.int64, np.int64),
                                   (np.bool_, np.int64), (np.float64, np.int64), (np.bool_, np.bool_)])
def test_comparisons(name, da, db, rng):
    op, npop = CMPOPS[name]
    a = rand_array(rng, (4, 1, 3), da)
    b = rand_array(rng, (5, 3), db)
    if db != np.bool_:
        b[0] = a[0, 0].astype(db)  # make sure some equal elements exist
    check(op, npop, a, b, dtype=np.bool_)
    check(getattr(dlcore, name), npop, a, b, dtype=np.bool_)
    check(lambda x, y: getattr(x, name)(y), npop, a, b, dtype=np.bool_)


@pytest.mark.parametrize("name", list(CMPOPS))
def test_comparisons_scalar_and_nan(name):
    op, npop = CMPOPS[name]
    a = np.array([1.0, np.nan, -np.inf, 2.5, 2.0], dtype=np.float32)
    check(lambda x: op(x, 2), lambda x: npop(x, 2), a, dtype=np.bool_)
    check(lambda x: op(x, 2.5), lambda x: npop(x, 2.5), a, dtype=np.bool_)
    check(lambda x: op(2.5, x), lambda x: npop(2.5, x), a, dtype=np.bool_)
    i = np.array([-1, 0, 1, 2], dtype=np.int64)
    check(lambda x: op(x, 0.5), lambda x: npop(x, 0.5), i, dtype=np.bool_)


def test_comparison_noncontiguous_and_empty(rng):
    a = rand_array(rng, (6, 8), np.int64)
    check(lambda x: x.T[::2] > x[::2, ::2].T[:, :1], lambda x: x.T[::2] > x[::2, ::2].T[:, :1], a, dtype=np.bool_)
    check(lambda x: x == 1, lambda x: x == 1, np.zeros((0, 2), np.float32), dtype=np.bool_)


# ---------------------------------------------------------------- maximum / minimum / where

@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS[:10], ids=str)
def test_maximum_minimum(sa, sb, rng):
    a, b = rand_array(rng, sa, np.float32), rand_array(rng, sb, np.float32)
    check(dlcore.maximum, np.maximum, a, b)
    check(dlcore.minimum, np.minimum, a, b)


def test_maximum_minimum_nan_propagation():
    a = np.array([np.nan, 1.0, np.nan, 3.0, -0.0], dtype=np.float32)
    b = np.array([1.0, np.nan, np.nan, 2.0, 5.0], dtype=np.float32)
    check(dlcore.maximum, np.maximum, a, b)
    check(dlcore.minimum, np.minimum, a, b)
    check(dlcore.maximum, np.maximum, b, a)
    check(dlcore.minimum, np.minimum, b, a)


def test_maximum_minimum_dtypes():
    a = np.array([1, 5, -3], dtype=np.int64)
    b = np.array([2.5, 0.5, -3.5], dtype=np.float32)
    check(dlcore.maximum, lambda x, y: np.maximum(x, y), a, b, dtype=np.float32)
    check(dlcore.minimum, np.minimum, a, a[::-1].copy())
    big = np.array([2 ** 62 + 1, 3], dtype=np.int64)
    check(dlcore.maximum, np.maximum, big, np.array([2 ** 62, 4], dtype=np.int64))


@pytest.mark.parametrize("sc,sa,sb", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (1, 4)), ((), (2, 3), (3,)),
                                      ((2, 1, 3), (4, 1), ()), ((0, 3), (3,), (1, 3))], ids=str)
def test_where(sc, sa, sb, rng):
    c = rand_array(rng, sc, np.bool_)
    a, b = rand_array(rng, sa, np.float32), rand_array(rng, sb, np.float32)
    check(dlcore.where, np.where, c, a, b)


def test_where_promotion_and_noncontiguous(rng):
    c = rand_array(rng, (5, 4), np.bool_)
    a = rand_array(rng, (4, 5), np.int64)
    b = rand_array(rng, (4,), np.float64)
    check(lambda z, x, y: dlcore.where(z, x.T, y), lambda z, x, y: np.where(z, x.T, y), c, a, b)
    check(lambda z, x, y: dlcore.where(z[::2], x.T[::2], x.T[2:]),
          lambda z, x, y: np.where(z[::2], x.T[::2], x.T[2:]), c, a, b)


def test_where_cond_from_comparison_and_scalar(rng):
    a = rand_array(rng, (3, 5), np.float32)
    check(lambda x: dlcore.where(x > 0, x, 0.0), lambda x: np.where(x > 0, x, np.float32(0)), a)


# ---------------------------------------------------------------- unary

UNARY = {
    "neg": (lambda x: -x, np.negative), "abs": (abs, np.abs), "exp": (None, np.exp), "log": (None, np.log),
    "sqrt": (None, np.sqrt), "sin": (None, np.sin), "cos": (None, np.cos), "tanh": (None, np.tanh),
    "sigmoid": (None, lambda x: 1 / (1 + np.exp(-x))), "relu": (None, lambda x: np.maximum(x, 0)),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("shape", [(), (0,), (7,), (1031,), (3, 4, 5)], ids=str)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_unary_float(name, shape, dt, rng):
    a = rand_array(rng, shape, dt) * 3
    if name in ("log", "sqrt"):
        a = np.abs(a) + 0.01
    npop = UNARY[name][1]
    rtol = 2e-6 if dt == np.float32 else 1e-12
    with np.errstate(over="ignore"):
        check(getattr(dlcore, name), npop, a, rtol=rtol)
        check(lambda x: getattr(x, name)(), npop, a, rtol=rtol)
        if UNARY[name][0] is not None:
            check(UNARY[name][0], npop, a, rtol=rtol)


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_noncontiguous(name, rng):
    a = np.abs(rand_array(rng, (8, 9), np.float32)) + 0.01
    npop = UNARY[name][1]
    check(lambda x: getattr(dlcore, name)(x.T[1::2, ::3]), lambda x: npop(x.T[1::2, ::3]), a, rtol=2e-6)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid"])
def test_unary_int_gives_float32(name):
    a = np.array([[1, 2, 3], [4, 5, 9]], dtype=np.int64)
    check(getattr(dlcore, name), lambda x: UNARY[name][1](x.astype(np.float64)), a, dtype=np.float32, rtol=2e-6)


@pytest.mark.parametrize("name", ["neg", "abs", "relu"])
def test_unary_int_keeps_int64(name):
    a = np.array([[-3, 0, 2 ** 62 + 1], [5, -(2 ** 62) - 1, 1]], dtype=np.int64)
    check(getattr(dlcore, name), UNARY[name][1], a, dtype=np.int64)


def test_unary_special_values():
    a = np.array([0.0, -1.0, np.inf, -np.inf, np.nan, 1e-30, 100.0, -100.0], dtype=np.float32)
    with np.errstate(all="ignore"):
        for name in ["exp", "log", "sqrt", "tanh", "relu", "abs", "neg"]:
            check(getattr(dlcore, name), UNARY[name][1], a, rtol=2e-6)
        check(dlcore.sigmoid, lambda x: 1 / (1 + np.exp(-x.astype(np.float64))), a, rtol=2e-6, dtype=np.float32)


# ---------------------------------------------------------------- in-place

@pytest.mark.parametrize("name,npop", [("add_", np.add), ("sub_", np.subtract), ("mul_", np.multiply),
                                       ("div_", np.divide)])
def test_inplace_methods(name, npop, rng):
    a = rand_array(rng, (4, 5), np.float32)
    b = rand_array(rng, (5,), np.float32) + 3
    t = dlcore.tensor(a)
    ptr = t.numpy().ctypes.data
    r = getattr(t, name)(dlcore.tensor(b))
    assert r is t or r.numpy().ctypes.data == ptr
    assert t.numpy().ctypes.data == ptr
    assert_same(t, npop(a, b))
    getattr(t, name)(2)
    assert_same(t, npop(npop(a, b), np.float32(2)))


def test_inplace_pow_():
    t = dlcore.tensor([1.0, 2.0, 3.0])
    t.pow_(2)
    assert_same(t, np.array([1, 4, 9], np.float32))
    i = dlcore.tensor([1, 2, 3])
    i.pow_(dlcore.tensor([3, 2, 1]))
    assert_same(i, np.array([1, 4, 3]))


@pytest.mark.parametrize("op,npop", [("__iadd__", np.add), ("__isub__", np.subtract), ("__imul__", np.multiply),
                                     ("__itruediv__", np.divide)])
def test_augmented_assignment_writes_through_view(op, npop, rng):
    base_np = rand_array(rng, (6, 8), np.float64)
    expected = base_np.copy()
    base = dlcore.from_numpy(base_np)
    other = rand_array(rng, (4,), np.float64) + 3
    v = base[::2, 1::2].T  # (4, 3) strided view
    v2 = getattr(v, op)(dlcore.tensor(other)[:, None])
    ev = expected[::2, 1::2].T
    ev[...] = npop(ev, other[:, None])
    np.testing.assert_allclose(base_np, expected, rtol=1e-12)
    assert v2.shape == (4, 3)
    np.testing.assert_allclose(v2.numpy(), ev, rtol=1e-12)


def test_augmented_operators():
    t = dlcore.tensor([1, 2, 3])
    alias = t
    ptr = t.numpy().ctypes.data
    t += 2
    t *= dlcore.tensor([2, 2, 2])
    t -= True
    assert t.numpy().ctypes.data == ptr
    assert_same(t, np.array([5, 7, 9]))
    assert_same(alias, np.array([5, 7, 9]))
    f = dlcore.tensor([1.0, 2.0])
    f /= 4
    f += dlcore.tensor([1, 1])  # int64 into float32 fits
    assert_same(f, np.array([1.25, 1.5], np.float32))
    f64 = dlcore.tensor(np.array([1.0]))
    f64 += 0.1
    assert f64.dtype == dlcore.float64 and f64.item() == 1.1


@pytest.mark.parametrize("do", [
    lambda: dlcore.tensor([1, 2]).__iadd__(1.5),
    lambda: dlcore.tensor([1, 2]).add_(dlcore.tensor([1.0, 2.0])),
    lambda: dlcore.tensor([1, 2]).__itruediv__(2),
    lambda: dlcore.tensor([1, 2]).div_(dlcore.tensor([1, 2])),
    lambda: dlcore.tensor([True]).__iadd__(1),
    lambda: dlcore.tensor([True]).mul_(dlcore.tensor([2])),
])
def test_inplace_result_dtype_must_fit(do):
    with pytest.raises(TypeError):
        do()


def test_inplace_failed_dtype_leaves_tensor_unchanged():
    t = dlcore.tensor([1, 2])
    with pytest.raises(TypeError):
        t += 1.5
    assert_same(t, np.array([1, 2]))


@pytest.mark.parametrize("shape_t,shape_o", [((3,), (2, 3)), ((3, 1), (3, 4)), ((2, 3), (4,)), ((), (2,))])
def test_inplace_operand_must_broadcast_to_self(shape_t, shape_o):
    t = dlcore.zeros(*shape_t)
    with pytest.raises(ValueError, match=r"\(" + ", ".join(str(s) for s in shape_o)):
        t += dlcore.ones(*shape_o)
    with pytest.raises(ValueError):
        t.mul_(dlcore.ones(*shape_o))


def test_augmented_assignment_returns_same_object():
    # Python/numpy/PyTorch semantics: a mutable object's __iadd__ returns self, so aliases stay identical
    t = dlcore.tensor([1.0, 2.0])
    alias = t
    t += 1
    assert t is alias
    t *= dlcore.tensor([2.0, 2.0])
    assert t is alias


def test_fill_int64_exact_large_value():
    big = 2 ** 53 + 1  # not representable as float64
    t = dlcore.zeros(3, dtype=dlcore.int64)
    t.fill_(big)
    assert t.tolist() == [big] * 3
    t[::2].fill_(-big)
    assert t.tolist() == [-big, big, -big]


def test_inplace_self_aliasing():
    t = dlcore.tensor([1.0, 2.0, 3.0])
    t += t
    assert_same(t, np.array([2, 4, 6], np.float32))
    t.mul_(t)
    assert_same(t, np.array([4, 16, 36], np.float32))


def test_zero_fill_copy():
    base = np.arange(12.0).reshape(3, 4)
    expected = base.copy()
    t = dlcore.from_numpy(base)
    t[:, ::2].zero_()
    expected[:, ::2] = 0
    np.testing.assert_array_equal(base, expected)
    t[1].fill_(7.5)
    expected[1] = 7.5
    np.testing.assert_array_equal(base, expected)
    t.T[1:3].copy_(dlcore.tensor([1, 2, 3]))  # broadcasts and casts int64 -> float64
    expected.T[1:3] = [1, 2, 3]
    np.testing.assert_array_equal(base, expected)
    i = dlcore.zeros(2, 2, dtype=dlcore.int64)
    i.fill_(3)
    assert_same(i, np.full((2, 2), 3))
    i.copy_(dlcore.tensor([[1.9, -1.9]]))
    assert_same(i, np.array([[1, -1], [1, -1]]))


def test_copy_from_overlapping_view():
    t = dlcore.tensor([[1.0, 2.0], [3.0, 4.0]])
    t.copy_(t.T)
    assert_same(t, np.array([[1, 3], [2, 4]], np.float32))


def test_copy_shape_mismatch_raises():
    with pytest.raises(ValueError):
        dlcore.zeros(2, 3).copy_(dlcore.zeros(3, 2))


def test_neg_of_bool_raises_or_not_silently_wrong():
    # PyTorch forbids negating bool tensors; numpy too.
    with pytest.raises((TypeError, ValueError)):
        -dlcore.tensor([True, False])
