"""`tg.compile`: accepted so PyTorch programs run, but there is no graph compiler here.

It returns the model (or function) unchanged: the code runs eagerly, op by op, as it
would under `torch.compile(..., disable=True)`. Used as a decorator, with or without
arguments, it does the same.
"""

from __future__ import annotations


def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="inductor",  # noqa: A001
            mode=None, options=None, disable: bool = False):
    """The model unchanged (see the module docstring); `@tg.compile(...)` works too."""
    if model is None:
        return lambda fn: fn
    return model
