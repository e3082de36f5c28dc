"""Optimizer: the base class that holds parameter groups and per-parameter state.

It follows torch.optim.Optimizer (torch/optim/optimizer.py). `params` is an iterable of
Parameters, or of dicts that each form a group with its own options
(`{"params": [w], "lr": 0.1}`); an option a group leaves out comes from the optimizer's
defaults. A subclass supplies one parameter's update rule (`_update`) and, if it keeps
state, how that state starts (`_init_state`); or, like SGD and Adam, a whole group's update
(`_step_group`) as one call of a fused kernel-table entry (`sgd_step`, `adam_step`). The
rule works in place on the raw backend arrays through `param.backend`, so it runs unchanged
on every device and records no graph.

`state_dict()` has PyTorch's layout, where an index counts parameters across the groups in
order:

    {"state": {index: {"exp_avg": Tensor, ...}},
     "param_groups": [{"lr": 0.1, ..., "params": [index, ...]}]}
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tinygrad_like import autograd
from tinygrad_like.creation import zeros_like
from tinygrad_like.tensor import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: parameter groups, per-parameter state, `step`, `zero_grad`, state dicts."""

    def __init__(self, params: ParamsT, defaults: dict[str, Any]):
        if isinstance(params, Tensor):
            raise TypeError(f"{self._name}: params must be an iterable of Tensors or of dicts, "
                            "not a single Tensor; wrap it in a list")
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ---- groups -------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group: a dict with "params" and any options that override the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise KeyError(f"{self._name}: a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(f"{self._name}: parameters must come in an ordered collection; a "
                            "set's order changes between runs, so use a list")
        params = [params] if isinstance(params, Tensor) else list(params)
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"{self._name}: can only optimize Tensors, but one of the "
                                f"params is {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError(f"{self._name}: can't optimize a non-leaf Tensor (shape "
                                 f"{param.shape}); optimize the leaf it was computed from")
        ids = [id(param) for param in params]
        # PyTorch only warns here, but a parameter listed twice is silently updated twice
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self._name}: a parameter group lists the same parameter twice")
        taken = {id(param) for group in self.param_groups for param in group["params"]}
        if not taken.isdisjoint(ids):
            raise ValueError(f"{self._name}: some parameters appear in more than one "
                             "parameter group")
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_options(group)
        self.param_groups.append(group)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an option outside its range (each group is checked)."""

    def _require_nonnegative(self, group: dict[str, Any], *names: str) -> None:
        for name in names:
            value = group[name]
            if not value >= 0:  # written this way round so that NaN is rejected too
                raise ValueError(f"{self._name}: invalid {name} {value!r}; expected a value "
                                 ">= 0")

    # ---- the update ---------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (the default), or replace it by zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                # new zeros rather than zeroing in place: a gradient array may be a read-only
                # broadcast view, or the same object as another parameter's gradient
                param.grad = None if set_to_none else zeros_like(param.grad)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return what `closure` returned.

        `closure`, if given, recomputes the loss (with grad mode on) before the update.
        """
        loss = None
        if closure is not None:
            with autograd.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [param for param in group["params"] if param.grad is not None]
            if params:
                self._step_group(group, params)
            for param in params:
                param._bump_version()  # graphs that saved the old value must refuse backward
        return loss

    def _step_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Update `params` (those of `group` that have a gradient) one at a time with
        `_update`. SGD and Adam replace this with one fused kernel call per group."""
        for param in params:
            state = self.state.get(param) or self._init_state(param, group)
            self._update(param, self._gradient(param, group), state, group)
            if state:  # SGD without momentum keeps none, and PyTorch then lists no entry
                self.state[param] = state

    @staticmethod
    def _gradient(param: Tensor, group: dict[str, Any]):
        """The gradient array the rule sees: negated to maximize, plus the L2 term of PyTorch's
        coupled weight decay unless the group decays weights separately (AdamW)."""
        grad = param.grad._array
        if group.get("maximize", False):
            grad = -grad
        weight_decay = group.get("weight_decay", 0)
        if weight_decay != 0 and not group.get("decoupled_weight_decay", False):
            grad = grad + weight_decay * param._array
        return grad

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """A parameter's state before its first update."""
        return {}

    def _update(self, param: Tensor, grad, state: dict[str, Any], group: dict[str, Any]):
        """Update `param._array` in place from the gradient array `grad`."""
        raise NotImplementedError(f"{self._name} must define _update()")

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state and group options in PyTorch's layout (see the module docstring).

        As in PyTorch the state tensors are the live ones, not copies: copy the dict (or save
        it) before stepping on if it must stay as it is now.
        """
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for param in group["params"]:
                index_of.setdefault(id(param), len(index_of))
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [index_of[id(param)] for param in group["params"]]
            groups.append(packed)
        state = {index_of[id(param)]: values for param, values in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict()` saved into an optimizer over the same parameters.

        Parameters are matched by position, as in PyTorch. Every state tensor is copied, onto
        its parameter's device and dtype (step counters stay on the CPU); the group options
        are taken from the saved groups, and those a group lacks from the defaults (as
        PyTorch's __setstate__). Everything is checked before anything changes.
        """
        where = f"{self._name}.load_state_dict"
        saved_groups, saved_state = _checked_layout(state_dict, where)
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: the state dict has {len(saved_groups)} parameter "
                             f"groups, this optimizer has {len(self.param_groups)}")
        param_of = {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or not isinstance(saved.get("params"), (list, tuple)):
                raise KeyError(f"{where}: parameter group {number} of the state dict is not a "
                               "dict with a 'params' list")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{where}: parameter group {number} has "
                                 f"{len(saved['params'])} parameters in the state dict but "
                                 f"{len(group['params'])} in this optimizer")
            param_of.update(zip(saved["params"], group["params"]))
        state = {}
        for index, values in saved_state.items():
            if index not in param_of:
                raise KeyError(f"{where}: the state dict has state for parameter {index!r}, "
                               "which none of its parameter groups lists")
            if not isinstance(values, Mapping):
                raise TypeError(f"{where}: the state of parameter {index!r} has type "
                                f"{type(values).__name__}, expected a dict")
            param = param_of[index]
            state[param] = {key: _copy_state_value(value, param, key, f"{where}: parameter "
                                                   f"{index}") for key, value in values.items()}
        groups = [dict(self.defaults, **copy.deepcopy({k: v for k, v in saved.items()
                                                       if k != "params"}),
                       params=group["params"])
                  for saved, group in zip(saved_groups, self.param_groups)]
        for group in groups:
            self._check_options(group)
        self.state, self.param_groups = state, groups

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])


