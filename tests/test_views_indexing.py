"""Views, shape ops, cat/stack/index_select, __getitem__ / __setitem__ against numpy."""
import numpy as np
import pytest

import dlcore
from conftest import assert_same, check, rand_array


def shares_memory(t, base_np):
    return np.shares_memory(t.numpy(), base_np)


def strides_of(t):
    return tuple(s * t.numpy().itemsize for s in t.stride())


# ---------------------------------------------------------------- reshape / view

@pytest.mark.parametrize("shape,new", [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)),
                                       ((24,), (2, 3, 4)), ((1,), ()), ((), (1, 1)), ((0, 3), (3, 0)),
                                       ((0, 3), (-1, 5)), ((2, 3), (3, 2))], ids=str)
def test_reshape_contiguous_is_view(shape, new, rng):
    a = rand_array(rng, shape, np.float32)
    t = dlcore.from_numpy(a)
    r = t.reshape(*new)
    assert_same(r, a.reshape(new))
    assert_same(t.reshape(new), a.reshape(new))  # tuple form
    assert_same(dlcore.reshape(t, new), a.reshape(new))
    assert_same(t.view(*new), a.reshape(new))
    if a.size:
        assert shares_memory(r, a)
        r.numpy().reshape(-1)[-1] = 123.0
        assert a.reshape(-1)[-1] == 123.0


def test_reshape_noncontiguous_copies_when_needed():
    a = np.arange(12.0).reshape(3, 4)
    t = dlcore.from_numpy(a).T  # (4, 3), strides (1, 4)
    r = t.reshape(12)
    assert_same(r, a.T.reshape(12))
    r[0] = -1.0
    assert a[0, 0] == 0.0  # it had to be a copy
    with pytest.raises(ValueError):
        t.view(12)
    with pytest.raises(ValueError):
        dlcore.from_numpy(a)[:, :3].view(9)


def test_view_splitting_a_strided_dim_is_a_view():
    a = np.arange(24.0).reshape(6, 4)
    t = dlcore.from_numpy(a).T  # (4, 6) strides (1, 4)
    v = t.view(4, 2, 3)
    assert_same(v, a.T.reshape(4, 2, 3))
    assert v.stride() == (1, 12, 4)
    v[3, 1, 2] = -9.0
    assert a[5, 3] == -9.0
    s = dlcore.from_numpy(a)[:, 1:3]  # (6, 2) strides (4, 1)
    v2 = s.view(2, 3, 2)
    assert_same(v2, a[:, 1:3].reshape(2, 3, 2))
    assert v2.stride() == (12, 4, 1)
    r = s.reshape(3, 2, 2)  # view possible -> must share memory
    r[0, 0, 0] = 77.0
    assert a[0, 1] == 77.0


def test_flatten(rng):
    a = rand_array(rng, (2, 3, 4, 5), np.float64)
    check(lambda x: x.flatten(), lambda x: x.reshape(-1), a)
    check(lambda x: x.flatten(1), lambda x: x.reshape(2, -1), a)
    check(lambda x: x.flatten(1, 2), lambda x: x.reshape(2, 12, 5), a)
    check(lambda x: dlcore.flatten(x, -3, -2), lambda x: x.reshape(2, 12, 5), a)
    check(lambda x: x.transpose(0, 3).flatten(), lambda x: x.swapaxes(0, 3).reshape(-1), a)
    check(lambda x: x.flatten(), lambda x: x.reshape(1), np.array(5.0))


