"""Core workloads, each timed for tinygrad_like, raw NumPy, PyTorch CPU and JAX in one group.

- elementwise chain: 100 scalar ops on 16 floats, then backward of the sum. The arrays are
  so small that the time is the framework's per-op overhead. NumPy has no autograd, so its
  floor is the same 100 forward ops plus the backward written out by hand.
- matmul, float32 1024x1024 @ 1024x1024: forward alone, and forward plus backward of the
  sum (NumPy computes the two gradient matmuls by hand).

JAX (CPU, jit) runs the same functions on jax.numpy, differentiated by jax.value_and_grad and
compiled before the timing (jax_workloads.py); under jit the chain is one fused program.

Each case checks its result once, outside the timed part, against a float64 reference that
shares no code with the timed implementations (PyTorch autograd for the chain, closed forms
for the matmul). A process that does not load torch (BENCH_FRAMEWORKS without it) skips the
chain's check; the same-process run checks it. Under --benchmark-disable (CI) each case runs
once, so the check is the test.
"""

from __future__ import annotations

import functools

from types import ModuleType

import numpy as np
import pytest

import frameworks
import tinygrad_like as tg

FRAMEWORKS = ("tinygrad_like", "torch", "numpy", "jax")
CHAIN_OPS = 100
BLOCK_OPS = 5  # ops in one step of elementwise_chain
HAND_WRITTEN = "backward written by hand"


