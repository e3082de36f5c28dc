"""Module hooks: the handles that remove them, and the graph taps behind full backward hooks.

A full backward hook needs every gradient with respect to a module's tensor outputs (and
later its inputs) at once, but the engine's nodes have one output each. So each side of
the module gets a tap: `_Gather` joins the tensors into one scalar token, and each tensor
is passed on through `_Pass(tensor, token)`. Every `_Pass` node is recorded after the
token, so the engine (newest first) runs all of them before `_Gather`; they only collect
their gradient, and `_Gather`'s backward hands the collected set to the hooks and sends
what they return (or the gradients unchanged) on to the tensors. This is what PyTorch's
`BackwardHookFunction` does with one multi-output node.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

from tinygrad_like.autograd import Function
from tinygrad_like.autograd_hooks import RemovableHandle
from tinygrad_like.grad_mode import is_grad_enabled
from tinygrad_like.tensor import Tensor


class ModuleHookHandle(RemovableHandle):
    """A module hook's handle: `remove()` also forgets the hook's options (with_kwargs, ...);
    usable as a context manager that removes the hook on exit, as PyTorch's."""

    def __init__(self, hooks: dict, *option_tables: dict):
        super().__init__(hooks)
        self.option_tables = option_tables

    def remove(self) -> None:
        super().remove()
        for table in self.option_tables:
            table.pop(self.id, None)

    def __enter__(self) -> "ModuleHookHandle":
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()


class _Tap:
    """One side of a module call: collects the gradient of each tapped tensor, then
    `on_ready` maps the full tuple to the gradients that go on to those tensors."""

    def __init__(self, tensors: tuple, on_ready):
        # shapes, not the tensors, so that tapping keeps no activation alive
        self.specs = [(t.shape, t._array.dtype, t.backend) for t in tensors]
        self.on_ready = on_ready
        self.grads = [None] * len(tensors)

    def collect(self, index: int, grad: Tensor) -> None:
        self.grads[index] = grad

    def zeros(self, index: int) -> Tensor:
        shape, dtype, backend = self.specs[index]
        return Tensor._wrap(backend.xp.zeros(shape, dtype=dtype), backend)

    def release(self) -> tuple:
        grads, self.grads = tuple(self.grads), [None] * len(self.specs)
        return self.on_ready(grads, self)


class _Gather(Function):
    @staticmethod
    def forward(ctx, *tensors_and_tap):
        *tensors, ctx.tap = tensors_and_tap
        return tensors[0].backend.xp.zeros((), dtype="float32")

    @staticmethod
    def backward(ctx, _token_grad):
        return ctx.tap.release()


class _Pass(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x: Tensor, token: Tensor, tap: _Tap, index: int):
        ctx.tap, ctx.index, ctx.token_backend = tap, index, token.backend
        return x._array

    @staticmethod
    def backward(ctx, grad: Tensor):
        ctx.tap.collect(ctx.index, grad)
        backend = ctx.token_backend
        return None, Tensor._wrap(backend.xp.zeros((), dtype="float32"), backend)


def _tap(values: tuple, on_ready) -> tuple[tuple, list | None]:
    """`values` with each tensor that requires grad passed through a tap, and the positions
    of the tensors (None, and nothing tapped, when no tensor needs a gradient)."""
    index = [i for i, v in enumerate(values) if isinstance(v, Tensor)]
    if not (is_grad_enabled() and any(values[i].requires_grad for i in index)):
        return values, None
    tensors = tuple(values[i] for i in index)
    tap = _Tap(tensors, on_ready)
    token = _Gather.apply(*tensors, tap)
    tapped = list(values)
    for position, (i, t) in enumerate(zip(index, tensors)):
        if t.requires_grad:
            tapped[i] = _Pass.apply(t, token, tap, position)
    return tuple(tapped), index


def _pack(index: list, values: tuple, size: int) -> tuple:
    packed = [None] * size
    for i, value in zip(index, values):
        packed[i] = value
    return tuple(packed)


