"""Deterministic mode (tinygrad_like/determinism.py): the flag, the "cuda" launchers' choice
of kernel, the error for what has no deterministic variant, and what the CPU device does.

The kernels themselves (segment_sum.cu against the NumPy references, under shuffled
schedules) are checked in test_cuda_kernels.py; here the CUDA C launchers run on the CPU
build (cpu_shim.h) so that their launch planning can be watched without a GPU.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

import tinygrad_like as tg
from tinygrad_like import determinism
from tinygrad_like.backend import cpu, native, reference_conv
from tinygrad_like.kernels import cuda as cuda_c
from tinygrad_like.kernels.cuda import runtime as cuda_runtime
from tinygrad_like.kernels.cuda import segment_sum_launch as segment_sum_kernels

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"tinygrad_like._C is not in use: {native.reason()}")


@pytest.fixture(autouse=True)
def restore_mode():
    """The flag is process-wide: every test here leaves it off, as it found it."""
    yield
    tg.use_deterministic_algorithms(False)


# ---- the flag --------------------------------------------------------------------------------
def test_flag_defaults_off_and_round_trips():
    assert not tg.are_deterministic_algorithms_enabled()
    assert not tg.is_deterministic_algorithms_warn_only_enabled()
    tg.use_deterministic_algorithms(True)
    assert tg.are_deterministic_algorithms_enabled()
    assert not tg.is_deterministic_algorithms_warn_only_enabled()
    tg.use_deterministic_algorithms(True, warn_only=True)
    assert tg.is_deterministic_algorithms_warn_only_enabled()
    tg.use_deterministic_algorithms(False)
    assert not tg.are_deterministic_algorithms_enabled()
    assert not tg.is_deterministic_algorithms_warn_only_enabled()


@pytest.mark.parametrize("args, kwargs, name", [((1,), {}, "mode"), ((np.True_,), {}, "mode"),
                                                 ((True,), {"warn_only": 1}, "warn_only")])
def test_flag_takes_only_bools(args, kwargs, name):
    with pytest.raises(TypeError, match=f"{name} must be a bool"):
        tg.use_deterministic_algorithms(*args, **kwargs)
    with pytest.raises(TypeError):
        tg.use_deterministic_algorithms(True, False)  # warn_only is keyword-only, as in torch
    assert not tg.are_deterministic_algorithms_enabled()


def test_flag_is_process_wide_not_thread_local():
    seen = []
    setter = threading.Thread(target=tg.use_deterministic_algorithms, args=(True,))
    setter.start()
    setter.join()
    reader = threading.Thread(target=lambda: seen.append(tg.are_deterministic_algorithms_enabled()))
    reader.start()
    reader.join()
    assert seen == [True] and tg.are_deterministic_algorithms_enabled()


def test_backend_info_says_when_the_mode_is_on():
    assert "deterministic" not in tg.backend_info(devices=("cpu",), print_table=False)
    tg.use_deterministic_algorithms(True)
    assert "deterministic algorithms on" in tg.backend_info(devices=("cpu",), print_table=False)


# ---- what has no deterministic variant -------------------------------------------------------
def test_alert_raises_under_the_mode_and_warns_under_warn_only():
    determinism.alert_not_deterministic("some_op")  # mode off: nothing
    tg.use_deterministic_algorithms(True)
    expected = (r"some_op does not have a deterministic implementation, but you set "
                r"'tg.use_deterministic_algorithms\(True\)'")
    with pytest.raises(RuntimeError, match=expected):
        determinism.alert_not_deterministic("some_op")
    tg.use_deterministic_algorithms(True, warn_only=True)
    with pytest.warns(UserWarning, match=r"some_op does not have a deterministic .*warn_only=True"):
        determinism.alert_not_deterministic("some_op")


def test_half_precision_scatter_add_raises_or_warns(cpu_shim):
    """The GPU's scatter_add has no deterministic float16 kernel: the error names it."""
    index = (np.array([0, 2, 2, 0]),)
    values = np.arange(4, dtype=np.float16)
    expected = np.zeros(3, np.float16)
    np.add.at(expected, index, values)
    tg.use_deterministic_algorithms(True)
    out = np.zeros(3, np.float16)
    with pytest.raises(RuntimeError, match="scatter_add .* of float16 on the GPU does not have"):
        segment_sum_kernels.scatter_add(cpu_shim, out, index, values)
    tg.use_deterministic_algorithms(True, warn_only=True)
    with pytest.warns(UserWarning, match="scatter_add .* of float16"):
        segment_sum_kernels.scatter_add(cpu_shim, out, index, values)
    np.testing.assert_array_equal(out, expected)  # warned, then ran the atomic path


# ---- the "cuda" launchers' choice of kernel --------------------------------------------------
class RecordingRuntime(cuda_runtime.CpuShimRuntime):
    """The CPU build of the CUDA C kernels, noting the name of every kernel launched."""

    def __init__(self, build_dir):
        super().__init__(build_dir)
        self.launched: list[str] = []

    def launch(self, source, kernel, grid, block, args):
        self.launched.append(kernel)
        super().launch(source, kernel, grid, block, args)


