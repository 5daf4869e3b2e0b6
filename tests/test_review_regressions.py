"""Regression tests for bugs found in code review (each failed before its fix)."""
from __future__ import annotations

import numpy as np
import pytest

import dlcore
import dlcore.nn.functional as F


def test_stride_of_0d_tensor_raises():
    with pytest.raises(IndexError, match="0-d"):
        dlcore.tensor(1.0).stride(0)


def test_memoryview_survives_data_swap():
    t = dlcore.zeros(1 << 16)
    m = memoryview(t)
    t.data = dlcore.ones(3)
    assert m[0] == 0.0 and len(m) == 1 << 16
    assert t.shape == (3,)


def test_max_pool_returned_indices_are_a_copy():
    x = dlcore.randn(1, 1, 4, 4, requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    idx.add_(10**9)
    y.sum().backward()  # must not use the user's (modified) indices
    assert float(x.grad.sum()) == 4.0


def test_from_numpy_rejects_read_only_arrays():
    with pytest.raises(ValueError, match="read-only"):
        dlcore.from_numpy(np.frombuffer(bytes(16)))
    with pytest.raises(ValueError, match="read-only"):
        dlcore.from_numpy(np.broadcast_to(np.arange(3.0), (4, 3)))


def test_create_graph_grads_are_independent_tensors():
    x = dlcore.ones(2, requires_grad=True)
    y = dlcore.ones(2, requires_grad=True)
    (x + y).sum().backward(create_graph=True)
    assert x.grad.stride() == (1,)
    assert not x.grad._same_storage(y.grad)
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_inplace_on_base_after_view_is_reported():
    a = dlcore.ones(3, requires_grad=True)
    x = a * 1
    v = x[0:2]
    x.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        v.sum().backward()


def test_pow_zero_exponent_gradient_at_zero():
    x = dlcore.zeros(3, requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    _, t = dlcore.autograd.jvp(lambda a: a ** 0, (dlcore.zeros(2),), (dlcore.ones(2),))
    np.testing.assert_array_equal(t.numpy(), [0.0, 0.0])


def test_slice_with_huge_step():
    assert dlcore.arange(5.0)[0:5:2**63 - 1].shape == (1,)


def test_int_arange_near_int64_limits():
    assert dlcore.arange(0, 10, 2**63 - 1).tolist() == [0]
    assert dlcore.arange(-2**63, 2**63 - 1, 2**62).tolist() == [-2**63, -2**62, 0, 2**62]


def test_setitem_with_index_array_and_overlapping_source():
    x = dlcore.arange(4.0)
    x[[1, 2, 3]] = x[0:3]
    assert x.tolist() == [0.0, 0.0, 1.0, 2.0]


def test_copy_into_expanded_tensor_raises():
    z = dlcore.zeros(1, 1)
    with pytest.raises(RuntimeError, match="expanded"):
        z.expand(10, 10).copy_(dlcore.ones(10, 10))


def test_index_select_checks_its_index_version():
    x = dlcore.ones(3, requires_grad=True)
    idx = dlcore.tensor([0, 1])
    y = x.index_select(0, idx)
    idx[0] = 2
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


def test_autograd_grad_keeps_input_dtype():
    x = dlcore.ones(2, requires_grad=True)
    (g,) = dlcore.autograd.grad((x * dlcore.ones(2, dtype=dlcore.float64)).sum(), [x])
    assert g.dtype == dlcore.float32


def test_bool_index_is_rejected():
    with pytest.raises(IndexError, match="bool"):
        dlcore.arange(3)[True]


@pytest.mark.torch
def test_batchnorm1d_3d_input_and_cumulative_momentum_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    b, tb = dlcore.nn.BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5)).astype(np.float32)
        y, ty = b(dlcore.from_numpy(x)), tb(torch.from_numpy(x))
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.running_var.numpy(), tb.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(b.running_mean.numpy(), tb.running_mean.numpy(), rtol=1e-5, atol=1e-6)


def test_index_select_checks_a_non_contiguous_index():
    # the bounds check must read the index in its logical order, not its memory order
    x = dlcore.arange(10.0)
    idx = dlcore.tensor([[1, 2], [40, 4]]).T[0]  # [1, 40], stride 2
    assert not idx.is_contiguous()
    with pytest.raises(IndexError, match="index 40 is out of bounds"):
        x.index_select(0, idx)
    assert x.index_select(0, dlcore.tensor([[1, 2], [3, 4]]).T[0]).tolist() == [1.0, 3.0]


def test_a_gradient_hook_must_keep_the_gradient_shape():
    for make_leaf in (True, False):
        x = dlcore.ones(3, requires_grad=True)
        t = x if make_leaf else x * 2
        t.register_hook(lambda g: dlcore.ones(4))
        with pytest.raises(ValueError, match=r"hook returned a tensor of shape \(4,\).*gradient of shape \(3,\)"):
            (t * 1.0).sum().backward()
