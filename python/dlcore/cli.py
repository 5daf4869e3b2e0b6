"""The ``dlcore`` command: train, evaluate and predict image classifiers.

    dlcore train                      # small CNN on the bundled 8x8 digits
    dlcore train --data mnist --data-dir ~/data --download --model lenet --epochs 5 --out runs/mnist
    dlcore evaluate --checkpoint runs/mnist --data mnist --data-dir ~/data
    dlcore predict --checkpoint runs/mnist digit.png

Exit codes: 0 success, 1 failure (missing files, bad checkpoint, ...), 2 usage error.
Expected errors print one line, no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, Tuple

import numpy as np

import dlcore
from dlcore import nn
from dlcore.datasets import CIFAR10_CLASSES, DatasetError, load_cifar10, load_digits, load_mnist, load_npz
from dlcore.models import build_model
from dlcore.serialization import CheckpointError, load_checkpoint, save_checkpoint
from dlcore.train import CHECKPOINT_NAME, evaluate, fit

NEURAL = ("cnn", "mlp", "lenet", "convnet")
CLASSIC = ("knn", "linear-svm", "softmax")
MODEL_FILE = "model.safetensors"


class UsageError(Exception):
    """Bad command-line usage discovered after parsing (exit code 2)."""


def _load_data(name: str, data_dir: Optional[str], download: bool, train: bool):
    if name == "digits":
        return load_digits(train=train)
    if name == "mnist":
        return load_mnist(data_dir or ".", train=train, download=download)
    if name == "cifar10":
        return load_cifar10(data_dir or ".", train=train, download=download)
    if name.endswith(".npz"):
        return load_npz(name, train=train)
    raise UsageError(f"unknown dataset {name!r}: use digits, mnist, cifar10 or a PATH.npz")


def _class_names(data: str, n: int) -> List[str]:
    if data == "cifar10":
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(n)]


def _normalizer(x: dlcore.Tensor) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std of the training images."""
    a = x.numpy()
    mean = a.mean(axis=(0, 2, 3)).tolist()
    std = [max(s, 1e-6) for s in a.std(axis=(0, 2, 3)).tolist()]
    return mean, std


def _write_outputs(out: str, metrics: dict, history=None, confusion=None, names=None) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    if history is not None:
        history.to_csv(os.path.join(out, "history.csv"))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if history is not None and history.epoch:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        a1.plot(history.epoch, history.train_loss, label="train")
        if any(v is not None for v in history.val_loss):
            a1.plot(history.epoch, history.val_loss, label="validation")
        a1.set_xlabel("epoch"), a1.set_ylabel("loss"), a1.legend()
        a2.plot(history.epoch, history.train_acc, label="train")
        if any(v is not None for v in history.val_acc):
            a2.plot(history.epoch, history.val_acc, label="validation")
        a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "curves.png"), dpi=100)
        plt.close(fig)
    if confusion is not None:
        fig, ax = plt.subplots(figsize=(6, 5))
        im = ax.imshow(confusion, cmap="Blues")
        ax.set_xlabel("predicted"), ax.set_ylabel("true")
        k = confusion.shape[0]
        ax.set_xticks(range(k), (names or [str(i) for i in range(k)])[:k], rotation=45)
        ax.set_yticks(range(k), (names or [str(i) for i in range(k)])[:k])
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if confusion[i, j] > confusion.max() / 2 else "black")
        fig.colorbar(im)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "confusion.png"), dpi=100)
        plt.close(fig)


