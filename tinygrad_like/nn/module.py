"""Module and Parameter, with PyTorch's registration rules and state-dict key names.

Assigning a Parameter, Module or buffer to a Module attribute registers it, so
`named_parameters()` and `state_dict()` walk the tree in definition order and
produce keys such as `layers.0.weight` that match PyTorch's.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

from tinygrad_like import autograd
from tinygrad_like.backend import is_device
from tinygrad_like.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable; requires grad unless told otherwise."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        source = data if isinstance(data, Tensor) else Tensor([] if data is None else data)
        self._array, self.backend = source._array, source.backend  # shares memory, like PyTorch
        self.grad, self._ctx, self._retains_grad = None, None, False
        self._version = source._version
        self._requires_grad = False
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer: holds parameters, buffers and sub-modules by attribute."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration -------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 "assigning attributes")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None
            self.__dict__.pop(name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not learned (BatchNorm's running mean)."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)
        self._buffers[name] = tensor
        self.__dict__.pop(name, None)

    def add_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack[0:0] = children

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True):
        return (param for _, param in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = ""):
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self):
        return (buffer for _, buffer in self.named_buffers())

    # ---- modes and gradients ------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad = param.grad * 0

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    # ---- devices and dtypes -------------------------------------------------------------
    def to(self, *args, **kwargs) -> "Module":
        """Move (and for floating-point tensors, cast) every parameter and buffer in place."""
        with autograd.no_grad():
            for module in self.modules():
                for name, param in module._parameters.items():
                    if param is not None:
                        moved = _move(param, args, kwargs)
                        param._array, param.backend = moved._array, moved.backend
                        if param.grad is not None:
                            param.grad = _move(param.grad, args, kwargs)
                for name, buffer in module._buffers.items():
                    if buffer is not None:
                        module._buffers[name] = _move(buffer, args, kwargs)
        return self

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self) -> "Module":
        return self.to("cuda")

    def float(self) -> "Module":
        return self.to(dtype="float32")

    def double(self) -> "Module":
        return self.to(dtype="float64")

    def half(self) -> "Module":
        return self.to(dtype="float16")

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        state = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    state[prefix + name] = param.detach()
            skipped = module.__dict__.get("_non_persistent", set())
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in skipped:
                    state[prefix + name] = buffer.detach()
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> "IncompatibleKeys":
        """Copy tensors in by key, as PyTorch: a RuntimeError lists every problem at once
        (missing and unexpected keys unless strict=False, and shape mismatches always);
        nothing is copied unless everything fits."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict for {type(self).__name__}: expected a dict-like "
                            f"state_dict, got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        sources = {key: _checkpoint_tensor(key, state_dict[key]) for key in own
                   if key in state_dict}
        problems = []
        if strict and missing:
            problems.append("Missing key(s) in state_dict: "
                            + ", ".join(f'"{key}"' for key in missing) + ".")
        if strict and unexpected:
            problems.append("Unexpected key(s) in state_dict: "
                            + ", ".join(f'"{key}"' for key in unexpected) + ".")
        problems += [f"size mismatch for {key}: copying a param with shape {source.shape} from "
                     f"checkpoint, the shape in current model is {own[key].shape}."
                     for key, source in sources.items() if source.shape != own[key].shape]
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(problems))
        with autograd.no_grad():
            for key, source in sources.items():
                target = own[key]
                target.copy_(source.to(target.device).to(target.dtype))
        return IncompatibleKeys(missing, unexpected)

    # ---- calling and printing -----------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(module).replace("\n", "\n  ")
                 for name, module in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


# what load_state_dict returns, as PyTorch's (missing_keys, unexpected_keys) named tuple
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _checkpoint_tensor(key: str, value) -> Tensor:
    """A state-dict entry as a Tensor: tensors as they are, arrays and nested lists converted."""
    if isinstance(value, Tensor):
        return value
    try:
        return Tensor._from_data(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f'load_state_dict: while copying the parameter named "{key}", expected '
                        f"a Tensor or an array from the checkpoint but received "
                        f"{type(value).__name__} ({error})") from None


def _move(tensor: Tensor, args, kwargs) -> Tensor:
    """Tensor.to, but integer tensors keep their dtype (as Module.to does in PyTorch)."""
    if tensor.dtype.is_floating_point:
        return tensor.to(*args, **kwargs)
    devices = [a for a in args if is_device(a)]
    device = kwargs.get("device", devices[0] if devices else None)
    return tensor if device is None else tensor.to(device)


class Sequential(Module):
    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index):
        items = list(self._modules.values())
        return Sequential(*items[index]) if isinstance(index, slice) else items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        for name, module in (modules or {}).items():
            self.add_module(name, module)

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        self.add_module(name, module)

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()