def test_transpose_permute_T(rng):
    a = rand_array(rng, (2, 3, 4), np.float32)
    check(lambda x: x.transpose(0, 2), lambda x: x.swapaxes(0, 2), a)
    check(lambda x: dlcore.transpose(x, -1, 1), lambda x: x.swapaxes(-1, 1), a)
    check(lambda x: x.permute(1, 2, 0), lambda x: x.transpose(1, 2, 0), a)
    check(lambda x: x.permute((2, 0, 1)), lambda x: x.transpose(2, 0, 1), a)
    check(lambda x: dlcore.permute(x, (-1, 0, 1)), lambda x: x.transpose(2, 0, 1), a)
    check(lambda x: x.T, lambda x: x.T, a)
    check(lambda x: x.T, lambda x: x.T, a[0, 0])
    check(lambda x: x.T, lambda x: x.T, np.array(1.0))
    m = rand_array(rng, (3, 5), np.int64)
    check(lambda x: x.t(), lambda x: x.T, m)
    check(lambda x: x.t(), lambda x: x, m[0])
    t = dlcore.from_numpy(a)
    assert strides_of(t.permute(2, 0, 1)) == a.transpose(2, 0, 1).strides
    assert shares_memory(t.T, a)
    with pytest.raises(ValueError):
        dlcore.from_numpy(a).t()
    with pytest.raises(ValueError):
        t.permute(0, 1)
    with pytest.raises(ValueError):
        t.permute(0, 1, 1)


def test_squeeze_unsqueeze(rng):
    a = rand_array(rng, (1, 3, 1, 4), np.float32)
    check(lambda x: x.squeeze(), lambda x: x.squeeze(), a)
    check(lambda x: x.squeeze(2), lambda x: x.squeeze(2), a)
    check(lambda x: x.squeeze(-4), lambda x: x.squeeze(0), a)
    check(lambda x: x.squeeze(1), lambda x: x, a)  # size != 1: no-op like PyTorch
    check(lambda x: dlcore.squeeze(x), lambda x: x.squeeze(), a)
    check(lambda x: x.unsqueeze(0), lambda x: x[None], a)
    check(lambda x: x.unsqueeze(-1), lambda x: x[..., None], a)
    check(lambda x: x.unsqueeze(4), lambda x: x[..., None], a)
    check(lambda x: dlcore.unsqueeze(x, 2), lambda x: np.expand_dims(x, 2), a)
    check(lambda x: x.unsqueeze(0), lambda x: x[None], np.array(3.0))
    check(lambda x: x.squeeze(), lambda x: x.squeeze(), np.ones((1, 1), np.int64))
    with pytest.raises(IndexError):
        dlcore.from_numpy(a).unsqueeze(6)


def test_expand_broadcast_to():
    a = np.arange(3.0).reshape(3, 1)
    t = dlcore.from_numpy(a)
    e = t.expand(2, 3, 4)
    assert_same(e, np.broadcast_to(a, (2, 3, 4)))
    assert e.stride()[0] == 0 and e.stride()[2] == 0
    assert_same(t.expand(-1, 5), np.broadcast_to(a, (3, 5)))
    assert_same(t.broadcast_to((2, 3, 2)), np.broadcast_to(a, (2, 3, 2)))
    assert_same(dlcore.broadcast_to(t, (3, 0)), np.zeros((3, 0)))
    a[1, 0] = 10.0
    assert e[1, 1, 3].item() == 10.0  # expand is a view
    with pytest.raises(ValueError):
        t.expand(4, 4)
    with pytest.raises(ValueError):
        t.broadcast_to((3,))


def test_contiguous_clone_is_contiguous_stride_offset():
    a = np.arange(20.0).reshape(4, 5)
    t = dlcore.from_numpy(a)
    assert t.is_contiguous() and t.stride() == (5, 1) and t.storage_offset() == 0
    v = t[1:, 2::2]
    assert not v.is_contiguous()
    assert v.stride() == (5, 2) and v.storage_offset() == 7
    c = v.contiguous()
    assert c.is_contiguous() and c.stride() == (2, 1)
    assert_same(c, a[1:, 2::2])
    c[0, 0] = -1.0
    assert a[1, 2] == 7.0
    assert t.contiguous().numpy().ctypes.data == a.ctypes.data  # already contiguous: no copy
    k = t.clone()
    k[0, 0] = 100.0
    assert a[0, 0] == 0.0
    assert_same(dlcore.clone(v), a[1:, 2::2])
    assert_same(dlcore.contiguous(t.T), a.T)
    assert dlcore.zeros(3, 1).T.is_contiguous()  # size-1 dims do not matter


