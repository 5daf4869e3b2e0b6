"""Tests of dlcore.train (fit, evaluate, predict, History), checkpoints (dlcore.save / load,
save_checkpoint / load_checkpoint, fit(checkpoint_dir=..., resume=True)): exact round trips,
corrupt / truncated / mismatched files rejected with CheckpointError, atomic writes under a
writer killed mid-write, bit-identical resumption, and flat memory over many training steps.
"""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import dlcore
import dlcore.nn as nn
from dlcore.data import DataLoader, TensorDataset
from dlcore.optim import SGD, Adam
from dlcore.serialization import CheckpointError
from dlcore.train import CHECKPOINT_NAME, History, evaluate, fit, predict

StepLR = dlcore.optim.lr_scheduler.StepLR


# ----------------------------------------------------------------------------------------
# data and models
# ----------------------------------------------------------------------------------------

def blobs(n=300, dim=6, classes=3, seed=0):
    """Linearly separable Gaussian blobs (well separated class means)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dim)) * 4.0
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.standard_normal((n, dim)) * 0.5
    return x.astype(np.float32), y.astype(np.int64)


def bar_images(n=200, size=8, seed=0):
    """Class 0: a bright vertical bar, class 1: a horizontal bar, at random positions, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, size, size)).astype(np.float32) * 0.3
    y = rng.integers(0, 2, n).astype(np.int64)
    pos = rng.integers(1, size - 1, n)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, :, pos[i]] += 2.0
        else:
            x[i, 0, pos[i], :] += 2.0
    return x, y


def tds(x, y):
    return TensorDataset(dlcore.from_numpy(x), dlcore.from_numpy(y))


def mlp(dim=6, classes=3, dropout=0.0):
    layers = [nn.Linear(dim, 32), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(32, classes))
    return nn.Sequential(*layers)


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 2))


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ----------------------------------------------------------------------------------------
# fit / evaluate / predict
# ----------------------------------------------------------------------------------------

def test_fit_mlp_learns_separable_problem():
    dlcore.manual_seed(0)
    x, y = blobs()
    model = mlp()
    loader = DataLoader(tds(x, y), batch_size=32, shuffle=True, seed=0)
    t0 = time.perf_counter()
    h = fit(model, loader, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.05, momentum=0.9), epochs=5,
            verbose=False)
    assert time.perf_counter() - t0 < 10
    assert isinstance(h, History)
    assert h.epoch == [1, 2, 3, 4, 5]
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"):
        assert len(getattr(h, k)) == 5, k
    assert h.val_loss == [None] * 5 and h.val_acc == [None] * 5
    assert h.lr == [0.05] * 5
    assert all(t >= 0 for t in h.time)
    assert h.train_acc[-1] > 0.95
    assert h.train_loss[-1] < h.train_loss[0]
    res = evaluate(model, DataLoader(tds(x, y), batch_size=64))
    assert res["accuracy"] > 0.95


def test_fit_cnn_learns_separable_problem():
    dlcore.manual_seed(0)
    x, y = bar_images()
    model = cnn()
    loader = DataLoader(tds(x, y), batch_size=20, shuffle=True, seed=1)
    t0 = time.perf_counter()
    h = fit(model, loader, nn.CrossEntropyLoss(), Adam(model.parameters(), lr=0.02), epochs=8, verbose=False)
    assert time.perf_counter() - t0 < 10
    res = evaluate(model, DataLoader(tds(x, y), batch_size=50))
    assert res["accuracy"] > 0.95, (h.train_acc, res["accuracy"])
    assert h.train_acc[-1] > 0.9


def test_fit_validation_scheduler_and_callbacks():
    dlcore.manual_seed(1)
    x, y = blobs(200)
    xv, yv = blobs(90, seed=0)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    calls = []

    def cb(epoch, logs):
        calls.append((epoch, dict(logs)))
        return epoch == 3  # stop after the third epoch

    h = fit(model, DataLoader(tds(x, y), 25), nn.CrossEntropyLoss(), opt, epochs=6,
            val_loader=DataLoader(tds(xv, yv), 30), scheduler=sched, callbacks=[cb], verbose=False)
    assert h.epoch == [1, 2, 3]
    assert h.lr == [0.1, 0.05, 0.025]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0125)
    assert [c[0] for c in calls] == [1, 2, 3]
    assert calls[-1][1]["train_loss"] == h.train_loss[-1] and calls[-1][1]["val_acc"] == h.val_acc[-1]
    assert all(v is not None for v in h.val_loss) and all(0 <= a <= 1 for a in h.val_acc)
    ev = evaluate(model, DataLoader(tds(xv, yv), 30), nn.CrossEntropyLoss())
    assert ev["accuracy"] == pytest.approx(h.val_acc[-1])
    assert ev["loss"] == pytest.approx(h.val_loss[-1], rel=1e-6)
    d = h.as_dict()
    assert set(d) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"}