def elementwise_chain(lib, x):
    """CHAIN_OPS elementwise ops with scalars, through `lib` (tg, torch or numpy).

    Each step maps any value into (-0.64, 1.72) and is a contraction, so the chain can be
    made longer without overflow and rounding differences between libraries die out.
    """
    for _ in range(CHAIN_OPS // BLOCK_OPS):
        x = lib.exp(lib.tanh(x * 0.5 + 0.1)) - 1.0
    return x


def numpy_chain_with_grad(x: np.ndarray) -> tuple:
    """elementwise_chain's forward in NumPy, the loss, and its gradient by the chain rule."""
    saved = []
    for _ in range(CHAIN_OPS // BLOCK_OPS):
        tanh = np.tanh(x * 0.5 + 0.1)
        exp = np.exp(tanh)
        saved.append((tanh, exp))
        x = exp - 1.0
    loss = x.sum()
    grad = np.ones_like(x)
    for tanh, exp in reversed(saved):
        grad = grad * exp * (1.0 - tanh * tanh) * 0.5
    return loss, grad


def matmul(lib, a, b):
    return a @ b


def numpy_matmul_with_grads(a: np.ndarray, b: np.ndarray) -> tuple:
    """(a @ b).sum() and its gradients: d/da = ones @ b^T, d/db = a^T @ ones."""
    out = a @ b
    grad_out = np.ones_like(out)
    return out.sum(), grad_out @ b.T, a.T @ grad_out


def library(framework: str) -> ModuleType:
    """The module a framework's cases call: tinygrad_like, torch, or jax.numpy for jax."""
    if framework == "tinygrad_like":
        return tg
    if framework == "jax":
        return frameworks.load("jax_workloads").jnp
    return frameworks.load(framework)


def autograd_runner(lib, forward, *arrays):
    """A call that runs forward(lib, *leaves).sum().backward() and returns loss and grads.

    tinygrad_like and torch share this code: the API it uses is the same in both.
    """
    leaves = [lib.from_numpy(array).requires_grad_() for array in arrays]

    def run():
        for leaf in leaves:
            leaf.grad = None  # every round computes the gradients afresh, not accumulated
        loss = forward(lib, *leaves).sum()
        loss.backward()
        return (loss, *(leaf.grad for leaf in leaves))

    return run


def sum_with_grads(framework: str, forward, *arrays):
    """A call returning forward(lib, *arrays).sum() and its gradients, in `framework`."""
    if framework == "jax":
        return frameworks.load("jax_workloads").with_grads(
            lambda lib, *leaves: forward(lib, *leaves).sum(), arrays)
    return autograd_runner(library(framework), forward, *arrays)


def to_numpy(value) -> np.ndarray:
    detach = getattr(value, "detach", None)  # tinygrad_like's and torch's tensors
    return np.asarray(value if detach is None else detach())


def assert_close(actual: tuple, expected: tuple | None) -> None:
    """float32 results against float64 references; atol scales with each reference's largest
    entry, as the chain's gradients are ~1e-5 and the matmul's outputs ~100. No reference
    (None) where this process does not load torch, which computes it."""
    if expected is None:
        return
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-4,
                                   atol=1e-5 * np.abs(want).max())


def median_seconds(benchmark) -> float | None:
    """The median of the timed rounds; None under --benchmark-disable, which times nothing."""
    return None if benchmark.stats is None else benchmark.stats.stats.median


def record_gflops(benchmark, flop: int) -> None:
    benchmark.extra_info["gflop"] = flop / 1e9
    median = median_seconds(benchmark)
    if median is not None:
        benchmark.extra_info["gflop_per_s"] = flop / 1e9 / median


# ---- per-op overhead -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain_reference(chain_input) -> tuple | None:
    torch = frameworks.reference_library()
    if torch is None:
        return None
    x = torch.from_numpy(chain_input.astype(np.float64)).requires_grad_()
    loss = elementwise_chain(torch, x).sum()
    loss.backward()
    return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("framework", frameworks.params(*FRAMEWORKS))
def test_elementwise_chain(benchmark, framework, chain_input, chain_reference):
    benchmark.group = f"elementwise chain: {CHAIN_OPS} ops on {chain_input.size} floats, fwd+bwd"
    if framework == "numpy":
        run = functools.partial(numpy_chain_with_grad, chain_input)
        benchmark.extra_info["note"] = HAND_WRITTEN
    else:
        run = sum_with_grads(framework, elementwise_chain, chain_input)
    result = benchmark(run)
    assert_close(result, chain_reference)
    benchmark.extra_info["ops"] = CHAIN_OPS
    median = median_seconds(benchmark)
    if median is not None:
        benchmark.extra_info["us_per_op"] = median / CHAIN_OPS * 1e6


# ---- matmul --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matmul_reference(matmul_inputs) -> dict:
    a, b = (x.astype(np.float64) for x in matmul_inputs)
    # sum(a @ b) = sum_k colsum(a)_k rowsum(b)_k, so the gradients are broadcast sums
    column_sums, row_sums = a.sum(axis=0), b.sum(axis=1)
    return {"out": a @ b, "loss": column_sums @ row_sums,
            "grad_a": np.broadcast_to(row_sums, a.shape),
            "grad_b": np.broadcast_to(column_sums[:, None], b.shape)}


def matmul_group(a: np.ndarray, b: np.ndarray, what: str) -> str:
    return f"matmul {a.shape[0]}x{a.shape[1]} @ {b.shape[0]}x{b.shape[1]} float32, {what}"


@pytest.mark.parametrize("framework", frameworks.params(*FRAMEWORKS))
def test_matmul_forward(benchmark, framework, matmul_inputs, matmul_reference):
    a, b = matmul_inputs
    benchmark.group = matmul_group(a, b, "forward")
    if framework == "jax":
        jax_workloads = frameworks.load("jax_workloads")
        run = jax_workloads.compiled_call(jax_workloads.jnp.matmul, (a, b))
    else:
        wrap = np.asarray if framework == "numpy" else library(framework).from_numpy
        left, right = wrap(a), wrap(b)
        run = lambda: left @ right  # noqa: E731
    result = benchmark(run)
    assert_close((result,), (matmul_reference["out"],))
    record_gflops(benchmark, 2 * a.shape[0] * a.shape[1] * b.shape[1])


@pytest.mark.parametrize("framework", frameworks.params(*FRAMEWORKS))
def test_matmul_forward_backward(benchmark, framework, matmul_inputs, matmul_reference):
    a, b = matmul_inputs
    benchmark.group = matmul_group(a, b, "fwd+bwd")
    if framework == "numpy":
        run = functools.partial(numpy_matmul_with_grads, a, b)
        benchmark.extra_info["note"] = HAND_WRITTEN
    else:
        run = sum_with_grads(framework, matmul, a, b)
    result = benchmark(run)
    reference = matmul_reference
    assert_close(result, (reference["loss"], reference["grad_a"], reference["grad_b"]))
    # the forward and the two gradient matmuls, each 2 m k n flop
    record_gflops(benchmark, 3 * 2 * a.shape[0] * a.shape[1] * b.shape[1])
