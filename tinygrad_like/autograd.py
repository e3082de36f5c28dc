"""Reverse-mode automatic differentiation.

`Function` is the one way to make a differentiable op, built-in or custom, in
PyTorch's style: a static `forward(ctx, *args)` and `backward(ctx, *grads)`.
`forward` sees Tensors and may return a Tensor or a raw backend array;
`backward` receives and returns Tensors and is written with Tensor ops, so
running it with grad mode on (`create_graph=True`) records a graph of the
gradient itself and higher-order derivatives come for free.

A graph node (the `ctx`) is only recorded when grad mode is on and some input
requires grad, and is numbered in the order it was recorded. `backward()`
collects the reachable nodes with an iterative search (a 10,000-op chain needs
no recursion), walks them once, newest first, and frees each node's saved
tensors unless asked to retain the graph.

`apply` and the backward loop run for every op, so they use plain loops and
avoid per-op allocations where that costs no clarity; the comments there say why.

Grad modes live in grad_mode.py (re-exported here, as `torch.autograd.no_grad` is) and
post-accumulate-grad hooks in autograd_hooks.py.
"""

from __future__ import annotations

import functools
import itertools
import operator
import threading

from tinygrad_like.autograd_hooks import (post_accumulate_due, post_accumulate_grad_hooks,
                                          run_post_accumulate_grad_hooks)
from tinygrad_like.dtypes import from_numpy_dtype
from tinygrad_like.grad_mode import (  # noqa: F401  (re-exported: tg.autograd.no_grad, ...)
    any_inference_tensors, enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,
    is_inference_tensor, mark_inference, no_grad, set_grad_enabled, thread_state)


class Context:
    """A graph node: what one Function call saved, and the inputs to send gradients to."""

    __slots__ = ("function", "backend", "needs_input_grad", "edges", "output_shape",
                 "sequence_number", "_saved", "_writes_before", "_freed",
                 "__dict__")
    retained_output = None  # the output Tensor, once `retain_grad()` asks for its `.grad`

    def __init__(self, function: type, backend, needs_input_grad: tuple):
        self.function = function
        self.backend = backend
        self.needs_input_grad = needs_input_grad
        # One edge per argument, set when the node is recorded: the producing node of an
        # input that needs grad, the input itself if it is a leaf, else None. Holding nodes
        # rather than tensors lets intermediate activations be freed once backward ran.
        self.edges = ()
        self.output_shape = None
        self.sequence_number = None  # set when recorded: later nodes get larger numbers
        self._saved = ()
        self._writes_before = None  # `_inplace_writes` when the node was recorded
        self._freed = False

    def save_for_backward(self, *values) -> None:
        """Keep `values` (Tensors, or plain values such as scalars) for backward."""
        self._saved = values  # their versions are taken in `Function.apply`, if it records

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(
                f"{self.name}: trying to backward through the graph a second time (or to read "
                "saved tensors after they were freed); pass retain_graph=True to the first "
                "backward() if you need to backward twice")
        if self._writes_before == _inplace_writes:
            return self._saved  # no tensor anywhere was written in place since recording
        for index, tensor in enumerate(self._saved):
            # a tensor's last write is stamped with the running count of all writes
            if isinstance(tensor, Tensor) and tensor._version[1] > self._writes_before:
                raise RuntimeError(
                    f"{self.name}: one of the tensors needed for gradient computation has been "
                    f"modified by an in-place operation: saved tensor {index} of shape "
                    f"{tensor.shape} was written after it was saved (it is now at version "
                    f"{tensor._version[0]}). Use .clone() before modifying it, or compute it "
                    "after backward")
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


# How many in-place writes tensors have had, all together (see `Tensor._bump_version`). While
# it has not moved since a node was recorded, none of the node's saved tensors can have been
# modified, and reading them back skips checking them. Each write also stamps its tensor with
# this count, so a saved tensor was modified after recording iff its stamp is larger than
# the count the node recorded: no per-tensor version has to be taken at recording time.
_inplace_writes = 0
_inplace_writes_lock = threading.Lock()  # `+=` on a global is not atomic between threads


def count_inplace_write() -> int:
    """Count one in-place write; returns the stamp it gets."""
    global _inplace_writes
    with _inplace_writes_lock:
        _inplace_writes += 1
        return _inplace_writes


_node_numbers = itertools.count()  # Context.sequence_number of each recorded node, in order


# The Tensor class. The engine sees tensors through a few attributes (`data`, `backend`,
# `_requires_grad`, `_ctx`, `_version`, `grad`) and needs the class itself only to tell
# Tensor arguments from options and to wrap raw arrays; tensor.py, which imports this module
# (one direction), hands it over once through `register_tensor_class`. A module global, not
# an import inside `apply`, which would cost a microsecond on every op.
Tensor: type = None


