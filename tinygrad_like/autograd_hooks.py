"""Post-accumulate-grad hooks: `Tensor.register_post_accumulate_grad_hook`, and when a
backward pass runs them (once a leaf's `.grad` is final for that pass).
"""

from __future__ import annotations

import itertools
import weakref


# id(leaf tensor) -> the hooks `Tensor.register_post_accumulate_grad_hook` gave it. Kept here,
# not in a Tensor slot, so that a backward with no hooks anywhere pays one dict check.
post_accumulate_grad_hooks: dict[int, dict] = {}


class RemovableHandle:
    """What registering a hook returns: `remove()` unregisters it."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        self.hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


def register_post_accumulate_grad_hook(tensor, hook) -> RemovableHandle:
    """Call `hook(tensor)` once per backward, after the last contribution to the leaf
    `tensor`'s `.grad` of that backward has been accumulated (see `post_accumulate_due`)."""
    key = id(tensor)
    if key not in post_accumulate_grad_hooks:
        post_accumulate_grad_hooks[key] = {}
        weakref.finalize(tensor, post_accumulate_grad_hooks.pop, key, None)
    handle = RemovableHandle(post_accumulate_grad_hooks[key])
    handle.hooks[handle.id] = hook
    return handle


def post_accumulate_due(outputs, order: list) -> dict:
    """Which hooked leaves are complete before each node of `order` runs (None: at the end).

    A leaf used by several nodes (a weight reused by every step of an RNN) gets one
    accumulation per use; its gradient is final once the last node in `order` that has it
    as an input has run, so its hooks run just before the node after that one."""
    last_use = {}  # id(leaf) -> (leaf, position in `order` of its last consumer)
    for out in outputs:
        if out._ctx is None and id(out) in post_accumulate_grad_hooks:
            last_use[id(out)] = (out, -1)
    for position, node in enumerate(order):
        for edge in node.edges:
            # Only leaves can match: the keys are ids of live tensors (each is dropped when its
            # tensor is collected), so no live node's id is among them.
            if edge is not None and id(edge) in post_accumulate_grad_hooks:
                last_use[id(edge)] = (edge, position)
    due: dict = {}
    for leaf, position in last_use.values():
        key = order[position + 1] if position + 1 < len(order) else None
        due.setdefault(key, []).append(leaf)
    return due


def run_post_accumulate_grad_hooks(leaves: list) -> None:
    for leaf in leaves:
        if leaf.requires_grad:
            for hook in list(post_accumulate_grad_hooks.get(id(leaf), {}).values()):
                hook(leaf)

