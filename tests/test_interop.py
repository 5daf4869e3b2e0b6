"""DLPack exchange with numpy and PyTorch: shared memory verified by writing through one side."""
import gc

import numpy as np
import pytest

import dlcore
from conftest import NP_OF, assert_same

ALL_DTYPES = [dlcore.float32, dlcore.float64, dlcore.int64, dlcore.bool]


def _sample(dtype, shape=(3, 4)):
    return dlcore.tensor((np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(NP_OF[dtype]))


def test_dlpack_device():
    assert dlcore.zeros(2).__dlpack_device__() == (1, 0)
    assert tuple(dlcore.zeros(2).T.__dlpack_device__()) == (1, 0)


# ---------------------------------------------------------------- numpy

@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_numpy_from_dlpack_shares_memory(dtype):
    t = _sample(dtype)
    a = np.from_dlpack(t)
    assert a.dtype == NP_OF[dtype] and a.shape == (3, 4)
    np.testing.assert_array_equal(a, t.numpy())
    t[1, 2] = 1  # numpy's from_dlpack gives a read-only array, so write through the tensor
    t[0, 0] = 0
    assert a[1, 2] == 1 and a[0, 0] == 0


def test_numpy_from_dlpack_strided_view():
    base = dlcore.arange(40, dtype=dlcore.float64).reshape(5, 8)
    v = base[1::2, ::3].T
    a = np.from_dlpack(v)
    np.testing.assert_array_equal(a, np.arange(40.0).reshape(5, 8)[1::2, ::3].T)
    base[3, 6] = -1.0
    assert a[2, 1] == -1.0


def test_numpy_from_dlpack_0d_and_empty():
    a = np.from_dlpack(dlcore.tensor(2.5))
    assert a.shape == () and a == 2.5
    e = np.from_dlpack(dlcore.zeros(0, 3, dtype=dlcore.int64))
    assert e.shape == (0, 3) and e.dtype == np.int64


def test_numpy_from_dlpack_copy_true_does_not_share():
    t = dlcore.tensor([1.0, 2.0])
    try:
        a = np.from_dlpack(t, copy=True)
    except TypeError:
        pytest.skip("numpy without the copy= keyword")
    t[0] = 9.0
    assert a[0] == 1.0


def test_dlpack_versioned_and_legacy_capsules():
    t = dlcore.tensor([1.0, 2.0])
    legacy = t.__dlpack__()
    versioned = t.__dlpack__(max_version=(1, 0))
    assert type(legacy).__name__ == "PyCapsule" and type(versioned).__name__ == "PyCapsule"
    assert "dltensor" in repr(legacy)
    assert "dltensor_versioned" in repr(versioned)
    t.__dlpack__(stream=None, dl_device=(1, 0))
    with pytest.raises((ValueError, BufferError, TypeError)):
        t.__dlpack__(dl_device=(2, 0))


@pytest.mark.parametrize("np_dt", [np.float32, np.float64, np.int64, np.bool_])
def test_dlcore_from_dlpack_numpy(np_dt):
    a = (np.arange(12).reshape(3, 4) % 2).astype(np_dt)
    t = dlcore.from_dlpack(a)
    assert_same(t, a)
    t[2, 3] = 0
    a[0, 1] = 1
    assert a[2, 3] == 0 and t[0, 1].item() == 1


def test_dlcore_from_dlpack_numpy_strided():
    a = np.arange(30.0).reshape(5, 6)
    v = a[::2, 1::2]
    t = dlcore.from_dlpack(v)
    assert_same(t, v)
    t[1, 1] = -3.0
    assert a[2, 3] == -3.0


def test_dlpack_producer_lifetime():
    a = np.from_dlpack(dlcore.arange(1000) * 3)  # the temporary tensor must stay alive through the capsule
    gc.collect()
    dlcore.zeros(1000, dtype=dlcore.int64).fill_(-1)  # would likely reuse freed memory
    np.testing.assert_array_equal(a, np.arange(1000) * 3)
    t = dlcore.from_dlpack(np.arange(1000) * 5)
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), np.arange(1000) * 5)


# ---------------------------------------------------------------- torch

TORCH_DT = {dlcore.float32: "float32", dlcore.float64: "float64", dlcore.int64: "int64", dlcore.bool: "bool"}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_torch_from_dlpack_shares_memory(dtype, torch):
    t = _sample(dtype)
    x = torch.from_dlpack(t)
    assert x.dtype == getattr(torch, TORCH_DT[dtype]) and tuple(x.shape) == (3, 4)
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    x[1, 2] = 1
    assert t[1, 2].item() == 1
    t[2, 3] = 0
    assert x[2, 3].item() == 0


