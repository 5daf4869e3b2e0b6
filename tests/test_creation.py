"""Tensor creation, dtype inference, conversion out to Python/numpy."""

import numpy as np
import pytest

import dlcore
from conftest import NP_OF, assert_same


# ---------------------------------------------------------------- dtypes

def test_dtype_objects():
    for dt, name in [(dlcore.float32, "float32"), (dlcore.float64, "float64"), (dlcore.int64, "int64"),
                     (dlcore.bool, "bool")]:
        assert isinstance(dt, dlcore.dtype)
        assert repr(dt) == f"dlcore.{name}"
    assert len({dlcore.float32, dlcore.float64, dlcore.int64, dlcore.bool}) == 4
    assert dlcore.float32 != dlcore.float64


@pytest.mark.parametrize("a,b,expected", [
    ("bool", "bool", "bool"), ("bool", "int64", "int64"), ("bool", "float32", "float32"),
    ("bool", "float64", "float64"), ("int64", "int64", "int64"), ("int64", "float32", "float32"),
    ("int64", "float64", "float64"), ("float32", "float32", "float32"), ("float32", "float64", "float64"),
    ("float64", "float64", "float64"),
])
def test_promote_types(a, b, expected):
    a, b, expected = getattr(dlcore, a), getattr(dlcore, b), getattr(dlcore, expected)
    assert dlcore.promote_types(a, b) == expected
    assert dlcore.promote_types(b, a) == expected


# ---------------------------------------------------------------- tensor()

@pytest.mark.parametrize("data,dtype,np_expected", [
    ([1.0, 2.5], dlcore.float32, np.array([1.0, 2.5], np.float32)),
    ([1, 2, -3], dlcore.int64, np.array([1, 2, -3], np.int64)),
    ([True, False], dlcore.bool, np.array([True, False])),
    ([[1, 2], [3, 4]], dlcore.int64, np.array([[1, 2], [3, 4]])),
    ([1, 2.5], dlcore.float32, np.array([1, 2.5], np.float32)),
    (3.5, dlcore.float32, np.array(3.5, np.float32)),
    (7, dlcore.int64, np.array(7, np.int64)),
    (True, dlcore.bool, np.array(True)),
    ([], dlcore.float32, np.zeros((0,), np.float32)),
    (np.arange(6, dtype=np.float64).reshape(2, 3), dlcore.float64, np.arange(6.0).reshape(2, 3)),
    (np.arange(6, dtype=np.float32), dlcore.float32, np.arange(6, dtype=np.float32)),
    (np.arange(6, dtype=np.int32), dlcore.int64, np.arange(6)),
    (np.arange(6, dtype=np.uint8), dlcore.int64, np.arange(6)),
    (np.array([True, False]), dlcore.bool, np.array([True, False])),
    (2 ** 40, dlcore.int64, np.array(2 ** 40, np.int64)),
])
def test_tensor_infers_dtype(data, dtype, np_expected):
    t = dlcore.tensor(data)
    assert t.dtype == dtype
    assert_same(t, np_expected)


def test_tensor_int64_extremes_exact():
    vals = [2 ** 63 - 1, -(2 ** 63), 2 ** 53 + 1]
    t = dlcore.tensor(vals)
    assert t.dtype == dlcore.int64
    assert t.tolist() == vals


@pytest.mark.parametrize("dtype", [dlcore.float32, dlcore.float64, dlcore.int64, dlcore.bool])
def test_tensor_explicit_dtype(dtype):
    data = [[0, 1, 2], [3, 0, -1]]
    assert_same(dlcore.tensor(data, dtype=dtype), np.array(data).astype(NP_OF[dtype]))


def test_tensor_copies_numpy():
    a = np.arange(4.0)
    t = dlcore.tensor(a)
    a[0] = 42
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_tensor_from_tensor_copies():
    t = dlcore.tensor([1.0, 2.0])
    u = dlcore.tensor(t)
    u[0] = 5
    assert t.tolist() == [1.0, 2.0]
    assert dlcore.tensor(t, dtype=dlcore.int64).dtype == dlcore.int64


