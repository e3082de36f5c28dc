"""Loss functions (F.mse_loss, F.cross_entropy, ...) and their Module forms (nn.MSELoss, ...).

Each follows PyTorch's definition, including how `weight`, `ignore_index` and
`label_smoothing` enter the "mean" reduction, and is built from checked ops.
"""

from __future__ import annotations

from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.dtypes import bool_
from tinygrad_like.nn.module import Module
from tinygrad_like.ops.checks import broadcasts_to, check_optional_tensor, check_tensor
from tinygrad_like.ops.selection import where
from tinygrad_like.ops.unary import softplus
from tinygrad_like.ops.softmax import cross_entropy_rows, log_softmax
from tinygrad_like.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _reduce(op: str, loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_operands(op: str, input: Tensor, target: Tensor) -> None:
    check_tensor(op, "input", input)
    check_tensor(op, "target", target)


def _check_weight(op: str, name: str, weight: Tensor | None, input: Tensor) -> None:
    """An elementwise weight must broadcast to the input's shape."""
    if check_optional_tensor(op, name, weight) is not None \
            and not broadcasts_to(weight.shape, input.shape):
        raise ValueError(f"{op}: {name} of shape {weight.shape} does not broadcast to the "
                         f"input's shape {input.shape}")


def _check_same_shape(op: str, input: Tensor, target: Tensor) -> None:
    """Elementwise losses: floating input and target of one shape."""
    _check_operands(op, input, target)
    if not (input.dtype.is_floating_point and target.dtype.is_floating_point):
        raise TypeError(f"{op}: expected floating-point input and target, got "
                        f"{input.dtype.name} and {target.dtype.name}")
    if input.shape != target.shape:
        raise ValueError(f"{op}: target of shape {target.shape} must have the input's shape "
                         f"{input.shape}")


@autocast_op("mse_loss")
def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce("mse_loss", diff * diff, reduction)


@autocast_op("l1_loss")
def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_same_shape("l1_loss", input, target)
    return _reduce("l1_loss", (input - target).abs(), reduction)


def _classes_last(input: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N, d1, ..., C), so the class dimension is last."""
    return input if input.ndim <= 2 else input.permute(0, *range(2, input.ndim), 1)


def _check_class_target(op: str, input: Tensor, target: Tensor) -> None:
    if target.dtype.category != 1:
        raise TypeError(f"{op}: expected class indices (an integer tensor) as target, got "
                        f"{target.dtype.name}")
    expected = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
    if target.shape != expected:
        raise ValueError(f"{op}: input of shape {input.shape} needs a target of shape {expected}, "
                         f"got {target.shape}")
    classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    values = target._array
    bad = values[(values < 0) | (values >= classes)]
    if bad.size:
        raise IndexError(f"{op}: target {int(bad.reshape(-1)[0])} is out of bounds for "
                         f"{classes} classes")


@autocast_op("nll_loss")
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """-weight[y] * input[y] per sample; "mean" divides by the summed weights of kept samples."""
    _check_class_input("nll_loss", input, target, weight)
    keep = target != ignore_index
    safe_target = where(keep, target, 0)
    _check_class_target("nll_loss", input, safe_target)
    log_probs = _classes_last(input)
    picked = log_probs.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
    sample_weight = keep.to(input.dtype)
    if weight is not None:
        sample_weight = sample_weight * weight[safe_target]
    losses = -picked * sample_weight
    if reduction == "mean":
        return losses.sum() / sample_weight.sum()
    return _reduce("nll_loss", losses, reduction)


@autocast_op("cross_entropy")
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """log_softmax + nll_loss over class dim 1; target is class indices or class probabilities."""
    _check_class_input("cross_entropy", input, target, weight)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = 1 if input.ndim >= 2 else 0
    if weight is None and not target.dtype.is_floating_point:
        return _fused_cross_entropy(input, target, ignore_index, reduction, label_smoothing)
    log_probs = log_softmax(input, class_dim)
    classes = input.shape[class_dim]
    if target.dtype.is_floating_point:
        return _cross_entropy_probabilities(log_probs, target, weight, reduction,
                                            label_smoothing, class_dim)
    loss = nll_loss(log_probs, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return loss
    # the smoothing term: the mean over classes of -log p (weighted), on kept samples only
    keep = target != ignore_index
    per_class = _classes_last(log_probs)
    if weight is not None:
        per_class = per_class * weight
    smooth = where(keep, -per_class.sum(-1), 0.0)
    if reduction == "mean":
        kept_weight = keep.to(input.dtype)
        if weight is not None:
            kept_weight = kept_weight * weight[where(keep, target, 0)]
        smooth = smooth.sum() / kept_weight.sum()
    else:
        smooth = _reduce("cross_entropy", smooth, reduction)
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / classes)


def _check_class_input(op: str, input: Tensor, target: Tensor, weight: Tensor | None) -> None:
    """Logits or log-probabilities (C,) or (N, C, ...) with at least one class."""
    _check_operands(op, input, target)
    if input.ndim < 1 or input.shape[1 if input.ndim >= 2 else 0] == 0:
        raise ValueError(f"{op}: expected input of shape (C,) or (N, C, ...) with C > 0 "
                         f"classes, got {input.shape} (target of shape {target.shape})")
    if target.dtype is bool_:
        raise TypeError(f"{op}: expected class indices (an integer tensor) or class "
                        "probabilities (a floating tensor) as target, got bool")
    classes = input.shape[1 if input.ndim >= 2 else 0]
    if check_optional_tensor(op, "weight", weight) is not None and weight.shape != (classes,):
        raise ValueError(f"{op}: weight of shape {weight.shape} must have shape ({classes},), "
                         f"one weight per class of the input of shape {input.shape}")


def _fused_cross_entropy(input, target, ignore_index, reduction, label_smoothing):
    """Class-index targets without class weights: the fused per-row kernel, then the reduction."""
    _check_class_target("cross_entropy", input, where(target != ignore_index, target, 0))
    classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    rows = _classes_last(input).reshape(-1, classes)
    losses = cross_entropy_rows(rows, target.reshape(-1), ignore_index, label_smoothing)
    if reduction == "mean":
        return losses.sum() / (target != ignore_index).sum().to(input.dtype)
    return _reduce("cross_entropy", losses.reshape(target.shape), reduction)


def _cross_entropy_probabilities(log_probs, target, weight, reduction, label_smoothing, class_dim):
    if target.shape != log_probs.shape:
        raise ValueError(f"cross_entropy: probability targets must have the input's shape "
                         f"{log_probs.shape}, got {target.shape}")
    classes = log_probs.shape[class_dim]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    terms = _classes_last(log_probs) * _classes_last(target)
    if weight is not None:
        terms = terms * weight
    losses = -terms.sum(-1)
    if reduction == "mean":
        return losses.sum() / (losses.numel() if log_probs.ndim > 1 else 1)
    return _reduce("cross_entropy", losses, reduction)


@autocast_op("binary_cross_entropy")
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does."""
    _check_same_shape("binary_cross_entropy", input, target)
    _check_weight("binary_cross_entropy", "weight", weight, input)
    data = input.detach()._array
    if input.numel() and (float(data.min()) < 0 or float(data.max()) > 1):
        raise ValueError("binary_cross_entropy: all input values must be probabilities in [0, 1]; "
                         "use binary_cross_entropy_with_logits for raw scores")
    log_p, log_not_p = input.log().clamp(min=-100), (1 - input).log().clamp(min=-100)
    losses = -(target * log_p + (1 - target) * log_not_p)
    if weight is not None:
        losses = losses * weight
    return _reduce("binary_cross_entropy", losses, reduction)


@autocast_op("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """BCE on sigmoid(x), computed stably as (1 - y) x + (1 + (pw - 1) y) softplus(-x)."""
    op = "binary_cross_entropy_with_logits"
    _check_same_shape(op, input, target)
    _check_weight(op, "weight", weight, input)
    _check_weight(op, "pos_weight", pos_weight, input)
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    losses = (1 - target) * input + log_weight * softplus(-input)
    if weight is not None:
        losses = losses * weight
    return _reduce("binary_cross_entropy_with_logits", losses, reduction)


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, "
                             f"got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class MSELoss(_Loss):
    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return l1_loss(input, target, self.reduction)


class NLLLoss(_Loss):
    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_Loss):
    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                             self.label_smoothing)


class BCELoss(_Loss):
    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = weight

    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                self.pos_weight)