def test_fit_verbose_prints_progress(capsys):
    x, y = blobs(40)
    model = mlp()
    fit(model, DataLoader(tds(x, y), 20), nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), 2, verbose=True)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err
    fit(model, DataLoader(tds(x, y), 20), nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), 1,
        verbose=False)
    assert capsys.readouterr().err == ""


def test_evaluate_matches_manual_computation():
    dlcore.manual_seed(2)
    x, y = blobs(101)
    model = mlp(dropout=0.5)
    model.train()
    res = evaluate(model, DataLoader(tds(x, y), batch_size=16), nn.CrossEntropyLoss())
    assert model.training, "evaluate must restore the training mode"
    model.eval()
    with dlcore.no_grad():
        logits = model(dlcore.from_numpy(x)).numpy().astype(np.float64)
    pred = logits.argmax(1)
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    loss = (lse - logits[np.arange(101), y]).mean()
    assert res["count"] == 101
    assert res["accuracy"] == pytest.approx((pred == y).mean())
    assert res["loss"] == pytest.approx(loss, rel=1e-5)
    conf = res["confusion"]
    assert isinstance(conf, np.ndarray) and conf.shape == (3, 3) and conf.sum() == 101
    ref = np.zeros((3, 3), np.int64)
    for t, p in zip(y, pred):
        ref[t, p] += 1  # rows: true class, columns: predicted class
    np.testing.assert_array_equal(conf, ref)
    assert evaluate(model, DataLoader(tds(x, y), 16))["loss"] is None


def test_predict_returns_classes_and_probabilities():
    dlcore.manual_seed(3)
    x, y = blobs(70)
    model = mlp(dropout=0.5)
    model.train()
    classes, probs = predict(model, dlcore.from_numpy(x), batch_size=16)
    assert model.training
    assert classes.shape == (70,) and classes.dtype == dlcore.int64
    assert probs.shape == (70, 3) and not probs.requires_grad
    model.eval()
    with dlcore.no_grad():
        logits = model(dlcore.from_numpy(x)).numpy().astype(np.float64)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs.numpy(), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(classes.numpy(), logits.argmax(1))
    c2, p2 = predict(model, dlcore.from_numpy(x))  # default batch_size=256: one batch
    np.testing.assert_array_equal(c2.numpy(), classes.numpy())
    np.testing.assert_allclose(p2.numpy(), probs.numpy(), rtol=1e-6)


class FlatOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x).flatten(0)  # (N*3,) instead of (N, 3)


class WrongRows(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)[:1]


@pytest.mark.parametrize("model_cls", [FlatOutput, WrongRows])
def test_wrong_output_shape_is_a_clear_value_error(model_cls):
    x, y = blobs(40)
    model = model_cls()
    before = weights(model)
    with pytest.raises(ValueError, match="shape|rows"):
        fit(model, DataLoader(tds(x, y), 8), nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), 1,
            verbose=False)
    assert_same_state(weights(model), before)  # no update happened
    with pytest.raises(ValueError, match="shape|rows"):
        evaluate(model, DataLoader(tds(x, y), 8))


def test_loss_target_shape_mismatch_is_a_clear_error():
    x, y = blobs(40)
    model = mlp()
    y2 = np.stack([y, y], 1)
    with pytest.raises((ValueError, RuntimeError), match="shape"):
        fit(model, DataLoader(tds(x, y2), 8), nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), 1,
            verbose=False)
    with pytest.raises(ValueError, match="shape"):
        fit(model, DataLoader(tds(x, y), 8), nn.MSELoss(), SGD(model.parameters(), lr=0.1), 1, verbose=False)


def test_fit_bad_arguments():
    x, y = blobs(20)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError):
        fit(model, DataLoader(tds(x, y), 8), nn.CrossEntropyLoss(), opt, -1, verbose=False)
    with pytest.raises(ValueError):
        fit(model, DataLoader(tds(x, y), 8), nn.CrossEntropyLoss(), opt, 1, resume=True, verbose=False)
    h = fit(model, DataLoader(tds(x, y), 8), nn.CrossEntropyLoss(), opt, 0, verbose=False)
    assert h.epoch == []


# ----------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------