class BackwardHook:
    """One module call's full backward hooks and backward pre-hooks (PyTorch's BackwardHook):
    grad_input and grad_output hold one entry per positional argument and per output, None
    where that is not a tensor."""

    def __init__(self, module, hooks: list, pre_hooks: list):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.n_inputs = self.n_outputs = 0
        self.input_index = self.output_index = None

    def setup_input_hook(self, args: tuple) -> tuple:
        args, self.input_index = _tap(args, self._input_grads_ready)
        self.n_inputs = len(args)
        return args

    def setup_output_hook(self, result):
        if not isinstance(result, (Tensor, tuple)):
            warnings.warn(f"{type(self.module).__name__}: for backward hooks to be called, the "
                          f"module output should be a Tensor or a tuple of Tensors, got "
                          f"{type(result).__name__}", stacklevel=3)
            return result
        outputs = result if isinstance(result, tuple) else (result,)
        outputs, self.output_index = _tap(outputs, self._output_grads_ready)
        self.n_outputs = len(outputs)
        return outputs if isinstance(result, tuple) else outputs[0]

    def _output_grads_ready(self, grads: tuple, tap: _Tap) -> tuple:
        self.grad_outputs = _pack(self.output_index, grads, self.n_outputs)
        for pre_hook in self.pre_hooks:
            replaced = pre_hook(self.module, self.grad_outputs)
            if replaced is not None:
                self.grad_outputs = self._checked(replaced, tap, self.output_index,
                                                  self.n_outputs, "backward pre hook",
                                                  "grad_output")
        grad_outputs = self.grad_outputs
        if self.input_index is None:  # no input needs a gradient: the hooks run now
            warnings.warn("Full backward hook is firing when gradients are computed with "
                          "respect to module outputs since no inputs require gradients",
                          stacklevel=2)
            for hook in self.hooks:
                result = hook(self.module, (None,) * self.n_inputs, grad_outputs)
                if result is not None and any(g is not None for g in result):
                    raise RuntimeError(f"{type(self.module).__name__}: a backward hook for a "
                                       "module where no input requires gradient must return "
                                       "None or None for all gradients")
            self.grad_outputs = None
        return tuple(grad_outputs[i] for i in self.output_index)

    def _input_grads_ready(self, grads: tuple, tap: _Tap) -> tuple:
        if self.grad_outputs is None:  # reached without passing the outputs (double backward)
            return grads
        # an input tensor no gradient reached gets zeros, as PyTorch's node materializes them
        grads = tuple(tap.zeros(k) if g is None else g for k, g in enumerate(grads))
        grad_inputs = _pack(self.input_index, grads, self.n_inputs)
        for hook in self.hooks:
            replaced = hook(self.module, grad_inputs, self.grad_outputs)
            if replaced is not None:
                grad_inputs = self._checked(replaced, tap, self.input_index, self.n_inputs,
                                            "backward hook", "grad_input")
        self.grad_outputs = None
        return tuple(grad_inputs[i] for i in self.input_index)

    def _checked(self, grads, tap: _Tap, index: list, expected: int, what: str,
                 name: str) -> tuple:
        """What a hook returned: one gradient (or None) per entry, each of its tensor's shape."""
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        module = type(self.module).__name__
        if len(grads) != expected:
            raise RuntimeError(f"{module}: {what} returned an invalid number of {name}, got "
                               f"{len(grads)}, but expected {expected}")
        for k, i in enumerate(index):
            shape = tap.specs[k][0]
            if grads[i] is not None and (not isinstance(grads[i], Tensor)
                                         or tuple(grads[i].shape) != tuple(shape)):
                got = (tuple(grads[i].shape) if isinstance(grads[i], Tensor)
                       else type(grads[i]).__name__)
                raise RuntimeError(f"{module}: {what} returned {name}[{i}] of {got}; expected a "
                                   f"Tensor of shape {tuple(shape)} or None")
        return grads