@pytest.mark.parametrize("src", [np.float32, np.float64, np.int64, np.bool_])
@pytest.mark.parametrize("dst", ["float", "double", "long", "bool"])
def test_dtype_conversions(src, dst):
    a = np.array([[0.0, -1.7, 2.5], [3.9, 0.2, -0.0]]).astype(src)
    target = {"float": np.float32, "double": np.float64, "long": np.int64, "bool": np.bool_}[dst]
    check(lambda x: getattr(x, dst)(), lambda x: x.astype(target), a, dtype=target)
    check(lambda x: x.to(getattr(dlcore, dst if dst != "long" else "int64")).T,
          lambda x: x.astype(target).T, a, dtype=target)
    check(lambda x: x.T.to(dlcore.dtype.float64), lambda x: x.T.astype(np.float64), a)


def test_to_same_dtype_and_independence():
    t = dlcore.tensor([1.0, 2.0])
    d = t.double()
    d[0] = 9.0
    assert t[0].item() == 1.0


# ---------------------------------------------------------------- cat / stack / index_select

@pytest.mark.parametrize("shapes,dim", [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1), ([(2, 3)], -1),
                                        ([(0, 3), (2, 3)], 0), ([(3,), (0,), (2,)], 0),
                                        ([(2, 3, 4), (2, 1, 4)], -2)], ids=str)
def test_cat(shapes, dim, rng):
    arrs = [rand_array(rng, s, np.float32) for s in shapes]
    check(lambda *xs: dlcore.cat(list(xs), dim), lambda *xs: np.concatenate(xs, dim), *arrs)
    check(lambda *xs: dlcore.cat(tuple(x.T.T for x in xs), dim=dim), lambda *xs: np.concatenate(xs, dim), *arrs)


def test_cat_noncontiguous_and_promotion():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    check(lambda x, y: dlcore.cat([x.T[::2], y], 0), lambda x, y: np.concatenate([x.T[::2], y]), a, b,
          dtype=np.float32)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack(dim, rng):
    arrs = [rand_array(rng, (3, 4), np.int64) for _ in range(3)]
    check(lambda *xs: dlcore.stack(list(xs), dim), lambda *xs: np.stack(xs, dim), *arrs)
    check(lambda *xs: dlcore.stack([x.T for x in xs], dim=dim), lambda *xs: np.stack([x.T for x in xs], dim), *arrs)


def test_stack_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(3, 4\)|\(4, 3\)"):
        dlcore.stack([dlcore.zeros(3, 4), dlcore.zeros(4, 3)])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select(dim, rng):
    a = rand_array(rng, (4, 5), np.float64)
    idx = np.array([3, 0, 0, -1 + 4, 2], dtype=np.int64)
    check(lambda x: x.index_select(dim, dlcore.tensor(idx[:4])), lambda x: np.take(x, idx[:4], axis=dim), a)
    check(lambda x: dlcore.index_select(x.T, dim, dlcore.tensor([1])), lambda x: np.take(x.T, [1], axis=dim), a)
    check(lambda x: x.index_select(dim, dlcore.tensor(np.zeros(0, np.int64))),
          lambda x: np.take(x, np.zeros(0, np.int64), axis=dim), a)
    with pytest.raises(IndexError, match="7"):
        dlcore.from_numpy(a).index_select(dim, dlcore.tensor([0, 7]))


# ---------------------------------------------------------------- __getitem__ (basic)

BASIC_INDICES = [
    0, -1, 2, (1, 2), (-2, -3), slice(None), slice(1, 3), slice(None, None, 2), slice(1, None, 3),
    (slice(None), 1), (Ellipsis, 0), (Ellipsis, slice(None, None, 2)), (None,), (None, 1, None),
    (0, Ellipsis, None), (slice(2, 100),), (slice(10, 20),), (slice(-3, -1), slice(None), slice(1, 2)),
    (1, slice(None, None, 4), Ellipsis), (slice(0, 0),), (2, 3, 4), (slice(None), None, slice(1, None, 2), -1),
    (Ellipsis,), (), (slice(-100, 100, 5),),
]


