"""Neural-network building blocks: ``dlcore.nn.functional`` (ops) and, with the Python-API
issue, modules and layers."""
from . import functional  # noqa: F401