class ModuleHooks:
    """Module's hook registry and the call that runs the hooks (PyTorch's _call_impl): forward
    pre-hooks, forward, forward hooks, with the backward taps set up around forward."""

    def _init_hooks(self) -> None:
        for table in ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                      "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                      "_backward_hooks", "_backward_pre_hooks"):
            self.__dict__[table] = OrderedDict()

    @staticmethod
    def _add_hook(hook, table: dict, prepend: bool, *option_tables: dict) -> ModuleHookHandle:
        handle = ModuleHookHandle(table, *option_tables)
        table[handle.id] = hook
        if prepend:
            table.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> ModuleHookHandle:
        """`hook(module, args)` (with_kwargs: `hook(module, args, kwargs)`) before forward;
        a non-None result replaces args (with_kwargs: the pair (args, kwargs))."""
        handle = self._add_hook(hook, self._forward_pre_hooks, prepend,
                                self._forward_pre_hooks_with_kwargs)
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        return handle

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> ModuleHookHandle:
        """`hook(module, args, output)` (with_kwargs: `hook(module, args, kwargs, output)`)
        after forward; a non-None result replaces the output. always_call: also run when
        forward raised, before the error propagates."""
        handle = self._add_hook(hook, self._forward_hooks, prepend,
                                self._forward_hooks_with_kwargs,
                                self._forward_hooks_always_called)
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        if always_call:
            self._forward_hooks_always_called[handle.id] = True
        return handle

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> ModuleHookHandle:
        """`hook(module, grad_output)` once the gradients with respect to the module's outputs
        are known; a non-None result replaces grad_output."""
        return self._add_hook(hook, self._backward_pre_hooks, prepend)

    def register_full_backward_hook(self, hook, prepend: bool = False) -> ModuleHookHandle:
        """`hook(module, grad_input, grad_output)` once the gradients with respect to the
        module's positional inputs are known; a non-None result replaces grad_input."""
        return self._add_hook(hook, self._backward_hooks, prepend)

    def register_backward_hook(self, hook):
        raise NotImplementedError(
            f"{type(self).__name__}.register_backward_hook: PyTorch's deprecated non-full "
            "backward hook (gradients of the last op inside forward) is not implemented; use "
            "register_full_backward_hook, whose grad_input is with respect to the module inputs")

    def _call_with_hooks(self, args: tuple, kwargs: dict):
        called = set()
        result = None
        try:
            for hook_id, hook in list(self._forward_pre_hooks.items()):
                if hook_id in self._forward_pre_hooks_with_kwargs:
                    replaced = hook(self, args, kwargs)
                    if replaced is not None:
                        if not (isinstance(replaced, tuple) and len(replaced) == 2):
                            raise RuntimeError("forward pre-hook must return None or a tuple of "
                                               f"(new_args, new_kwargs), but got {replaced}.")
                        args, kwargs = replaced
                else:
                    replaced = hook(self, args)
                    if replaced is not None:
                        args = replaced if isinstance(replaced, tuple) else (replaced,)
            backward = None
            if self._backward_hooks or self._backward_pre_hooks:
                backward = BackwardHook(self, list(self._backward_hooks.values()),
                                        list(self._backward_pre_hooks.values()))
                args = backward.setup_input_hook(args)
            result = self.forward(*args, **kwargs)
            for hook_id, hook in list(self._forward_hooks.items()):
                called.add(hook_id)
                replaced = (hook(self, args, kwargs, result)
                            if hook_id in self._forward_hooks_with_kwargs
                            else hook(self, args, result))
                if replaced is not None:
                    result = replaced
            return result if backward is None else backward.setup_output_hook(result)
        except Exception:
            self._run_always_called_hooks(called, args, kwargs, result)
            raise

    def _run_always_called_hooks(self, called: set, args, kwargs, result) -> None:
        for hook_id, hook in list(self._forward_hooks.items()):
            if hook_id not in self._forward_hooks_always_called or hook_id in called:
                continue
            try:
                if hook_id in self._forward_hooks_with_kwargs:
                    hook(self, args, kwargs, result)
                else:
                    hook(self, args, result)
            except Exception as error:  # the forward's own error is the one to report
                warnings.warn("module forward hook with ``always_call=True`` raised an "
                              f"exception that was silenced as another error was raised in "
                              f"forward: {error}", stacklevel=3)
