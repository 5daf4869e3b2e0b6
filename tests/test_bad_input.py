"""Bad input raises the right exception type, with a message naming the offending shapes/values."""
import re

import numpy as np
import pytest

import dlcore


def shp(*dims):
    """Regex for a shape tuple as Python prints it."""
    return re.escape(str(tuple(dims)))


# ---------------------------------------------------------------- binary-op shape mismatch

@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
                                lambda a, b: a ** b, lambda a, b: a == b, lambda a, b: a < b, dlcore.maximum,
                                dlcore.minimum, dlcore.add, lambda a, b: a.mul(b)])
@pytest.mark.parametrize("sa,sb", [((2, 3), (4,)), ((3,), (2, 4)), ((2, 1, 5), (3, 4)), ((0,), (2,))])
def test_binary_shape_mismatch(op, sa, sb):
    a, b = dlcore.ones(*sa), dlcore.ones(*sb)
    with pytest.raises(ValueError, match=shp(*sa)) as ei:
        op(a, b)
    assert str(tuple(sb)) in str(ei.value)


def test_where_shape_mismatch():
    with pytest.raises(ValueError, match=shp(3)):
        dlcore.where(dlcore.zeros(2, dtype=dlcore.bool), dlcore.zeros(3), dlcore.zeros(2))


# ---------------------------------------------------------------- dims and indices

@pytest.mark.parametrize("do,dim", [
    (lambda t: t.sum(2), 2), (lambda t: t.sum(-3), -3), (lambda t: t.transpose(0, 5), 5),
    (lambda t: t.squeeze(2), 2), (lambda t: t.unsqueeze(-4), -4), (lambda t: t.flatten(0, 3), 3),
    (lambda t: t.size(2), 2), (lambda t: dlcore.cat([t, t], 2), 2), (lambda t: t.index_select(2, dlcore.tensor([0])), 2),
    (lambda t: t.argmax(4), 4), (lambda t: t.var(7), 7),
])
def test_bad_axis_raises_index_error(do, dim):
    with pytest.raises(IndexError, match=re.escape(str(dim))):
        do(dlcore.zeros(2, 3))


@pytest.mark.parametrize("idx,bad,size", [(3, 3, 3), (-4, -4, 3), ((0, 5), 5, 4), ((slice(None), -5), -5, 4),
                                          ((Ellipsis, 4), 4, 4), ((None, 7), 7, 3)])
def test_out_of_range_index(idx, bad, size):
    t = dlcore.zeros(3, 4)
    with pytest.raises(IndexError) as ei:
        t[idx]
    msg = str(ei.value)
    assert re.search(rf"(?<![\d-]){re.escape(str(bad))}(?!\d)", msg), msg
    assert str(size) in msg
    with pytest.raises(IndexError):
        t[idx] = 1.0


def test_out_of_range_integer_array_index_names_value():
    with pytest.raises(IndexError, match="9"):
        dlcore.zeros(3, 4)[[0, 9]]
    with pytest.raises(IndexError, match="-7"):
        dlcore.zeros(3, 4)[:, dlcore.tensor([-7])]


def test_too_many_indices():
    with pytest.raises(IndexError):
        dlcore.zeros(3)[0, 0]


def test_boolean_mask_of_the_wrong_shape_raises():
    t = dlcore.zeros(3)
    with pytest.raises(IndexError, match=r"mask of shape \(2,\).*\(3,\)"):
        t[dlcore.tensor([True, False])]
    with pytest.raises(IndexError, match=r"mask of shape \(3, 1\)"):
        dlcore.zeros(3, 2)[dlcore.zeros(3, 1, dtype=dlcore.bool)]


def test_two_array_indices_rejected():
    with pytest.raises((IndexError, ValueError, NotImplementedError)):
        dlcore.zeros(3, 4)[[0, 1], [1, 2]]


def test_zero_step_raises():
    with pytest.raises(ValueError, match="zero"):
        dlcore.zeros(5)[::0]


# ---------------------------------------------------------------- dtypes and data

@pytest.mark.parametrize("data", [["a"], ["1.0", 2.0], [b"x"], [1 + 2j], np.array([1 + 1j]), np.array(["x"]),
                                  np.array([np.datetime64("2020-01-01")])], ids=repr)
def test_unsupported_data_type(data):
    with pytest.raises(TypeError):
        dlcore.tensor(data)


@pytest.mark.parametrize("data", [None, object(), {"a": 1}, [None, 1.0], [[1.0], [object()]]], ids=repr)
def test_non_numeric_data(data):
    with pytest.raises((TypeError, ValueError)):
        dlcore.tensor(data)


@pytest.mark.parametrize("data", [[[1, 2], [3]], [1, [2, 3]], [[1.0, 2.0], [3.0, 4.0, 5.0]], [[[1]], [2]]], ids=repr)
def test_ragged_lists(data):
    with pytest.raises(ValueError):
        dlcore.tensor(data)


@pytest.mark.parametrize("arr", [np.arange(3, dtype=np.int32), np.arange(3, dtype=np.uint64),
                                 np.arange(3, dtype=np.float16)])
def test_from_numpy_unsupported_dtype_names_it(arr):
    with pytest.raises(TypeError, match=str(arr.dtype)):
        dlcore.from_numpy(arr)


@pytest.mark.parametrize("make", [lambda dt: dlcore.zeros(2, dtype=dt), lambda dt: dlcore.tensor([1.0], dtype=dt),
                                  lambda dt: dlcore.ones(2).to(dt), lambda dt: dlcore.arange(3, dtype=dt),
                                  lambda dt: dlcore.full((2,), 1, dtype=dt)])
