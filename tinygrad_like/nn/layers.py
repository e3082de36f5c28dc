"""Feed-forward layers: Linear, Conv2d, pooling, activations, Dropout, Embedding, norms.

Parameter names, shapes and default initialisation follow PyTorch, so a
state dict copied from a PyTorch model loads and gives the same outputs.
"""

from __future__ import annotations

from tinygrad_like import creation
from tinygrad_like.grad_mode import no_grad
from tinygrad_like.nn import functional as F
from tinygrad_like.nn import init
from tinygrad_like.nn.module import Module, Parameter
from tinygrad_like.tensor import Tensor


def _param(*shape, device="cpu", dtype=None) -> Parameter:
    return Parameter(creation.empty(*shape, device=device, dtype=dtype))


class Identity(Module):
    """Returns its input; takes (and ignores) any constructor arguments, as PyTorch's, so it
    can stand in for a layer that had some."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device="cpu",
                 dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _param(out_features, in_features, device=device, dtype=dtype)
        self.register_parameter("bias", _param(out_features, device=device, dtype=dtype)
                                if bias else None)
        init.default_linear_init_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, device="cpu", dtype=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = F._pair("Conv2d", "kernel_size", kernel_size)
        self.stride = F._pair("Conv2d", "stride", stride)
        self.dilation = F._pair("Conv2d", "dilation", dilation)
        self.padding = padding if isinstance(padding, str) else F._pair("Conv2d", "padding",
                                                                        padding)
        self.groups = groups
        self.weight = _param(out_channels, in_channels // groups, *self.kernel_size,
                             device=device, dtype=dtype)
        self.register_parameter("bias", _param(out_channels, device=device, dtype=dtype)
                                if bias else None)
        init.default_linear_init_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}"
                + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")
                + (f", groups={self.groups}" if self.groups != 1 else "")
                + ("" if self.bias is not None else ", bias=False"))


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.count_include_pad = padding, count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


def _activation(name: str, fn, doc: str):
    def forward(self, x):
        return fn(x)

    return type(name, (Module,), {"forward": forward, "__doc__": doc})


class _InplaceActivation(Module):
    """An activation with PyTorch's `inplace` flag, passed to its F function (see
    F._into for what it does while autograd tracks the input)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_InplaceActivation):
    """max(x, 0)"""

    def forward(self, x):
        return F.relu(x, self.inplace)


class SiLU(_InplaceActivation):
    """x * sigmoid(x)"""

    def forward(self, x):
        return F.silu(x, self.inplace)


Sigmoid = _activation("Sigmoid", F.sigmoid, "1 / (1 + exp(-x))")
Tanh = _activation("Tanh", F.tanh, "tanh(x)")


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class LeakyReLU(Module):
    """x for x > 0, else negative_slope * x; `inplace` as in `_InplaceActivation`."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace
                                                          else "")


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class Dropout(Module):
    """Inverted dropout in training mode; `inplace` as in `_InplaceActivation`."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Tensor | None = None, _freeze: bool = False, device="cpu", dtype=None):
        super().__init__()
        _check_embedding_options(max_norm, scale_grad_by_freq, sparse)
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                             f"num_embeddings ({num_embeddings})")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is not None:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {tuple(_weight.shape)} does not "
                                 f"match (num_embeddings, embedding_dim) = "
                                 f"{(num_embeddings, embedding_dim)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)
            return
        self.weight = _param(num_embeddings, embedding_dim, device=device, dtype=dtype)
        self.weight.requires_grad_(not _freeze)
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is `embeddings` (2-D, shared, not copied), trained
        further only if freeze=False. The padding row keeps its given values."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, indices):
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


def _check_embedding_options(max_norm, scale_grad_by_freq: bool, sparse: bool) -> None:
    unsupported = [name for name, given in (("max_norm", max_norm is not None),
                                            ("scale_grad_by_freq", scale_grad_by_freq),
                                            ("sparse", sparse)) if given]
    if unsupported:
        raise NotImplementedError(f"Embedding: {', '.join(unsupported)} is not implemented "
                                  "(rows are looked up as given and gradients are dense)")


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device="cpu", dtype=None):
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                 else tuple(normalized_shape))
        self.normalized_shape, self.eps = shape, eps
        affine = elementwise_affine
        ones = creation.ones(shape, device=device, dtype=dtype)
        zeros = creation.zeros(shape, device=device, dtype=dtype)
        self.register_parameter("weight", Parameter(ones) if affine else None)
        self.register_parameter("bias", Parameter(zeros) if affine and bias else None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class _BatchNorm(Module):
    expected_ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device="cpu", dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", Parameter(creation.ones(num_features, device=device,
                                                                  dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(creation.zeros(num_features, device=device,
                                                                 dtype=dtype)) if affine else None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, device=device,
                                                                dtype=dtype))
            self.register_buffer("running_var", creation.ones(num_features, device=device,
                                                              dtype=dtype))
            self.register_buffer("num_batches_tracked", creation.zeros((), device=device,
                                                                       dtype="int64"))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x):
        if x.ndim not in self.expected_ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected input of {self.expected_ndims} "
                             f"dimensions with {self.num_features} channels in dim 1, got shape "
                             f"{x.shape}")
        use_batch_stats = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean if self.track_running_stats else None,
                            self.running_var if self.track_running_stats else None,
                            self.weight, self.bias, use_batch_stats, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    expected_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    expected_ndims = (4,)


__all__ = ["Identity", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "Sigmoid",
           "Tanh", "SiLU", "GELU", "LeakyReLU", "Softmax", "LogSoftmax", "Dropout", "Embedding",
           "LayerNorm", "BatchNorm1d", "BatchNorm2d"]
