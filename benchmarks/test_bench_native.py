"""Each native kernel against the NumPy kernel it replaces, at the benchmark shapes.

Issue 6 keeps a native kernel only where it beats the NumPy path at the shapes the
benchmark workloads give it, and this suite is where that shows. At collection it runs every
workload of the other suites once (tinygrad_like only) with a recorder on the "cpu" kernel
table. Then for each (kernel, workload) pair the recorder saw, it replays that workload's
calls to that kernel, in order and on copies of the recorded arguments (same shapes, dtypes
and strides), through

- "tinygrad_like": the native kernel, what runs by default, and
- "numpy_path": the NumPy kernel it replaces, what TINYGRAD_LIKE_NUMPY=1 runs.

report.py gathers these into one table of native ÷ NumPy-path ratios. Kernels that no
workload runs get a variant of the nearest workload (VARIANT_KERNELS); the GRU gates run
inside the native GRU-sequence kernels and are timed there (MEASURED_INSIDE), as
im2col/col2im (not kernel-table entries) are inside conv2d. test_every_native_kernel_is_benchmarked fails when a kernel joins the
native table without a case here.

Before timing, both paths run once on the same arguments and must agree, in their outputs and
in what they update in place, so under --benchmark-disable (CI) the suite is a parity test
too.
"""

from __future__ import annotations

import collections
import ctypes
import functools

import numpy as np
import pytest

import test_bench_core as core
from conftest import CHAIN_ELEMENTS
import test_bench_kernels as kernels
import test_bench_training as training
import tinygrad_like as tg
from tinygrad_like.backend import cpu, get_backend, native

if not native.available():
    pytest.skip(f"the native extension is not in use: {native.reason()}",
                allow_module_level=True)

# kernel-table entries that only run inside other native kernels -> those kernels
MEASURED_INSIDE = {"gru_gates": ("gru_sequence",),
                   "gru_gates_backward": ("gru_sequence_backward",)}


# ---- the workloads, as tinygrad_like runs them -------------------------------------------------
def quotient_loss(lib, a, b):
    return ((a - b) / (a * a + 1.0)).sum()


def log_softmax_loss(lib, x, weights):
    return (kernels.functional(lib).log_softmax(x, -1) * weights).sum()


def _with_constants(loss_fn, leaves, *constants):
    """kernels.run_with_grads for a loss that also takes constant tensors (its weights)."""
    tensors = [tg.from_numpy(c) for c in constants]
    return kernels.run_with_grads(tg, lambda lib, *xs: loss_fn(lib, *xs, *tensors), leaves)


