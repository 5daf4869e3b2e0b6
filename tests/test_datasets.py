"""Tests for dlcore.datasets: the bundled digits, MNIST (IDX), CIFAR-10 (binary and Python
batches), .npz files, corrupted/malicious inputs and the checked downloader.

Every MNIST/CIFAR-10 file used here is written by the tests themselves in the standard
formats; downloads go to a local HTTP server on 127.0.0.1 (no network access needed).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
import tracemalloc

import numpy as np
import pytest

import dlcore
from dlcore import datasets
from dlcore.datasets import DatasetError, load_cifar10, load_digits, load_mnist, load_npz

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMG_MAGIC, LBL_MAGIC = 0x00000803, 0x00000801
CIFAR_RECORD = 1 + 3 * 32 * 32


# ---------------------------------------------------------------- helpers

def assert_images(x, n, shape, expected=None):
    """float32 (n, *shape) in [0, 1] (optionally equal to ``expected``)."""
    assert isinstance(x, dlcore.Tensor)
    assert x.dtype == dlcore.float32, x.dtype
    assert tuple(x.shape) == (n,) + tuple(shape)
    a = x.numpy()
    assert a.dtype == np.float32
    if n:
        assert a.min() >= 0.0 and a.max() <= 1.0
    if expected is not None:
        np.testing.assert_allclose(a, expected, rtol=0, atol=1e-6)


def assert_labels(y, expected):
    assert isinstance(y, dlcore.Tensor)
    assert y.dtype == dlcore.int64, y.dtype
    a = y.numpy()
    assert a.dtype == np.int64
    np.testing.assert_array_equal(a, np.asarray(expected, dtype=np.int64))


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_file(path, data: bytes, gz: bool = False) -> str:
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return path


def make_mnist_arrays(seed=0, n_train=30, n_test=12):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist(root, arrays, gz=True):
    for name, arr in arrays.items():
        magic = IMG_MAGIC if "images" in name else LBL_MAGIC
        write_file(os.path.join(str(root), name + (".gz" if gz else "")), idx_bytes(arr, magic), gz=gz)


def cifar_records(labels, images) -> bytes:
    out = bytearray()
    for lab, img in zip(labels, images):
        out.append(int(lab))
        out += np.ascontiguousarray(img, dtype=np.uint8).tobytes()
    return bytes(out)


CIFAR_COUNTS = {"data_batch_1": 3, "data_batch_2": 2, "data_batch_3": 1, "data_batch_4": 2, "data_batch_5": 4,
                "test_batch": 5}


def make_cifar_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {name: (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))
            for name, n in CIFAR_COUNTS.items()}


def write_cifar_bin(root, arrays):
    d = os.path.join(str(root), "cifar-10-batches-bin")
    os.makedirs(d, exist_ok=True)
    for name, (imgs, labs) in arrays.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(cifar_records(labs, imgs))
    return d


def write_cifar_py(root, arrays, protocol=2):
    d = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(d, exist_ok=True)
    for name, (imgs, labs) in arrays.items():
        batch = {b"batch_label": b"testing batch", b"labels": [int(v) for v in labs],
                 b"data": imgs.reshape(len(imgs), 3072), b"filenames": [b"img_%d.png" % i for i in range(len(labs))]}
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
    return d


def expected_cifar(arrays, train):
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    imgs = np.concatenate([arrays[n][0] for n in names]).astype(np.float32) / 255
    labs = np.concatenate([arrays[n][1] for n in names])
    return imgs, labs


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def listing(path) -> set:
    """Every path under ``path`` (relative), files and folders."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(str(path)):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), str(path)))
    return out


# ---------------------------------------------------------------- digits

def test_digits_all_shapes_and_range():
    x, y = load_digits()
    assert_images(x, 1797, (1, 8, 8))
    a = x.numpy()
    assert a.max() == pytest.approx(1.0)  # 8x8 digits have pixel values 0..16
    labels = y.numpy()
    assert y.dtype == dlcore.int64 and tuple(y.shape) == (1797,)
    assert labels.min() == 0 and labels.max() == 9
    assert set(np.unique(labels)) == set(range(10))
    assert (a * 16 == np.round(a * 16)).all()