def register_tensor_class(cls: type) -> None:
    """Make `cls` the Tensor class the engine tests for and creates; tensor.py calls this once
    when it is imported, before any op can run."""
    global Tensor
    Tensor = cls


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    # True for ops whose output may alias the first input's memory (views): the output then
    # shares the input's version counter, so an in-place write through either is seen by both.
    returns_view = False
    # True for ops whose backward is cheapest from their own output (exp, tanh, sigmoid):
    # the output Tensor is appended to what forward saved, so double backward still sees
    # how it depends on the input.
    saves_output = False
    # False for ops whose forward computes on raw arrays only (Binary, Unary): apply then
    # need not turn recording off around it. A subclass with a forward of its own is taken to
    # call ops unless it says otherwise.
    calls_ops = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in vars(cls) and "calls_ops" not in vars(cls):
            cls.calls_ops = True

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        state = thread_state  # this thread's modes (a module global: no call)
        first = args[0] if isinstance(args[0], Tensor) else first_tensor(args)  # usual case inline
        if state.grad_enabled:
            # Plain loops rather than comprehensions, here and below: on Python 3.11 each
            # comprehension is a function call of its own, and this runs for every op.
            needs, edges = [], []
            for a in args:
                if isinstance(a, Tensor) and a._requires_grad:
                    needs.append(True)
                    edges.append(a._ctx or a)
                else:
                    needs.append(False)
                    edges.append(None)
            ctx = Context(cls, first.backend, tuple(needs))
            if cls.calls_ops:
                state.grad_enabled = False  # a forward built from other ops must not record them
                try:
                    result = cls.forward(ctx, *args, **kwargs)
                finally:
                    state.grad_enabled = True
            else:
                result = cls.forward(ctx, *args, **kwargs)
        else:  # no_grad, and every op of a backward without create_graph: nothing to record
            needs = None
            result = cls.forward(Context(cls, first.backend, ()), *args, **kwargs)
            if state.inference_mode:
                result = cls._output(result, args, first)
                mark_inference(result)
                return result
        if isinstance(result, Tensor) or cls.returns_view or isinstance(result, (tuple, list)):
            result = cls._output(result, args, first)
        else:  # the usual case, a fresh raw array: what _output does with it, less a call
            result = Tensor._wrap(result, first.backend)
        # NumPy's "f" kind is the usual floating case, cheaper than the DType lookup
        if needs is not None and True in needs and (
                result._array.dtype.kind == "f"
                or from_numpy_dtype(result._array.dtype).is_floating_point):
            result._requires_grad = True
            result._ctx = ctx
            ctx.output_shape = result._array.shape
            ctx.sequence_number = next(_node_numbers)
            ctx.edges = tuple(edges)
            if cls.saves_output:
                ctx._saved += (result,)
            # Taken once forward has returned and only for recorded nodes, as PyTorch takes
            # versions: an op run without a graph never reads its saved values back.
            ctx._writes_before = _inplace_writes
            if any_inference_tensors:
                _refuse_saved_inference_tensors(ctx)
        return result

    @classmethod
    def _output(cls, result, args: tuple, first):
        """What forward returned as the op's output Tensor: a raw array is wrapped, an input
        returned as is gets detached, and a view shares its input's version counter. `apply`
        wraps a plain array of an op that makes no views itself, without this call."""
        if not isinstance(result, Tensor):
            if isinstance(result, (tuple, list)):
                raise TypeError(f"{cls.__name__}.forward must return one Tensor or array; "
                                "ops with several outputs are built from single-output Functions")
            result = Tensor._wrap(result, first.backend)
        elif any(result is a for a in args):
            result = result.detach()  # an identity forward must not turn its input into a node
        if cls.returns_view and result.backend.xp.may_share_memory(result._array, first._array):
            result._version = first._version
        return result


def first_tensor(args: tuple):
    """The first Tensor among `args` (op arguments may be Tensors, scalars or options)."""
    for a in args:
        if isinstance(a, Tensor):
            return a
    raise TypeError("expected at least one Tensor argument")


def _topological_order(roots: list[Context], wanted_nodes=None, wanted_leaves=None) -> list:
    """Nodes reachable from `roots`, each after every node that consumes its output.

    A node is recorded after the nodes that made its inputs, so newest first is such an
    order (PyTorch's engine uses the same sequence numbers). When gradients are wanted
    only for some inputs (`autograd.grad`), nodes that lead to none of them are dropped,
    so the graph upstream of those inputs is never differentiated.
    """
    nodes, stack = set(roots), list(roots)
    while stack:
        for child in stack.pop().edges:
            if type(child) is Context and child not in nodes:
                nodes.add(child)
                stack.append(child)
    order = sorted(nodes, key=operator.attrgetter("sequence_number"), reverse=True)
    if wanted_leaves is None:
        return order
    useful = set(wanted_nodes)
    for node in reversed(order):  # oldest first: a node's inputs are decided before it
        if node not in useful and any(edge in useful if type(edge) is Context else
                                      edge is not None and id(edge) in wanted_leaves
                                      for edge in node.edges):
            useful.add(node)
    return [node for node in order if node in useful]