def test_tensor_from_noncontiguous_numpy():
    a = np.arange(24.0).reshape(4, 6)[::2, 1::2].T
    assert_same(dlcore.tensor(a), a)


def test_tensor_requires_grad_flag():
    t = dlcore.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad


# ---------------------------------------------------------------- from_numpy / as_tensor

@pytest.mark.parametrize("np_dt", [np.float32, np.float64, np.int64, np.bool_])
def test_from_numpy_shares_memory_both_ways(np_dt):
    a = np.zeros((3, 4), dtype=np_dt)
    t = dlcore.from_numpy(a)
    assert t.dtype == dlcore.tensor(np.zeros(1, np_dt)).dtype
    assert t.shape == (3, 4)
    a[1, 2] = 1
    assert t[1, 2].item() == 1
    t[2, 3] = 1
    assert a[2, 3] == 1
    assert t.numpy().ctypes.data == a.ctypes.data


def test_from_numpy_strided_view_shares_memory():
    base = np.arange(30.0).reshape(5, 6)
    v = base[1::2, ::3]
    t = dlcore.from_numpy(v)
    assert t.shape == v.shape
    assert_same(t, v)
    t[1, 1] = -1.0
    assert base[3, 3] == -1.0
    base[1, 0] = -7.0
    assert t[0, 0].item() == -7.0


def test_from_numpy_keeps_array_alive():
    t = dlcore.from_numpy(np.arange(1000, dtype=np.int64) * 3)
    import gc
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), np.arange(1000) * 3)


@pytest.mark.parametrize("bad", [np.arange(3, dtype=np.int32), np.arange(3, dtype=np.uint8),
                                 np.arange(3, dtype=np.float16), np.zeros(3, dtype=np.complex64)])
def test_from_numpy_rejects_other_dtypes(bad):
    with pytest.raises(TypeError, match=str(bad.dtype)):
        dlcore.from_numpy(bad)


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, "abc", None])
def test_from_numpy_rejects_non_arrays(bad):
    with pytest.raises(TypeError):
        dlcore.from_numpy(bad)


def test_as_tensor_shares_with_numpy_and_tensor():
    a = np.arange(5.0)
    t = dlcore.as_tensor(a)
    a[0] = 9
    assert t[0].item() == 9
    assert dlcore.as_tensor(t) is t
    c = dlcore.as_tensor([1, 2, 3])
    assert c.dtype == dlcore.int64
    d = dlcore.as_tensor(np.arange(3, dtype=np.int32))
    assert d.dtype == dlcore.int64 and d.tolist() == [0, 1, 2]


# ---------------------------------------------------------------- factories

@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 1, 5)])
@pytest.mark.parametrize("dtype", [None, dlcore.float64, dlcore.int64, dlcore.bool])
def test_zeros_ones(shape, dtype):
    exp_dt = np.float32 if dtype is None else NP_OF[dtype]
    assert_same(dlcore.zeros(*shape, dtype=dtype), np.zeros(shape, exp_dt))
    assert_same(dlcore.ones(*shape, dtype=dtype), np.ones(shape, exp_dt))
    assert_same(dlcore.zeros(shape, dtype=dtype), np.zeros(shape, exp_dt))  # tuple form
    e = dlcore.empty(*shape, dtype=dtype)
    assert e.shape == shape and e.dtype == (dlcore.float32 if dtype is None else dtype)


@pytest.mark.parametrize("value,dtype,expected", [
    (2.5, None, np.full((2, 3), 2.5, np.float32)),
    (7, None, np.full((2, 3), 7, np.int64)),
    (True, None, np.full((2, 3), True)),
    (7, dlcore.float64, np.full((2, 3), 7.0)),
    (2 ** 60 + 1, None, np.full((2, 3), 2 ** 60 + 1, np.int64)),
    (-1, dlcore.bool, np.full((2, 3), True)),
])
def test_full(value, dtype, expected):
    assert_same(dlcore.full((2, 3), value, dtype=dtype), expected)


def test_full_scalar_size():
    assert_same(dlcore.full(4, 1.5), np.full(4, 1.5, np.float32))


