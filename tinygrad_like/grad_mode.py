"""Grad modes: whether this thread records graphs (no_grad, enable_grad, set_grad_enabled,
inference_mode), as torch.autograd.grad_mode.

The state is thread-local and read by `Function.apply` on every op, as the module global
`thread_state` (one lookup, no call).
"""

from __future__ import annotations

import contextlib
import threading
import weakref


class _ThreadState(threading.local):
    """What each thread computes under, as in PyTorch: one thread's `no_grad()` (or the
    no_grad a backward pass runs under) must not stop another thread's forward from recording
    its graph. Class attributes are every thread's starting values."""

    grad_enabled = True
    inference_mode = False


thread_state = _ThreadState()


def is_grad_enabled() -> bool:
    return thread_state.grad_enabled


def is_inference_mode_enabled() -> bool:
    return thread_state.inference_mode


# Tensors made under inference_mode, as PyTorch's inference tensors: outside the mode they
# may not be written in place or saved for a backward. Kept by id in a weak map rather than
# as a flag on every tensor, so ops pay nothing unless inference mode has been used (and
# not a WeakSet, whose lookups compare tensors with their elementwise ==).
inference_tensors: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
any_inference_tensors = inference_tensors.data  # its plain dict: a truth test costs no call


def mark_inference(result) -> None:
    for t in result if isinstance(result, (tuple, list)) else (result,):
        if hasattr(t, "_array"):
            inference_tensors[id(t)] = t


def is_inference_tensor(t) -> bool:
    return inference_tensors.get(id(t)) is t


class _ModeContext(contextlib.ContextDecorator):
    """A context manager that also decorates, with or without the call: `@tg.no_grad()` and
    `@tg.no_grad`, as PyTorch allows."""

    def __new__(cls, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs and cls is not set_grad_enabled:
            return cls()(args[0])  # used as a bare decorator
        return super().__new__(cls)


class _GradModeContext(_ModeContext):
    """Sets this thread's grad mode for a `with` block or a decorated call, then restores it."""

    mode = True

    def __enter__(self):
        self.prev = thread_state.grad_enabled
        thread_state.grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        thread_state.grad_enabled = self.prev
        return False


class no_grad(_GradModeContext):
    mode = False


class enable_grad(_GradModeContext):
    mode = True


class set_grad_enabled(_GradModeContext):
    """Turns gradient recording on or off; works as a call, a context manager or a decorator."""

    def __init__(self, mode: bool):
        self.prev = thread_state.grad_enabled  # as a plain call it takes effect at once
        self.mode = bool(mode)
        thread_state.grad_enabled = self.mode

    def __enter__(self):  # `prev` is what was on before the call, not what the call set
        thread_state.grad_enabled = self.mode
        return self


class inference_mode(_ModeContext):
    """Grad mode off for computations that will never be differentiated, as
    `torch.inference_mode(mode=True)`; `is_inference_mode_enabled()` says when it is on.

    Tensors made inside are inference tensors (`t.is_inference()`): outside the mode,
    writing one in place or saving one for a backward raises, as in PyTorch (clone it to get
    a normal tensor)."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = (thread_state.grad_enabled, thread_state.inference_mode)
        if self.mode:
            thread_state.grad_enabled, thread_state.inference_mode = False, True
        else:  # PyTorch's inference_mode(False) leaves grad mode as it is
            thread_state.inference_mode = False
        return self

    def __exit__(self, *exc):
        thread_state.grad_enabled, thread_state.inference_mode = self.prev
        return False
