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
workload runs get a variant of the nearest workload (VARIANTS); im2col/col2im and the GRU
gates run inside the native conv2d and GRU-sequence kernels and are timed there
(MEASURED_INSIDE). test_every_native_kernel_is_benchmarked fails when a kernel joins the
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
MEASURED_INSIDE = {"im2col": ("conv2d", "conv2d_backward_weight"),
                   "col2im": ("conv2d_backward_input",),
                   "gru_gates": ("gru_sequence",),
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


def workload_runs() -> dict:
    """Workload name -> a call running its forward and backward (and optimizer step)."""
    inputs = functools.partial(kernels._inputs, kernels.SEED)
    rows, pooled = kernels.SOFTMAX_SHAPE, kernels.POOL_INPUT
    heads = kernels.attention_shape(kernels.ATTENTION["length"])
    x, weights = inputs(rows, rows)
    pool_input, pool_weights = inputs(pooled, pooled[:2] + (pooled[2] // 2, pooled[3] // 2))
    q, k, v, attention_weights = inputs(heads, heads, heads, heads)
    chain = np.random.default_rng(0).uniform(-1.0, 1.0, CHAIN_ELEMENTS).astype(np.float32)
    step = functools.partial(training.make_step, "tinygrad_like")
    return {
        "elementwise chain": core.autograd_runner(tg, core.elementwise_chain, chain),
        "conv2d": kernels.run_with_grads(tg, kernels.conv_loss,
                                         inputs(kernels.CONV["input"], kernels.CONV["weight"])),
        "softmax": _with_constants(kernels.softmax_loss, [x], weights),
        "elementwise": kernels.run_with_grads(tg, kernels.elementwise_loss,
                                              inputs(kernels.ELEMENTWISE_SHAPE,
                                                     kernels.ELEMENTWISE_SHAPE)),
        "max_pool2d": _with_constants(kernels.pool_loss, [pool_input], pool_weights),
        "attention": _with_constants(kernels.attention_loss, [q, k, v], attention_weights),
        **{name: step(name) for name in training.WORKLOADS},
        # VARIANTS, for the native kernels that none of the workloads runs
        "elementwise, (a - b) / (a * a + 1)": kernels.run_with_grads(
            tg, quotient_loss, inputs(kernels.ELEMENTWISE_SHAPE, kernels.ELEMENTWISE_SHAPE)),
        "softmax with log_softmax": _with_constants(log_softmax_loss, [x], weights),
        "cnn with AvgPool2d": step("cnn", build=functools.partial(training.cnn,
                                                                  pool="AvgPool2d")),
        "gru_lm with LSTM": step("gru_lm", build=functools.partial(training.gru_lm,
                                                                    recurrent="LSTM")),
        "mlp with SGD (momentum 0.9)": step("mlp", optimizer=("SGD", {"lr": 1e-2,
                                                                      "momentum": 0.9})),
    }


# variant -> the kernels it is timed for. The workloads call - and / only on 16 floats or
# NumPy scalars, which the native entries hand to NumPy, so their kernels never run there.
VARIANTS = {"elementwise, (a - b) / (a * a + 1)": ("sub", "div"),
            "softmax with log_softmax": ("log_softmax", "log_softmax_backward"),
            "cnn with AvgPool2d": ("avg_pool2d", "avg_pool2d_backward"),
            "gru_lm with LSTM": ("lstm_gates", "lstm_gates_backward"),
            "mlp with SGD (momentum 0.9)": ("sgd_step",)}


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
    return {"numpy_path": vars(numpy_table), "tinygrad_like": native.native_kernels(numpy_table)}


@functools.cache
def recorded_calls() -> dict:
    """(kernel, workload) -> the arguments of each call the workload made to that native
    kernel, in order, copied before the call (some kernels update their arguments). A variant
    counts only for the kernels VARIANTS names for it."""
    table = get_backend("cpu").kernels
    names = sorted(kernel_tables()["tinygrad_like"])
    originals = {name: getattr(table, name) for name in names}
    calls = collections.defaultdict(list)
    workload = None

    def recording(name, kernel):
        def call(*args):
            calls[(name, workload)].append(snapshot(args))
            return kernel(*args)
        return call

    runs = workload_runs()
    try:
        for name in names:
            setattr(table, name, recording(name, originals[name]))
        for workload, run in runs.items():
            run()
    finally:
        for name, kernel in originals.items():
            setattr(table, name, kernel)
    return {(name, workload): args for (name, workload), args in calls.items()
            if name in VARIANTS.get(workload, (name,))}


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
    name, _ = case
    done = {}
    for path, table in kernel_tables().items():
        calls = snapshot(recorded_calls()[case])
        done[path] = (replay(table[name], calls)(), calls)
    # a result near zero after cancellation (a sum of gradients) is judged on its inputs' scale
    input_scale = max((float(np.abs(a).max()) for a in arrays_of(recorded_calls()[case])
                       if a.size and a.dtype.kind == "f"), default=0.0)
    for got, want in zip(arrays_of(done["tinygrad_like"]), arrays_of(done["numpy_path"]),
                         strict=True):
        scale = max(float(np.abs(want).max()) if want.size else 0.0, input_scale)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=f"{name} native against NumPy in {case[1]}")


def describe(args) -> str:
    """A call's array arguments as dtype[shape] (lists of arrays by their count)."""
    parts = []
    for arg in args:
        if isinstance(arg, np.ndarray):
            parts.append(f"{arg.dtype}{list(arg.shape)}")
        elif isinstance(arg, (list, tuple)) and any(isinstance(a, np.ndarray) for a in arg):
            parts.append(f"{len(arg)} arrays")
    return ", ".join(parts)


CASES = sorted(recorded_calls())


@pytest.mark.benchmark(max_time=0.5)
@pytest.mark.parametrize("framework", ("tinygrad_like", "numpy_path"))
@pytest.mark.parametrize("case", CASES, ids=[f"{kernel}-{workload}" for kernel, workload in CASES])
def test_native_kernel_against_numpy_path(benchmark, case, framework):
    check_paths_agree(case)
    name, workload = case
    calls = snapshot(recorded_calls()[case])
    benchmark.group = f"native {name} in {workload}"
    benchmark.extra_info.update(framework=framework, kernel=name, workload=workload,
                                calls=len(calls), arguments=describe(calls[0]))
    benchmark(replay(kernel_tables()[framework][name], calls))


def test_every_native_kernel_is_benchmarked():
    timed = {name for name, _ in recorded_calls()}
    for variant, names in VARIANTS.items():
        assert all((name, variant) in recorded_calls() for name in names), variant
    timed |= {inner for inner, outer in MEASURED_INSIDE.items() if timed.intersection(outer)}
    missing = sorted(set(kernel_tables()["tinygrad_like"]) - timed)
    assert not missing, (f"native kernels no benchmark workload calls: {missing}; give each a "
                         "workload variant in test_bench_native.workload_runs")
