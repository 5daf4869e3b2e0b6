"""Train a small CNN on the bundled 8x8 digits: the whole training loop in ~20 lines."""
import dlcore
from dlcore import nn
from dlcore.data import DataLoader, TensorDataset
from dlcore.datasets import load_digits

dlcore.manual_seed(0)
x_train, y_train = load_digits(train=True)
x_test, y_test = load_digits(train=False)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 2 * 2, 10))
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
optimizer = dlcore.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(15):
    for images, labels in loader:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with dlcore.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {acc:.4f}")
