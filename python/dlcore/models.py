"""Ready-made image classifiers: MLP, LeNet5, a small CNN and a VGG-style ConvNet."""
from __future__ import annotations

from typing import Sequence, Union

from . import nn

__all__ = ["MLP", "LeNet5", "SmallCNN", "ConvNet", "build_model", "MODEL_NAMES"]


class MLP(nn.Module):
    """Fully connected net: flatten -> [Linear -> ReLU] per hidden size -> Linear(classes)."""

    def __init__(self, in_features: int, hidden: Union[int, Sequence[int]] = 100, classes: int = 10) -> None:
        super().__init__()
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers = [nn.Flatten()]
        prev = in_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5 (conv 5x5 -> pool -> conv 5x5 -> pool -> 120 -> 84 -> classes), ReLU and max pooling.

    The first convolution pads by 2, so 28x28 MNIST digits work as the original 32x32 input;
    images must be at least 16x16.
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        s = (image_size // 2 - 4) // 2
        if s < 1:
            raise ValueError(f"LeNet5 needs images of at least 16x16, got {image_size}x{image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * s * s, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """A small CNN for small images (the default for the 8x8 digits):
    conv3x3(32) -> ReLU -> conv3x3(32) -> ReLU -> pool -> conv3x3(64) -> ReLU -> pool -> dropout -> linear."""

    def __init__(self, in_channels: int = 1, classes: int = 10, image_size: int = 8) -> None:
        super().__init__()
        if image_size < 4:
            raise ValueError(f"SmallCNN needs images of at least 4x4, got {image_size}x{image_size}")
        s = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * s * s, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class ConvNet(nn.Module):
    """A small VGG-style network for 32x32 colour images (CIFAR-10):
    [conv-BN-ReLU x2, pool] with 32, 64, 128 channels, then global average pooling and a linear layer."""

    def __init__(self, in_channels: int = 3, classes: int = 10, width: int = 32) -> None:
        super().__init__()
        layers, c = [], in_channels
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


MODEL_NAMES = ("cnn", "mlp", "lenet", "convnet")


def build_model(name: str, in_channels: int, image_size: int, classes: int) -> nn.Module:
    """A model by its CLI name for images (in_channels, image_size, image_size)."""
    if name == "mlp":
        return MLP(in_channels * image_size * image_size, [256, 128], classes)
    if name == "lenet":
        return LeNet5(in_channels, classes, image_size)
    if name == "cnn":
        return SmallCNN(in_channels, classes, image_size)
    if name == "convnet":
        return ConvNet(in_channels, classes)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
