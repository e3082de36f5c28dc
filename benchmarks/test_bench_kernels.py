"""The heavy CPU ops, each forward + backward, tinygrad_like beside PyTorch CPU (and NumPy).

- conv2d: N=32, C=K=64, 32x32, 3x3, padding 1, float32; the loss is the sum of the output.
- softmax: (4096, 1024) float32 along the last axis; loss = sum(softmax(x) * w) with a fixed
  w, so the backward is not trivially zero. NumPy's floor is the same written out by hand.
- elementwise: sum(a * b + a) over two (4096, 1024) float32 arrays, the large same-shape
  arithmetic the native pool takes; NumPy's floor is written out by hand.
- max_pool2d: 2x2 windows at stride 2 over (64, 32, 26, 26), the CNN step's first pooling.
- causal attention: B=4, H=8, T=512, D=64 float32, loss = sum(out * w).
- attention peak memory at T=2048: forward + backward run in a fresh process per framework,
  and the growth of its peak resident set (Linux VmHWM, reset just before) is recorded (an un-tiled attention
  stores B*H*T*T scores: 512 MiB here).

Each timed case is checked once, outside the timing, against a float64 PyTorch reference.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from test_bench_core import LIBRARIES, to_numpy

SEED = 7
CONV = {"input": (32, 64, 32, 32), "weight": (64, 64, 3, 3), "padding": 1}
SOFTMAX_SHAPE = (4096, 1024)
ATTENTION = {"batch": 4, "heads": 8, "length": 512, "dim": 64}
MEMORY_LENGTH = 2048


def _inputs(seed: int, *shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]


def functional(lib):
    return F if lib is tg else torch.nn.functional


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


def reference(loss_fn, arrays) -> list[np.ndarray]:
    leaves = [torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in arrays]
    loss = loss_fn(torch, *leaves)
    loss.backward()
    return [loss.detach().numpy()] + [leaf.grad.numpy() for leaf in leaves]


def check(result, expected, rtol=2e-3) -> None:
    for got, want in zip(result, expected, strict=True):
        np.testing.assert_allclose(to_numpy(got), want, rtol=rtol, atol=rtol * np.abs(want).max())


# ---- conv2d ----------------------------------------------------------------------------------
def conv_loss(lib, x, weight):
    return functional(lib).conv2d(x, weight, padding=CONV["padding"]).sum()


@pytest.fixture(scope="module")
def conv_case():
    arrays = _inputs(SEED, CONV["input"], CONV["weight"])
    return arrays, reference(conv_loss, arrays)


@pytest.mark.parametrize("framework", ("tinygrad_like", "torch"))
def test_conv2d_forward_backward(benchmark, framework, conv_case):
    arrays, expected = conv_case
    n, c, h, w = CONV["input"]
    benchmark.group = f"conv2d N={n} C=K={c} {h}x{w} 3x3 pad 1 float32, fwd+bwd"
    result = benchmark(run_with_grads(LIBRARIES[framework], conv_loss, arrays))
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
    expected = reference(lambda lib, x: softmax_loss(lib, x, torch.from_numpy(weights)), [x])
    return x, weights, expected


@pytest.mark.parametrize("framework", ("tinygrad_like", "torch", "numpy"))
def test_softmax_forward_backward(benchmark, framework, softmax_case):
    x, weights, expected = softmax_case
    benchmark.group = f"softmax {SOFTMAX_SHAPE[0]}x{SOFTMAX_SHAPE[1]} float32, fwd+bwd"
    if framework == "numpy":
        benchmark.extra_info["note"] = "backward written by hand"
        result = benchmark(numpy_softmax_with_grad, x, weights)
    else:
        lib = LIBRARIES[framework]
        constant = lib.from_numpy(weights)
        result = benchmark(run_with_grads(lib, lambda lib, x: softmax_loss(lib, x, constant), [x]))
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


@pytest.mark.parametrize("framework", ("tinygrad_like", "torch", "numpy"))
def test_elementwise_forward_backward(benchmark, framework, elementwise_case):
    arrays, expected = elementwise_case
    benchmark.group = (f"elementwise sum(a * b + a) {ELEMENTWISE_SHAPE[0]}x"
                       f"{ELEMENTWISE_SHAPE[1]} float32, fwd+bwd")
    if framework == "numpy":
        benchmark.extra_info["note"] = "backward written by hand"
        result = benchmark(numpy_elementwise_with_grads, *arrays)
    else:
        result = benchmark(run_with_grads(LIBRARIES[framework], elementwise_loss, arrays))
    check(result, expected)


# ---- max pooling ---------------------------------------------------------------------------------
POOL_INPUT = (64, 32, 26, 26)


def pool_loss(lib, x, weights):
    return (functional(lib).max_pool2d(x, 2) * weights).sum()


@pytest.fixture(scope="module")
def pool_case():
    x, weights = _inputs(SEED + 4, POOL_INPUT, (POOL_INPUT[0], POOL_INPUT[1], 13, 13))
    expected = reference(lambda lib, x: pool_loss(lib, x, torch.from_numpy(weights)), [x])
    return x, weights, expected


@pytest.mark.parametrize("framework", ("tinygrad_like", "torch"))
def test_max_pool2d_forward_backward(benchmark, framework, pool_case):
    x, weights, expected = pool_case
    benchmark.group = "max_pool2d 2x2 stride 2 on (64, 32, 26, 26) float32, fwd+bwd"
    lib = LIBRARIES[framework]
    constant = lib.from_numpy(weights)
    result = benchmark(run_with_grads(lib, lambda lib, x: pool_loss(lib, x, constant), [x]))
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
    expected = reference(
        lambda lib, q, k, v: attention_loss(lib, q, k, v, torch.from_numpy(weights)), [q, k, v])
    return (q, k, v), weights, expected


@pytest.mark.parametrize("framework", ("tinygrad_like", "torch"))
def test_causal_attention_forward_backward(benchmark, framework, attention_case):
    arrays, weights, expected = attention_case
    b, h, t, d = attention_shape(ATTENTION["length"])
    benchmark.group = f"causal attention B={b} H={h} T={t} D={d} float32, fwd+bwd"
    lib = LIBRARIES[framework]
    constant = lib.from_numpy(weights)
    loss = lambda lib, q, k, v: attention_loss(lib, q, k, v, constant)  # noqa: E731
    result = benchmark(run_with_grads(lib, loss, arrays))
    check(result, expected)


PEAK_MEMORY_SCRIPT = """
import json, sys
import numpy as np

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))