def test_save_load_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    sd = {"a": dlcore.from_numpy(rng.standard_normal((3, 4)).astype(np.float32)),
          "b.c": dlcore.from_numpy(rng.standard_normal(5)),
          "idx": dlcore.from_numpy(rng.integers(-5, 5, (2, 2))),
          "mask": dlcore.from_numpy(rng.random(6) < 0.5),
          "view": dlcore.from_numpy(rng.standard_normal((4, 6)).astype(np.float32)).transpose(0, 1)}
    p = str(tmp_path / "w.safetensors")
    dlcore.save(sd, p)
    out = dlcore.load(p)
    assert set(out) == set(sd)
    for k, v in sd.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        np.testing.assert_array_equal(out[k].numpy(), v.numpy())
    # a model's state dict round trips and loads into a fresh model
    m = mlp()
    dlcore.save(m.state_dict(), p)
    m2 = mlp()
    m2.load_state_dict(dlcore.load(p))
    assert_same_state(weights(m2), weights(m))
    with pytest.raises(TypeError):
        dlcore.save({"x": np.zeros(2)}, p)
    with pytest.raises(FileNotFoundError):
        dlcore.load(str(tmp_path / "missing.safetensors"))


def test_save_load_keeps_0d_tensor_shape(tmp_path):
    p = str(tmp_path / "s.safetensors")
    dlcore.save({"step": dlcore.tensor(7), "x": dlcore.tensor(2.5)}, p)
    out = dlcore.load(p)
    assert out["step"].shape == () and out["x"].shape == (), {k: v.shape for k, v in out.items()}
    assert int(out["step"].item()) == 7 and out["x"].item() == 2.5


def test_batchnorm_model_state_dict_round_trips_through_a_file(tmp_path):
    """BatchNorm's num_batches_tracked is a 0-d buffer (as PyTorch): save -> load -> load_state_dict."""
    m = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    m(dlcore.randn(8, 4))
    p = str(tmp_path / "bn.safetensors")
    dlcore.save(m.state_dict(), p)
    m2 = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    m2.load_state_dict(dlcore.load(p))
    assert_same_state(weights(m2), weights(m))
    c = str(tmp_path / "bn_ckpt.safetensors")
    dlcore.save_checkpoint(c, m, None, None, epoch=1)
    m3 = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    dlcore.load_checkpoint(c, m3)
    assert_same_state(weights(m3), weights(m))


def _train_steps(model, opt, x, y, steps, sched=None):
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps):
        xb, yb = dlcore.from_numpy(x[i * 10:(i + 1) * 10]), dlcore.from_numpy(y[i * 10:(i + 1) * 10])
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_save_checkpoint_round_trip_and_continuation(tmp_path, opt_name):
    x, y = blobs(100)

    def make():
        m = mlp()
        o = SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True) if opt_name == "sgd" else \
            Adam(m.parameters(), lr=0.01, betas=(0.8, 0.95))
        return m, o, StepLR(o, step_size=2, gamma=0.5)

    m, o, s = make()
    _train_steps(m, o, x, y, 5, s)
    p = str(tmp_path / "ckpt.safetensors")
    cfg = {"lr": 0.1, "layers": [6, 32, 3], "name": "mlp", "nested": {"a": 1}}
    dlcore.save_checkpoint(p, m, o, s, epoch=5, config=cfg)
    m2, o2, s2 = make()
    info = dlcore.load_checkpoint(p, m2, o2, s2)
    assert info["epoch"] == 5 and info["config"] == cfg
    assert_same_state(weights(m2), weights(m))
    assert o2.param_groups[0]["lr"] == o.param_groups[0]["lr"] and s2.last_epoch == s.last_epoch
    _train_steps(m, o, x[50:], y[50:], 5, s)
    _train_steps(m2, o2, x[50:], y[50:], 5, s2)
    assert_same_state(weights(m2), weights(m))


def _good_file(tmp_path):
    m = mlp()
    p = str(tmp_path / "good.safetensors")
    dlcore.save_checkpoint(p, m, SGD(m.parameters(), lr=0.1), None, epoch=1)
    with open(p, "rb") as f:
        return m, p, f.read()