def test_digits_split_disjoint_complete_deterministic():
    x_all, y_all = load_digits(train=None)
    xtr, ytr = load_digits(train=True)
    xte, yte = load_digits(train=False)
    assert_images(xtr, xtr.shape[0], (1, 8, 8))
    assert_images(xte, xte.shape[0], (1, 8, 8))
    assert ytr.dtype == dlcore.int64 and yte.dtype == dlcore.int64
    assert xtr.shape[0] + xte.shape[0] == 1797
    assert 0 < xte.shape[0] < xtr.shape[0]
    # every image of the full set is in exactly one part: match rows (image + label) as multisets
    full = np.concatenate([x_all.numpy().reshape(1797, -1), y_all.numpy()[:, None]], 1)
    parts = np.concatenate([np.concatenate([xtr.numpy().reshape(len(ytr.numpy()), -1), ytr.numpy()[:, None]], 1),
                            np.concatenate([xte.numpy().reshape(len(yte.numpy()), -1), yte.numpy()[:, None]], 1)])
    key = lambda m: m[np.lexsort(m.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(key(full), key(parts))
    # deterministic
    xtr2, ytr2 = load_digits(train=True)
    xte2, yte2 = load_digits(train=False)
    np.testing.assert_array_equal(xtr.numpy(), xtr2.numpy())
    np.testing.assert_array_equal(ytr.numpy(), ytr2.numpy())
    np.testing.assert_array_equal(xte.numpy(), xte2.numpy())
    np.testing.assert_array_equal(yte.numpy(), yte2.numpy())
    # both parts contain every class
    assert set(np.unique(ytr.numpy())) == set(range(10)) == set(np.unique(yte.numpy()))


# ---------------------------------------------------------------- MNIST

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_mnist_reads_idx(tmp_path, gz):
    arrays = make_mnist_arrays()
    write_mnist(tmp_path, arrays, gz=gz)
    x, y = load_mnist(str(tmp_path), train=True)
    assert_images(x, 30, (1, 28, 28), arrays["train-images-idx3-ubyte"][:, None].astype(np.float32) / 255)
    assert_labels(y, arrays["train-labels-idx1-ubyte"])
    x, y = load_mnist(str(tmp_path), train=False)
    assert_images(x, 12, (1, 28, 28), arrays["t10k-images-idx3-ubyte"][:, None].astype(np.float32) / 255)
    assert_labels(y, arrays["t10k-labels-idx1-ubyte"])


def test_mnist_mixed_compression_and_raw_subfolder(tmp_path):
    arrays = make_mnist_arrays(seed=1)
    raw = tmp_path / "MNIST" / "raw"
    write_file(raw / "train-images-idx3-ubyte.gz", idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC), gz=True)
    write_file(raw / "train-labels-idx1-ubyte", idx_bytes(arrays["train-labels-idx1-ubyte"], LBL_MAGIC))
    x, y = load_mnist(str(tmp_path), train=True)
    assert_images(x, 30, (1, 28, 28), arrays["train-images-idx3-ubyte"][:, None].astype(np.float32) / 255)
    assert_labels(y, arrays["train-labels-idx1-ubyte"])


def test_mnist_extreme_pixel_values(tmp_path):
    imgs = np.zeros((2, 28, 28), np.uint8)
    imgs[1] = 255
    write_file(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(imgs, IMG_MAGIC))
    write_file(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.array([0, 9], np.uint8), LBL_MAGIC))
    x, y = load_mnist(str(tmp_path), train=False)
    a = x.numpy()
    assert a[0].max() == 0.0 and a[1].min() == 1.0
    assert_labels(y, [0, 9])


def test_mnist_missing_files_names_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        load_mnist(str(tmp_path), train=True)
    msg = str(ei.value)
    assert "train-images-idx3-ubyte" in msg
    for name in MNIST_NAMES:
        assert name in msg
    # images present, labels missing: the message names the labels file
    arrays = make_mnist_arrays()
    write_file(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC),
               gz=True)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(str(tmp_path), train=True)


