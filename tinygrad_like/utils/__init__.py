"""`tinygrad_like.utils.data`: PyTorch's path to the data package."""

from tinygrad_like.utils import data  # noqa: F401
