"""Dataset readers and the checked downloader."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from typing import Optional, Tuple

import numpy as np

from .. import _core
from .._core import Tensor

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# Published MD5 checksums of the original files.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_MAX_GZIP_RATIO = 1100  # deflate cannot expand beyond ~1032:1


class DatasetError(ValueError):
    """A dataset file that is missing, truncated, corrupt or not what its name says."""


def _to_tensors(images: np.ndarray, labels: np.ndarray, scale: float) -> Tuple[Tensor, Tensor]:
    x = _core.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / np.float32(scale))
    y = _core.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return x, y


def _split(n: int, train: Optional[bool], test_fraction: float, seed: int) -> np.ndarray:
    if train is None:
        return np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:] if train else perm[:n_test])


def load_digits(train: Optional[bool] = None, test_fraction: float = 0.2, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """The bundled 8x8 digits: 1,797 images (N, 1, 8, 8) in [0, 1] and labels 0..9.

    ``train=True/False`` gives a fixed stratification-free split (``test_fraction`` of the
    images for the test part, chosen with ``seed``); ``None`` gives all images.
    """
    path = os.path.join(os.path.dirname(__file__), "data", "digits.npz")
    with np.load(path, allow_pickle=False) as d:
        images, labels = d["images"], d["labels"]
    idx = _split(len(labels), train, test_fraction, seed)
    return _to_tensors(images[idx].reshape(-1, 1, 8, 8), labels[idx], 16.0)


def load_npz(path: str, train: Optional[bool] = None, test_fraction: float = 0.2,
             seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Your own data: an .npz with ``images`` (N, C, H, W) or (N, H, W) and integer ``labels`` (N,).

    Integer images are scaled by 1/255; float images are used as they are. With
    ``x_train``/``y_train``/``x_test``/``y_test`` arrays, ``train`` picks those.
    """
    try:
        d = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"data file not found: {path}") from None
    except (ValueError, OSError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
    with d:
        keys = set(d.files)
        if train is not None and {"x_train", "y_train", "x_test", "y_test"} <= keys:
            images, labels = (d["x_train"], d["y_train"]) if train else (d["x_test"], d["y_test"])
            idx = np.arange(len(labels))
        elif {"images", "labels"} <= keys:
            images, labels = d["images"], d["labels"]
            idx = _split(len(labels), train, test_fraction, seed)
        else:
            raise DatasetError(f"{path}: expected arrays 'images' and 'labels' (or x_train/y_train/x_test/y_test), "
                               f"found {sorted(keys)}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{path}: images of shape {images.shape} and labels of shape {labels.shape} do not match "
                           "(expected (N, C, H, W) or (N, H, W) and (N,))")
    if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise DatasetError(f"{path}: labels must be non-negative integers, got dtype {labels.dtype}")
    scale = 255.0 if images.dtype.kind in "iu" else 1.0
    return _to_tensors(images[idx], labels[idx], scale)


# ---------------- MNIST (IDX) ----------------

def _read_limited(f, n: int, path: str) -> bytes:
    """Read exactly n bytes in chunks (no single huge allocation from a lying header)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(1 << 20, n - len(buf)))
        if not chunk:
            raise DatasetError(f"{path}: truncated: expected {n} bytes of data after the header, got {len(buf)}")
        buf += chunk
    return bytes(buf)


def _read_idx(path: str, magic: int, ndim: int) -> np.ndarray:
    """An IDX file (u8 data): checks the magic, the header's sizes against the file, then reads."""
    opener = gzip.open if path.endswith(".gz") else open
    file_size = os.path.getsize(path)
    header_len = 4 + 4 * ndim
    try:
        with opener(path, "rb") as f:
            header = f.read(header_len)
            if len(header) < header_len:
                raise DatasetError(f"{path}: truncated header ({len(header)} of {header_len} bytes)")
            got = int.from_bytes(header[:4], "big")
            if got != magic:
                raise DatasetError(f"{path}: wrong magic number 0x{got:08x} (expected 0x{magic:08x}); "
                                   "is this the right IDX file?")
            dims = [int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            n = int(np.prod(dims, dtype=np.float64))
            limit = file_size * _MAX_GZIP_RATIO if path.endswith(".gz") else file_size - header_len
            if n > limit:
                raise DatasetError(f"{path}: header claims {dims[0]} items of shape {tuple(dims[1:])} "
                                   f"({n} bytes) but the file has only {file_size} bytes")
            data = _read_limited(f, n, path)
            if f.read(1):
                raise DatasetError(f"{path}: {dims[0]} items of shape {tuple(dims[1:])} in the header, "
                                   "but the file holds more data than that")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DatasetError(f"{path}: corrupt file ({e})") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _find(root: str, name: str) -> str:
    for cand in (name, name[:-3] if name.endswith(".gz") else name + ".gz"):
        for d in (root, os.path.join(root, "MNIST", "raw")):
            p = os.path.join(d, cand)
            if os.path.exists(p):
                return p
    raise FileNotFoundError(f"MNIST file '{name}' (or its uncompressed form) not found in {root}; "
                            f"expected {', '.join(MNIST_FILES)} (use --download to fetch them)")


def load_mnist(root: str, train: bool = True, download: bool = False,
               url: str = MNIST_URL) -> Tuple[Tensor, Tensor]:
    """MNIST from the standard IDX files in ``root``: images (N, 1, 28, 28) in [0, 1], labels 0..9."""
    prefix = "train" if train else "t10k"
    if download:
        for fname, md5 in MNIST_FILES.items():
            if fname.startswith(prefix):
                target = os.path.join(root, fname)
                if not os.path.exists(target) and not os.path.exists(target[:-3]):
                    _download_file(url.rstrip("/") + "/" + fname, target, md5)
    images = _read_idx(_find(root, f"{prefix}-images-idx3-ubyte.gz"), 0x00000803, 3)
    labels = _read_idx(_find(root, f"{prefix}-labels-idx1-ubyte.gz"), 0x00000801, 1)
    if len(images) != len(labels):
        raise DatasetError(f"MNIST in {root}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"MNIST in {root}: label {int(labels.max())} is out of range 0..9")
    return _to_tensors(images[:, None], labels, 255.0)


# ---------------- CIFAR-10 ----------------

_CIFAR_RECORD = 1 + 3 * 32 * 32


def _read_cifar_bin(path: str) -> Tuple[np.ndarray, np.ndarray]:
    size = os.path.getsize(path)
    if size == 0 or size % _CIFAR_RECORD:
        raise DatasetError(f"{path}: size {size} bytes is not a whole number of CIFAR-10 records "
                           f"({_CIFAR_RECORD} bytes each): truncated or not a CIFAR-10 batch")
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = raw[:, 0]
    if labels.max() > 9:
        raise DatasetError(f"{path}: label {int(labels.max())} is out of range 0..9")
    return raw[:, 1:].reshape(-1, 3, 32, 32), labels


class _SafeUnpickler(pickle.Unpickler):
    """Allows only what the CIFAR-10 Python batches contain: dicts, lists, bytes and numpy arrays."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DatasetError(f"refusing to unpickle {module}.{name}: not part of a CIFAR-10 batch")


def _read_cifar_py(path: str) -> Tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        try:
            d = _SafeUnpickler(f, encoding="bytes").load()
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001  (any unpickling failure means a bad file)
            raise DatasetError(f"{path}: not a CIFAR-10 Python batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: not a CIFAR-10 Python batch (top level is {type(d).__name__})")
    data, labels = d.get(b"data"), d.get(b"labels")
    data = np.asarray(data, dtype=np.uint8) if data is not None else None
    labels = np.asarray(labels, dtype=np.int64) if labels is not None else None
    if data is None or labels is None or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetError(f"{path}: expected 'data' (N, 3072) and 'labels' (N,)")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels out of range 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root: str, train: bool = True, download: bool = False,
                 url: str = CIFAR10_URL, md5: Optional[str] = CIFAR10_MD5) -> Tuple[Tensor, Tensor]:
    """CIFAR-10 from ``root``: images (N, 3, 32, 32) in [0, 1], labels 0..9.

    Reads ``cifar-10-batches-bin/*.bin`` (or ``cifar-10-batches-py``). ``download=True``
    fetches the binary archive from ``url``, checks its MD5 and extracts it safely.
    """
    bin_dir = os.path.join(root, "cifar-10-batches-bin")
    py_dir = os.path.join(root, "cifar-10-batches-py")
    if download and not (os.path.isdir(bin_dir) or os.path.isdir(py_dir)):
        archive = os.path.join(root, os.path.basename(url) or "cifar-10-binary.tar.gz")
        _download_file(url, archive, md5)
        _safe_extract(archive, root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    if os.path.isdir(bin_dir):
        parts = [_read_cifar_bin(_must_exist(os.path.join(bin_dir, n + ".bin"))) for n in names]
    elif os.path.isdir(py_dir):
        parts = [_read_cifar_py(_must_exist(os.path.join(py_dir, n))) for n in names]
    else:
        raise FileNotFoundError(f"CIFAR-10 not found in {root}: expected the folder cifar-10-batches-bin "
                                "(data_batch_1.bin ... data_batch_5.bin, test_batch.bin) or cifar-10-batches-py "
                                "(use --download to fetch it)")
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return _to_tensors(images, labels, 255.0)


def _must_exist(path: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset file not found: {path}")
    return path


# ---------------- download ----------------

def _download_file(url: str, target: str, md5: Optional[str], timeout: float = 60.0) -> str:
    """Fetch ``url`` to ``target`` with a progress bar; verify the MD5; atomic rename."""
    os.makedirs(os.path.dirname(os.path.abspath(target)) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=os.path.dirname(os.path.abspath(target)) or ".")
    h = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, os.fdopen(fd, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            try:
                from tqdm import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(target), leave=False)
            except ImportError:
                bar = None
            while True:
                chunk = r.read(1 << 16)
                if not chunk:
                    break
                f.write(chunk)
                h.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        if md5 is not None and h.hexdigest() != md5:
            raise DatasetError(f"download of {url} failed its checksum: MD5 {h.hexdigest()}, expected {md5}")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def download(url: str, root: str, md5: Optional[str] = None, extract: bool = True) -> str:
    """Download ``url`` into ``root`` (checksum-verified) and extract .tar/.tar.gz archives safely."""
    target = _download_file(url, os.path.join(root, os.path.basename(url.split("?")[0]) or "download"), md5)
    if extract and (target.endswith(".tar.gz") or target.endswith(".tgz") or target.endswith(".tar")):
        _safe_extract(target, root)
    return target


def _safe_extract(archive: str, root: str) -> None:
    """Extract only regular files and folders that land inside ``root`` (no ../, absolute paths or links)."""
    root_abs = os.path.realpath(root)
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise DatasetError(f"{archive}: not a readable tar archive ({e})") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            dest = os.path.realpath(os.path.join(root_abs, m.name))
            if os.path.isabs(m.name) or not (dest == root_abs or dest.startswith(root_abs + os.sep)):
                raise DatasetError(f"{archive}: member '{m.name}' would be written outside {root}; refusing to extract")
            if not (m.isfile() or m.isdir()):
                raise DatasetError(f"{archive}: member '{m.name}' is a link or special file; refusing to extract")
        for m in members:
            dest = os.path.join(root_abs, m.name)
            if m.isdir():
                os.makedirs(dest, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            src = tf.extractfile(m)
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
