"""The package's layering, read from its source: import cycles, lazy imports, the seed models.

The module-level import graph of tinygrad_like/ must have no cycle: each layer of
docs/architecture.md imports only layers below it (tensor.py imports autograd.py, which
receives the Tensor class through `autograd.register_tensor_class`; ops/ import tensor.py; nn/
imports ops/). An import inside a function hides an edge from that graph, so each one must be
listed below with its reason. The seed models in tinygrad_like/models/ are the examples users
copy, so they import only the public API.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tinygrad_like"

# (importing module prefix, imported module prefix) -> why the import is inside a function
LAZY_IMPORTS = {
    ("tinygrad_like.backend", "tinygrad_like"):
        "devices are built on first use, so `import tinygrad_like` loads neither CuPy, Triton "
        "nor the native extension, and a device that is never used costs nothing",
    ("tinygrad_like.cli", "tinygrad_like"):
        "each command loads only what it runs (models, plotting, distributed, kernel report), "
        "so `tinygrad-like --help` stays fast and needs no optional dependency",
    ("tinygrad_like.kernel_report", "tinygrad_like"):
        "the Triton catalog is read only when a kernel report is asked for",
    ("tinygrad_like.data.sampler", "tinygrad_like.distributed"):
        "the process group is looked up only when a DistributedSampler is built",
    ("tinygrad_like.distributed", "tinygrad_like"):
        "NCCL (CuPy) is loaded only when a process group asks for that backend",
}

# what the seed models may import: the public modules (tg.<module>)
PUBLIC_MODULES = {
    "tinygrad_like", "tinygrad_like.nn", "tinygrad_like.nn.functional", "tinygrad_like.nn.init",
    "tinygrad_like.nn.utils", "tinygrad_like.nn.parallel", "tinygrad_like.optim",
    "tinygrad_like.optim.lr_scheduler", "tinygrad_like.data", "tinygrad_like.utils",
    "tinygrad_like.utils.data", "tinygrad_like.distributed", "tinygrad_like.metrics",
    "tinygrad_like.cuda", "tinygrad_like.random",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (path, is a package)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imports(modules: dict) -> list[tuple[str, str, str, bool, int]]:
    """(importer, imported module, imported name or "", inside a function, line) for every
    import of a tinygrad_like module."""
    found = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for module, (path, is_package) in modules.items():
        def visit(node, in_function: bool):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        target = resolve(alias.name)
                        if target:
                            found.append((module, target, "", in_function, child.lineno))
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parent = module.split(".")[:None if is_package else -1]
                        parent = parent[:len(parent) - child.level + 1]
                        base = ".".join(parent + ([base] if base else []))
                    for alias in child.names:
                        # `from pkg import submodule` depends on the submodule
                        sub = f"{base}.{alias.name}"
                        target = sub if sub in modules else resolve(base)
                        if target:
                            name = "" if target == sub else alias.name
                            found.append((module, target, name, in_function, child.lineno))
                visit(child, in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text(), str(path)), False)
    return found


def _cycles(graph: dict[str, set]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_no_module_level_import_cycles():
    modules = _modules()
    graph = {module: set() for module in modules}
    for importer, target, _, in_function, _ in _imports(modules):
        if not in_function and target != importer:
            graph[importer].add(target)
    assert not _cycles(graph), f"module-level import cycles in tinygrad_like/: {_cycles(graph)}"


def test_function_level_imports_are_listed_with_a_reason():
    unlisted = [f"{importer}:{line} imports {target}"
                for importer, target, _, in_function, line in _imports(_modules())
                if in_function and not any(_within(importer, a) and _within(target, b)
                                           for a, b in LAZY_IMPORTS)]
    assert not unlisted, ("imports inside functions (move them to the top of the module, or "
                          f"list them in LAZY_IMPORTS with the reason): {unlisted}")


def test_seed_models_use_only_the_public_api():
    bad = []
    for importer, target, name, _, line in _imports(_modules()):
        if not _within(importer, "tinygrad_like.models") or _within(target, "tinygrad_like.models"):
            continue
        if target not in PUBLIC_MODULES or name.startswith("_"):
            bad.append(f"{importer}:{line} imports {target}{'.' + name if name else ''}")
    assert not bad, f"tinygrad_like/models/ must use only the public API (tg, tg.nn, F, ...): {bad}"


def test_the_checks_see_a_cycle_and_a_lazy_import():
    """The graph code itself: a two-module cycle is found, an acyclic chain is not."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    lazy = [entry for entry in _imports(_modules()) if entry[3]]
    assert any(_within(importer, "tinygrad_like.cli") for importer, *_ in lazy)
