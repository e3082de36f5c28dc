"""Transposed convolution (F.conv_transpose2d) as the adjoint of conv2d, on conv2d's kernels.

conv_transpose2d(x, W) is the linear map whose matrix is the transpose of conv2d(., W)'s, so
each device's conv2d kernels serve it unchanged: its forward is conv2d's input gradient
(`conv2d_backward_input`, x in the place of the output gradient), its input gradient is a
conv2d of the output gradient with W, and its weight gradient is `conv2d_backward_weight` with
the roles of input and output gradient swapped. Grouped calls run the kernels once per group.

Under `create_graph=True` the backward differentiates `conv_transpose2d_fold` instead: a
matmul that turns each input pixel into its kh x kw patch of every output channel, then the
scatter-add `Fold` of ops/conv.py, whose own backward is the window view, so every order of
derivative stays exact.
"""

from __future__ import annotations

from tinygrad_like.amp.autocast import autocast_op
from tinygrad_like.autograd import Function, differentiable_backward
from tinygrad_like.grad_mode import is_grad_enabled
from tinygrad_like.ops.checks import check_int, check_weighted_operands
from tinygrad_like.ops.conv import Fold, _pair
from tinygrad_like.ops.movement import pad
from tinygrad_like.tensor import Tensor


def _split_groups(xp, array, groups: int, axis: int) -> list:
    """`array` cut into `groups` contiguous blocks along `axis` (the kernels take one group)."""
    if groups == 1:
        return [array]
    return [xp.ascontiguousarray(block) for block in xp.split(array, groups, axis)]


def _join_groups(xp, blocks: list, axis: int):
    return blocks[0] if len(blocks) == 1 else xp.concatenate(blocks, axis)