@pytest.mark.parametrize("dt", ["complex64", "int32", np.complex128, "float16", "banana"])
def test_unsupported_dtype_argument(make, dt):
    with pytest.raises(TypeError):
        make(dt)


def test_nan_to_int_rejected():
    with pytest.raises(ValueError, match="nan|non-finite"):
        dlcore.tensor([1.0, float("nan")], dtype=dlcore.int64)


# ---------------------------------------------------------------- sizes

@pytest.mark.parametrize("shape", [(2 ** 40, 2 ** 40), (2 ** 32, 2 ** 32), (3, 2 ** 62), (2 ** 21, 2 ** 21, 2 ** 21),
                                   (2 ** 63 - 1, 2)])
def test_shape_overflowing_int64(shape):
    with pytest.raises(ValueError, match=re.escape(str(shape[0]))):
        dlcore.zeros(*shape)
    with pytest.raises(ValueError):
        dlcore.empty(*shape)
    with pytest.raises(ValueError):
        dlcore.zeros(1).reshape(*shape)
    with pytest.raises(ValueError):
        dlcore.zeros(1, 1).expand(*shape)


@pytest.mark.parametrize("shape", [(-1,), (2, -3)])
def test_negative_size(shape):
    with pytest.raises(ValueError, match=str(min(shape))):
        dlcore.zeros(*shape)


@pytest.mark.parametrize("shape,new", [((2, 3), (4, 2)), ((2, 3), (-1, 4)), ((6,), (7,)), ((0, 3), (-1, 0)),
                                       ((2, 3), (5, -1))])
def test_reshape_incompatible(shape, new):
    t = dlcore.zeros(*shape)
    n = int(np.prod(shape))
    with pytest.raises(ValueError, match=rf"\b{n}\b"):
        t.reshape(*new)
    with pytest.raises(ValueError, match=rf"\b{n}\b"):
        t.view(*new)


def test_reshape_two_minus_ones():
    with pytest.raises(ValueError):
        dlcore.zeros(6).reshape(-1, -1)


# ---------------------------------------------------------------- matmul / cat / stack / expand

@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3, 4), (2, 5, 6)), ((5,), (4, 2)),
                                   ((2, 3, 4), (3, 4, 2))])
def test_matmul_misaligned(sa, sb):
    with pytest.raises(ValueError, match=shp(*sa)) as ei:
        dlcore.matmul(dlcore.zeros(*sa), dlcore.zeros(*sb))
    assert str(tuple(sb)) in str(ei.value)


def test_matmul_batch_dims_not_broadcastable():
    with pytest.raises(ValueError, match=shp(2, 3, 4)):
        dlcore.zeros(2, 3, 4) @ dlcore.zeros(3, 4, 5)


@pytest.mark.parametrize("shapes,dim", [([(2, 3), (2, 4)], 0), ([(2, 3), (3, 3)], 1), ([(2,), (2, 2)], 0),
                                        ([(2, 3, 4), (2, 3, 5)], 1)])
def test_cat_mismatched(shapes, dim):
    with pytest.raises(ValueError, match=shp(*shapes[1])):
        dlcore.cat([dlcore.zeros(*s) for s in shapes], dim)


def test_cat_stack_empty_list():
    with pytest.raises(ValueError):
        dlcore.cat([])
    with pytest.raises(ValueError):
        dlcore.stack([])


def test_expand_incompatible():
    with pytest.raises(ValueError, match=shp(3)):
        dlcore.zeros(3).expand(2)
    with pytest.raises(ValueError):
        dlcore.zeros(2, 3).expand(3)  # fewer dims than the tensor


# ---------------------------------------------------------------- scalars from tensors

@pytest.mark.parametrize("shape", [(2,), (2, 3), (0,)])
def test_item_multi_element(shape):
    with pytest.raises(ValueError, match=shp(*shape)):
        dlcore.zeros(*shape).item()
    with pytest.raises(ValueError):
        float(dlcore.zeros(*shape))
    with pytest.raises(ValueError):
        int(dlcore.zeros(*shape))


@pytest.mark.parametrize("shape", [(2,), (2, 3), (0,)])
def test_bool_multi_element(shape):
    with pytest.raises(ValueError, match=shp(*shape)):
        bool(dlcore.zeros(*shape))
    with pytest.raises(ValueError):
        if dlcore.ones(*shape) > 0:
            pass


# ---------------------------------------------------------------- misc arguments

@pytest.mark.parametrize("do", [
    lambda: dlcore.arange(0, 10, 0), lambda: dlcore.arange(0, float("inf")), lambda: dlcore.randint(5, 2, (3,)),
    lambda: dlcore.linspace(0, 1, -1), lambda: dlcore.eye(-1), lambda: dlcore.randperm(-1),
    lambda: dlcore.set_num_threads(0),
])
def test_bad_arguments_value_error(do):
    with pytest.raises(ValueError):
        do()


@pytest.mark.parametrize("do", [lambda: dlcore.zeros(2.5), lambda: dlcore.zeros(2, "3"), lambda: dlcore.ones(True),
                                lambda: dlcore.zeros(2) + "a", lambda: dlcore.manual_seed(1.5)])
def test_bad_arguments_type_error(do):
    with pytest.raises(TypeError):
        do()


def test_failed_binary_op_leaves_inplace_target_unchanged():
    t = dlcore.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        t.add_(dlcore.ones(2))
    assert t.tolist() == [1.0, 2.0, 3.0]
