"""Spatial layers beyond Conv2d: Conv1d, ConvTranspose2d, Unfold, Fold and Upsample.

Parameter names, shapes and default initialisation follow PyTorch (a transposed
convolution's weight is (in_channels, out_channels / groups, kh, kw)), so a state dict
copied from a PyTorch model loads and gives the same outputs.
"""

from __future__ import annotations

from tinygrad_like import creation
from tinygrad_like.nn import functional as F
from tinygrad_like.nn import init
from tinygrad_like.nn.module import Module, Parameter
from tinygrad_like.tensor import Tensor


def _weight_and_bias(module: Module, weight_shape: tuple, channels: int, bias: bool, device,
                     dtype) -> None:
    """Register `weight` and `bias` (or None) with PyTorch's convolution initialisation."""
    module.weight = Parameter(creation.empty(*weight_shape, device=device, dtype=dtype))
    module.register_parameter("bias", Parameter(creation.empty(channels, device=device,
                                                               dtype=dtype)) if bias else None)
    init.default_linear_init_(module.weight, module.bias)


def _check_channels(name: str, in_channels: int, out_channels: int, groups: int) -> None:
    if not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                         f"({out_channels}) must be divisible by groups ({groups})")


def _single(name: str, value) -> tuple:
    """PyTorch stores a 1-D layer's sizes as 1-tuples: 3 -> (3,)."""
    return (F._single("Conv1d", name, value),)


class Conv1d(Module):
    """1-D convolution over (N, C, L) or (C, L) inputs (F.conv1d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device="cpu", dtype=None):
        super().__init__()
        _check_channels("Conv1d", in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv1d: padding_mode={padding_mode!r} is not "
                                      "implemented in tinygrad_like; only 'zeros' is")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _single("kernel_size", kernel_size), _single("stride", stride)
        self.dilation, self.padding_mode = _single("dilation", dilation), padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv1d: padding must be 'valid', 'same' or an int, got "
                                 f"{padding!r}")
            if padding == "same" and self.stride != (1,):
                raise ValueError("Conv1d: padding='same' is not supported for strided "
                                 "convolutions")
            self.padding = padding
        else:
            self.padding = _single("padding", padding)
        _weight_and_bias(self, (out_channels, in_channels // groups, *self.kernel_size),
                         out_channels, bias, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}"
                + (f", padding={self.padding}" if self.padding != (0,) else "")
                + (f", dilation={self.dilation}" if self.dilation != (1,) else "")
                + (f", groups={self.groups}" if self.groups != 1 else "")
                + ("" if self.bias is not None else ", bias=False"))


class ConvTranspose2d(Module):
    """2-D transposed convolution (F.conv_transpose2d); forward(x, output_size=None) picks
    the output padding that gives `output_size`, as PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device="cpu", dtype=None):
        super().__init__()
        name = "ConvTranspose2d"
        _check_channels(name, in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only 'zeros' padding mode is supported, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = F._pair(name, "kernel_size", kernel_size)
        self.stride, self.padding = F._pair(name, "stride", stride), F._pair(name, "padding",
                                                                             padding)
        self.output_padding = F._pair(name, "output_padding", output_padding)
        self.dilation, self.padding_mode = F._pair(name, "dilation", dilation), padding_mode
        _weight_and_bias(self, (in_channels, out_channels // groups, *self.kernel_size),
                         out_channels, bias, device, dtype)

    def _output_padding(self, x: Tensor, output_size) -> tuple:
        if output_size is None:
            return self.output_padding
        size = tuple(int(v) for v in output_size)[-2:]
        if len(size) != 2 or x.ndim not in (3, 4):
            raise ValueError(f"ConvTranspose2d: output_size must end with (H, W) for an input "
                             f"of shape {x.shape}, got {tuple(output_size)}")
        smallest = tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in zip(
            x.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size))
        largest = tuple(low + s - 1 for low, s in zip(smallest, self.stride))
        if any(not low <= n <= high for n, low, high in zip(size, smallest, largest)):
            raise ValueError(f"ConvTranspose2d: requested an output size of {size}, but valid "
                             f"sizes range from {smallest} to {largest} (for an input of shape "
                             f"{x.shape})")
        return tuple(n - low for n, low in zip(size, smallest))

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(x, output_size), self.groups,
                                  self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}"
                + (f", padding={self.padding}" if self.padding != (0, 0) else "")
                + (f", output_padding={self.output_padding}"
                   if self.output_padding != (0, 0) else "")
                + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")
                + (f", groups={self.groups}" if self.groups != 1 else "")
                + ("" if self.bias is not None else ", bias=False"))


class Unfold(Module):
    """Sliding blocks as columns (F.unfold): (N, C, H, W) -> (N, C*kh*kw, L)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = (kernel_size, dilation,
                                                                      padding, stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Module):
    """Columns summed back into blocks (F.fold): (N, C*kh*kw, L) -> (N, C, H, W)."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")


class Upsample(Module):
    """F.interpolate as a layer, with PyTorch's attributes (scale_factor kept as floats)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(v) for v in scale_factor)
        else:
            self.scale_factor = None if scale_factor is None else float(scale_factor)
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        shape = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                 else f"size={self.size!r}")
        return f"{shape}, mode={self.mode!r}"


__all__ = ["Conv1d", "ConvTranspose2d", "Unfold", "Fold", "Upsample"]