def test_truncated_file_is_rejected(tmp_path):
    m, p, data = _good_file(tmp_path)
    header_end = 8 + int.from_bytes(data[:8], "little")
    for cut in sorted({0, 3, 8, 20, header_end - 1, header_end, header_end + 5, (header_end + len(data)) // 2,
                       len(data) - 1}):
        bad = str(tmp_path / f"cut{cut}.safetensors")
        with open(bad, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(CheckpointError) as ei:
            dlcore.load(bad)
        assert isinstance(ei.value, ValueError)
        assert "truncated" in str(ei.value) or "corrupt" in str(ei.value), str(ei.value)
        with pytest.raises(CheckpointError):
            dlcore.load_checkpoint(bad, mlp())


def test_flipped_byte_is_rejected(tmp_path):
    m, p, data = _good_file(tmp_path)
    header_end = 8 + int.from_bytes(data[:8], "little")
    rng = np.random.default_rng(0)
    positions = [header_end, len(data) - 1] + list(rng.integers(header_end, len(data), 6))
    for pos in positions:
        b = bytearray(data)
        b[pos] ^= 0x10
        bad = str(tmp_path / "flip.safetensors")
        with open(bad, "wb") as f:
            f.write(bytes(b))
        with pytest.raises(CheckpointError, match="checksum"):
            dlcore.load(bad)
        m2 = mlp()
        before = weights(m2)
        with pytest.raises(CheckpointError):
            dlcore.load_checkpoint(bad, m2)
        assert_same_state(weights(m2), before)
    # a flipped byte in the JSON header is rejected too
    for pos in (10, header_end - 3):
        b = bytearray(data)
        b[pos] ^= 0x01
        bad = str(tmp_path / "flip_header.safetensors")
        with open(bad, "wb") as f:
            f.write(bytes(b))
        with pytest.raises(CheckpointError):
            dlcore.load(bad)


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    m, p, _ = _good_file(tmp_path)
    other = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))  # same class, other shapes
    before = weights(other)
    with pytest.raises(CheckpointError, match="0.weight"):
        dlcore.load_checkpoint(p, other)
    assert_same_state(weights(other), before)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(CheckpointError):
        dlcore.load_checkpoint(p, Net())
    extra = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3), nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match="missing"):
        dlcore.load_checkpoint(p, extra)
    # a plain state-dict file is not a checkpoint of this model either
    q = str(tmp_path / "plain.safetensors")
    dlcore.save({"w": dlcore.zeros(2)}, q)
    with pytest.raises(CheckpointError):
        dlcore.load_checkpoint(q, mlp())


# ----------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------

_CHILD_PRELUDE = """
import os, sys
import dlcore
import dlcore.nn as nn

def model_filled(v):
    m = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    with dlcore.no_grad():
        for p in m.parameters():
            p.fill_(float(v))
    return m
"""


def _model_filled(v):
    m = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    with dlcore.no_grad():
        for p in m.parameters():
            p.fill_(float(v))
    return m


def _run_child(code, **kw):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(_CHILD_PRELUDE) + textwrap.dedent(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_writer_dying_mid_write_leaves_previous_checkpoint(tmp_path):
    p = str(tmp_path / "ckpt.safetensors")
    dlcore.save_checkpoint(p, _model_filled(1), None, None, epoch=1)
    child = _run_child(f"""
        real_fdopen = os.fdopen

        class Dying:
            def __init__(self, f):
                self.f = f
            def __enter__(self):
                return self
            def __exit__(self, *a):
                return False
            def write(self, data):
                self.f.write(bytes(data)[:len(data) // 2])
                self.f.flush()
                os._exit(17)  # the process dies after writing half of the new file
            def __getattr__(self, name):
                return getattr(self.f, name)

        os.fdopen = lambda fd, *a, **k: Dying(real_fdopen(fd, *a, **k))
        dlcore.save_checkpoint({p!r}, model_filled(2), None, None, epoch=2)
        print("not reached")
    """)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 17, err
    assert "not reached" not in out
    leftovers = [f for f in os.listdir(tmp_path) if f != "ckpt.safetensors"]
    assert leftovers, "the writer should have died while writing a temporary file"
    m = _model_filled(0)
    info = dlcore.load_checkpoint(p, m)
    assert info["epoch"] == 1
    assert all(np.all(v.numpy() == 1.0) for v in m.state_dict().values())


def test_writer_killed_during_repeated_saves_leaves_a_loadable_checkpoint(tmp_path):
    p = str(tmp_path / "ckpt.safetensors")
    rng = np.random.default_rng(0)
    for trial in range(4):
        child = _run_child(f"""
            k = 0
            while True:
                k += 1
                dlcore.save_checkpoint({p!r}, model_filled(k), None, None, epoch=k)
                if k == 1:
                    print("ready", flush=True)
        """)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(float(rng.uniform(0.0, 0.15)))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.communicate(timeout=30)
        m = _model_filled(0)
        info = dlcore.load_checkpoint(p, m)
        k = info["epoch"]
        assert k >= 1
        assert all(np.all(v.numpy() == float(k)) for v in m.state_dict().values()), f"trial {trial}"


# ----------------------------------------------------------------------------------------
# fit checkpoints and resumption
# ----------------------------------------------------------------------------------------

def test_fit_writes_a_checkpoint_every_epoch(tmp_path):
    x, y = blobs(60)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    path = os.path.join(str(tmp_path), CHECKPOINT_NAME)
    assert CHECKPOINT_NAME == "checkpoint.safetensors"
    seen = []

    def cb(epoch, logs):
        info = dlcore.load_checkpoint(path, mlp())
        seen.append(info["epoch"])
        assert info["config"] == {"lr": 0.1}

    fit(model, DataLoader(tds(x, y), 20), nn.CrossEntropyLoss(), opt, 3, callbacks=[cb], checkpoint_dir=str(tmp_path),
        config={"lr": 0.1}, verbose=False)
    assert seen == [1, 2, 3]
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]  # no temporary files left behind
    m2 = mlp()
    dlcore.load_checkpoint(path, m2)
    assert_same_state(weights(m2), weights(model))