@pytest.mark.torch
def test_torch_from_dlpack_strided_view(torch):
    base = dlcore.arange(24, dtype=dlcore.float32).reshape(4, 6)
    v = base[::2, 1::2].T  # (3, 2)
    x = torch.from_dlpack(v)
    assert tuple(x.shape) == (3, 2)
    assert tuple(x.stride()) == tuple(v.stride())
    np.testing.assert_array_equal(x.numpy(), np.arange(24.0, dtype=np.float32).reshape(4, 6)[::2, 1::2].T)
    x[2, 1] = -5.0
    assert base[2, 5].item() == -5.0


@pytest.mark.torch
@pytest.mark.parametrize("tdt", ["float32", "float64", "int64", "bool"])
def test_dlcore_from_dlpack_torch(tdt, torch):
    x = (torch.arange(12).reshape(3, 4) % 2).to(getattr(torch, tdt))
    t = dlcore.from_dlpack(x)
    assert_same(t, x.numpy())
    t[0, 0] = 1
    x[2, 3] = 0
    assert x[0, 0].item() == 1 and t[2, 3].item() == 0


@pytest.mark.torch
@pytest.mark.parametrize("view", ["t", "step", "permute", "expand", "offset"])
def test_dlcore_from_dlpack_torch_noncontiguous(view, torch):
    base = torch.arange(60, dtype=torch.float64).reshape(3, 4, 5)
    x = {"t": lambda b: b[0].t(), "step": lambda b: b[:, ::2, 1::3], "permute": lambda b: b.permute(2, 0, 1),
         "expand": lambda b: b[:, :1, :].expand(3, 4, 5), "offset": lambda b: b[1:, 2:, 3]}[view](base)
    t = dlcore.from_dlpack(x)
    assert t.shape == tuple(x.shape)
    assert t.stride() == tuple(x.stride())
    assert_same(t, x.numpy())
    base.add_(1000.0)
    assert_same(t, x.numpy())  # still shared after the torch side changed
    if view != "expand":
        t[(0,) * t.ndim] = -1.0
        assert x[(0,) * x.ndim].item() == -1.0


@pytest.mark.torch
def test_dlcore_from_legacy_capsule(torch):
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    cap = torch.utils.dlpack.to_dlpack(x)
    t = dlcore.from_dlpack(cap)
    assert_same(t, np.arange(6, dtype=np.float32).reshape(2, 3))
    t[1, 2] = 42.0
    assert x[1, 2].item() == 42.0
    with pytest.raises(Exception):
        dlcore.from_dlpack(cap)  # a capsule can be consumed only once


@pytest.mark.torch
def test_round_trip_dlcore_torch_dlcore(torch):
    t = dlcore.zeros(4, 5)
    x = torch.from_dlpack(t[1:, ::2])
    u = dlcore.from_dlpack(x)
    u[0, 0] = 3.0
    assert t[1, 0].item() == 3.0
    assert x[0, 0].item() == 3.0


@pytest.mark.torch
def test_torch_consumer_lifetime(torch):
    x = torch.from_dlpack(dlcore.arange(1000) * 7)
    gc.collect()
    dlcore.zeros(1000, dtype=dlcore.int64).fill_(-1)
    np.testing.assert_array_equal(x.numpy(), np.arange(1000) * 7)
    t = dlcore.from_dlpack(torch.arange(1000) * 11)
    gc.collect()
    torch.full((1000,), -1)
    np.testing.assert_array_equal(t.numpy(), np.arange(1000) * 11)


@pytest.mark.torch
def test_torch_0d_and_empty(torch):
    x = torch.from_dlpack(dlcore.tensor(3.5))
    assert x.shape == () and x.item() == 3.5
    t = dlcore.from_dlpack(torch.zeros(0, 4))
    assert t.shape == (0, 4) and t.dtype == dlcore.float32
    t0 = dlcore.from_dlpack(torch.tensor(7))
    assert t0.shape == () and t0.item() == 7


@pytest.mark.torch
def test_results_match_torch(torch, rng):
    a = rng.standard_normal((6, 7)).astype(np.float32)
    b = rng.standard_normal((7,)).astype(np.float32)
    ta, tb = dlcore.from_numpy(a), dlcore.from_numpy(b)
    xa, xb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose((ta * tb + 1).sigmoid().numpy(), (xa * xb + 1).sigmoid().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ta.var(0).numpy(), xa.var(0).numpy(), rtol=1e-5)
    assert (ta.argmax(1).numpy() == xa.argmax(1).numpy()).all()
    ia = dlcore.tensor([1, 2, 3])
    assert (ia / 2).dtype == dlcore.float32 and (torch.tensor([1, 2, 3]) / 2).dtype == torch.float32
    assert repr(dlcore.tensor([1.0, 2.0])) == repr(torch.tensor([1.0, 2.0]))
    assert repr(dlcore.tensor([1, 2])) == repr(torch.tensor([1, 2]))


@pytest.mark.torch
@pytest.mark.parametrize("values", [[1.5, 2.25], [1e10, 1.0]])
def test_float_repr_like_torch(values, torch):
    assert repr(dlcore.tensor(values)) == repr(torch.tensor(values))
