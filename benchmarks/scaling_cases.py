"""The scaling measurements: each cost timed over a range of its work, per framework.

Every point is the median of a few samples after warm-up; a sample times enough back-to-back
calls to last `min_sample_s`, so the clock's resolution does not swamp calls of a few
microseconds, and points whose single call is long get fewer samples (`point_budget_s`).
The workloads are the benchmark suite's own (test_bench_kernels.py's losses, the training
models of test_bench_training.py), only their sizes vary here.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import median
from typing import Callable

import numpy as np
import torch

import tinygrad_like as tg
from test_bench_kernels import attention_loss, conv_loss, peak_memory_growth_mib, timed_run
from test_bench_training import WORKLOADS, step_on_batch

AUTOGRAD_LIBRARIES = {"tinygrad_like": tg, "torch": torch}
ARRAY_LIBRARIES = {**AUTOGRAD_LIBRARIES, "numpy": np}
TO_ARRAY = {"tinygrad_like": tg.from_numpy, "torch": torch.from_numpy, "numpy": lambda a: a}
SEED = 11

# op -> (forward through `lib`, float32 arrays each element reads or writes)
ELEMENTWISE_OPS = {"a * b": (lambda lib, a, b: a * b, 3),
                   "exp(a)": (lambda lib, a, b: lib.exp(a), 2)}
ATTENTION_SHAPE = {"batch": 1, "heads": 2, "dim": 64}
CONV_SHAPE = {"batch": 8, "height": 32, "width": 32, "kernel": 3}
TRAINING_INPUTS = {"mlp": (784,), "cnn": (1, 28, 28)}  # one sample's shape
TRAINING_CLASSES = 10


@dataclass(frozen=True)
class Timing:
    repeats: int  # samples per point when a call is cheap
    min_repeats: int  # samples per point however long a call is
    point_budget_s: float  # about how long one point may take when that allows min_repeats
    min_sample_s: float  # a sample repeats a cheap call until it lasts this long
    warmup_s: float  # warm-up calls until this long has passed (at least two calls)


def time_call(call: Callable[[], object], timing: Timing) -> dict:
    """Median seconds per call over the samples, after warm-up calls (the last sizes the
    samples) and, for a cheap call, one discarded sample. The warm-up runs for
    timing.warmup_s: a training step's first few calls at a new batch size run up to twice as
    long (the allocator's and the kernels' buffers for the new shapes)."""
    call()  # first-call work: lazy initialisation, the allocator's first pages
    warmup_end = time.perf_counter() + timing.warmup_s
    while True:
        start = time.perf_counter()
        call()
        single = time.perf_counter() - start
        if start + single >= warmup_end:
            break
    calls_per_sample = max(1, math.ceil(timing.min_sample_s / max(single, 1e-9)))
    affordable = int(timing.point_budget_s / max(single, 1e-9))
    samples = max(timing.min_repeats, min(timing.repeats, affordable))
    if calls_per_sample > 1:  # a cheap call: one discarded sample warms the caches further
        for _ in range(calls_per_sample):
            call()
    seconds = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(calls_per_sample):
            call()
        seconds.append((time.perf_counter() - start) / calls_per_sample)
    return {"median_s": median(seconds), "samples_s": seconds, "calls_per_sample": calls_per_sample}


def _arrays(rng: np.random.Generator, *shapes) -> list[np.ndarray]:
    return [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]


def _series(frameworks, points: list, measure: Callable, progress: Callable) -> dict:
    """{framework: [measure(framework, point) + {"x": point}, ...]}, reporting each point."""
    series = {framework: [] for framework in frameworks}
    for point in points:
        for framework in frameworks:
            result = {"x": point, **measure(framework, point)}
            series[framework].append(result)
            progress(f"{point} {framework}: {result['median_s'] * 1e3:.4g} ms")
    return series


def per_op(sizes: list[int], timing: Timing, progress: Callable) -> dict:
    """Forward time of each elementwise op vs elements: tinygrad_like, torch, NumPy."""
    rng = np.random.default_rng(SEED)
    results = {}
    for name, (forward, arrays_moved) in ELEMENTWISE_OPS.items():
        inputs = {size: _arrays(rng, (size,), (size,)) for size in sizes}

        def measure(framework, size):
            a, b = (TO_ARRAY[framework](array) for array in inputs[size])
            lib = ARRAY_LIBRARIES[framework]
            return time_call(lambda: forward(lib, a, b), timing)

        results[name] = {"bytes_per_element": 4 * arrays_moved,
                         "series": _series(ARRAY_LIBRARIES, sizes, measure,
                                           lambda line: progress(f"{name} {line}"))}
    return {"ops": results}


def matmul(sizes: list[int], timing: Timing, progress: Callable) -> dict:
    """float32 (n, n) @ (n, n) forward: GFLOP/s = 2 n^3 / time."""
    rng = np.random.default_rng(SEED + 1)

    def measure(framework, n):
        a, b = (TO_ARRAY[framework](array) for array in _arrays(rng, (n, n), (n, n)))
        result = time_call(lambda: a @ b, timing)
        return {**result, "gflops": 2 * n**3 / result["median_s"] / 1e9}

    return {"series": _series(ARRAY_LIBRARIES, sizes, measure, progress)}


def attention_flops(length: int) -> float:
    """Causal fwd+bwd as matmuls over the lower triangle: Q K^T and P V forward, dV, dP, dQ
    and dK backward, each 2 T^2 D FLOP in full and half of that under the causal mask."""
    batch, heads, dim = (ATTENTION_SHAPE[key] for key in ("batch", "heads", "dim"))
    return 6 * length**2 * dim * batch * heads


def attention_shape(length: int) -> tuple:
    return ATTENTION_SHAPE["batch"], ATTENTION_SHAPE["heads"], length, ATTENTION_SHAPE["dim"]


def attention(lengths: list[int], memory_lengths: list[int], timing: Timing,
              progress: Callable) -> dict:
    """Causal attention fwd+bwd time vs T, and the peak memory growth of a fresh process each."""
    rng = np.random.default_rng(SEED + 2)

    def measure(framework, length):
        shape = attention_shape(length)
        q, k, v, weights = _arrays(rng, shape, shape, shape, shape)
        result = time_call(timed_run(framework, attention_loss, [q, k, v], [weights]), timing)
        return {**result, "flops": attention_flops(length)}

    series = _series(AUTOGRAD_LIBRARIES, lengths, measure, progress)
    jobs = [(framework, length) for length in memory_lengths for framework in AUTOGRAD_LIBRARIES]
    # each job is a process of its own whose peak resident set is all that is read, so two
    # at a time change the wall time, not the numbers
    with ThreadPoolExecutor(2) as pool:
        grown = list(pool.map(lambda job: peak_memory_growth_mib(job[0], attention_shape(job[1])),
                              jobs))
    memory = {framework: [] for framework in AUTOGRAD_LIBRARIES}
    for (framework, length), mib in zip(jobs, grown, strict=True):
        memory[framework].append({"x": length, "peak_growth_mib": mib})
        progress(f"T={length} {framework}: peak memory grew by {mib:.1f} MiB")
    return {"shape": ATTENTION_SHAPE, "series": series, "memory": memory}


def conv2d_flops(channels: int) -> float:
    """Forward 2 N K C kh kw H W FLOP (padding keeps H x W); each of the input and weight
    gradients costs as much again."""
    n, h, w, kernel = (CONV_SHAPE[key] for key in ("batch", "height", "width", "kernel"))
    return 3 * 2 * n * channels * channels * kernel * kernel * h * w


def conv2d(channels: list[int], timing: Timing, progress: Callable) -> dict:
    """conv2d 3x3, padding 1, C = K channels, fwd+bwd (loss = sum of the output) vs channels."""
    rng = np.random.default_rng(SEED + 3)
    n, h, w, kernel = (CONV_SHAPE[key] for key in ("batch", "height", "width", "kernel"))

    def measure(framework, c):
        arrays = _arrays(rng, (n, c, h, w), (c, c, kernel, kernel))
        result = time_call(timed_run(framework, conv_loss, arrays), timing)
        return {**result, "flops": conv2d_flops(c)}

    return {"shape": CONV_SHAPE, "series": _series(AUTOGRAD_LIBRARIES, channels, measure, progress)}


def training_step(framework: str, workload: str, batch_size: int) -> Callable[[], float]:
    """test_bench_training.py's model and optimizer for `workload`, on a batch of batch_size."""
    lib = AUTOGRAD_LIBRARIES[framework]
    build, optimizer_name, options = WORKLOADS[workload]
    lib.manual_seed(0)
    model = build(lib)
    optimizer = getattr(lib.optim, optimizer_name)(model.parameters(), **options)
    rng = np.random.default_rng(SEED + 4)
    inputs = lib.tensor(rng.standard_normal((batch_size, *TRAINING_INPUTS[workload]),
                                            dtype=np.float32))
    targets = lib.tensor(rng.integers(0, TRAINING_CLASSES, batch_size))
    return step_on_batch(lib, model, optimizer, inputs, targets)