class ConvTranspose2d(Function):
    """x (N, C, H, W) and weight (C, K/groups, KH, KW) (+ bias) -> (N, K, OH, OW).

    The caller guarantees output_padding < stride, so conv2d of the (OH, OW) output with W
    has exactly x's (H, W) positions.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, output_hw, groups):
        ctx.save_for_backward(x, weight, bias)
        ctx.options = stride, padding, dilation, output_hw, groups
        xp, kernels = x.backend.xp, x.backend.kernels
        out_shape = (x.shape[0], weight.shape[1]) + output_hw
        out = _join_groups(xp, [
            kernels.conv2d_backward_input(x_group, weight_group, out_shape, stride, padding,
                                          dilation)
            for x_group, weight_group in zip(_split_groups(xp, x._array, groups, 1),
                                             _split_groups(xp, weight._array, groups, 0))], 1)
        return out if bias is None else out + bias._array.reshape(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        stride, padding, dilation, output_hw, groups = ctx.options
        if is_grad_enabled():
            return differentiable_backward(
                lambda *args: conv_transpose2d_fold(*args, *ctx.options), (x, weight, bias),
                ctx.needs_input_grad[:3], grad)
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        xp, kernels, backend = x.backend.xp, x.backend.kernels, x.backend
        grads = _split_groups(xp, grad._array, groups, 1)
        weights = _split_groups(xp, weight._array, groups, 0)
        dx = dweight = dbias = None
        if need_x:
            dx = Tensor._wrap(_join_groups(xp, [
                kernels.conv2d(g, w, None, stride, padding, dilation)
                for g, w in zip(grads, weights)], 1), backend)
        if need_weight:
            # <grad, conv_transpose(x, W)> = <conv2d(grad, W), x>: conv2d's weight gradient
            # with x as the output gradient and grad as the input
            dweight = Tensor._wrap(_join_groups(xp, [
                kernels.conv2d_backward_weight(x_group, g, w.shape, stride, padding, dilation)
                for x_group, g, w in zip(_split_groups(xp, x._array, groups, 1), grads,
                                         weights)], 0), backend)
        if need_bias:
            dbias = grad.sum((0, 2, 3))
        return dx, dweight, dbias


def conv_transpose2d_fold(x: Tensor, weight: Tensor, bias: Tensor | None, stride, padding,
                          dilation, output_hw, groups: int) -> Tensor:
    """conv_transpose2d from differentiable primitives: a matmul, then Fold's scatter-add.

    Used for empty operands and to differentiate ConvTranspose2d's backward; the same
    contract as ConvTranspose2d (output_padding < stride).
    """
    n, c, h, w = x.shape
    k_per_group, kh, kw = weight.shape[1:]
    c_per_group = c // groups
    pixels = x.reshape(n, groups, c_per_group, h * w).mT  # (N, G, H*W, C/G)
    # every input pixel's contribution: a (K/G, KH, KW) patch per group
    patches = pixels @ weight.reshape(groups, c_per_group, k_per_group * kh * kw)
    windows = (patches.reshape(n, groups, h, w, k_per_group, kh, kw)
               .permute(0, 1, 4, 2, 3, 5, 6).reshape(n, groups * k_per_group, h, w, kh, kw))
    padded = (n, groups * k_per_group, output_hw[0] + 2 * padding[0],
              output_hw[1] + 2 * padding[1])
    out = Fold.apply(windows, padded, stride, dilation)
    out = out[:, :, padding[0]:padding[0] + output_hw[0], padding[1]:padding[1] + output_hw[1]]
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def _check_operands(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> None:
    op = "conv_transpose2d"
    check_weighted_operands(op, x, weight, bias)
    if x.ndim not in (3, 4) or weight.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input and a 4-D "
                         f"weight (C, K/groups, KH, KW), got shapes {x.shape} and {weight.shape}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype.name}")
    c = x.shape[-3]
    if weight.shape[0] != c or c % groups:
        raise ValueError(f"{op}: the weight of shape {weight.shape} with groups={groups} expects "
                         f"an input with {weight.shape[0]} channels (divisible by groups), got "
                         f"input of shape {x.shape}")
    if bias is not None and bias.shape != (weight.shape[1] * groups,):
        raise ValueError(f"{op}: bias of shape {bias.shape} does not match the "
                         f"{weight.shape[1] * groups} output channels of the weight of shape "
                         f"{weight.shape} with groups={groups}")


@autocast_op("conv_transpose2d")
def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """PyTorch's F.conv_transpose2d: x (N, C, H, W) or (C, H, W), weight (C, K/groups, KH, KW).

    The output is (N, K, OH, OW) with OH = (H - 1) * stride - 2 * padding
    + dilation * (KH - 1) + output_padding + 1 (and likewise OW).
    """
    op = "conv_transpose2d"
    groups = check_int(op, "groups", groups, minimum=1)
    _check_operands(x, weight, bias, groups)
    stride, dilation = _pair(op, "stride", stride), _pair(op, "dilation", dilation)
    padding, output_padding = _pair(op, "padding", padding), _pair(op, "output_padding",
                                                                   output_padding)
    if any(v <= 0 for v in stride + dilation) or any(v < 0 for v in padding + output_padding):
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive, "
                         f"padding {padding} and output_padding {output_padding} non-negative")
    if any(extra >= max(s, d) for extra, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either "
                         f"stride {stride} or dilation {dilation}")
    batched = x if x.ndim == 4 else x.unsqueeze(0)
    kernel = weight.shape[2:]
    output_hw = tuple((size - 1) * s - 2 * p + d * (k - 1) + extra + 1 for size, s, p, d, k, extra
                      in zip(batched.shape[2:], stride, padding, dilation, kernel, output_padding))
    if min(output_hw) <= 0:
        raise ValueError(f"{op}: the input of shape {x.shape} with a weight of shape "
                         f"{weight.shape}, stride {stride}, padding {padding} and dilation "
                         f"{dilation} gives output size {output_hw}, which is too small")
    # output_padding >= stride (allowed when dilation is larger) equals trailing zero pixels
    # of the input, after which the output padding left is below the stride
    extra_pixels = [extra // s for extra, s in zip(output_padding, stride)]
    if any(extra_pixels):
        batched = pad(batched, (0, extra_pixels[1], 0, extra_pixels[0]))
    if batched.numel() == 0 or weight.numel() == 0:  # the kernels assume non-empty operands
        out = conv_transpose2d_fold(batched, weight, bias, stride, padding, dilation, output_hw,
                                    groups)
    else:
        out = ConvTranspose2d.apply(batched, weight, bias, stride, padding, dilation, output_hw,
                                    groups)
    return out if x.ndim == 4 else out.squeeze(0)