def test_like_functions():
    t = dlcore.tensor(np.arange(6, dtype=np.float64).reshape(2, 3)).T
    assert_same(dlcore.zeros_like(t), np.zeros((3, 2)))
    assert_same(dlcore.ones_like(t), np.ones((3, 2)))
    assert_same(dlcore.full_like(t, 3), np.full((3, 2), 3.0))
    assert_same(dlcore.ones_like(t, dtype=dlcore.int64), np.ones((3, 2), np.int64))
    e = dlcore.empty_like(t)
    assert e.shape == (3, 2) and e.dtype == dlcore.float64


@pytest.mark.parametrize("args,np_args,dtype", [
    ((5,), (5,), np.int64),
    ((2, 11, 3), (2, 11, 3), np.int64),
    ((-3, 4), (-3, 4), np.int64),
    ((10, 0, -3), (10, 0, -3), np.int64),
    ((0, 1, 0.1), (0, 1, 0.1), np.float32),
    ((1.5, 4), (1.5, 4), np.float32),
    ((3, 3), (3, 3), np.int64),
    ((5, 2), (5, 2), np.int64),
])
def test_arange(args, np_args, dtype):
    assert_same(dlcore.arange(*args), np.arange(*np_args).astype(dtype))


def test_arange_large_int_exact():
    start = 2 ** 53
    t = dlcore.arange(start, start + 4)
    assert t.tolist() == [start, start + 1, start + 2, start + 3]


def test_arange_dtype_arg():
    assert_same(dlcore.arange(4, dtype=dlcore.float64), np.arange(4.0))


@pytest.mark.parametrize("start,end,steps", [(0, 1, 5), (-2, 3, 11), (1, 1, 3), (0, 10, 1), (0, 1, 0), (5, -5, 7)])
def test_linspace(start, end, steps):
    assert_same(dlcore.linspace(start, end, steps), np.linspace(start, end, steps).astype(np.float32))


@pytest.mark.parametrize("n,m", [(1, None), (3, None), (2, 4), (4, 2), (0, 3)])
def test_eye(n, m):
    assert_same(dlcore.eye(n, m), np.eye(n, m, dtype=np.float32))
    assert_same(dlcore.eye(n, m, dtype=dlcore.int64), np.eye(n, m, dtype=np.int64))


# ---------------------------------------------------------------- random

def test_rand_randn_shapes_ranges():
    dlcore.manual_seed(0)
    r = dlcore.rand(200, 50)
    assert r.dtype == dlcore.float32 and r.shape == (200, 50)
    a = r.numpy()
    assert a.min() >= 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.02
    n = dlcore.randn(200, 50, dtype=dlcore.float64).numpy()
    assert n.dtype == np.float64
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05


def test_randint_and_randperm():
    dlcore.manual_seed(1)
    r = dlcore.randint(-3, 5, (1000,))
    assert r.dtype == dlcore.int64 and r.shape == (1000,)
    assert set(r.tolist()) == set(range(-3, 5))
    r2 = dlcore.randint(4, size=(3, 3))
    assert r2.shape == (3, 3) and 0 <= r2.numpy().min() and r2.numpy().max() < 4
    p = dlcore.randperm(50)
    assert p.dtype == dlcore.int64
    assert sorted(p.tolist()) == list(range(50))
    assert p.tolist() != list(range(50))


def test_randint_high_size_positional_form():
    # documented in randint's docstring and PyTorch: randint(high, size) means low = 0
    r = dlcore.randint(4, (3, 3))
    assert r.shape == (3, 3) and r.dtype == dlcore.int64
    assert 0 <= r.numpy().min() and r.numpy().max() < 4


@pytest.mark.parametrize("fn", [lambda **k: dlcore.rand(4, 5, **k), lambda **k: dlcore.randn(7, **k),
                                lambda **k: dlcore.randint(0, 100, (6,), **k), lambda **k: dlcore.randperm(20, **k)])
def test_manual_seed_reproducible(fn):
    dlcore.manual_seed(123)
    a = fn().numpy().copy()
    b = fn().numpy().copy()
    dlcore.manual_seed(123)
    c = fn().numpy().copy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    dlcore.manual_seed(124)
    assert not np.array_equal(a, fn().numpy())


