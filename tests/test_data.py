"""Tests of dlcore.data: Dataset, TensorDataset, DataLoader (batching, drop_last, shuffling,
seeds, the batched ``gather`` fast path vs the per-example path, transform), random_split,
and the transforms Normalize, RandomCrop, RandomHorizontalFlip and Compose on single images
and on batches.
"""
from __future__ import annotations

import numpy as np
import pytest

import dlcore
from dlcore.data import (Compose, DataLoader, Dataset, Normalize, RandomCrop, RandomHorizontalFlip, TensorDataset,
                         random_split)


def _ds(n=23, feat=3):
    x = np.arange(n * feat, dtype=np.float32).reshape(n, feat)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(dlcore.from_numpy(x), dlcore.from_numpy(y)), x, y


class PlainDataset(Dataset):
    """The same examples as ``_ds`` but only through __getitem__ (no gather): the per-example path."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return dlcore.from_numpy(self.x[i].copy()), int(self.y[i])


def _labels(loader):
    return [b[1].tolist() for b in loader]


# ----------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------

def test_dataset_base_class_is_abstract():
    d = Dataset()
    with pytest.raises(NotImplementedError):
        len(d)
    with pytest.raises(NotImplementedError):
        d[0]


def test_tensor_dataset_indexing():
    ds, x, y = _ds(5)
    assert len(ds) == 5
    xi, yi = ds[2]
    np.testing.assert_array_equal(xi.numpy(), x[2])
    assert int(yi) == 2
    assert len(TensorDataset(dlcore.zeros(4))) == 4


def test_tensor_dataset_mismatched_first_dims():
    with pytest.raises(ValueError):
        TensorDataset(dlcore.zeros(3, 2), dlcore.zeros(4))
    with pytest.raises(ValueError):
        TensorDataset()
    with pytest.raises(ValueError):
        TensorDataset(dlcore.tensor(1.0))
    with pytest.raises(TypeError):
        TensorDataset(np.zeros(3))


# ----------------------------------------------------------------------------------------
# DataLoader
# ----------------------------------------------------------------------------------------

def test_defaults():
    ds, _, _ = _ds(4)
    dl = DataLoader(ds)
    assert dl.batch_size == 1 and dl.shuffle is False and dl.drop_last is False
    assert len(dl) == 4
    assert [tuple(b[0].shape) for b in dl] == [(1, 3)] * 4


@pytest.mark.parametrize("n,bs,drop_last", [(23, 5, False), (23, 5, True), (20, 5, False), (20, 5, True),
                                            (3, 8, False), (3, 8, True)])
def test_batch_shapes_and_drop_last(n, bs, drop_last):
    ds, x, y = _ds(n)
    dl = DataLoader(ds, batch_size=bs, drop_last=drop_last)
    batches = list(dl)
    expected = n // bs if drop_last else -(-n // bs)
    assert len(dl) == len(batches) == expected
    for i, (xb, yb) in enumerate(batches):
        k = min(bs, n - i * bs)
        assert xb.shape == (k, 3) and yb.shape == (k,)
        assert xb.dtype == dlcore.float32 and yb.dtype == dlcore.int64
        np.testing.assert_array_equal(xb.numpy(), x[i * bs:i * bs + k])
        np.testing.assert_array_equal(yb.numpy(), y[i * bs:i * bs + k])
    if drop_last:
        assert all(b[0].shape[0] == bs for b in batches)


def test_shuffle_visits_every_example_once_per_epoch():
    ds, x, y = _ds(37)
    dl = DataLoader(ds, batch_size=8, shuffle=True, seed=5)
    orders = []
    for _ in range(4):
        labels = [v for b in _labels(dl) for v in b]
        assert sorted(labels) == list(range(37))
        orders.append(labels)
        # the rows stay paired with their labels
    for xb, yb in dl:
        np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])
    assert len({tuple(o) for o in orders}) == 4, "each epoch should draw a new order"
    assert orders[0] != list(range(37))


def test_shuffle_drop_last_uses_distinct_examples():
    ds, _, _ = _ds(37)
    labels = [v for b in _labels(DataLoader(ds, batch_size=8, shuffle=True, drop_last=True, seed=1)) for v in b]
    assert len(labels) == 32 and len(set(labels)) == 32


def test_seed_and_generator_reproducible():
    ds, _, _ = _ds(30)
    a = DataLoader(ds, batch_size=4, shuffle=True, seed=11)
    b = DataLoader(ds, batch_size=4, shuffle=True, seed=11)
    c = DataLoader(ds, batch_size=4, shuffle=True, seed=12)
    ea = [_labels(a) for _ in range(3)]
    eb = [_labels(b) for _ in range(3)]
    assert ea == eb
    assert _labels(c) != ea[0]
    g1, g2 = dlcore.Generator(3), dlcore.Generator(3)
    assert _labels(DataLoader(ds, 4, shuffle=True, generator=g1)) == _labels(DataLoader(ds, 4, shuffle=True,
                                                                                        generator=g2))
    # without a seed the default generator is used: dlcore.manual_seed makes it reproducible
    dlcore.manual_seed(99)
    d1 = _labels(DataLoader(ds, 4, shuffle=True))
    dlcore.manual_seed(99)
    d2 = _labels(DataLoader(ds, 4, shuffle=True))
    assert d1 == d2
    with pytest.raises(ValueError):
        DataLoader(ds, 4, shuffle=True, seed=1, generator=dlcore.Generator(1))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_fast_path_equals_per_example_path(shuffle, drop_last):
    ds, x, y = _ds(29)
    plain = PlainDataset(x, y)
    assert not hasattr(plain, "gather")
    fast = DataLoader(ds, batch_size=6, shuffle=shuffle, drop_last=drop_last, seed=7)
    slow = DataLoader(plain, batch_size=6, shuffle=shuffle, drop_last=drop_last, seed=7)
    assert len(fast) == len(slow)
    for _ in range(2):
        fb, sb = list(fast), list(slow)
        assert len(fb) == len(sb)
        for (fx, fy), (sx, sy) in zip(fb, sb):
            assert fx.shape == sx.shape and fy.shape == sy.shape
            assert fx.dtype == sx.dtype and fy.dtype == sy.dtype
            np.testing.assert_array_equal(fx.numpy(), sx.numpy())
            np.testing.assert_array_equal(fy.numpy(), sy.numpy())


def test_transform_applies_to_first_tensor_of_each_batch():
    ds, x, y = _ds(10)
    dl = DataLoader(ds, batch_size=4, transform=lambda t: t * 2.0)
    for i, (xb, yb) in enumerate(dl):
        np.testing.assert_array_equal(xb.numpy(), x[i * 4:i * 4 + 4] * 2)
        np.testing.assert_array_equal(yb.numpy(), y[i * 4:i * 4 + 4])


@pytest.mark.parametrize("bs", [0, -3, 2.5, None, True])
def test_bad_batch_size(bs):
    ds, _, _ = _ds(5)
    with pytest.raises(ValueError):
        DataLoader(ds, batch_size=bs)


# ----------------------------------------------------------------------------------------
# random_split
# ----------------------------------------------------------------------------------------

def _indices_of(subset, ds_labels_loader=False):
    return [int(subset[i][1]) for i in range(len(subset))]


@pytest.mark.parametrize("lengths,expected", [([7, 13, 3], [7, 13, 3]), ([0.5, 0.5], [12, 11]),
                                              ([0.3, 0.3, 0.4], [7, 7, 9]), ([0.1, 0.9], [3, 20]),
                                              ([23], [23])])
def test_random_split_disjoint_and_complete(lengths, expected):
    ds, x, y = _ds(23)
    parts = random_split(ds, lengths, generator=dlcore.Generator(0))
    assert [len(p) for p in parts] == expected
    seen = [v for p in parts for v in _indices_of(p)]
    assert sorted(seen) == list(range(23))
    for p in parts:  # examples come through intact
        for i in range(len(p)):
            xi, yi = p[i]
            np.testing.assert_array_equal(xi.numpy(), x[int(yi)])


@pytest.mark.torch
@pytest.mark.parametrize("lengths", [[0.5, 0.5], [0.3, 0.3, 0.4], [0.33, 0.33, 0.34], [0.1, 0.2, 0.3, 0.4]])
def test_random_split_fraction_sizes_vs_torch(lengths):
    torch = pytest.importorskip("torch")
    ds, _, _ = _ds(23)
    ours = [len(p) for p in random_split(ds, lengths, generator=dlcore.Generator(0))]
    theirs = [len(p) for p in torch.utils.data.random_split(range(23), lengths)]
    assert ours == theirs


def test_random_split_reproducible_and_bad_lengths():
    ds, _, _ = _ds(23)
    a = [_indices_of(p) for p in random_split(ds, [10, 13], generator=dlcore.Generator(4))]
    b = [_indices_of(p) for p in random_split(ds, [10, 13], generator=dlcore.Generator(4))]
    c = [_indices_of(p) for p in random_split(ds, [10, 13], generator=dlcore.Generator(5))]
    assert a == b and a != c
    assert a[0] != list(range(10))
    for bad in ([10, 10], [20, 5], [-1, 24], [0.5, 0.6]):
        with pytest.raises(ValueError):
            random_split(ds, bad)


def test_dataloader_over_random_split_of_tensor_dataset():
    ds, x, y = _ds(23)
    train, val = random_split(ds, [15, 8], generator=dlcore.Generator(1))
    labels = [v for b in _labels(DataLoader(train, batch_size=4, shuffle=True, seed=0)) for v in b]
    assert sorted(labels) == sorted(_indices_of(train))
    for xb, yb in DataLoader(val, batch_size=3):
        np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])


def test_dataloader_over_random_split_of_plain_dataset():
    """A Subset of a dataset without gather() must use the per-example path."""
    _, x, y = _ds(23)
    train, val = random_split(PlainDataset(x, y), [15, 8], generator=dlcore.Generator(1))
    batches = list(DataLoader(train, batch_size=4))
    labels = [v for b in batches for v in b[1].tolist()]
    assert labels == _indices_of(train)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])


# ----------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------

def _images(n=6, c=2, h=5, w=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, c, h, w)) + 1.0).astype(np.float32)  # all values >= 1: zero means padding


def test_normalize_single_and_batch():
    x = _images()
    mean, std = [0.5, 1.5], [2.0, 0.25]
    t = Normalize(mean, std)
    ref = (x - np.array(mean, np.float32).reshape(1, 2, 1, 1)) / np.array(std, np.float32).reshape(1, 2, 1, 1)
    out = t(dlcore.from_numpy(x))
    assert out.shape == x.shape and out.dtype == dlcore.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6)
    single = t(dlcore.from_numpy(x[1].copy()))
    assert single.shape == x.shape[1:]
    np.testing.assert_allclose(single.numpy(), ref[1], rtol=1e-6)
    out64 = t(dlcore.from_numpy(x.astype(np.float64)))
    assert out64.dtype == dlcore.float64
    with pytest.raises(ValueError):
        t(dlcore.zeros(3, 4, 4))  # wrong channel count
    with pytest.raises(ValueError):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError):
        Normalize([0.0, 1.0], [1.0])
    with pytest.raises(ValueError):
        t(dlcore.zeros(4, 4))


def _find_window(img, crop, padding):
    """All (top, left) offsets (in padded coordinates) where ``crop`` is a sub-window of the padded image."""
    c, h, w = img.shape
    oh, ow = crop.shape[1:]
    padded = np.pad(img, ((0, 0), (padding, padding), (padding, padding)))
    return [(i, j) for i in range(h + 2 * padding - oh + 1) for j in range(w + 2 * padding - ow + 1)
            if np.array_equal(padded[:, i:i + oh, j:j + ow], crop)]


@pytest.mark.parametrize("size,padding", [(4, 0), (5, 2), ((3, 6), 1), ((9, 11), 2), ((5, 7), 0)])
def test_random_crop_batches_are_sub_windows_of_padded_images(size, padding):
    x = _images()
    t = RandomCrop(size, padding=padding, generator=dlcore.Generator(0))
    oh, ow = (size, size) if isinstance(size, int) else size
    offsets = set()
    for _ in range(8):
        out = t(dlcore.from_numpy(x)).numpy()
        assert out.shape == (6, 2, oh, ow)
        for i in range(6):
            found = _find_window(x[i], out[i], padding)
            assert found, f"crop {i} is not a window of the zero-padded image"
            offsets.add(found[0])
    n_possible = (5 + 2 * padding - oh + 1) * (7 + 2 * padding - ow + 1)
    if n_possible > 1:
        assert len(offsets) > 1, "crops should vary"


def test_random_crop_single_image_and_reproducible():
    x = _images(1)[0]
    a = RandomCrop(4, padding=3, generator=dlcore.Generator(9))
    b = RandomCrop(4, padding=3, generator=dlcore.Generator(9))
    outs_a = [a(dlcore.from_numpy(x)).numpy() for _ in range(5)]
    outs_b = [b(dlcore.from_numpy(x)).numpy() for _ in range(5)]
    for oa, ob in zip(outs_a, outs_b):
        assert oa.shape == (2, 4, 4)
        np.testing.assert_array_equal(oa, ob)
        assert _find_window(x, oa, 3)
    assert any(not np.array_equal(outs_a[0], o) for o in outs_a[1:])
    # padding is zeros: with a big padding some crops contain zeros
    t = RandomCrop(5, padding=4, generator=dlcore.Generator(1))
    assert any((t(dlcore.from_numpy(x)).numpy() == 0).any() for _ in range(10))
    with pytest.raises(ValueError):
        RandomCrop(6)(dlcore.from_numpy(x))  # larger than the (unpadded) image
    with pytest.raises(ValueError):
        RandomCrop(3, padding=-1)


def test_random_crop_full_size_without_padding_is_identity():
    x = _images()
    out = RandomCrop((5, 7), generator=dlcore.Generator(0))(dlcore.from_numpy(x))
    np.testing.assert_array_equal(out.numpy(), x)


def test_random_horizontal_flip():
    x = _images(n=64)
    xd = dlcore.from_numpy(x)
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(xd).numpy(), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(xd).numpy(), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(dlcore.from_numpy(x[0].copy())).numpy(),
                                  x[0][..., ::-1])
    out = RandomHorizontalFlip(0.5, generator=dlcore.Generator(2))(xd).numpy()
    flipped = []
    for i in range(64):
        if np.array_equal(out[i], x[i][..., ::-1]):
            flipped.append(True)
        else:
            np.testing.assert_array_equal(out[i], x[i])
            flipped.append(False)
    assert 15 < sum(flipped) < 49
    again = RandomHorizontalFlip(0.5, generator=dlcore.Generator(2))(xd).numpy()
    np.testing.assert_array_equal(out, again)
    assert RandomHorizontalFlip().p == 0.5
    with pytest.raises(ValueError):
        RandomHorizontalFlip(1.5)


def test_compose_and_transforms_leave_input_unchanged():
    x = _images()
    before = x.copy()
    t = Compose([RandomCrop(5, padding=1, generator=dlcore.Generator(0)),
                 RandomHorizontalFlip(1.0), Normalize([1.0, 1.0], [2.0, 2.0])])
    out = t(dlcore.from_numpy(x)).numpy()
    np.testing.assert_array_equal(x, before)
    assert out.shape == (6, 2, 5, 5)
    # undo the normalisation and the flip: the result is a window of the padded image
    undone = (out * 2.0 + 1.0)[..., ::-1]
    for i in range(6):
        # zero padding became (0 - 1) / 2 = -0.5 and undoes to exactly 0
        assert _find_window(x[i], undone[i], 1)
    single = t(dlcore.from_numpy(x[0].copy()))
    assert single.shape == (2, 5, 5)
    assert "RandomCrop" in repr(t)


def test_transform_in_dataloader_with_generator_reproducible():
    x = _images(n=10)
    ds = TensorDataset(dlcore.from_numpy(x), dlcore.arange(10))

    def run():
        aug = Compose([RandomCrop(5, padding=2, generator=dlcore.Generator(3)),
                       RandomHorizontalFlip(generator=dlcore.Generator(4))])
        return [b[0].numpy().copy() for b in DataLoader(ds, 4, shuffle=True, seed=0, transform=aug)]

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)
