"""Produce python/dlcore/datasets/data/digits.npz from scikit-learn's copy of the digits.

Source: the "Optical Recognition of Handwritten Digits" data set (UCI Machine
Learning Repository; E. Alpaydin and C. Kaynak, 1998), test part, as shipped
with scikit-learn (sklearn/datasets/data/digits.csv.gz). The UCI data set is
licensed under CC BY 4.0; scikit-learn is BSD-3-Clause. 1,797 images of 8x8
pixels with values 0..16, 10 classes.

Run once (needs scikit-learn): python scripts/make_digits.py
"""
import gzip
import os

import numpy as np
import sklearn

src = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")
with gzip.open(src, "rt") as f:
    data = np.loadtxt(f, delimiter=",")
images = data[:, :64].astype(np.uint8).reshape(-1, 8, 8)
labels = data[:, 64].astype(np.uint8)
assert images.shape == (1797, 8, 8) and labels.max() == 9 and images.max() == 16
out = os.path.join(os.path.dirname(__file__), "..", "python", "dlcore", "datasets", "data", "digits.npz")
np.savez_compressed(out, images=images, labels=labels)
print(f"wrote {out}: {os.path.getsize(out)} bytes")
