"""state_dict and load_state_dict, with PyTorch's keys, error messages and return value."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

from tinygrad_like import autograd
from tinygrad_like.tensor import Tensor

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


class ModuleState:
    """Module's state: parameters and persistent buffers by dotted name."""

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers by dotted name, every module at every place it
        is registered (a shared module's tensors appear under each name, as in PyTorch)."""
        destination = OrderedDict() if destination is None else destination
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buffer if keep_vars else buffer.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=f"{prefix}{name}.",
                                  keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True,
                        assign: bool = False) -> IncompatibleKeys:
        """Copy tensors in by key, as PyTorch: a RuntimeError lists every problem at once
        (missing and unexpected keys unless strict=False, and shape mismatches always);
        nothing is copied unless everything fits. assign=True makes the checkpoint's tensors
        the module's own (parameters keep their requires_grad) instead of copying into them."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict for {type(self).__name__}: expected a dict-like "
                            f"state_dict, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
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
        problems += [f"size mismatch for {key}: copying a param with shape {tuple(source.shape)} "
                     f"from checkpoint, the shape in current model is {tuple(own[key].shape)}."
                     for key, source in sources.items() if source.shape != own[key].shape]
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(problems))
        with autograd.no_grad():
            if assign:
                self._assign(sources)
            for key, source in sources.items() if not assign else ():
                target = own[key]
                target.copy_(source.to(target.device).to(target.dtype))
        return IncompatibleKeys(missing, unexpected)

    def _assign(self, sources: dict) -> None:
        for prefix, module in self.named_modules(remove_duplicate=False):
            start = f"{prefix}." if prefix else ""
            for name, param in module._parameters.items():
                if param is not None and start + name in sources:
                    source = sources[start + name]
                    # the parameter's own class (Parameter), kept free of an import cycle
                    module._parameters[name] = type(param)(source, param.requires_grad)
            for name, buffer in module._buffers.items():
                if buffer is not None and start + name in sources:
                    module._buffers[name] = sources[start + name]