@pytest.mark.parametrize("idx", BASIC_INDICES, ids=repr)
def test_getitem_basic(idx):
    a = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6)
    t = dlcore.from_numpy(a)
    r = t[idx]
    exp = a[idx]
    assert_same(r, exp)
    if isinstance(exp, np.ndarray) and exp.size:
        assert shares_memory(r, a)  # basic indexing gives views
        big = [i for i, n in enumerate(exp.shape) if n > 1]  # strides of size-1 dims are arbitrary
        assert [strides_of(r)[i] for i in big] == [exp.strides[i] for i in big]
        assert r.storage_offset() * 8 == exp.ctypes.data - a.ctypes.data


def test_getitem_on_noncontiguous_and_0d():
    a = np.arange(60, dtype=np.int64).reshape(5, 12)
    t = dlcore.from_numpy(a)
    assert_same(t.T[1::3, ::2][1:, -1], a.T[1::3, ::2][1:, -1])
    assert_same(t[:, 1::5].T[2], a[:, 1::5].T[2])
    s = dlcore.tensor(3.5)
    assert_same(s[()], np.array(3.5, np.float32))
    assert_same(s[None], np.array([3.5], np.float32))
    assert_same(s[...], np.array(3.5, np.float32))
    with pytest.raises(IndexError):
        s[0]


def test_view_write_changes_base():
    a = np.zeros((3, 4), np.int64)
    t = dlcore.from_numpy(a)
    row = t[1]
    row[2] = 5
    assert a[1, 2] == 5
    t[0] = 7
    assert (a[0] == 7).all()
    col = t[:, ::3]
    col[...] = -1
    expected = np.zeros((3, 4), np.int64)
    expected[1, 2] = 5
    expected[0] = 7
    expected[:, ::3] = -1
    np.testing.assert_array_equal(a, expected)


# ---------------------------------------------------------------- __getitem__ (one integer-array index)

ADV_INDICES = [
    [0, 2], [-1, 0, -1], np.array([3, 1], dtype=np.int64), np.array([[0, 1], [2, 3]]),
    (slice(None), [4, 0]), (slice(None), np.array([[1], [2]])), (1, [0, 0, 3]), ([2, 1], 3),
    (Ellipsis, [5, 1]), (slice(1, None, 2), [0, 4], slice(None, None, 3)), (None, [1], 0),
    (slice(None), None, [3, 2]), (slice(None, 3), slice(None), [1, -6]), ("tensor", [2, 0, 1]),
]


@pytest.mark.parametrize("idx", ADV_INDICES, ids=repr)
def test_getitem_one_advanced_index(idx):
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    t = dlcore.from_numpy(a)
    if isinstance(idx, tuple) and idx and idx[0] == "tensor":
        np_idx = np.array(idx[1])
        assert_same(t[dlcore.tensor(idx[1])], a[np_idx])
        assert_same(t[:, dlcore.tensor(idx[1])], a[:, np_idx])
        return
    np_idx = tuple(np.array(i, dtype=np.int64) if isinstance(i, list) else i for i in idx) \
        if isinstance(idx, tuple) else np.array(idx, dtype=np.int64)
    r = t[idx]
    assert_same(r, a[np_idx])
    if r.numel():
        r.numpy().reshape(-1)[0] = -1  # advanced indexing copies
        assert (a >= 0).all()


def test_getitem_empty_list_index():
    # numpy and PyTorch treat an empty list as an (empty) integer index
    t = dlcore.zeros(4, 5)
    assert t[[]].shape == (0, 5)
    assert t[:, []].shape == (4, 0)


def test_getitem_advanced_on_noncontiguous():
    a = np.arange(48, dtype=np.int64).reshape(6, 8)
    t = dlcore.from_numpy(a)
    assert_same(t.T[[7, 0, 3]], a.T[[7, 0, 3]])
    assert_same(t[::2, 1::2][:, np.array([3, 0])], a[::2, 1::2][:, [3, 0]])
    assert_same(t.T[1:, [1, 2]], a.T[1:, [1, 2]])


@pytest.mark.parametrize("idx", [[0, 4], [-5], np.array([1, 10]), (slice(None), [0, 5])], ids=repr)
def test_getitem_advanced_out_of_range(idx):
    t = dlcore.zeros(4, 5)
    with pytest.raises(IndexError):
        t[idx]


