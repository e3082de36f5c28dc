"""The declared kernel table (backend/table.py): what ops call is declared, every device
fills every entry, and a table that does not match fails to build, naming the entry."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tinygrad_like as tg
from tinygrad_like.backend import get_backend, info
from tinygrad_like.backend.table import DECLARED, KernelTableError, build_table, entries
from tinygrad_like.backend.triton_kernels import TRITON_KERNELS
from tinygrad_like.kernels import cuda as cuda_c

PACKAGE = Path(tg.__file__).parent


def _entries_called(path: Path) -> set[str]:
    """`<...>.kernels.<name>` attribute accesses, and the `kernel = "<name>"` class attributes
    that ops/arithmetic.py's binary ops look up with getattr."""
    called = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            holder = node.value
            name = holder.attr if isinstance(holder, ast.Attribute) else getattr(holder, "id", "")
            if name == "kernels":
                called.add(node.attr)
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and getattr(node.targets[0], "id", "") == "kernel"
              and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            called.add(node.value.value)
    return called


def test_every_entry_the_ops_and_optimizers_call_is_declared_and_every_declared_one_is_called():
    files = sorted((PACKAGE / "ops").glob("*.py")) + sorted((PACKAGE / "optim").glob("*.py"))
    called = set().union(*(_entries_called(path) for path in files))
    assert {"conv2d", "sgd_step", "add", "scatter_add"} <= called  # the scan sees them
    assert not called - set(DECLARED), f"undeclared: {sorted(called - set(DECLARED))}"
    assert not set(DECLARED) - called, f"declared, never called: {sorted(set(DECLARED) - called)}"


@pytest.mark.parametrize("device", ["cpu", "interp"])
def test_every_declared_entry_is_filled(device):
    assert set(vars(get_backend(device).kernels)) == set(DECLARED)


def test_interp_borrows_from_cpu_exactly_what_triton_does_not_serve():
    backend = get_backend("interp")
    assert set(backend.kernel_fallbacks) == set(DECLARED) - set(TRITON_KERNELS)
    assert set(backend.kernel_fallbacks.values()) == {"cpu"}
    cpu_layer_norm = get_backend("cpu").kernels.layer_norm  # the same kernel, built again
    assert backend.kernels.layer_norm.__qualname__ == cpu_layer_norm.__qualname__
    assert get_backend("cpu").kernel_fallbacks == {}


def test_the_cuda_table_builds_with_a_stand_in_cupy(monkeypatch):
    from tinygrad_like.backend import cuda_device, cupy_standin, reference_norm

    fake_cupy = types.ModuleType("cupy")
    for name in ("add", "subtract", "multiply", "true_divide"):
        setattr(fake_cupy, name, getattr(np, name))
    fake_cupy.random = np.random
    fake_cupy.cuda = cupy_standin.cuda  # the device the backend selects
    fake_special = types.ModuleType("cupyx.scipy.special")
    fake_special.erf = np.tanh
    fake_cupyx, fake_scipy = types.ModuleType("cupyx"), types.ModuleType("cupyx.scipy")
    fake_cupyx.scipy, fake_scipy.special = fake_scipy, fake_special
    for name, module in {"cupy": fake_cupy, "cupyx": fake_cupyx, "cupyx.scipy": fake_scipy,
                         "cupyx.scipy.special": fake_special}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cuda_device, "is_available", lambda: True)
    backend = cuda_device.make_backend(0)
    assert set(vars(backend.kernels)) == set(DECLARED)
    assert backend.kernels.layer_norm is reference_norm.layer_norm
    assert backend.kernel_fallbacks["layer_norm"] == "NumPy"
    own = set(DECLARED) - set(backend.kernel_fallbacks)
    assert set(TRITON_KERNELS) | set(cuda_c.KERNELS) <= own


def test_device_mappings_name_only_declared_entries():
    assert entries(*TRITON_KERNELS) and entries(*cuda_c.KERNELS)
    for names in info.OPS.values():
        entries(*names)


def _complete() -> dict:
    """A table of stand-ins that take the declared parameters."""
    return {name: (lambda *args: None) for name in DECLARED}


def test_a_missing_entry_fails_naming_it():
    kernels = _complete()
    del kernels["attention_backward"]
    with pytest.raises(KernelTableError, match="test kernel table: no kernel and no fallback "
                                               "for attention_backward"):
        build_table("test", kernels)
    borrowed = _complete()["attention_backward"]
    table = build_table("test", kernels, fallbacks={"attention_backward": borrowed},
                        lender="elsewhere")
    assert table.fallbacks == {"attention_backward": "elsewhere"}
    assert table.kernels.attention_backward is borrowed


@pytest.mark.parametrize("where", ["kernels", "fallbacks"])
def test_an_undeclared_entry_fails_naming_it(where):
    extra = {"im2col": lambda x: x}
    with pytest.raises(KernelTableError, match=f"{where} im2col not declared"):
        if where == "kernels":
            build_table("test", {**_complete(), **extra})
        else:
            build_table("test", _complete(), fallbacks=extra, lender="cpu")


def test_a_kernel_that_cannot_take_the_declared_parameters_fails_naming_it():
    def sgd_step(params, grads, lr):
        pass

    with pytest.raises(KernelTableError, match=r"test kernel table: sgd_step = .* cannot take "
                                               r"the declared \(params, grads, momentum_buffers"):
        build_table("test", {**_complete(), "sgd_step": sgd_step})
    with pytest.raises(KernelTableError, match="relu is None, not callable"):
        build_table("test", {**_complete(), "relu": None})


def test_builtins_and_partials_are_accepted():
    import functools

    def launcher(runtime, x):
        return x

    table = build_table("test", {**_complete(), "add": np.add, "scatter_add": np.add.at,
                                 "relu": functools.partial(launcher, "runtime")})
    assert table.kernels.scatter_add == np.add.at


def test_unknown_names_in_entries_fail():
    with pytest.raises(KernelTableError, match="not declared in backend/table.py: im2col"):
        entries("conv2d", "im2col")


def test_backend_info_names_fallbacks():
    table = tg.backend_info(devices=("interp",), print_table=False)
    rows = {tuple(line.split()[:2]): line for line in table.splitlines()}
    assert "fallback: cpu" in rows[("interp", "layer_norm")]
    assert "Triton attention.py" in rows[("interp", "attention")]
