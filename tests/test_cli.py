"""End-to-end tests of the ``dlcore`` command (train / evaluate / predict), run in subprocesses.

Most runs use ``--epochs 1`` on the bundled digits; one test trains with the defaults and
checks the headline accuracy (>= 97% on the digits test split).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import dlcore
from dlcore.datasets import load_digits
from dlcore.models import build_model
from dlcore.serialization import load as load_tensors
from dlcore.serialization import load_checkpoint, save, save_checkpoint

OUTPUTS = ("metrics.json", "history.csv", "model.safetensors", "checkpoint.safetensors", "curves.png", "confusion.png")
MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def run(*args, cwd=None, timeout=180, script=False):
    cmd = ([console_script()] if script else [sys.executable, "-m", "dlcore"]) + [str(a) for a in args]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def console_script():
    cand = os.path.join(os.path.dirname(sys.executable), "dlcore")
    if os.path.exists(cand):
        return cand
    found = shutil.which("dlcore")
    if not found:
        pytest.skip("the dlcore console script is not installed")
    return found


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def fails(r, code):
    assert r.returncode == code, f"exit {r.returncode}, expected {code}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert r.stderr.strip(), "an error must say what went wrong"
    return r


def metrics(d):
    with open(os.path.join(str(d), "metrics.json")) as f:
        return json.load(f)


def history(d):
    with open(os.path.join(str(d), "history.csv")) as f:
        return list(csv.DictReader(f))


def weights(d, name="model.safetensors"):
    return {k: v.numpy() for k, v in load_tensors(os.path.join(str(d), name)).items() if k.startswith("model.")}


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch small CNN on the digits: (out dir, completed process)."""
    d = tmp_path_factory.mktemp("run") / "cnn"
    r = ok(run("train", "--epochs", 1, "--threads", 1, "--out", d))
    return d, r


# ---------------------------------------------------------------- train / evaluate / predict

def test_train_writes_all_outputs(trained):
    d, r = trained
    for name in OUTPUTS:
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert is_png(d / "curves.png") and is_png(d / "confusion.png")
    m = metrics(d)
    assert 0.0 <= m["test_accuracy"] <= 1.0
    assert m["test_accuracy"] > 0.5  # one epoch of the small CNN already learns something
    assert m["epochs"] == 1 and m["model"] == "cnn" and m["data"] == "digits"
    assert f"{m['test_accuracy']:.4f}" in r.stdout
    h = history(d)
    assert len(h) == 1 and h[0]["epoch"] == "1"
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(h[0])
    # the saved model is a SmallCNN checkpoint with its config
    info = load_checkpoint(str(d / "model.safetensors"))
    cfg = info["config"]
    assert info["model_class"] == "SmallCNN"
    assert (cfg["model"], cfg["in_channels"], cfg["image_size"], cfg["classes"]) == ("cnn", 1, 8, 10)
    model = build_model("cnn", 1, 8, 10)
    load_checkpoint(str(d / "model.safetensors"), model)


def test_evaluate(trained, tmp_path):
    d, _ = trained
    m = metrics(d)
    r = ok(run("evaluate", "--checkpoint", d))
    assert f"accuracy: {m['test_accuracy']:.4f}" in r.stdout
    out = tmp_path / "eval"
    r = ok(run("evaluate", "--checkpoint", d / "model.safetensors", "--data", "digits", "--out", out))
    assert f"accuracy: {m['test_accuracy']:.4f}" in r.stdout
    assert metrics(out)["accuracy"] == pytest.approx(m["test_accuracy"])
    assert is_png(out / "confusion.png")


def _parse_predictions(stdout, files):
    rows = {}
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    for f in files:
        prefix = f"{f}: "
        line = [ln for ln in lines if ln.startswith(prefix)]
        assert len(line) == 1, f"no single line for {f} in:\n{stdout}"
        pairs = [p.rsplit(" ", 1) for p in line[0][len(prefix):].split(", ")]
        rows[f] = [(name, float(p)) for name, p in pairs]
    return rows


def _reference_probs(ckpt_dir, x):
    info = load_checkpoint(os.path.join(str(ckpt_dir), "model.safetensors"))
    cfg = info["config"]
    model = build_model(cfg["model"], cfg["in_channels"], cfg["image_size"], cfg["classes"])
    load_checkpoint(os.path.join(str(ckpt_dir), "model.safetensors"), model)
    xn = dlcore.data.Normalize(cfg["mean"], cfg["std"])(dlcore.from_numpy(np.ascontiguousarray(x, np.float32)))
    _, probs = dlcore.train.predict(model, xn)
    return probs.numpy()