def _checked_layout(state_dict, where: str) -> tuple:
    """The saved groups and state of what Optimizer.state_dict() returned, or a clear error."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{where}: expected the dict Optimizer.state_dict() returns, got "
                        f"{type(state_dict).__name__}")
    missing = {"state", "param_groups"} - set(state_dict)
    if missing:
        raise KeyError(f"{where}: the state dict has no {sorted(missing)} entry; expected "
                       "what Optimizer.state_dict() returns")
    groups, state = state_dict["param_groups"], state_dict["state"]
    if not isinstance(groups, (list, tuple)) or not isinstance(state, Mapping):
        raise TypeError(f"{where}: expected 'param_groups' to be a list and 'state' a dict, "
                        f"got {type(groups).__name__} and {type(state).__name__}")
    return groups, state


def _copy_state_value(value, param: Tensor, key: str, where: str):
    if value is None:  # PyTorch's SGD keeps a None momentum_buffer without momentum
        return None
    if not isinstance(value, Tensor):
        # every state entry of these optimizers is a tensor; a number or an array becomes one
        try:
            value = Tensor._from_data(value)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: state '{key}' has type {type(value).__name__}, expected a "
                            "tensor") from None
    if key == "step":
        return Tensor._from_data(value, device="cpu")
    # every other state tensor of these optimizers is shaped like its parameter
    if value.shape != param.shape:
        raise ValueError(f"{where}: state '{key}' has shape {value.shape}, but the parameter "
                         f"has shape {param.shape}")
    return Tensor._from_data(value, dtype=param.dtype, device=param.device)


def batches(params: list[Tensor], key: Callable[[Tensor], Any]) -> dict[Any, list[Tensor]]:
    """`params` split by `key(param)` (in order): each batch goes to one fused kernel call.
    The key always includes the device, as a kernel call sees one device's arrays."""
    split: dict[Any, list[Tensor]] = {}
    for param in params:
        split.setdefault((param.backend, key(param)), []).append(param)
    return split


def step_counter() -> Tensor:
    """A fresh per-parameter step count: a float32 scalar on the CPU, as PyTorch keeps it."""
    return Tensor(0.0)


def count_step(state: dict[str, Any]) -> float:
    """Advance `state["step"]` in place and return the new count."""
    state["step"]._array += 1
    return float(state["step"].item())
