"""Datasets, minibatch loading and batched transforms (``dlcore.data``)."""
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split  # noqa: F401
from .loader import DataLoader  # noqa: F401
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip  # noqa: F401
