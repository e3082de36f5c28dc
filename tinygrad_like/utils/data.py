"""`tinygrad_like.utils.data` is `tinygrad_like.data` (PyTorch's `torch.utils.data`)."""

from tinygrad_like.data import *  # noqa: F401,F403
from tinygrad_like.data import __all__  # noqa: F401