framework, shape = sys.argv[1], tuple(json.loads(sys.argv[2]))
if framework == "torch":
    import torch as lib
else:
    import tinygrad_like as lib
attention = lib.nn.functional.scaled_dot_product_attention
rng = np.random.default_rng(0)
leaves = [lib.from_numpy(rng.standard_normal(shape, dtype=np.float32)).requires_grad_()
          for _ in range(3)]
grad = lib.from_numpy(rng.standard_normal(shape, dtype=np.float32))
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # reset the peak resident set (VmHWM) to the current one
before = status_kib("VmRSS:")
out = attention(*leaves, is_causal=True)
out.backward(grad)
print(json.dumps({"peak_growth_mib": (status_kib("VmHWM:") - before) / 1024}))
"""


def peak_memory_growth_mib(framework: str, shape: tuple) -> float:
    """Growth of a fresh process's peak resident set over one fwd+bwd (Linux VmHWM, reset first)."""
    completed = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT, framework,
                                json.dumps(shape)], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)["peak_growth_mib"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_attention_peak_memory(benchmark):
    """Not a timing: records both frameworks' peak memory for the README (see report.py)."""
    shape = attention_shape(MEMORY_LENGTH)
    benchmark.group = f"causal attention T={MEMORY_LENGTH} peak memory (fwd+bwd)"
    growth = {framework: peak_memory_growth_mib(framework, shape)
              for framework in ("tinygrad_like", "torch")}
    benchmark.extra_info.update({f"{name}_peak_mib": mib for name, mib in growth.items()})
    benchmark.pedantic(lambda: None, rounds=1)
    scores_mib = np.prod(shape[:3]) * shape[2] * 4 / 2**20
    # tiled attention never holds the T x T scores; the inputs and grads are only 6 x 16 MiB
    assert growth["tinygrad_like"] < scores_mib / 2