def test_predict_npy_and_png(trained, tmp_path):
    from PIL import Image

    d, _ = trained
    xte, _ = load_digits(train=False)
    imgs = xte.numpy()[:2]
    npy = tmp_path / "digit.npy"
    np.save(npy, imgs[0, 0])  # (H, W) for one channel
    npy3 = tmp_path / "digit3.npy"
    np.save(npy3, imgs[1])  # (C, H, W)
    png = tmp_path / "digit.png"
    Image.fromarray(np.round(imgs[1, 0] * 255).astype(np.uint8), mode="L").save(png)
    files = [str(npy), str(npy3), str(png)]
    r = ok(run("predict", "--checkpoint", d, *files))
    rows = _parse_predictions(r.stdout, files)
    png_x = np.asarray(Image.open(png).convert("L").resize((8, 8)), np.float32)[None] / 255
    ref = _reference_probs(d, np.stack([imgs[0], imgs[1], png_x]))
    for f, ref_row in zip(files, ref):
        top = rows[f]
        assert len(top) == 3
        probs = [p for _, p in top]
        assert all(0.0 <= p <= 1.0 for p in probs) and probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1.0 + 2e-3
        order = np.argsort(-ref_row, kind="stable")[:3]
        assert top[0][0] == str(order[0])
        np.testing.assert_allclose(probs, ref_row[order], atol=1.5e-3)
    r = ok(run("predict", "--checkpoint", d, "--top", 1, npy))
    assert len(_parse_predictions(r.stdout, [str(npy)])[str(npy)]) == 1


def test_predict_errors(trained, tmp_path):
    d, _ = trained
    fails(run("predict", "--checkpoint", d, tmp_path / "missing.npy"), 1)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5, 5), np.float32))
    fails(run("predict", "--checkpoint", d, bad), 1)
    notimg = tmp_path / "notimg.png"
    notimg.write_bytes(b"not an image")
    fails(run("predict", "--checkpoint", d, notimg), 1)


def test_console_script(trained):
    d, _ = trained
    r = ok(run("evaluate", "--checkpoint", d, script=True))
    assert f"accuracy: {metrics(d)['test_accuracy']:.4f}" in r.stdout
    r = ok(run("--version", script=True))
    assert "dlcore" in r.stdout


# ---------------------------------------------------------------- classic models, npz data

def test_train_knn(tmp_path):
    from dlcore.classic import NearestNeighbor

    out = tmp_path / "knn"
    r = ok(run("train", "--model", "knn", "--out", out))
    m = metrics(out)
    xtr, ytr = load_digits(train=True)
    xte, yte = load_digits(train=False)
    expected = NearestNeighbor(k=1).fit(xtr, ytr).score(xte, yte)
    assert m["test_accuracy"] == pytest.approx(expected)
    assert m["test_accuracy"] >= 0.95
    assert "test accuracy" in r.stdout
    out3 = tmp_path / "knn3"
    ok(run("train", "--model", "knn", "--k", 3, "--out", out3))
    assert metrics(out3)["test_accuracy"] == pytest.approx(NearestNeighbor(k=3).fit(xtr, ytr).score(xte, yte))


@pytest.mark.parametrize("model", ["linear-svm", "softmax"])
def test_train_linear(tmp_path, model):
    out = tmp_path / model
    ok(run("train", "--model", model, "--out", out))
    m = metrics(out)
    assert m["model"] == model
    assert m["test_accuracy"] >= 0.90
    ok(run("train", "--model", model, "--epochs", 1, "--quiet"))


def test_train_npz(tmp_path):
    x, y = load_digits()
    images = np.round(x.numpy()[:600] * 255).astype(np.uint8)  # (N, 1, 8, 8) uint8
    labels = y.numpy()[:600]
    p = tmp_path / "mine.npz"
    np.savez(p, images=images, labels=labels)
    out = tmp_path / "npz"
    ok(run("train", "--data", p, "--epochs", 1, "--threads", 1, "--out", out, "--quiet"))
    m = metrics(out)
    assert m["data"] == str(p) and 0.0 <= m["test_accuracy"] <= 1.0
    assert (out / "model.safetensors").is_file()
    r = ok(run("evaluate", "--checkpoint", out))  # the data defaults to the training data
    assert f"accuracy: {m['test_accuracy']:.4f}" in r.stdout
    ok(run("train", "--data", p, "--model", "knn", "--out", tmp_path / "npzknn"))
    assert metrics(tmp_path / "npzknn")["test_accuracy"] > 0.9