def test_getitem_errors():
    t = dlcore.zeros(4, 5)
    with pytest.raises(ValueError, match="zero"):
        t[::0]
    with pytest.raises(IndexError, match="mask"):
        t[(t > 0)[:, :2]]  # a boolean mask must match the dims it indexes
    with pytest.raises(IndexError, match="mask"):
        t[np.array([True, False, True])]
    with pytest.raises(IndexError):
        t[0, 0, 0]
    with pytest.raises(IndexError, match="-5"):
        t[-5]
    with pytest.raises(IndexError):
        t[..., ...]
    with pytest.raises((IndexError, TypeError)):
        t[0.5]


# ---------------------------------------------------------------- __setitem__

SET_CASES = [
    (1, 7.0), ((slice(None), 2), 3.0), ((slice(1, None, 2), slice(None, None, 3)), -2.0),
    ((Ellipsis, 0), np.arange(4.0)[:, None] * np.ones((1, 5))), (0, np.arange(5.0)[:, None]),
    ((slice(None), slice(None), 1), np.arange(5.0)), ((None, 2), 1.5), (..., 0.0),
    ([0, 2], 9.0), ([3, 0], np.arange(30.0).reshape(1, 5, 6)), ((slice(None), [1, 4]), np.arange(6.0)),
    ((1, [0, 2], slice(None, None, 2)), np.array([[1.0], [2.0]])), (np.array([[1], [3]]), -4.0),
    ((Ellipsis, [5, 0]), np.array([10.0, 20.0])),
]


@pytest.mark.parametrize("idx,value", SET_CASES, ids=repr)
@pytest.mark.parametrize("value_kind", ["as_is", "tensor"])
def test_setitem(idx, value, value_kind):
    a = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6)
    expected = a.copy()
    np_idx = tuple(np.array(i) if isinstance(i, list) else i for i in idx) if isinstance(idx, tuple) else (
        np.array(idx) if isinstance(idx, list) else idx)
    expected[np_idx] = value
    v = dlcore.tensor(value, dtype=dlcore.float64) if value_kind == "tensor" else value
    dlcore.from_numpy(a)[idx] = v
    np.testing.assert_array_equal(a, expected)


def test_setitem_noncontiguous_target_and_dtype_cast():
    a = np.zeros((4, 6), np.int64)
    t = dlcore.from_numpy(a)
    t.T[::2, 1:] = dlcore.tensor([1, 2, 3])
    expected = np.zeros((4, 6), np.int64)
    expected.T[::2, 1:] = [1, 2, 3]
    np.testing.assert_array_equal(a, expected)
    f = dlcore.zeros(3)
    f[[0, 2]] = dlcore.tensor([5, 6])  # int64 values into float32
    assert_same(f, np.array([5.0, 0.0, 6.0], np.float32))
    f[1] = True
    assert f[1].item() == 1.0


def test_setitem_from_overlapping_self():
    a = np.arange(6.0)
    t = dlcore.from_numpy(a)
    t[1:] = t[:-1].clone()
    np.testing.assert_array_equal(a, [0, 0, 1, 2, 3, 4])


def test_setitem_bad_value_shape():
    t = dlcore.zeros(3, 4)
    with pytest.raises(ValueError, match=r"\(2,\)|\(3, 4\)|\(4,\)"):
        t[0] = dlcore.zeros(2)
    with pytest.raises(ValueError):
        t[:, [0, 1]] = np.zeros((3, 3))
    with pytest.raises(IndexError):
        t[[0, 3]] = 1.0


# ---- boolean masks (numpy semantics for a single boolean index) ----

@pytest.mark.parametrize("shape,mask_fn", [
    ((6,), lambda a: a > 0),
    ((3, 4), lambda a: a > 0),
    ((3, 4), lambda a: a[:, 0] > 0),
    ((2, 3, 4), lambda a: (a > 0)[:, :, 0]),
])
def test_boolean_mask_getitem_matches_numpy(shape, mask_fn):
    a = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    m = mask_fn(a)
    got = dlcore.from_numpy(a)[dlcore.from_numpy(np.ascontiguousarray(m))]
    np.testing.assert_array_equal(got.numpy(), a[m])
    got_np_mask = dlcore.from_numpy(a)[np.ascontiguousarray(m)]
    np.testing.assert_array_equal(got_np_mask.numpy(), a[m])


