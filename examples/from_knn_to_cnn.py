"""The lecture's progression in one run: nearest neighbour, linear SVM, softmax,
a two-layer net and a CNN, trained on the same data, one accuracy table.

    python examples/from_knn_to_cnn.py            # bundled 8x8 digits
"""
import time

import dlcore
from dlcore import nn
from dlcore.classic import LinearClassifier, NearestNeighbor
from dlcore.data import DataLoader, Normalize, TensorDataset
from dlcore.datasets import load_digits
from dlcore.models import MLP, SmallCNN
from dlcore.train import evaluate, fit

dlcore.manual_seed(0)
x_train, y_train = load_digits(train=True)
x_test, y_test = load_digits(train=False)
rows = []


def timed(name, fn):
    t0 = time.perf_counter()
    acc = fn()
    rows.append((name, acc, time.perf_counter() - t0))


timed("nearest neighbour (k=1, L2)", lambda: NearestNeighbor(1, "l2").fit(x_train, y_train).score(x_test, y_test))
timed("nearest neighbour (k=1, L1)", lambda: NearestNeighbor(1, "l1").fit(x_train, y_train).score(x_test, y_test))
timed("linear SVM (hinge + L2)", lambda: LinearClassifier("svm", epochs=50).fit(x_train, y_train).score(x_test, y_test))
timed("softmax (cross-entropy + L2)",
      lambda: LinearClassifier("softmax", epochs=50).fit(x_train, y_train).score(x_test, y_test))

norm = Normalize(*[[float(x_train.mean())], [float(x_train.numpy().std())]])
xtr, xte = norm(x_train), norm(x_test)


def train_net(model, epochs):
    loader = DataLoader(TensorDataset(xtr, y_train), batch_size=64, shuffle=True, seed=0)
    opt = dlcore.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    fit(model, loader, nn.CrossEntropyLoss(), opt, epochs, verbose=False)
    return evaluate(model, DataLoader(TensorDataset(xte, y_test), batch_size=256))["accuracy"]


timed("two-layer net (64-100-10, ReLU)", lambda: train_net(MLP(64, 100, 10), 30))
timed("CNN (3 conv layers)", lambda: train_net(SmallCNN(1, 10, 8), 15))

print(f"digits: {x_train.shape[0]} train / {x_test.shape[0]} test images, {dlcore.get_num_threads()} threads\n")
print("| classifier | test accuracy | time (s) |")
print("|---|---|---|")
for name, acc, sec in rows:
    print(f"| {name} | {acc:.4f} | {sec:.1f} |")