def workloads() -> dict:
    """Workload name -> a function building the call that runs the workload's forward and
    backward (and optimizer step) once; built one at a time, as their inputs are large."""
    inputs = functools.partial(kernels._inputs, kernels.SEED)
    rows, pooled = kernels.SOFTMAX_SHAPE, kernels.POOL_INPUT
    heads = kernels.attention_shape(kernels.ATTENTION["length"])
    pool_weights = pooled[:2] + (pooled[2] // 2, pooled[3] // 2)
    same_shape = (kernels.ELEMENTWISE_SHAPE, kernels.ELEMENTWISE_SHAPE)
    step = functools.partial(training.make_step, "tinygrad_like")

    def chain():
        x = np.random.default_rng(0).uniform(-1.0, 1.0, CHAIN_ELEMENTS).astype(np.float32)
        return core.autograd_runner(tg, core.elementwise_chain, x)

    def with_weights(loss_fn, leaves: int, *shapes):
        arrays = inputs(*shapes)
        return _with_constants(loss_fn, arrays[:leaves], *arrays[leaves:])

    return {
        "elementwise chain": chain,
        "conv2d": lambda: kernels.run_with_grads(
            tg, kernels.conv_loss, inputs(kernels.CONV["input"], kernels.CONV["weight"])),
        "softmax": lambda: with_weights(kernels.softmax_loss, 1, rows, rows),
        "elementwise": lambda: kernels.run_with_grads(tg, kernels.elementwise_loss,
                                                      inputs(*same_shape)),
        "max_pool2d": lambda: with_weights(kernels.pool_loss, 1, pooled, pool_weights),
        "attention": lambda: with_weights(kernels.attention_loss, 3, *[heads] * 4),
        **{name: functools.partial(step, name) for name in training.WORKLOADS},
        # variants, for the native kernels that none of the workloads runs
        "elementwise, (a - b) / (a * a + 1)": lambda: kernels.run_with_grads(
            tg, quotient_loss, inputs(*same_shape)),
        "softmax with log_softmax": lambda: with_weights(log_softmax_loss, 1, rows, rows),
        "cnn with AvgPool2d": lambda: step(
            "cnn", build=functools.partial(training.cnn, pool="AvgPool2d")),
        "gru_lm with LSTM": lambda: step(
            "gru_lm", build=functools.partial(training.gru_lm, recurrent="LSTM")),
        "mlp with SGD (momentum 0.9)": lambda: step(
            "mlp", optimizer_spec=("SGD", {"lr": 1e-2, "momentum": 0.9})),
    }


# workload -> the native kernels it calls, each timed at the workload's calls to it
# (test_the_timed_kernels_are_those_the_workloads_call keeps this up to date)
WORKLOAD_KERNELS = {
    "elementwise chain": ("add", "mul", "sub", "sum"),
    "conv2d": ("conv2d", "conv2d_backward_input", "conv2d_backward_weight", "sum"),
    "softmax": ("mul", "softmax", "softmax_backward", "sum"),
    "elementwise": ("add", "mul", "sum"),
    "max_pool2d": ("max_pool2d", "max_pool2d_backward", "mul", "sum"),
    "attention": ("attention", "attention_backward", "mul", "sum"),
    "mlp": ("adam_step", "cross_entropy", "cross_entropy_backward", "div", "linear", "matmul",
            "relu", "relu_backward", "sum"),
    "cnn": ("adam_step", "conv2d", "conv2d_backward_input", "conv2d_backward_weight",
            "cross_entropy", "cross_entropy_backward", "div", "linear", "matmul", "max_pool2d",
            "max_pool2d_backward", "relu", "relu_backward", "sum"),
    "gru_lm": ("adam_step", "cross_entropy", "cross_entropy_backward", "div",
               "embedding_backward", "gru_sequence", "gru_sequence_backward", "linear",
               "matmul", "sum"),
    "transformer": ("adam_step", "add", "attention", "attention_backward", "cross_entropy",
                    "cross_entropy_backward", "div", "embedding_backward", "layer_norm",
                    "layer_norm_backward", "linear", "matmul", "relu", "relu_backward", "sum"),
}
# variant -> the kernels it is timed for. The workloads call - and / only on 16 floats or
# NumPy scalars, which the native entries hand to NumPy, so their kernels never run there.
VARIANT_KERNELS = {
    "elementwise, (a - b) / (a * a + 1)": ("div", "sub"),
    "softmax with log_softmax": ("log_softmax", "log_softmax_backward"),
    "cnn with AvgPool2d": ("avg_pool2d", "avg_pool2d_backward"),
    "gru_lm with LSTM": ("lstm_gates", "lstm_gates_backward"),
    "mlp with SGD (momentum 0.9)": ("sgd_step",),
}
# (kernel, workload), in workload order: recorded_calls keeps one workload's calls at a time
CASES = [(kernel, workload)
         for workload, names in {**WORKLOAD_KERNELS, **VARIANT_KERNELS}.items()
         for kernel in names]


# ---- recording and replaying kernel calls ----------------------------------------------------
def snapshot(value):
    """A copy of a kernel argument. An array keeps its strides (a transposed view stays
    transposed, a broadcast stays a broadcast), so a replayed call takes the path the
    recorded one took; lists and tuples are copied through, anything else is kept."""
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(item) for item in value)
    if not isinstance(value, np.ndarray):
        return value
    if value.size == 0:
        return value.copy()
    low, high = np.lib.array_utils.byte_bounds(value)
    span = np.ctypeslib.as_array((ctypes.c_uint8 * (high - low)).from_address(low)).copy()
    return np.ndarray(value.shape, value.dtype, buffer=span, offset=value.ctypes.data - low,
                      strides=value.strides)


@functools.cache
def kernel_tables() -> dict:
    """"numpy_path": the NumPy kernel table; "tinygrad_like": the native kernels replacing it."""
    numpy_table = cpu.numpy_kernels()
    return {"numpy_path": numpy_table, "tinygrad_like": cpu.native_kernels(numpy_table)}