def _mnist_with(tmp_path, images: bytes = None, labels: bytes = None, gz_images=False, gz_labels=False):
    arrays = make_mnist_arrays()
    if images is None:
        images = idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC)
    if labels is None:
        labels = idx_bytes(arrays["train-labels-idx1-ubyte"], LBL_MAGIC)
    write_file(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz_images else "")), images, gz=gz_images)
    write_file(tmp_path / ("train-labels-idx1-ubyte" + (".gz" if gz_labels else "")), labels, gz=gz_labels)
    return str(tmp_path)


def _raises_clean(fn, *args, **kwargs):
    """fn must raise DatasetError (a ValueError), with bounded memory; returns the message."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as ei:
            fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(ei.value, ValueError)
    assert peak < 64 * 2**20, f"peak traced allocation {peak / 2**20:.0f} MiB for a tiny corrupt file"
    return str(ei.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_mnist_truncated_images(tmp_path, gz):
    arrays = make_mnist_arrays()
    full = idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC)
    root = _mnist_with(tmp_path, images=full[:-100], gz_images=gz)
    _raises_clean(load_mnist, root)


@pytest.mark.parametrize("cut", [3, 10, 15])
def test_mnist_truncated_header(tmp_path, cut):
    arrays = make_mnist_arrays()
    full = idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC)
    root = _mnist_with(tmp_path, images=full[:cut])
    _raises_clean(load_mnist, root)


def test_mnist_empty_file(tmp_path):
    root = _mnist_with(tmp_path, labels=b"")
    _raises_clean(load_mnist, root)


def test_mnist_truncated_gzip_stream(tmp_path):
    arrays = make_mnist_arrays()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as g:
        g.write(idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC))
    root = _mnist_with(tmp_path)
    os.unlink(tmp_path / "train-images-idx3-ubyte")  # keep only the cut .gz version
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _raises_clean(load_mnist, root)


def test_mnist_gz_name_but_not_gzip(tmp_path):
    arrays = make_mnist_arrays()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC))
    write_file(tmp_path / "train-labels-idx1-ubyte", idx_bytes(arrays["train-labels-idx1-ubyte"], LBL_MAGIC))
    _raises_clean(load_mnist, str(tmp_path))


@pytest.mark.parametrize("which", ["images", "labels"])
def test_mnist_wrong_magic(tmp_path, which):
    arrays = make_mnist_arrays()
    if which == "images":  # labels magic on the images file
        root = _mnist_with(tmp_path, images=idx_bytes(arrays["train-images-idx3-ubyte"], 0x00000801))
    else:
        root = _mnist_with(tmp_path, labels=b"\x00\x00\x08\x03" + idx_bytes(arrays["train-labels-idx1-ubyte"],
                                                                              LBL_MAGIC)[4:])
    msg = _raises_clean(load_mnist, root)
    assert "magic" in msg.lower()


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dims", [(0xFFFFFFFF, 28, 28), (10**9, 1000, 1000), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)],
                         ids=["maxcount", "1e15bytes", "allmax"])
def test_mnist_lying_header_no_huge_allocation(tmp_path, gz, dims):
    # a header that claims >= 10**12 images' worth of bytes, followed by a little data
    header = struct.pack(">IIII", IMG_MAGIC, *dims)
    root = _mnist_with(tmp_path, images=header + bytes(28 * 28 * 3), gz_images=gz)
    _raises_clean(load_mnist, root)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_mnist_labels_lying_header(tmp_path, gz):
    header = struct.pack(">II", LBL_MAGIC, 10**9 * 4)
    root = _mnist_with(tmp_path, labels=header + bytes(30), gz_labels=gz)
    _raises_clean(load_mnist, root)


def test_mnist_trailing_data(tmp_path):
    arrays = make_mnist_arrays()
    root = _mnist_with(tmp_path, images=idx_bytes(arrays["train-images-idx3-ubyte"], IMG_MAGIC) + b"\x00" * 784)
    _raises_clean(load_mnist, root)


@pytest.mark.parametrize("bad", [10, 255])
def test_mnist_label_out_of_range(tmp_path, bad):
    labels = make_mnist_arrays()["train-labels-idx1-ubyte"].copy()
    labels[7] = bad
    root = _mnist_with(tmp_path, labels=idx_bytes(labels, LBL_MAGIC))
    msg = _raises_clean(load_mnist, root)
    assert str(bad) in msg


def test_mnist_count_mismatch(tmp_path):
    labels = make_mnist_arrays()["train-labels-idx1-ubyte"][:-1]
    root = _mnist_with(tmp_path, labels=idx_bytes(labels, LBL_MAGIC))
    _raises_clean(load_mnist, root)


# ---------------------------------------------------------------- CIFAR-10

@pytest.mark.parametrize("train", [True, False])
def test_cifar_binary(tmp_path, train):
    arrays = make_cifar_arrays()
    write_cifar_bin(tmp_path, arrays)
    x, y = load_cifar10(str(tmp_path), train=train)
    imgs, labs = expected_cifar(arrays, train)
    assert_images(x, len(labs), (3, 32, 32), imgs)
    assert_labels(y, labs)


def test_cifar_binary_record_layout(tmp_path):
    # one record: label 7, red plane all 255, green plane 0..., blue plane = row index
    img = np.zeros((3, 32, 32), np.uint8)
    img[0] = 255
    img[2] = np.arange(32, dtype=np.uint8)[:, None]
    arrays = {n: (np.repeat(img[None], 1, 0), np.array([7])) for n in CIFAR_COUNTS}
    write_cifar_bin(tmp_path, arrays)
    x, y = load_cifar10(str(tmp_path), train=False)
    a = x.numpy()
    assert a.shape == (1, 3, 32, 32)
    assert (a[0, 0] == 1.0).all() and (a[0, 1] == 0.0).all()
    np.testing.assert_allclose(a[0, 2, :, 5], np.arange(32) / 255, atol=1e-7)
    assert_labels(y, [7])


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("train", [True, False])
def test_cifar_python_batches(tmp_path, train, protocol):
    arrays = make_cifar_arrays(seed=3)
    write_cifar_py(tmp_path, arrays, protocol=protocol)
    x, y = load_cifar10(str(tmp_path), train=train)
    imgs, labs = expected_cifar(arrays, train)
    assert_images(x, len(labs), (3, 32, 32), imgs)
    assert_labels(y, labs)


def test_cifar_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        load_cifar10(str(tmp_path))
    assert "cifar-10-batches-bin" in str(ei.value)
    assert "data_batch_1" in str(ei.value)


def test_cifar_missing_batch_file(tmp_path):
    arrays = make_cifar_arrays()
    d = write_cifar_bin(tmp_path, arrays)
    os.unlink(os.path.join(d, "data_batch_3.bin"))
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(str(tmp_path), train=True)
    x, _ = load_cifar10(str(tmp_path), train=False)  # the test batch is still there
    assert x.shape[0] == CIFAR_COUNTS["test_batch"]


@pytest.mark.parametrize("size", [0, 1, CIFAR_RECORD - 1, CIFAR_RECORD + 1, 3 * CIFAR_RECORD - 5, 3072 * 3])
def test_cifar_size_not_multiple_of_record(tmp_path, size):
    arrays = make_cifar_arrays()
    d = write_cifar_bin(tmp_path, arrays)
    data = cifar_records(*reversed(arrays["test_batch"]))
    data = (data * (size // len(data) + 1))[:size]
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(data)
    _raises_clean(load_cifar10, str(tmp_path), train=False)


@pytest.mark.parametrize("bad", [10, 200, 255])
def test_cifar_binary_label_out_of_range(tmp_path, bad):
    arrays = make_cifar_arrays()
    arrays["data_batch_2"][1][1] = bad
    write_cifar_bin(tmp_path, arrays)
    msg = _raises_clean(load_cifar10, str(tmp_path), train=True)
    assert str(bad) in msg


@pytest.mark.parametrize("bad", [10, -1])
def test_cifar_python_label_out_of_range(tmp_path, bad):
    arrays = make_cifar_arrays()
    arrays["test_batch"][1][0] = bad
    write_cifar_py(tmp_path, arrays)
    _raises_clean(load_cifar10, str(tmp_path), train=False)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("kind", ["os.system", "eval", "nested-os.system"])
def test_cifar_malicious_pickle_refused(tmp_path, kind):
    marker = tmp_path / "PWNED"
    arrays = make_cifar_arrays()
    d = write_cifar_py(tmp_path / "root", arrays)
    if kind == "os.system":
        payload = _Evil(str(marker))
    elif kind == "eval":
        payload = _EvalEvil(str(marker))
    else:
        payload = {b"data": arrays["test_batch"][0].reshape(-1, 3072), b"labels": _Evil(str(marker))}
    with open(os.path.join(d, "test_batch"), "wb") as f:
        pickle.dump(payload, f, protocol=2)
    # sanity: the payload really would run if unpickled naively (do not do that here)
    with pytest.raises((DatasetError, ValueError)):
        load_cifar10(str(tmp_path / "root"), train=False)
    assert not marker.exists(), "the malicious pickle was executed"


def test_cifar_python_batch_not_a_dict_or_garbage(tmp_path):
    arrays = make_cifar_arrays()
    d = write_cifar_py(tmp_path, arrays)
    with open(os.path.join(d, "test_batch"), "wb") as f:
        pickle.dump([1, 2, 3], f, protocol=2)
    _raises_clean(load_cifar10, str(tmp_path), train=False)
    with open(os.path.join(d, "test_batch"), "wb") as f:
        f.write(b"this is not a pickle at all")
    _raises_clean(load_cifar10, str(tmp_path), train=False)
    with open(os.path.join(d, "test_batch"), "wb") as f:  # wrong row length
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    _raises_clean(load_cifar10, str(tmp_path), train=False)


# ---------------------------------------------------------------- npz

def test_npz_images_labels_uint8_and_float(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (20, 3, 5, 5), dtype=np.uint8)
    labels = rng.integers(0, 4, 20)
    p = tmp_path / "d.npz"
    np.savez(p, images=imgs, labels=labels)
    x, y = load_npz(str(p))
    assert_images(x, 20, (3, 5, 5), imgs.astype(np.float32) / 255)
    assert_labels(y, labels)
    # (N, H, W) gets a channel axis; float images pass as they are
    f = rng.random((20, 6, 6)).astype(np.float64)
    np.savez(p, images=f, labels=labels)
    x, y = load_npz(str(p))
    assert_images(x, 20, (1, 6, 6), f[:, None].astype(np.float32))
    # a train/test split of images/labels is disjoint and complete
    xtr, ytr = load_npz(str(p), train=True)
    xte, yte = load_npz(str(p), train=False)
    assert xtr.shape[0] + xte.shape[0] == 20 and xte.shape[0] > 0
    got = np.sort(np.concatenate([xtr.numpy().reshape(len(ytr.numpy()), -1)[:, 0],
                                  xte.numpy().reshape(len(yte.numpy()), -1)[:, 0]]))
    np.testing.assert_allclose(got, np.sort(f[:, 0, 0].astype(np.float32)))


def test_npz_explicit_split(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "s.npz"
    xa, xb = rng.integers(0, 256, (7, 1, 4, 4), dtype=np.uint8), rng.integers(0, 256, (3, 1, 4, 4), dtype=np.uint8)
    ya, yb = rng.integers(0, 3, 7), rng.integers(0, 3, 3)
    np.savez(p, x_train=xa, y_train=ya, x_test=xb, y_test=yb)
    x, y = load_npz(str(p), train=True)
    assert_images(x, 7, (1, 4, 4), xa / 255.0)
    assert_labels(y, ya)
    x, y = load_npz(str(p), train=False)
    assert_images(x, 3, (1, 4, 4), xb / 255.0)
    assert_labels(y, yb)


def test_npz_errors(tmp_path):
    p = tmp_path / "bad.npz"
    with pytest.raises(FileNotFoundError):
        load_npz(str(tmp_path / "nope.npz"))
    p.write_bytes(b"not a zip file")
    with pytest.raises(ValueError):
        load_npz(str(p))
    np.savez(p, foo=np.zeros(3))
    with pytest.raises(DatasetError, match="images"):
        load_npz(str(p))
    np.savez(p, images=np.zeros((3, 1, 2, 2), np.uint8), labels=np.zeros(4, np.int64))
    with pytest.raises(DatasetError):
        load_npz(str(p))
    np.savez(p, images=np.zeros((3, 1, 2, 2), np.uint8), labels=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(DatasetError):
        load_npz(str(p))
    np.savez(p, images=np.zeros((3, 1, 2, 2), np.uint8), labels=np.array([0, -1, 2]))
    with pytest.raises(DatasetError):
        load_npz(str(p))


def test_npz_pickled_object_array_refused(tmp_path):
    marker = tmp_path / "PWNED"
    p = tmp_path / "evil.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = _Evil(str(marker))
    np.savez(p, images=obj, labels=np.zeros(1, np.int64))
    with pytest.raises(ValueError):
        load_npz(str(p))
    assert not marker.exists()


# ---------------------------------------------------------------- download (local HTTP server)

class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def http_dir(tmp_path):
    """(served folder, base URL, list of requested paths)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class H(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=str(served)))
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def _tar_gz(members) -> bytes:
    """members: list of (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _dir(name):
    i = tarfile.TarInfo(name)
    i.type = tarfile.DIRTYPE
    i.mode = 0o755
    return i


def _file(name):
    i = tarfile.TarInfo(name)
    i.mode = 0o644
    return i


def cifar_archive(arrays) -> bytes:
    members = [(_dir("cifar-10-batches-bin"), None)]
    for name, (imgs, labs) in arrays.items():
        members.append((_file(f"cifar-10-batches-bin/{name}.bin"), cifar_records(labs, imgs)))
    members.append((_file("cifar-10-batches-bin/batches.meta.txt"), "\n".join(datasets.CIFAR10_CLASSES).encode()))
    return _tar_gz(members)


def test_download_cifar10(tmp_path, http_dir):
    served, base, requests = http_dir
    arrays = make_cifar_arrays(seed=5)
    data = cifar_archive(arrays)
    (served / "cifar-10-binary.tar.gz").write_bytes(data)
    root = tmp_path / "data" / "cifar"
    x, y = load_cifar10(str(root), train=True, download=True, url=f"{base}/cifar-10-binary.tar.gz", md5=md5(data))
    imgs, labs = expected_cifar(arrays, True)
    assert_images(x, len(labs), (3, 32, 32), imgs)
    assert_labels(y, labs)
    assert (root / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert not [n for n in os.listdir(root) if n.startswith(".download")]
    n_requests = len(requests)
    assert n_requests == 1
    # already there: no second download
    x, y = load_cifar10(str(root), train=False, download=True, url=f"{base}/cifar-10-binary.tar.gz", md5=md5(data))
    imgs, labs = expected_cifar(arrays, False)
    assert_images(x, len(labs), (3, 32, 32), imgs)
    assert len(requests) == n_requests


def test_download_wrong_checksum_leaves_nothing(tmp_path, http_dir):
    served, base, _ = http_dir
    data = cifar_archive(make_cifar_arrays())
    (served / "cifar-10-binary.tar.gz").write_bytes(data)
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match="(?i)checksum|md5"):
        load_cifar10(str(root), download=True, url=f"{base}/cifar-10-binary.tar.gz", md5="0" * 32)
    assert not root.exists() or listing(root) == set(), listing(root)
    # the generic downloader too
    with pytest.raises(DatasetError):
        datasets.download(f"{base}/cifar-10-binary.tar.gz", str(root), md5="f" * 32)
    assert listing(root) == set(), listing(root)


def test_download_missing_url_leaves_nothing(tmp_path, http_dir):
    _, base, _ = http_dir
    root = tmp_path / "root"
    with pytest.raises((DatasetError, OSError)):
        load_cifar10(str(root), download=True, url=f"{base}/nope.tar.gz", md5=None)
    assert not root.exists() or listing(root) == set(), listing(root)


def _evil_archives(outside):
    ok = (_file("cifar-10-batches-bin/test_batch.bin"), bytes(CIFAR_RECORD))
    dotdot = _tar_gz([ok, (_file("../evil.txt"), b"evil")])
    deep_dotdot = _tar_gz([ok, (_file("cifar-10-batches-bin/../../evil.txt"), b"evil")])
    absolute = _tar_gz([ok, (_file(str(outside / "abs_evil.txt")), b"evil")])
    link = tarfile.TarInfo("cifar-10-batches-bin")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    symlink = _tar_gz([(link, None), (_file("cifar-10-batches-bin/test_batch.bin"), bytes(CIFAR_RECORD))])
    rel_link = tarfile.TarInfo("cifar-10-batches-bin")
    rel_link.type = tarfile.SYMTYPE
    rel_link.linkname = "../outside"
    rel_symlink = _tar_gz([(rel_link, None), (_file("cifar-10-batches-bin/test_batch.bin"), bytes(CIFAR_RECORD))])
    file_link = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
    file_link.type = tarfile.SYMTYPE
    file_link.linkname = str(outside / "target.bin")
    file_symlink = _tar_gz([(_dir("cifar-10-batches-bin"), None), (file_link, None)])
    hard = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
    hard.type = tarfile.LNKTYPE
    hard.linkname = str(outside / "target.bin")
    hardlink = _tar_gz([(_dir("cifar-10-batches-bin"), None), (hard, None)])
    return {"dotdot": dotdot, "deep-dotdot": deep_dotdot, "absolute": absolute, "dir-symlink": symlink,
            "relative-dir-symlink": rel_symlink, "file-symlink": file_symlink, "hardlink": hardlink}


@pytest.mark.parametrize("kind", ["dotdot", "deep-dotdot", "absolute", "dir-symlink", "relative-dir-symlink",
                                  "file-symlink", "hardlink"])
def test_download_refuses_unsafe_archive(tmp_path, http_dir, kind):
    served, base, _ = http_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.bin").write_bytes(b"precious")
    data = _evil_archives(outside)[kind]
    (served / "cifar-10-binary.tar.gz").write_bytes(data)
    root = tmp_path / "root"
    before = listing(tmp_path) - {p for p in listing(tmp_path) if p.startswith("root")}
    with pytest.raises(DatasetError):
        load_cifar10(str(root), download=True, url=f"{base}/cifar-10-binary.tar.gz", md5=md5(data))
    after = listing(tmp_path) - {p for p in listing(tmp_path) if p.startswith("root")}
    assert after == before, f"written outside root: {after - before}"
    assert (outside / "target.bin").read_bytes() == b"precious"
    assert not (tmp_path / "evil.txt").exists()
    # nothing was extracted (no link, no folder) inside root either
    inside = listing(root) if root.exists() else set()
    assert not any(p.startswith("cifar-10-batches-bin") for p in inside), inside
    assert not any(os.path.islink(os.path.join(root, p)) for p in inside)


def test_download_mnist(tmp_path, http_dir, monkeypatch):
    served, base, requests = http_dir
    arrays = make_mnist_arrays(seed=7, n_train=9, n_test=4)
    for name, arr in arrays.items():
        magic = IMG_MAGIC if "images" in name else LBL_MAGIC
        path = write_file(served / (name + ".gz"), idx_bytes(arr, magic), gz=True)
        with open(path, "rb") as f:
            monkeypatch.setitem(datasets.MNIST_FILES, name + ".gz", md5(f.read()))
    assert set(datasets.MNIST_FILES) == {n + ".gz" for n in MNIST_NAMES}
    root = tmp_path / "mnist"
    x, y = load_mnist(str(root), train=True, download=True, url=base + "/")
    assert_images(x, 9, (1, 28, 28), arrays["train-images-idx3-ubyte"][:, None] / 255.0)
    assert_labels(y, arrays["train-labels-idx1-ubyte"])
    x, y = load_mnist(str(root), train=False, download=True, url=base)
    assert_images(x, 4, (1, 28, 28), arrays["t10k-images-idx3-ubyte"][:, None] / 255.0)
    assert_labels(y, arrays["t10k-labels-idx1-ubyte"])
    assert sorted(os.listdir(root)) == sorted(n + ".gz" for n in MNIST_NAMES)
    n = len(requests)
    load_mnist(str(root), train=True, download=True, url=base)  # files present: no new request
    assert len(requests) == n


def test_download_mnist_bad_checksum(tmp_path, http_dir):
    served, base, _ = http_dir
    arrays = make_mnist_arrays(seed=7, n_train=9, n_test=4)
    for name, arr in arrays.items():
        magic = IMG_MAGIC if "images" in name else LBL_MAGIC
        write_file(served / (name + ".gz"), idx_bytes(arr, magic), gz=True)
    root = tmp_path / "mnist"
    # the published checksums of the real files do not match the test files
    with pytest.raises(DatasetError, match="(?i)checksum|md5"):
        load_mnist(str(root), train=True, download=True, url=base)
    assert listing(root) == set(), listing(root)