def test_boolean_mask_with_other_indices():
    a = np.arange(24.0).reshape(2, 3, 4)
    m = np.array([True, False, True, True])
    t = dlcore.from_numpy(a)
    np.testing.assert_array_equal(t[:, 1, m].numpy(), a[:, 1, m])
    np.testing.assert_array_equal(t[1, m[:3]].numpy(), a[1, m[:3]])


def test_boolean_mask_setitem_scalar_and_values():
    a = np.random.default_rng(4).standard_normal((4, 5))
    t = dlcore.from_numpy(a.copy())
    t[t < 0] = 0.0
    b = a.copy()
    b[b < 0] = 0.0
    np.testing.assert_array_equal(t.numpy(), b)
    t2 = dlcore.from_numpy(a.copy())
    m = a > 0.5
    t2[dlcore.from_numpy(m)] = dlcore.from_numpy(np.arange(m.sum(), dtype=np.float64))
    b2 = a.copy()
    b2[m] = np.arange(m.sum())
    np.testing.assert_array_equal(t2.numpy(), b2)


def test_boolean_mask_gradient():
    x = dlcore.tensor([1.0, -2.0, 3.0, -4.0], requires_grad=True)
    (x[x > 0] * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 2.0, 0.0]


# ---- negative steps: views with negative strides (numpy semantics) ----

@pytest.mark.parametrize("key", [np.s_[::-1], np.s_[:, ::-2], np.s_[3:0:-2, 5::-3], np.s_[-1:-5:-1], np.s_[::-1, ::-1],
                                 np.s_[10:2:-1], np.s_[-100::-1], np.s_[2:2:-1], np.s_[1::-1, -2]])
def test_negative_step_views_match_numpy(key):
    a = np.arange(24.0).reshape(4, 6)
    t = dlcore.from_numpy(a)
    v = t[key]
    np.testing.assert_array_equal(v.numpy(), a[key])
    assert v._same_storage(t)  # a view, not a copy
    np.testing.assert_array_equal((v * 2 + 1).numpy(), a[key] * 2 + 1)
    np.testing.assert_array_equal(v.contiguous().numpy(), a[key])
    if v.ndim:
        np.testing.assert_allclose(v.sum(0).numpy(), a[key].sum(0))


def test_negative_step_write_through_and_grad():
    t = dlcore.arange(6.0)
    t[::-2] = dlcore.tensor([10.0, 20.0, 30.0])
    assert t.tolist() == [0.0, 30.0, 2.0, 20.0, 4.0, 10.0]
    x = dlcore.arange(5.0).requires_grad_()
    (x[::-2] * dlcore.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 2.0, 0.0, 1.0]
    a = dlcore.randn(3, 4, dtype=dlcore.float64, requires_grad=True)
    assert dlcore.autograd.gradcheck(lambda v: v[::-1, 2::-2] * 2, (a,))


def test_negative_strides_export():
    t = dlcore.arange(6.0)[::-1]
    np.testing.assert_array_equal(np.asarray(t), np.arange(6.0)[::-1])
    assert memoryview(t).strides == (-4,)
    np.testing.assert_array_equal(np.from_dlpack(t), np.arange(6.0)[::-1])  # exported as a copy
    with pytest.raises(BufferError, match="negative strides"):
        t.__dlpack__(copy=False)


def test_dlpack_copy_of_a_transposed_view_has_the_right_layout():
    tt = dlcore.arange(6.0).reshape(2, 3).T

    class Wrapper:  # asks the producer for a copy
        def __dlpack__(self, **kw):
            kw.pop("copy", None)
            return tt.__dlpack__(copy=True, **kw)

        def __dlpack_device__(self):
            return (1, 0)

    np.testing.assert_array_equal(np.from_dlpack(Wrapper()), tt.numpy())


@pytest.mark.torch
def test_negative_stride_view_to_torch():
    torch = pytest.importorskip("torch")
    t = dlcore.arange(6.0)[::-1]
    np.testing.assert_array_equal(torch.from_dlpack(t).numpy(), np.arange(6.0, dtype=np.float32)[::-1])
