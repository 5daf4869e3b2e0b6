"""Image-classification datasets: images as float32 (N, C, H, W) in [0, 1], labels as int64.

* ``load_digits()``: the 8x8 handwritten digits bundled with dlcore (no download).
* ``load_mnist(root)``: the standard IDX files (gzip or raw).
* ``load_cifar10(root)``: the binary batches, or the Python batches read without
  unpickling arbitrary objects.
* ``load_npz(path)``: your own ``images``/``labels`` arrays.

Readers check magic numbers, header sizes against the file size and label ranges
before allocating (Note: files from outside are untrusted, DESIGN.md rule 6).
"""
from .readers import (DatasetError, download, load_cifar10, load_digits, load_mnist, load_npz,  # noqa: F401
                      CIFAR10_CLASSES, MNIST_FILES, CIFAR10_URL, MNIST_URL)
