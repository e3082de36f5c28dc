"""tg.nn.functional (F): stateless neural-network functions, as torch.nn.functional."""

from tinygrad_like.ops.elementwise import gelu, relu, sigmoid, silu, softplus, tanh  # noqa: F401
from tinygrad_like.ops.movement import pad  # noqa: F401