@functools.lru_cache(maxsize=1)  # the calls are large: one workload's at a time
def recorded_calls(workload: str) -> dict:
    """kernel -> the arguments of each call the workload made to that native kernel, in
    order, copied before the call (some kernels update their arguments)."""
    table = get_backend("cpu").kernels
    originals = {name: getattr(table, name) for name in kernel_tables()["tinygrad_like"]}
    calls = collections.defaultdict(list)

    def recording(name, kernel):
        def call(*args):
            calls[name].append(snapshot(args))
            return kernel(*args)
        return call

    run = workloads()[workload]()
    try:
        for name, kernel in originals.items():
            setattr(table, name, recording(name, kernel))
        run()
    finally:
        for name, kernel in originals.items():
            setattr(table, name, kernel)
    return dict(calls)


def replay(kernel, calls):
    """A call running `kernel` on each of `calls`' arguments, returning the results."""
    return lambda: [kernel(*args) for args in calls]


def arrays_of(value):
    """The arrays in a kernel's result or arguments, nested tuples and lists included."""
    if isinstance(value, (np.ndarray, np.generic)):  # NumPy's whole-array sum: a scalar
        yield np.asarray(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from arrays_of(item)


@functools.cache
def check_paths_agree(case: tuple) -> None:
    """Both paths once on the same arguments: the same results and in-place updates."""
    name, workload = case
    recorded = recorded_calls(workload)[name]
    done = {}
    for path, table in kernel_tables().items():
        calls = snapshot(recorded)
        done[path] = (replay(table[name], calls)(), calls)
    # a result near zero after cancellation (a sum of gradients) is judged on its inputs' scale
    input_scale = max((float(np.abs(a).max()) for a in arrays_of(recorded)
                       if a.size and a.dtype.kind == "f"), default=0.0)
    for got, want in zip(arrays_of(done["tinygrad_like"]), arrays_of(done["numpy_path"]),
                         strict=True):
        scale = max(float(np.abs(want).max()) if want.size else 0.0, input_scale)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=f"{name} native against NumPy in {workload}")


def describe(args) -> str:
    """A call's array arguments as dtype[shape] (lists of arrays by their count)."""
    parts = []
    for arg in args:
        if isinstance(arg, np.ndarray):
            parts.append(f"{arg.dtype}{list(arg.shape)}")
        elif isinstance(arg, (list, tuple)) and any(isinstance(a, np.ndarray) for a in arg):
            parts.append(f"{len(arg)} arrays")
    return ", ".join(parts)


@pytest.mark.benchmark(max_time=0.5)
@pytest.mark.parametrize("framework", ("tinygrad_like", "numpy_path"))
@pytest.mark.parametrize("case", CASES, ids=[f"{kernel}-{workload}" for kernel, workload in CASES])
def test_native_kernel_against_numpy_path(benchmark, case, framework):
    check_paths_agree(case)
    name, workload = case
    calls = snapshot(recorded_calls(workload)[name])
    benchmark.group = f"native {name} in {workload}"
    benchmark.extra_info.update(framework=framework, kernel=name, workload=workload,
                                calls=len(calls), arguments=describe(calls[0]))
    benchmark(replay(kernel_tables()[framework][name], calls))


@pytest.mark.parametrize("workload", list(WORKLOAD_KERNELS) + list(VARIANT_KERNELS))
def test_the_timed_kernels_are_those_the_workloads_call(workload):
    called = set(recorded_calls(workload))
    if workload in WORKLOAD_KERNELS:
        assert set(WORKLOAD_KERNELS[workload]) == called, (
            f"{workload} calls the native kernels {sorted(called)}: update WORKLOAD_KERNELS")
    else:
        assert set(VARIANT_KERNELS[workload]) <= called, f"{workload} calls {sorted(called)}"


def test_every_native_kernel_is_benchmarked():
    timed = {name for name, _ in CASES}
    timed |= {inner for inner, outer in MEASURED_INSIDE.items() if timed.intersection(outer)}
    missing = sorted(set(kernel_tables()["tinygrad_like"]) - timed)
    assert not missing, (f"native kernels no benchmark workload runs: {missing}; give each a "
                         "variant of a workload in VARIANT_KERNELS")