def _resume_setup(seeded_loader):
    x, y = blobs(120, seed=4)
    model = mlp(dropout=0.3)
    opt = Adam(model.parameters(), lr=0.01)
    sched = StepLR(opt, step_size=1, gamma=0.7)
    loader = DataLoader(tds(x, y), batch_size=16, shuffle=True, seed=5 if seeded_loader else None)
    return model, opt, sched, loader


@pytest.mark.parametrize("seeded_loader", [True, False], ids=["loader_seed", "default_generator"])
def test_resume_is_bit_identical(tmp_path, seeded_loader):
    loss = nn.CrossEntropyLoss()
    dlcore.manual_seed(0)
    model, opt, sched, loader = _resume_setup(seeded_loader)
    h_full = fit(model, loader, loss, opt, 4, scheduler=sched, verbose=False)
    full = weights(model)

    dlcore.manual_seed(0)
    model, opt, sched, loader = _resume_setup(seeded_loader)
    fit(model, loader, loss, opt, 2, scheduler=sched, checkpoint_dir=str(tmp_path), verbose=False)
    dlcore.manual_seed(12345)  # the fresh process has another RNG state: the checkpoint must restore it
    model, opt, sched, loader = _resume_setup(seeded_loader)
    h_res = fit(model, loader, loss, opt, 4, scheduler=sched, checkpoint_dir=str(tmp_path), resume=True,
                verbose=False)
    assert_same_state(weights(model), full)
    assert h_res.epoch == [1, 2, 3, 4]
    assert h_res.train_loss == h_full.train_loss and h_res.lr == h_full.lr
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.7 ** 4)
    # resuming a finished run does nothing more
    before = weights(model)
    fit(model, loader, loss, opt, 4, scheduler=sched, checkpoint_dir=str(tmp_path), resume=True, verbose=False)
    assert_same_state(weights(model), before)


def test_resume_with_batchnorm_model(tmp_path):
    x, y = blobs(80)

    def setup():
        m = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        return m, SGD(m.parameters(), lr=0.05, momentum=0.9), DataLoader(tds(x, y), 16, shuffle=True, seed=2)

    dlcore.manual_seed(0)
    m, o, ld = setup()
    fit(m, ld, nn.CrossEntropyLoss(), o, 3, verbose=False)
    full = weights(m)
    dlcore.manual_seed(0)
    m, o, ld = setup()
    fit(m, ld, nn.CrossEntropyLoss(), o, 1, checkpoint_dir=str(tmp_path), verbose=False)
    m, o, ld = setup()
    fit(m, ld, nn.CrossEntropyLoss(), o, 3, checkpoint_dir=str(tmp_path), resume=True, verbose=False)
    assert_same_state(weights(m), full)


# ----------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------

def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    pytest.skip("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_rss_flat_over_2000_training_steps():
    dlcore.manual_seed(0)
    x, y = blobs(256, dim=20, classes=4)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4))
    opt = Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(tds(x, y), batch_size=32, shuffle=True, seed=0)

    def run(steps):
        done = 0
        while done < steps:
            for xb, yb in loader:
                out = model(xb)
                loss = loss_fn(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss.item()
                done += 1
                if done == steps:
                    return

    run(200)  # warm up allocator caches
    gc.collect()
    before = _rss_mb()
    run(2000)
    gc.collect()
    growth = _rss_mb() - before
    assert growth < 20, f"RSS grew by {growth:.1f} MB over 2000 steps"
