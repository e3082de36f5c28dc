"""Reverse-mode automatic differentiation.

`Function` is the one way to make a differentiable op, built-in or custom, in
PyTorch's style: a static `forward(ctx, *args)` and `backward(ctx, *grads)`.
`forward` sees Tensors and may return a Tensor or a raw backend array;
`backward` receives and returns Tensors and is written with Tensor ops, so
running it with grad mode on (`create_graph=True`) records a graph of the
gradient itself and higher-order derivatives come for free.

A graph node (the `ctx`) is only recorded when grad mode is on and some input
requires grad. `backward()` orders the nodes with an iterative depth-first
search (a 10,000-op chain needs no recursion), walks them once in reverse, and
frees each node's saved tensors unless asked to retain the graph.
"""

from __future__ import annotations

import contextlib
import functools

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turns gradient recording on or off; works as a call, a context manager or a decorator."""

    def __init__(self, mode: bool):
        global _grad_enabled
        self.prev = _grad_enabled
        self.mode = bool(mode)
        _grad_enabled = self.mode

    def __enter__(self):
        global _grad_enabled
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


class no_grad(contextlib.ContextDecorator):
    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, True

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


class Context:
    """A graph node: what one Function call saved, and the inputs to send gradients to."""

    __slots__ = ("function", "backend", "needs_input_grad", "edges", "output_shape", "_saved",
                 "_saved_versions", "_freed", "__dict__")

    def __init__(self, function: type, backend, needs_input_grad: tuple):
        self.function = function
        self.backend = backend
        self.needs_input_grad = needs_input_grad
        # One edge per argument, set when the node is recorded: the producing node of an
        # input that needs grad, the input itself if it is a leaf, else None. Holding nodes
        # rather than tensors lets intermediate activations be freed once backward ran.
        self.edges = ()
        self.output_shape = None
        self._saved = ()
        self._saved_versions = ()
        self._freed = False

    def save_for_backward(self, *values) -> None:
        """Keep `values` (Tensors, or plain values such as scalars) for backward."""
        self._saved = values
        self._saved_versions = tuple(v._version[0] if _is_tensor(v) else 0 for v in values)

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(
                f"{self.name}: trying to backward through the graph a second time (or to read "
                "saved tensors after they were freed); pass retain_graph=True to the first "
                "backward() if you need to backward twice")
        for index, (tensor, version) in enumerate(zip(self._saved, self._saved_versions)):
            if _is_tensor(tensor) and tensor._version[0] != version:
                raise RuntimeError(
                    f"{self.name}: one of the tensors needed for gradient computation has been "
                    f"modified by an in-place operation: saved tensor {index} of shape "
                    f"{tensor.shape} is at version {tensor._version[0]}; expected version "
                    f"{version}. Use .clone() before modifying it, or compute it after backward")
        return self._saved

    def free_saved(self) -> None:
        self._saved = ()
        self._freed = True

    @property
    def name(self) -> str:
        return f"{self.function.__name__}Backward"

    @property
    def next_functions(self) -> tuple:
        return tuple(e for e in self.edges if type(e) is Context)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _is_tensor(x) -> bool:
    return getattr(x, "_is_tinygrad_tensor", False)


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    # True for ops whose output may alias the first input's memory (views): the output then
    # shares the input's version counter, so an in-place write through either is seen by both.
    returns_view = False
    # True for ops whose backward is cheapest from their own output (exp, tanh, sigmoid):
    # the output Tensor is appended to what forward saved, so double backward still sees
    # how it depends on the input.
    saves_output = False

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from tinygrad_like.tensor import Tensor

        global _grad_enabled
        needs_input_grad = tuple(_is_tensor(a) and a.requires_grad for a in args)
        record = _grad_enabled and any(needs_input_grad)
        first = next(a for a in args if _is_tensor(a))
        ctx = Context(cls, first.backend, needs_input_grad)
        previous, _grad_enabled = _grad_enabled, False
        try:
            result = cls.forward(ctx, *args, **kwargs)
        finally:
            _grad_enabled = previous
        if not _is_tensor(result):
            if isinstance(result, (tuple, list)):
                raise TypeError(f"{cls.__name__}.forward must return one Tensor or array; "
                                "ops with several outputs are built from single-output Functions")
            result = Tensor._wrap(result, first.backend)
        elif any(result is a for a in args):
            result = result.detach()  # an identity forward must not turn its input into a node
        if cls.returns_view and result.backend.xp.may_share_memory(result.data, first.data):
            result._version = first._version
        if record and result.dtype.is_floating_point:
            result._requires_grad = True
            result._ctx = ctx
            ctx.output_shape = result.shape
            ctx.edges = tuple((a._ctx or a) if needs else None
                              for a, needs in zip(args, needs_input_grad))
            if cls.saves_output:
                ctx.save_for_backward(*ctx._saved, result)
        return result


def _topological_order(roots: list[Context]) -> list[Context]:
    """Nodes reachable from `roots`, each after every node that consumes its output."""
    order, visited = [], set()
    for root in roots:
        if id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(root.edges))]
        while stack:
            node, edges = stack[-1]
            for child in edges:
                if type(child) is Context and id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(child.edges)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _check_gradient(node: Context, index: int, edge, grad) -> None:
    if not _is_tensor(grad):
        raise TypeError(f"{node.function.__name__}.backward returned {type(grad).__name__} for "
                        f"input {index}; expected a Tensor or None")
    shape = edge.output_shape if type(edge) is Context else edge.shape
    if grad.shape != shape:
        raise RuntimeError(f"{node.function.__name__}.backward returned a gradient of shape "
                           f"{grad.shape} for input {index} of shape {shape}")


def run_backward(outputs, grad_outputs, retain_graph: bool, create_graph: bool, inputs=None):
    """Propagate `grad_outputs` from `outputs` to the leaves.

    With `inputs=None` gradients accumulate into each leaf's `.grad`; otherwise they
    are returned for `inputs` (leaf or not) and no `.grad` is touched.
    """
    grads: dict[int, object] = {}  # id(node) -> gradient of the node's output
    wanted_grads: dict[int, object] = {}  # id(input) -> gradient, when `inputs` is given
    wanted_leaves = {id(t) for t in inputs if t._ctx is None} if inputs is not None else None
    wanted_nodes = {id(t._ctx): t for t in inputs if t._ctx is not None} if inputs else {}

    def accumulate(edge, grad):
        if type(edge) is Context:
            key = id(edge)
            grads[key] = grad if key not in grads else grads[key] + grad
        elif wanted_leaves is not None:
            if id(edge) in wanted_leaves:
                key = id(edge)
                wanted_grads[key] = grad if key not in wanted_grads else wanted_grads[key] + grad
        elif edge.requires_grad:
            edge.grad = grad if edge.grad is None else edge.grad + grad

    with set_grad_enabled(create_graph):
        for out, grad in zip(outputs, grad_outputs):
            accumulate(out._ctx or out, grad)
        roots = [out._ctx for out in outputs if out._ctx is not None]
        for node in _topological_order(roots):
            grad = grads.pop(id(node), None)
            if id(node) in wanted_nodes:
                wanted_grads[id(wanted_nodes[id(node)])] = grad
            retained = getattr(node, "retained_output", None)
            if retained is not None and grad is not None and inputs is None:
                retained.grad = grad if retained.grad is None else retained.grad + grad
            if grad is None:
                continue
            input_grads = node.function.backward(node, grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if not retain_graph:
                node.free_saved()
            for index, (edge, g) in enumerate(zip(node.edges, input_grads)):
                if edge is not None and g is not None:
                    _check_gradient(node, index, edge, g)
                    accumulate(edge, g)
    if inputs is not None:
        return tuple(wanted_grads.get(id(t)) for t in inputs)
    return None


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, as torch.autograd.grad."""
    from tinygrad_like.tensor import _initial_gradients

    outputs = (outputs,) if _is_tensor(outputs) else tuple(outputs)
    inputs = (inputs,) if _is_tensor(inputs) else tuple(inputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input of shape {t.shape} does not require grad")
    grad_outputs = _initial_gradients(outputs, grad_outputs, "autograd.grad")
    retain_graph = create_graph if retain_graph is None else retain_graph
    result = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs)
    if not allow_unused:
        for index, g in enumerate(result):
            if g is None:
                raise RuntimeError(f"autograd.grad: input {index} (shape {inputs[index].shape}) "
                                   "was not used to compute the outputs; pass allow_unused=True")
    return result


def once_differentiable(backward):
    """Mark a backward as not differentiable again: it runs with grad mode off."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        with no_grad():
            return backward(ctx, *grads)

    return wrapper
