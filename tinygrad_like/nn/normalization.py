"""GroupNorm and RMSNorm layers (F.group_norm, F.rms_norm), with PyTorch's parameters."""

from __future__ import annotations

from tinygrad_like import creation
from tinygrad_like.nn import functional as F
from tinygrad_like.nn.module import Module, Parameter
from tinygrad_like.tensor import Tensor


class GroupNorm(Module):
    """Normalise each of num_groups channel groups per sample; weight and bias per channel."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device="cpu", dtype=None, *, bias: bool = True):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups}), a positive number")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        self.register_parameter("weight", Parameter(creation.ones(
            num_channels, device=device, dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(creation.zeros(
            num_channels, device=device, dtype=dtype)) if affine and bias else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) over the trailing normalized_shape, times a weight;
    eps=None is the machine epsilon of the precision it runs in (float32 for half types)."""

    def __init__(self, normalized_shape, eps: float | None = None,
                 elementwise_affine: bool = True, device="cpu", dtype=None):
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.register_parameter("weight", Parameter(creation.ones(
            self.normalized_shape, device=device, dtype=dtype)) if elementwise_affine else None)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


__all__ = ["GroupNorm", "RMSNorm"]