def training_flops_per_sample(workload: str) -> float:
    """3 x 2 x the multiply-adds of one sample's forward through the Linear and Conv2d layers
    (counted with forward hooks on the PyTorch model); the backward costs about twice the
    forward, the optimizer and the elementwise layers are left out."""
    model = WORKLOADS[workload][0](torch)
    multiply_adds = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            multiply_adds.append(output.numel() * module.in_features)
        elif isinstance(module, torch.nn.Conv2d):
            window = module.in_channels // module.groups * math.prod(module.kernel_size)
            multiply_adds.append(output.numel() * window)

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros((1, *TRAINING_INPUTS[workload])))
    return 3 * 2 * sum(multiply_adds)


def training(batch_sizes: list[int], timing: Timing, progress: Callable) -> dict:
    """A full training step (zero_grad, forward, backward, optimizer step) vs batch size."""
    results = {}
    for workload in TRAINING_INPUTS:
        def measure(framework, batch_size):
            result = time_call(training_step(framework, workload, batch_size), timing)
            return {**result, "samples_per_s": batch_size / result["median_s"]}

        results[workload] = {"flops_per_sample": training_flops_per_sample(workload),
                             "series": _series(AUTOGRAD_LIBRARIES, batch_sizes, measure,
                                               lambda line: progress(f"{workload} {line}"))}
    return {"workloads": results}