def _check_device(name: str) -> str:
    try:
        dev = dlcore.device(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if dev.type == "cuda" and not dlcore.cuda.is_available():
        why = ("this dlcore was built without CUDA (install with -C cmake.define.DLCORE_CUDA=ON)"
               if not dlcore.cuda.is_built() else "no GPU or driver was found")
        raise UsageError(f"--device {name}: CUDA is not available: {why}")
    if dev.type == "cuda" and dev.index >= dlcore.cuda.device_count():
        raise UsageError(f"--device {name}: only {dlcore.cuda.device_count()} GPU(s) found")
    return str(dev)


def cmd_train(a) -> int:
    device = _check_device(a.device)
    if a.threads is not None:
        dlcore.set_num_threads(a.threads)
    dlcore.manual_seed(a.seed)
    if a.model in CLASSIC and a.resume:
        raise UsageError("--resume works with the neural models only")
    if a.model in CLASSIC and device != "cpu":
        raise UsageError(f"--device {a.device}: the classic models ({', '.join(CLASSIC)}) run on the CPU only")
    xtr, ytr = _load_data(a.data, a.data_dir, a.download, True)
    xte, yte = _load_data(a.data, a.data_dir, a.download, False)
    classes = int(max(int(ytr.max()), int(yte.max()))) + 1
    c, h = xtr.shape[1], xtr.shape[2]
    t0 = time.perf_counter()
    if a.model in CLASSIC:
        from dlcore.classic import LinearClassifier, NearestNeighbor
        if a.model == "knn":
            clf = NearestNeighbor(k=a.k)
        else:
            clf = LinearClassifier("svm" if a.model == "linear-svm" else "softmax", reg=a.weight_decay or 1e-4,
                                   lr=a.lr or 0.1, epochs=a.epochs or 50, batch_size=a.batch_size, seed=a.seed)
        clf.fit(xtr, ytr)
        acc = clf.score(xte, yte)
        metrics = {"data": a.data, "model": a.model, "test_accuracy": acc, "train_examples": xtr.shape[0],
                   "test_examples": xte.shape[0], "seconds": time.perf_counter() - t0}
        print(f"test accuracy: {acc:.4f} ({a.model} on {a.data}, {xte.shape[0]} test images)")
        if a.out:
            _write_outputs(a.out, metrics)
        return 0

    mean, std = _normalizer(xtr)
    norm = dlcore.data.Normalize(mean, std)
    xtr_n, xte_n = norm(xtr), norm(xte)
    model = build_model(a.model, c, h, classes)
    epochs = a.epochs if a.epochs is not None else (15 if a.data == "digits" else 10)
    lr = a.lr if a.lr is not None else 0.05
    opt = dlcore.optim.SGD(model.parameters(), lr=lr, momentum=a.momentum, weight_decay=a.weight_decay,
                           nesterov=a.momentum > 0)
    sched = dlcore.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss() if a.loss == "cross-entropy" else nn.MulticlassHingeLoss()
    transform = None
    if a.data == "cifar10" or (a.data.endswith(".npz") and h >= 32 and c == 3):
        transform = dlcore.data.Compose([dlcore.data.RandomCrop(h, padding=4), dlcore.data.RandomHorizontalFlip()])
    train_loader = dlcore.data.DataLoader(dlcore.data.TensorDataset(xtr_n, ytr), batch_size=a.batch_size,
                                          shuffle=True, seed=a.seed, transform=transform)
    test_loader = dlcore.data.DataLoader(dlcore.data.TensorDataset(xte_n, yte), batch_size=256)
    config = {"model": a.model, "data": a.data, "in_channels": c, "image_size": h, "classes": classes,
              "mean": mean, "std": std, "class_names": _class_names(a.data, classes), "loss": a.loss,
              "seed": a.seed, "epochs": epochs, "lr": lr, "batch_size": a.batch_size}
    ckpt_dir = a.out
    if a.resume and not ckpt_dir:
        raise UsageError("--resume needs --out DIR (the run to continue)")
    print(f"training {a.model} on {a.data}: {xtr.shape[0]} train / {xte.shape[0]} test images of "
          f"{c}x{h}x{h}, {classes} classes, {model.num_parameters()} parameters, {dlcore.get_num_threads()} threads, "
          f"device {device}", file=sys.stderr)
    history = fit(model, train_loader, loss_fn, opt, epochs, val_loader=test_loader, scheduler=sched,
                  checkpoint_dir=ckpt_dir, resume=a.resume, verbose=not a.quiet, config=config, device=device)
    result = evaluate(model, test_loader, loss_fn, num_classes=classes)
    seconds = time.perf_counter() - t0
    metrics = {"data": a.data, "model": a.model, "test_accuracy": result["accuracy"], "test_loss": result["loss"],
               "epochs": len(history.epoch), "train_accuracy": history.train_acc[-1] if history.train_acc else None,
               "seconds": seconds, "threads": dlcore.get_num_threads(), "device": device,
               "interrupted": history.interrupted,
               "parameters": model.num_parameters()}
    print(f"test accuracy: {result['accuracy']:.4f} ({a.model} on {a.data}, {xte.shape[0]} test images, "
          f"{seconds:.1f}s)")
    if a.out:
        save_checkpoint(os.path.join(a.out, MODEL_FILE), model, epoch=len(history.epoch), config=config)
        _write_outputs(a.out, metrics, history, result["confusion"], config["class_names"])
        print(f"wrote {a.out}/: metrics.json, history.csv, {MODEL_FILE}, {CHECKPOINT_NAME}"
              + (", curves.png, confusion.png" if _has_matplotlib() else ""), file=sys.stderr)
    return 0


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def _load_model(ckpt: str):
    path = ckpt if ckpt.endswith(".safetensors") else os.path.join(ckpt, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path} (expected a directory written by `dlcore train --out DIR`)")
    from dlcore.serialization import _read  # header only: config first, then the matching model
    _, meta = _read(path)
    config = json.loads(meta.get("config", "{}"))
    if config.get("model") not in NEURAL:
        raise CheckpointError(f"{path}: not a checkpoint of a dlcore classification model")
    model = build_model(config["model"], config["in_channels"], config["image_size"], config["classes"])
    load_checkpoint(path, model)
    return model, config


def cmd_evaluate(a) -> int:
    model, cfg = _load_model(a.checkpoint)
    x, y = _load_data(a.data or cfg["data"], a.data_dir, a.download, False)
    if x.shape[1:] != (cfg["in_channels"], cfg["image_size"], cfg["image_size"]):
        raise CheckpointError(f"the checkpoint's model expects images {(cfg['in_channels'], cfg['image_size'])}... "
                              f"but {a.data} has images of shape {tuple(x.shape[1:])}")
    if int(y.max()) >= cfg["classes"]:
        raise CheckpointError(f"the data has label {int(y.max())} but the model has {cfg['classes']} classes")
    x = dlcore.data.Normalize(cfg["mean"], cfg["std"])(x)
    res = evaluate(model, dlcore.data.DataLoader(dlcore.data.TensorDataset(x, y), batch_size=256),
                   nn.CrossEntropyLoss(), num_classes=cfg["classes"])
    print(f"accuracy: {res['accuracy']:.4f}  loss: {res['loss']:.4f}  ({res['count']} images)")
    if a.out:
        _write_outputs(a.out, {"accuracy": res["accuracy"], "loss": res["loss"], "count": res["count"]},
                       confusion=res["confusion"], names=cfg.get("class_names"))
    return 0


def _read_image(path: str, c: int, size: int) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    if path.endswith(".npy"):
        a = np.load(path, allow_pickle=False).astype(np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.shape != (c, size, size):
            raise ValueError(f"{path}: array of shape {a.shape}, the model expects {(c, size, size)} "
                             "(or (H, W) for one channel)")
        return a
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(f"{path}: reading PNG/JPEG needs Pillow (pip install pillow), or pass a .npy array") from None
    try:
        img = Image.open(path).convert("L" if c == 1 else "RGB").resize((size, size))
    except OSError as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a[None] if c == 1 else a.transpose(2, 0, 1)


def cmd_predict(a) -> int:
    model, cfg = _load_model(a.checkpoint)
    c, s = cfg["in_channels"], cfg["image_size"]
    x = dlcore.from_numpy(np.stack([_read_image(p, c, s) for p in a.files]))  # images in [0, 1], as training
    x = dlcore.data.Normalize(cfg["mean"], cfg["std"])(x)
    classes, probs = dlcore.train.predict(model, x)
    names = cfg.get("class_names") or [str(i) for i in range(cfg["classes"])]
    p = probs.cpu().numpy()
    for path, row in zip(a.files, p):
        top = np.argsort(-row, kind="stable")[:a.top]
        print(f"{path}: " + ", ".join(f"{names[i]} {row[i]:.3f}" for i in top))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlcore", description="Train and use image classifiers with dlcore.")
    p.add_argument("--version", action="version", version=f"dlcore {dlcore.__version__}")
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a classifier (default: a small CNN on the bundled digits)")
    t.add_argument("--data", default="digits", help="digits (bundled), mnist, cifar10, or PATH.npz")
    t.add_argument("--data-dir", default=None, help="folder with the MNIST/CIFAR-10 files")
    t.add_argument("--download", action="store_true", help="download MNIST/CIFAR-10 into --data-dir")
    t.add_argument("--model", default="cnn", choices=NEURAL + CLASSIC)
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--loss", default="cross-entropy", choices=("cross-entropy", "svm"))
    t.add_argument("--k", type=int, default=1, help="neighbours for --model knn")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N (needs a DLCORE_CUDA=ON build)")
    t.add_argument("--out", default=None, help="folder for metrics.json, history.csv, checkpoints and plots")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    e = sub.add_parser("evaluate", help="accuracy of a trained model on a test set")
    e.add_argument("--checkpoint", required=True, help="a --out folder of `dlcore train` (or its model.safetensors)")
    e.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--download", action="store_true")
    e.add_argument("--out", default=None, help="folder for metrics.json and confusion.png")
    r = sub.add_parser("predict", help="top classes of images (PNG/JPEG with Pillow, or .npy)")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--top", type=int, default=3)
    r.add_argument("files", nargs="+")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + argv  # `dlcore` alone, or `dlcore --epochs 3`, means `dlcore train ...`
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "threads", "k", "top"):
        v = getattr(args, name, None)
        if v is not None and v < (0 if name == "epochs" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {v}")
    for name in ("lr", "momentum", "weight_decay"):
        v = getattr(args, name, None)
        if v is not None and (v < 0 or (name == "lr" and v == 0)):
            parser.error(f"--{name.replace('_', '-')} must be {'positive' if name == 'lr' else 'non-negative'}, "
                         f"got {v}")
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}[args.command](args)
    except UsageError as e:
        parser.error(str(e))
    except (FileNotFoundError, DatasetError, CheckpointError, ValueError, TypeError, IndexError) as e:
        print(f"dlcore: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dlcore: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
