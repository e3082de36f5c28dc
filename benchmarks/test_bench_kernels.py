"""The heavy CPU ops, each forward + backward, tinygrad_like beside PyTorch CPU, JAX and NumPy.

- conv2d: N=32, C=K=64, 32x32, 3x3, padding 1, float32; the loss is the sum of the output.
- softmax: (4096, 1024) float32 along the last axis; loss = sum(softmax(x) * w) with a fixed
  w, so the backward is not trivially zero. NumPy's floor is the same written out by hand.
- elementwise: sum(a * b + a) over two (4096, 1024) float32 arrays, the large same-shape
  arithmetic the native pool takes; NumPy's floor is written out by hand.
- max_pool2d: 2x2 windows at stride 2 over (64, 32, 26, 26), the CNN step's first pooling.
- causal attention: B=4, H=8, T=512, D=64 float32, loss = sum(out * w).
- attention peak memory at T=2048: forward + backward run in a fresh process per framework,
  and the growth of its peak resident set (Linux VmHWM, reset just before) is recorded
  (peak_memory.py; an un-tiled attention stores B*H*T*T scores: 512 MiB here).

Each loss function takes the array module (`lib`) and calls `functional(lib)`, so JAX runs
the same function on jax.numpy (jax_workloads.py supplies its functional calls).
Each timed case is checked once, outside the timing, against a float64 PyTorch reference; a
process that does not load torch (BENCH_FRAMEWORKS without it) skips the check, and the
same-process run of `make bench` checks them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import frameworks
import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from test_bench_core import library, to_numpy

SEED = 7
CONV = {"input": (32, 64, 32, 32), "weight": (64, 64, 3, 3), "padding": 1}
SOFTMAX_SHAPE = (4096, 1024)
ATTENTION = {"batch": 4, "heads": 8, "length": 512, "dim": 64}
MEMORY_LENGTH = 2048


def _inputs(seed: int, *shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]


def functional(lib):
    """torch.nn.functional's calls for `lib`: tinygrad_like's, torch's, or JAX's."""
    if lib is tg:
        return F
    return lib.nn.functional if lib.__name__ == "torch" else frameworks.load("jax_workloads")


def run_with_grads(lib, loss_fn, arrays):
    """A call computing loss_fn(lib, *leaves) and its backward; returns loss and grads."""
    leaves = [lib.from_numpy(a).requires_grad_() for a in arrays]

    def run():
        for leaf in leaves:
            leaf.grad = None
        loss = loss_fn(lib, *leaves)
        loss.backward()
        return (loss, *(leaf.grad for leaf in leaves))

    return run


def timed_run(framework: str, loss_fn, arrays, constants=()):
    """A call computing loss_fn(lib, *leaves, *constants) and its gradients with respect to
    the leaves (made from `arrays`) in `framework`; returns loss and gradients."""
    if framework == "jax":
        return frameworks.load("jax_workloads").with_grads(loss_fn, arrays, constants)
    lib = library(framework)
    tensors = [lib.from_numpy(constant) for constant in constants]
    return run_with_grads(lib, lambda lib, *leaves: loss_fn(lib, *leaves, *tensors), arrays)


def reference(loss_fn, arrays, constants=()) -> list[np.ndarray] | None:
    """loss and gradients in float64 torch, or None where this process does not load torch."""
    torch = frameworks.reference_library()
    if torch is None:
        return None
    leaves = [torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in arrays]
    loss = loss_fn(torch, *leaves, *(torch.from_numpy(c) for c in constants))
    loss.backward()
    return [loss.detach().numpy()] + [leaf.grad.numpy() for leaf in leaves]


def check(result, expected, rtol=2e-3) -> None:
    if expected is None:  # no reference in this process: see the module's docstring
        return
    for got, want in zip(result, expected, strict=True):
        np.testing.assert_allclose(to_numpy(got), want, rtol=rtol, atol=rtol * np.abs(want).max())


# ---- conv2d ----------------------------------------------------------------------------------
def conv_loss(lib, x, weight):
    return functional(lib).conv2d(x, weight, padding=CONV["padding"]).sum()


@pytest.fixture(scope="module")
def conv_case():
    arrays = _inputs(SEED, CONV["input"], CONV["weight"])
    return arrays, reference(conv_loss, arrays)


@pytest.mark.parametrize("framework", frameworks.params("tinygrad_like", "torch", "jax"))
def test_conv2d_forward_backward(benchmark, framework, conv_case):
    arrays, expected = conv_case
    n, c, h, w = CONV["input"]
    benchmark.group = f"conv2d N={n} C=K={c} {h}x{w} 3x3 pad 1 float32, fwd+bwd"
    result = benchmark(timed_run(framework, conv_loss, arrays))
    check(result, expected)


# ---- softmax ---------------------------------------------------------------------------------
def softmax_loss(lib, x, weights):
    return (functional(lib).softmax(x, -1) * weights).sum()


def numpy_softmax_with_grad(x, weights):
    exps = np.exp(x - x.max(axis=-1, keepdims=True))
    probs = exps / exps.sum(axis=-1, keepdims=True)
    loss = (probs * weights).sum()
    return loss, probs * (weights - (weights * probs).sum(axis=-1, keepdims=True))


@pytest.fixture(scope="module")
def softmax_case():
    x, weights = _inputs(SEED + 1, SOFTMAX_SHAPE, SOFTMAX_SHAPE)
    return x, weights, reference(softmax_loss, [x], [weights])


@pytest.mark.parametrize("framework", frameworks.params("tinygrad_like", "torch", "numpy", "jax"))
def test_softmax_forward_backward(benchmark, framework, softmax_case):
    x, weights, expected = softmax_case
    benchmark.group = f"softmax {SOFTMAX_SHAPE[0]}x{SOFTMAX_SHAPE[1]} float32, fwd+bwd"
    if framework == "numpy":
        benchmark.extra_info["note"] = "backward written by hand"
        result = benchmark(numpy_softmax_with_grad, x, weights)
    else:
        result = benchmark(timed_run(framework, softmax_loss, [x], [weights]))
    check(result, expected)


# ---- large elementwise arithmetic -------------------------------------------------------------
ELEMENTWISE_SHAPE = (4096, 1024)


def elementwise_loss(lib, a, b):
    return (a * b + a).sum()


def numpy_elementwise_with_grads(a, b):
    return (a * b + a).sum(), b + 1.0, a.copy()


@pytest.fixture(scope="module")
def elementwise_case():
    arrays = _inputs(SEED + 3, ELEMENTWISE_SHAPE, ELEMENTWISE_SHAPE)
    return arrays, reference(elementwise_loss, arrays)


@pytest.mark.parametrize("framework", frameworks.params("tinygrad_like", "torch", "numpy", "jax"))
def test_elementwise_forward_backward(benchmark, framework, elementwise_case):
    arrays, expected = elementwise_case
    benchmark.group = (f"elementwise sum(a * b + a) {ELEMENTWISE_SHAPE[0]}x"
                       f"{ELEMENTWISE_SHAPE[1]} float32, fwd+bwd")
    if framework == "numpy":
        benchmark.extra_info["note"] = "backward written by hand"
        result = benchmark(numpy_elementwise_with_grads, *arrays)
    else:
        result = benchmark(timed_run(framework, elementwise_loss, arrays))
    check(result, expected)


# ---- max pooling ---------------------------------------------------------------------------------
POOL_INPUT = (64, 32, 26, 26)


def pool_loss(lib, x, weights):
    return (functional(lib).max_pool2d(x, 2) * weights).sum()


@pytest.fixture(scope="module")
def pool_case():
    x, weights = _inputs(SEED + 4, POOL_INPUT, (POOL_INPUT[0], POOL_INPUT[1], 13, 13))
    return x, weights, reference(pool_loss, [x], [weights])


@pytest.mark.parametrize("framework", frameworks.params("tinygrad_like", "torch", "jax"))
def test_max_pool2d_forward_backward(benchmark, framework, pool_case):
    x, weights, expected = pool_case
    benchmark.group = "max_pool2d 2x2 stride 2 on (64, 32, 26, 26) float32, fwd+bwd"
    result = benchmark(timed_run(framework, pool_loss, [x], [weights]))
    check(result, expected)


# ---- causal attention --------------------------------------------------------------------------
def attention_shape(length: int) -> tuple:
    return (ATTENTION["batch"], ATTENTION["heads"], length, ATTENTION["dim"])


def attention_loss(lib, q, k, v, weights):
    out = functional(lib).scaled_dot_product_attention(q, k, v, is_causal=True)
    return (out * weights).sum()


@pytest.fixture(scope="module")
def attention_case():
    shape = attention_shape(ATTENTION["length"])
    q, k, v, weights = _inputs(SEED + 2, shape, shape, shape, shape)
    return (q, k, v), weights, reference(attention_loss, [q, k, v], [weights])


@pytest.mark.parametrize("framework", frameworks.params("tinygrad_like", "torch", "jax"))
def test_causal_attention_forward_backward(benchmark, framework, attention_case):
    arrays, weights, expected = attention_case
    b, h, t, d = attention_shape(ATTENTION["length"])
    benchmark.group = f"causal attention B={b} H={h} T={t} D={d} float32, fwd+bwd"
    result = benchmark(timed_run(framework, attention_loss, arrays, [weights]))
    check(result, expected)


def peak_memory_growth_mib(framework: str, shape: tuple) -> float:
    """Growth of a fresh process's peak resident set over one fwd+bwd (peak_memory.py)."""
    script = Path(__file__).with_name("peak_memory.py")
    completed = subprocess.run([sys.executable, str(script), framework, json.dumps(shape)],
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)["peak_growth_mib"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.skipif(frameworks.isolated(), reason="each framework is measured in a fresh "
                    "process already, by the run that names no BENCH_FRAMEWORKS")
def test_attention_peak_memory(benchmark):
    """Not a timing: records each framework's peak memory for the README (see report.py)."""
    shape = attention_shape(MEMORY_LENGTH)
    benchmark.group = f"causal attention T={MEMORY_LENGTH} peak memory (fwd+bwd)"
    # JAX's program holds the whole score matrix and takes many seconds to compile and run, so
    # it is measured when timing (`make bench`), not in the quick --benchmark-disable check
    with_jax = frameworks.installed("jax") and not benchmark.disabled
    measured = ["tinygrad_like", "torch"] + (["jax"] if with_jax else [])
    growth = {framework: peak_memory_growth_mib(framework, shape) for framework in measured}
    benchmark.extra_info.update({f"{name}_peak_mib": mib for name, mib in growth.items()})
    benchmark.pedantic(lambda: None, rounds=1)
    scores_mib = np.prod(shape[:3]) * shape[2] * 4 / 2**20
    # tiled attention never holds the T x T scores; the inputs and grads are only 6 x 16 MiB
    assert growth["tinygrad_like"] < scores_mib / 2