# ---------------------------------------------------------------- resume

def test_resume_continues(trained, tmp_path):
    src, _ = trained
    d = tmp_path / "resumed"
    shutil.copytree(src, d)
    before = history(d)
    w_before = weights(d)
    r = ok(run("train", "--epochs", 2, "--threads", 1, "--resume", "--out", d))
    h = history(d)
    assert [row["epoch"] for row in h] == ["1", "2"]
    # epoch 1 is the one from the first run, not trained again
    assert {k: v for k, v in h[0].items() if k != "time"} == {k: v for k, v in before[0].items() if k != "time"}
    assert metrics(d)["epochs"] == 2
    assert "epoch 1/2" not in r.stderr  # only epoch 2 was trained
    # and epoch 2 really trained the model further
    assert float(h[1]["lr"]) > 0, f"the continued epoch trained with learning rate {h[1]['lr']}"
    w_after = weights(d)
    assert any(not np.array_equal(w_before[k], w_after[k]) for k in w_before), "resume did not update the model"
    assert metrics(d)["test_accuracy"] > float(before[0]["val_acc"])


RESUME_ARGS = ("--epochs", 2, "--batch-size", 16, "--quiet", "--threads", 1)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 2-epoch run (the reference for the resume tests)."""
    d = tmp_path_factory.mktemp("full") / "run"
    ok(run("train", *RESUME_ARGS, "--out", d))
    return d


def _start_and_stop(out, sig):
    """Start a 2-epoch run; send ``sig`` as soon as the end-of-epoch-1 checkpoint exists."""
    cmd = [sys.executable, "-m", "dlcore", "train"] + [str(a) for a in RESUME_ARGS] + ["--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.safetensors").exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.002)
        assert (out / "checkpoint.safetensors").exists()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, err


def _assert_same_run(a, b):
    strip = lambda rows: [{k: v for k, v in row.items() if k != "time"} for row in rows]  # noqa: E731
    assert strip(history(a)) == strip(history(b))
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert metrics(a)["test_accuracy"] == metrics(b)["test_accuracy"]


def test_resume_after_crash_is_exact(full_run, tmp_path):
    """Killed (SIGKILL) after epoch 1's checkpoint: --resume reproduces the uninterrupted run."""
    part = tmp_path / "part"
    _start_and_stop(part, signal.SIGKILL)
    assert not (part / "metrics.json").exists()
    if load_checkpoint(str(part / "checkpoint.safetensors"))["epoch"] != 1:
        pytest.skip("the run got past epoch 1 before it was killed")
    ok(run("train", *RESUME_ARGS, "--resume", "--out", part))
    _assert_same_run(part, full_run)


def test_resume_after_ctrl_c_is_exact(full_run, tmp_path):
    """Ctrl-C during epoch 2 saves a checkpoint; --resume then reproduces the uninterrupted run."""
    part = tmp_path / "part"
    code, err = _start_and_stop(part, signal.SIGINT)
    assert "Traceback" not in err, err
    if code == 0 and metrics(part)["epochs"] == 2 and not metrics(part)["interrupted"]:
        pytest.skip("the run finished before the interrupt arrived")
    assert code == 0, err
    assert metrics(part)["interrupted"] is True
    assert len(history(part)) == 1
    ok(run("train", *RESUME_ARGS, "--resume", "--out", part))
    _assert_same_run(part, full_run)


# ---------------------------------------------------------------- error paths

def test_unknown_dataset_is_usage_error(tmp_path):
    r = fails(run("train", "--data", "imagenet", "--epochs", 1), 2)
    assert "imagenet" in r.stderr


def test_missing_mnist_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = fails(run("train", "--data", "mnist", "--data-dir", empty, "--epochs", 1), 1)
    for name in MNIST_NAMES:
        assert name in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    r = fails(run("train", "--data", "cifar10", "--data-dir", empty, "--epochs", 1), 1)
    assert "cifar-10-batches-bin" in r.stderr


def test_evaluate_missing_checkpoint(tmp_path):
    r = fails(run("evaluate", "--checkpoint", tmp_path / "no-such-run"), 1)
    assert "no-such-run" in r.stderr
    empty = tmp_path / "empty-run"
    empty.mkdir()
    fails(run("evaluate", "--checkpoint", empty), 1)
    fails(run("predict", "--checkpoint", tmp_path / "no-such-run", tmp_path / "x.npy"), 1)


