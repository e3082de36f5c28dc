"""Fused optimizer steps: one call updates every parameter of a parameter group in place.

These are the NumPy references of the `sgd_step` and `adam_step` kernel-table entries (the
native extension and the CUDA multi-tensor kernels have the same signatures and are tested
against these). The math is PyTorch's `_single_tensor_sgd` / `_single_tensor_adam`, as
documented in optim/sgd.py and optim/adam.py. They use only array methods and NumPy ufuncs,
which CuPy arrays also accept, so they serve any array module.

`params`, `momentum_buffers`, `exp_avgs`, ... are lists of arrays updated in place; `grads`
are only read (they may be read-only or broadcast views).
"""

from __future__ import annotations

import math

import numpy as np


def _effective_gradient(param, grad, weight_decay: float, maximize: bool, coupled: bool):
    """The gradient the rule sees: negated to maximize, plus the L2 term of coupled decay."""
    if maximize:
        grad = -grad
    if weight_decay != 0 and coupled:
        grad = grad + weight_decay * param
    return grad


def sgd_step(params, grads, momentum_buffers, lr: float, momentum: float, dampening: float,
             nesterov: bool, weight_decay: float, maximize: bool, first_step: bool) -> None:
    """p -= lr * g with heavy-ball or Nesterov momentum (`momentum_buffers` unused at 0).

    On the first step (`first_step`) each buffer is set to the undamped gradient.
    """
    for index, (param, grad) in enumerate(zip(params, grads)):
        grad = _effective_gradient(param, grad, weight_decay, maximize, coupled=True)
        if momentum != 0:
            buffer = momentum_buffers[index]
            if first_step:
                buffer[...] = grad
            else:
                buffer *= momentum
                buffer += (1 - dampening) * grad
            grad = grad + momentum * buffer if nesterov else buffer
        param -= lr * grad


def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step: float, lr: float,
              beta1: float, beta2: float, eps: float, weight_decay: float,
              decoupled_weight_decay: bool, amsgrad: bool, maximize: bool) -> None:
    """Adam/AdamW at step `step` (counted from 1); `max_exp_avg_sqs` is used with amsgrad."""
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    for index, (param, grad) in enumerate(zip(params, grads)):
        grad = _effective_gradient(param, grad, weight_decay, maximize,
                                   coupled=not decoupled_weight_decay)
        if decoupled_weight_decay and weight_decay != 0:
            param *= 1 - lr * weight_decay
        exp_avg, exp_avg_sq = exp_avgs[index], exp_avg_sqs[index]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # a lerp, as PyTorch computes it
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        second_moment = exp_avg_sq
        if amsgrad:
            second_moment = max_exp_avg_sqs[index]
            np.maximum(second_moment, exp_avg_sq, out=second_moment)
        denominator = np.sqrt(second_moment) / bias_correction2_sqrt + eps
        param -= step_size * exp_avg / denominator
