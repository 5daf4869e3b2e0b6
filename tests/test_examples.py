"""The scripts in examples/ run end to end (small settings)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=240):
    r = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_train_digits_example_reaches_high_accuracy():
    out = _run([os.path.join("examples", "train_digits.py")])
    acc = float(out.strip().splitlines()[-1].rsplit(" ", 1)[-1])
    assert acc >= 0.97


def test_from_knn_to_cnn_prints_the_table():
    out = _run([os.path.join("examples", "from_knn_to_cnn.py")])
    rows = [line for line in out.splitlines() if line.startswith("| ") and "classifier" not in line]
    assert len(rows) == 6
    accs = [float(r.split("|")[2]) for r in rows]
    assert min(accs) >= 0.9 and accs[-1] >= 0.97  # the CNN row


def test_train_cifar10_example_on_a_tiny_synthetic_dataset(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rec = np.zeros((8, 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, 8)
        rec[:, 1:] = rng.integers(0, 256, (8, 3072))
        rec.tofile(d / f"{name}.bin")
    out = _run([os.path.join("examples", "train_cifar10.py"), "--data-dir", str(tmp_path), "--epochs", "1",
                "--batch-size", "16", "--out", str(tmp_path / "run")])
    assert "test accuracy:" in out
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()