def test_checkpoint_of_another_model(trained, tmp_path):
    src, _ = trained
    cfg = load_checkpoint(str(src / "model.safetensors"))["config"]
    # an MLP's weights under a config that says 'cnn'
    d1 = tmp_path / "other"
    mlp = build_model("mlp", 1, 8, 10)
    save_checkpoint(str(d1 / "model.safetensors"), mlp, config=cfg)
    r = fails(run("evaluate", "--checkpoint", d1), 1)
    assert "MLP" in r.stderr or "mismatch" in r.stderr
    # a SmallCNN of another size (image_size 16: different linear layer)
    d2 = tmp_path / "other-size"
    save_checkpoint(str(d2 / "model.safetensors"), build_model("cnn", 1, 16, 10), config=cfg)
    fails(run("evaluate", "--checkpoint", d2), 1)
    fails(run("predict", "--checkpoint", d2, tmp_path / "x.npy"), 1)
    # a plain tensor file, not a model checkpoint
    d3 = tmp_path / "plain"
    save({"w": dlcore.from_numpy(np.zeros(3, np.float32))}, str(d3 / "model.safetensors"))
    fails(run("evaluate", "--checkpoint", d3), 1)
    # a 10-class model evaluated on 3x32x32 data it was not made for
    p = tmp_path / "rgb.npz"
    np.savez(p, images=np.zeros((20, 3, 32, 32), np.uint8), labels=np.arange(20) % 10)
    fails(run("evaluate", "--checkpoint", src, "--data", p), 1)


@pytest.mark.parametrize("damage", ["truncated", "flipped-byte", "garbage", "empty", "huge-header"])
def test_corrupted_checkpoint(trained, tmp_path, damage):
    src, _ = trained
    d = tmp_path / "damaged"
    shutil.copytree(src, d)
    path = d / "model.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped-byte":
        data[-100] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(os.urandom(4096))
    elif damage == "empty":
        data = bytearray()
    else:
        data[:8] = (10**15).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    r = fails(run("evaluate", "--checkpoint", d), 1)
    assert "model.safetensors" in r.stderr
    fails(run("predict", "--checkpoint", d, tmp_path / "x.npy"), 1)


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "abc"],
    ["train", "--epochs", "-1"],
    ["train", "--batch-size", "0"],
    ["train", "--model", "resnet"],
    ["train", "--loss", "focal"],
    ["train", "--k", "0", "--model", "knn"],
    ["train", "--threads", "0"],
    ["train", "--no-such-option"],
    ["predict", "--checkpoint", "x", "--top", "0", "a.npy"],
    ["evaluate"],
    ["train", "--resume", "--epochs", "1"],
    ["train", "--resume", "--model", "knn", "--out", "somewhere"],
], ids=lambda a: "_".join(a))
def test_bad_option_values_are_usage_errors(args, tmp_path):
    r = fails(run(*args, cwd=tmp_path), 2)
    assert "usage" in r.stderr.lower() or "error" in r.stderr.lower()


@pytest.mark.parametrize("args", [["--lr", "-1"], ["--momentum", "-0.5"], ["--weight-decay", "-1"]],
                         ids=lambda a: "_".join(a))
def test_negative_hyperparameters_are_usage_errors(args, tmp_path):
    # like --batch-size 0 or --epochs -1: a bad option value is a usage error (exit 2), found before training
    r = fails(run("train", "--epochs", "1", "--quiet", *args, cwd=tmp_path), 2)
    assert args[0].lstrip("-").replace("-", "_") in r.stderr.replace("-", "_")


def test_lenet_on_8x8_digits_fails_cleanly(tmp_path):
    r = fails(run("train", "--model", "lenet", "--epochs", 1, cwd=tmp_path), 1)
    assert "LeNet5" in r.stderr or "16x16" in r.stderr


# ---------------------------------------------------------------- the headline

def test_default_training_reaches_97_percent(tmp_path):
    out = tmp_path / "default"
    t0 = time.perf_counter()
    r = ok(run("train", "--out", out, "--quiet", timeout=300))
    seconds = time.perf_counter() - t0
    m = metrics(out)
    assert m["data"] == "digits" and m["model"] == "cnn"
    assert m["test_accuracy"] >= 0.97, f"default training reached only {m['test_accuracy']:.4f}"
    assert f"{m['test_accuracy']:.4f}" in r.stdout
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert seconds < 120