def test_generator_independent_of_global():
    g1, g2 = dlcore.Generator(7), dlcore.Generator(7)
    dlcore.manual_seed(0)
    a = dlcore.rand(10, generator=g1).numpy().copy()
    dlcore.rand(10)  # advancing the default generator must not affect g2
    b = dlcore.rand(10, generator=g2).numpy().copy()
    np.testing.assert_array_equal(a, b)
    c = dlcore.randn(10, generator=dlcore.Generator(8)).numpy()
    d = dlcore.randn(10, generator=dlcore.Generator(7)).numpy()
    assert not np.array_equal(c, d)


# ---------------------------------------------------------------- conversions out

def test_numpy_zero_copy_contiguous():
    t = dlcore.arange(6).reshape(2, 3)
    a = t.numpy()
    a[1, 1] = 100
    assert t[1, 1].item() == 100
    t[0, 0] = -5
    assert a[0, 0] == -5


def test_numpy_zero_copy_strided_view():
    t = dlcore.zeros(4, 6, dtype=dlcore.float64)
    v = t[1::2, ::2].T
    a = v.numpy()
    assert a.shape == (3, 2)
    assert a.strides == tuple(s * 8 for s in v.stride())
    a[2, 1] = 3.0  # -> t[3, 4]
    assert t[3, 4].item() == 3.0
    t[1, 2] = 4.0  # -> v[1, 0]
    assert a[1, 0] == 4.0


def test_array_protocol_and_memoryview():
    t = dlcore.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert a.dtype == np.float32 and a.shape == (2, 2)
    a[0, 1] = 9.0
    assert t[0, 1].item() == 9.0
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float64), [[1, 9], [3, 4]])
    m = memoryview(t)
    assert m.format == "f" and m.shape == (2, 2) and m.itemsize == 4
    assert m.tolist() == [[1.0, 9.0], [3.0, 4.0]]
    mi = memoryview(dlcore.tensor([1, 2, 3]))
    assert mi.itemsize == 8 and mi.tolist() == [1, 2, 3]


def test_item_and_python_scalars():
    assert dlcore.tensor(2.5).item() == 2.5 and isinstance(dlcore.tensor(2.5).item(), float)
    assert dlcore.tensor([7]).item() == 7 and isinstance(dlcore.tensor([7]).item(), int)
    assert dlcore.tensor([[True]]).item() is True
    assert dlcore.tensor(2 ** 62 + 1).item() == 2 ** 62 + 1
    assert float(dlcore.tensor([1.5])) == 1.5
    assert int(dlcore.tensor(-3)) == -3
    assert int(dlcore.tensor(3.7)) == 3
    assert bool(dlcore.tensor(0.0)) is False
    assert bool(dlcore.tensor([2])) is True


def test_tolist():
    assert dlcore.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert dlcore.tensor(3.0).tolist() == 3.0
    assert dlcore.tensor([[1, 2], [3, 4]]).T.tolist() == [[1, 3], [2, 4]]
    assert dlcore.zeros(0, 2).tolist() == []


def test_len_and_iteration():
    t = dlcore.tensor([[1, 2], [3, 4], [5, 6]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(TypeError):
        len(dlcore.tensor(1.0))
    with pytest.raises(TypeError):
        iter(dlcore.tensor(1.0))


@pytest.mark.parametrize("make,expected", [
    (lambda: dlcore.tensor([1.0, 2.0]), "tensor([1., 2.])"),
    (lambda: dlcore.tensor([1, 2]), "tensor([1, 2])"),
    (lambda: dlcore.tensor([1.0, 2.0], dtype=dlcore.float64), "tensor([1., 2.], dtype=dlcore.float64)"),
    (lambda: dlcore.tensor([True, False]), "tensor([ True, False])"),
    (lambda: dlcore.tensor(3), "tensor(3)"),
])
def test_repr(make, expected):
    assert repr(make()) == expected


def test_numel_ndim_size():
    t = dlcore.zeros(2, 3, 4)
    assert t.numel() == 24 and t.ndim == 3 and t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert dlcore.numel(t) == 24
    assert dlcore.zeros(()).numel() == 1 and dlcore.zeros(3, 0).numel() == 0
