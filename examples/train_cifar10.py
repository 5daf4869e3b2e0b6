"""Train the VGG-style ConvNet on CIFAR-10 with augmentation, checkpoints and resume.

    python examples/train_cifar10.py --data-dir ~/data --download --epochs 30 --out runs/cifar10
"""
import argparse

import dlcore
from dlcore import nn
from dlcore.data import Compose, DataLoader, Normalize, RandomCrop, RandomHorizontalFlip, TensorDataset
from dlcore.datasets import load_cifar10
from dlcore.models import ConvNet
from dlcore.train import evaluate, fit

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default="data")
p.add_argument("--download", action="store_true")
p.add_argument("--epochs", type=int, default=30)
p.add_argument("--batch-size", type=int, default=128)
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--out", default="runs/cifar10")
p.add_argument("--resume", action="store_true")
p.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
p.add_argument("--device", default="cuda" if dlcore.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
a = p.parse_args()

dlcore.manual_seed(0)
x_train, y_train = load_cifar10(a.data_dir, train=True, download=a.download)
x_test, y_test = load_cifar10(a.data_dir, train=False)
if a.limit:
    x_train, y_train = x_train[:a.limit], y_train[:a.limit]
norm = Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
x_train, x_test = norm(x_train), norm(x_test)
augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=a.batch_size, shuffle=True, seed=0,
                          transform=augment)
test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256)
model = ConvNet()
opt = dlcore.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
sched = dlcore.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
fit(model, train_loader, nn.CrossEntropyLoss(), opt, a.epochs, val_loader=test_loader, scheduler=sched,
    checkpoint_dir=a.out, resume=a.resume, device=a.device)
print(f"test accuracy: {evaluate(model, test_loader)['accuracy']:.4f}")