@pytest.fixture(scope="module")
def cpu_shim(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("the CPU build of the CUDA kernels needs g++")
    return RecordingRuntime(tmp_path_factory.mktemp("determinism_cpu_shim"))


def _atomic_entries(rng) -> dict:
    """Each "cuda" kernel-table entry that accumulates with atomics: a call of it on a table,
    its fast kernel (None: CuPy's add.at, no kernel of ours) and its deterministic kernel."""
    indices = rng.integers(0, 5, 40)
    rows = rng.standard_normal((40, 6)).astype(np.float32)
    x = rng.standard_normal((2, 3, 8, 8))
    _, argmax = reference_conv.max_pool2d(x, (3, 3), (1, 1), (1, 1), (1, 1))
    grad = rng.standard_normal(argmax.shape)

    def scatter_add(table):
        out = np.zeros((6, 6), np.float32)
        table["scatter_add"](out, (indices % 6,), rows)
        return out

    return {
        "embedding_backward": (lambda table: table["embedding_backward"](rows, indices, 5, None),
                               "embedding_backward_f32", "segment_sum_f32"),
        "max_pool2d_backward": (lambda table: table["max_pool2d_backward"](grad, argmax, x.shape),
                                "max_pool2d_backward_f64", "segment_sum_f64"),
        "scatter_add": (scatter_add, None, "segment_sum_f32"),
    }


@pytest.mark.parametrize("entry", ["embedding_backward", "max_pool2d_backward", "scatter_add"])
def test_flag_switches_the_cuda_kernel_and_off_restores_the_fast_path(cpu_shim, entry):
    table = cuda_c.kernel_table(cpu_shim)  # as backend/cuda_device.py registers the entries
    call, fast, deterministic = _atomic_entries(np.random.default_rng(0))[entry]
    results = []
    for mode, kernel in ((False, fast), (True, deterministic), (False, fast)):
        tg.use_deterministic_algorithms(mode)
        cpu_shim.launched.clear()
        results.append(call(table))
        assert cpu_shim.launched == ([kernel] if kernel else []), mode
    # the same sums: the CPU build runs the atomic kernels in order, so to the bit
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_flag_set_in_another_thread_reaches_the_launcher(cpu_shim):
    setter = threading.Thread(target=tg.use_deterministic_algorithms, args=(True,))
    setter.start()
    setter.join()
    call, _, deterministic = _atomic_entries(np.random.default_rng(1))["embedding_backward"]
    cpu_shim.launched.clear()
    call(cuda_c.kernel_table(cpu_shim))
    assert cpu_shim.launched == [deterministic]


# ---- the CPU device --------------------------------------------------------------------------
@pytest.fixture
def native_threads():
    """native.set_num_threads, with the pool's thread count restored afterwards."""
    before = native.get_num_threads()
    yield native.set_num_threads
    native.set_num_threads(before)


def _per_thread_count(set_threads, compute, counts=(1, 3, 1, 3)) -> list:
    results = []
    for count in counts:
        set_threads(count)
        results.append(compute())
    return results


@needs_native
def test_native_partial_sums_do_not_depend_on_the_thread_count(native_threads):
    """sum_all and layer_norm_backward's dweight/dbias add per-range partials in range order,
    with ranges set by the size alone (tg::fixed_range_count): the same bits whatever
    set_num_threads says. The inputs make the order visible: a range holding 2^53 loses
    the ones its lanes add to it, so another split of the ranges gives another sum."""
    x = np.ones(4 << 20, np.float32)  # above the 2M-element grain, so the pool splits it
    x[0], x[-1] = 2.0**53, -(2.0**53)
    sums = _per_thread_count(native_threads, lambda: tg.tensor(x).sum().item())
    assert len(set(sums)) == 1

    rng = np.random.default_rng(2)
    x, grad = rng.standard_normal((2, 4096, 128))  # rows x columns above the grain
    mean, rstd = x.mean(axis=1), 1 / np.sqrt(x.var(axis=1) + 1e-5)
    weight = rng.standard_normal(128)
    backward = cpu.make_backend(0).kernels.layer_norm_backward
    runs = _per_thread_count(native_threads, lambda: backward(grad, x, mean, rstd, weight))
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


def _order_independent_calls(kernels, rng):
    """Native kernels whose every output element is summed by one task in a fixed order, at
    sizes above the sums' 2M-element grain, so that the pool splits them by thread count."""
    x = rng.standard_normal((16, 64, 48, 48)).astype(np.float32)
    out, argmax = kernels.max_pool2d(x, (3, 3), (1, 1), (1, 1), (1, 1))
    indices = rng.integers(0, 50, 16384)
    rows = rng.standard_normal((16384, 160)).astype(np.float32)
    return {
        "max_pool2d_backward": lambda: kernels.max_pool2d_backward(out, argmax, x.shape),
        "avg_pool2d_backward": lambda: kernels.avg_pool2d_backward(out, x.shape, (3, 3),
                                                                   (1, 1), (1, 1), True),
        "embedding_backward": lambda: kernels.embedding_backward(rows, indices, 50, -1),
        "sum over (0, 2, 3)": lambda: kernels.sum(x, (0, 2, 3), False),
        "sum over rows": lambda: kernels.sum(rows, (0,), False),
        "softmax": lambda: kernels.softmax(rows, 1),
    }


@needs_native
def test_other_native_kernels_do_not_depend_on_the_thread_count(native_threads):
    kernels = cpu.make_backend(0).kernels
    for name, call in _order_independent_calls(kernels, np.random.default_rng(3)).items():
        one, three = _per_thread_count(native_threads, call, counts=(1, 3))
        np.testing.assert_array_equal(one, three, err_msg=name)


def test_cpu_attention_does_not_depend_on_its_head_split(monkeypatch):
    """Attention shares heads out over one Python thread per core; each head's arithmetic is
    the same whatever the groups."""
    from tinygrad_like.backend import cpu_attention

    attention = cpu.make_backend(0).kernels.attention
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((3, 8, 256, 32)).astype(np.float32)
    runs = []
    for workers in (1, 3):
        monkeypatch.setattr(cpu_attention, "_workers", lambda workers=workers: workers)
        runs.append(attention(q, k, v, None, True, 32**-0.5))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