def _bad_gradient(node: Context, index: int, grad, shape: tuple) -> Exception:
    if not isinstance(grad, Tensor):
        return TypeError(f"{node.function.__name__}.backward returned {type(grad).__name__} "
                         f"for input {index}; expected a Tensor or None")
    return RuntimeError(f"{node.function.__name__}.backward returned a gradient of shape "
                        f"{grad.shape} for input {index} of shape {shape}")


def run_backward(outputs, grad_outputs, retain_graph: bool, create_graph: bool, inputs=None):
    """Propagate `grad_outputs` from `outputs` to the leaves.

    With `inputs=None` gradients accumulate into each leaf's `.grad`; otherwise they
    are returned for `inputs` (leaf or not) and no `.grad` is touched.
    """
    grads: dict[Context, object] = {}  # node -> gradient of the node's output
    wanted_grads: dict[int, object] = {}  # id(input) -> gradient, when `inputs` is given
    wanted_leaves = {id(t) for t in inputs if t._ctx is None} if inputs is not None else None
    wanted_nodes = {t._ctx: t for t in inputs if t._ctx is not None} if inputs else {}

    def accumulate(edge, grad):
        if type(edge) is Context:
            grads[edge] = grad if edge not in grads else grads[edge] + grad
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
        order = _topological_order(roots, wanted_nodes, wanted_leaves)
        due = post_accumulate_due(outputs, order) if post_accumulate_grad_hooks \
            and inputs is None else None
        for node in order:
            if due and node in due:
                run_post_accumulate_grad_hooks(due.pop(node))
            grad = grads.pop(node, None)
            if wanted_nodes and node in wanted_nodes:
                wanted_grads[id(wanted_nodes[node])] = grad
            retained = node.retained_output
            if retained is not None and grad is not None and inputs is None:
                retained.grad = grad if retained.grad is None else retained.grad + grad
            if grad is None:
                continue
            input_grads = node.function.backward(node, grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if not retain_graph:
                node._saved, node._freed = (), True  # free_saved(), less a call per node
            count = len(input_grads)
            for index, edge in enumerate(node.edges):
                # Indexing, not zip(): cheaper per edge. A backward may return fewer gradients
                # than forward had arguments (none for trailing non-Tensor options).
                if edge is None or index >= count:
                    continue
                g = input_grads[index]
                if g is None:
                    continue
                is_node = type(edge) is Context
                shape = edge.output_shape if is_node else edge._array.shape
                if not isinstance(g, Tensor) or g._array.shape != shape:
                    raise _bad_gradient(node, index, g, shape)
                if is_node:  # the common case, inlined: a call per edge adds up
                    grads[edge] = g if edge not in grads else grads[edge] + g
                else:
                    accumulate(edge, g)
        if due:
            run_post_accumulate_grad_hooks(due.pop(None, []))
    if inputs is not None:
        return tuple(wanted_grads.get(id(t)) for t in inputs)
    return None


def initial_gradients(outputs, grad_outputs, op: str) -> tuple:
    """The gradients that seed a backward pass: given ones, or 1 for scalar outputs."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"{op}: got {len(grad_outputs)} gradients for {len(outputs)} outputs")
    seeds = []
    for out, grad in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError(f"{op}: an output of shape {out.shape} does not require grad")
        if grad is None:
            if out.numel() != 1:
                raise RuntimeError(f"{op}: grad can be implicitly created only for scalar "
                                   f"outputs; this output has shape {out.shape}, so pass "
                                   "`gradient` with that shape")
            grad = Tensor._wrap(out.backend.xp.ones_like(out._array), out.backend)
        elif not isinstance(grad, Tensor):
            grad = Tensor._wrap(out.backend.asarray(grad, dtype=out._array.dtype), out.backend)
        if grad.shape != out.shape:
            raise RuntimeError(f"{op}: gradient of shape {grad.shape} does not match the output "
                               f"shape {out.shape}")
        seeds.append(grad)
    return tuple(seeds)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, as torch.autograd.grad."""
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input of shape {t.shape} does not require grad")
    grad_outputs = initial_gradients(outputs, grad_outputs, "autograd.grad")
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


def differentiable_backward(compose, inputs: tuple, needs_input_grad: tuple, grad_output):
    """Gradients of `compose(*inputs)` for the inputs that need them, as a recorded graph.

    Fused ops (conv2d, pooling, attention) run their backward as one kernel, which autograd
    cannot differentiate again. Under `create_graph=True` their backward calls this instead:
    it rebuilds the op from differentiable primitives and differentiates that, so second
    derivatives stay exact at the cost of the primitives' speed and memory.
    """
    with enable_grad():
        out = compose(*inputs)
    wanted = [t for t, needed in zip(inputs, needs_input_grad) if needed]
    grads = iter(grad(out, wanted, (grad_output,), create_graph=True, allow_unused=True))
    return tuple(next(grads) if needed else None for needed in needs_input_grad)


def _refuse_saved_inference_tensors(ctx) -> None:
    for value in ctx._saved:
        if isinstance(value, Tensor) and is_inference_tensor(value):
            raise RuntimeError(f"{ctx.name}: inference tensors cannot be saved for backward; "
                               "make a normal tensor with .clone() outside inference_mode "
                               "and use it in autograd")
