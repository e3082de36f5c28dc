"""The CUDA C kernels (kernels/cuda/*.cu): compiled for sm_80 and sm_90, and run.

With no GPU every kernel still runs: the same .cu compiles as C++ with cpu_shim.h and its
launcher drives it through ctypes with NumPy arrays (`CpuShimRuntime`), so the launchers'
checks and launch arithmetic run too. Each check takes the runtime as a fixture whose
"cuda" form (CuPy, NVRTC) runs only where a GPU exists. Oracles: torch's CPU pooling and
optimizers, the NumPy references of the CPU backend, and the Random123 known answers.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinygrad_like import determinism
from tinygrad_like.backend import reference_conv, reference_optim
from tinygrad_like.kernels import cuda as cuda_c
from tinygrad_like.kernels.cuda import dropout_launch as dropout_kernels
from tinygrad_like.kernels.cuda import runtime as cuda_runtime
from tinygrad_like.kernels.cuda import optimizer_launch as optimizer_kernels
from tinygrad_like.kernels.cuda import pooling_launch as pooling_kernels
from tinygrad_like.kernels.cuda import segment_sum_launch as segment_sum_kernels

torch = pytest.importorskip("torch")

SOURCES = sorted(path.name for path in cuda_runtime.SOURCE_DIR.glob("*.cu"))
FLOATS = [np.float32, np.float64]


# ---- runtimes --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cpu_shim(tmp_path_factory):
    """One build of each .cu as a shared library per test session (the builds take seconds)."""
    if shutil.which("g++") is None:
        pytest.skip("the CPU build of the CUDA kernels needs g++")
    return cuda_runtime.CpuShimRuntime(tmp_path_factory.mktemp("cuda_cpu_shim"))


@pytest.fixture(scope="module", params=["cpu_shim", pytest.param("cuda", marks=pytest.mark.cuda)])
def runtime(request):
    if request.param == "cuda":
        return cuda_runtime.CupyRuntime()
    return request.getfixturevalue("cpu_shim")


@pytest.fixture(scope="module")
def kernels(runtime):
    """The kernel-table entries, as "cuda" registers them, on the runtime under test."""
    return cuda_c.kernel_table(runtime)


def to_host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


def on_device(runtime, *arrays):
    return [runtime.to_device(np.ascontiguousarray(array)) for array in arrays]


def exact(runtime) -> bool:
    """The CPU build rounds exactly as NumPy; a GPU's sqrt and division may differ by an ulp."""
    return isinstance(runtime, cuda_runtime.CpuShimRuntime)


# ---- compiling for the GPU -------------------------------------------------------------------
def _nvcc() -> str:
    found = shutil.which("nvcc") or shutil.which("nvcc", path="/usr/local/cuda/bin")
    if found is None:
        pytest.skip("nvcc (the CUDA toolkit) is not installed")
    return found


def _cuobjdump() -> Path | None:
    try:
        import triton
    except ImportError:
        return None
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    return tool if tool.exists() else None


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("source", SOURCES)
def test_source_compiles_with_nvcc(source, arch, tmp_path):
    cubin = tmp_path / f"{source}.sm_{arch}.cubin"
    command = [_nvcc(), "-std=c++17", f"-arch=sm_{arch}", "-cubin",
               *cuda_runtime.EXTRA_OPTIONS.get(source, ()), str(cuda_runtime.SOURCE_DIR / source),
               "-o", str(cubin)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
    assert "warning" not in done.stderr.lower(), done.stderr
    tool = _cuobjdump()
    if tool is None:
        return
    usage = subprocess.run([str(tool), "-res-usage", str(cubin)], capture_output=True,
                           text=True, check=True).stdout
    functions = re.findall(r"Function (\w+):\s*\n\s*(REG:.*)", usage)
    assert functions, usage
    for name, resources in functions:
        facts = dict(re.findall(r"(\w+):(\d+)", resources))
        # no spills, and no shared memory: the CPU build's sequential grid relies on it
        assert facts["STACK"] == facts["LOCAL"] == facts["SHARED"] == "0", (name, resources)


@pytest.mark.parametrize("source", SOURCES)
def test_kernels_never_synchronise_within_a_block(source):
    text = (cuda_runtime.SOURCE_DIR / source).read_text()
    assert not re.search(r"__syncthreads|__shared__|__syncwarp|cooperative_groups", text)


def test_every_cuda_c_entry_is_a_launcher_of_this_package():
    for name, (module, function) in cuda_c.KERNELS.items():
        assert callable(getattr(__import__(f"tinygrad_like.kernels.cuda.{module}",
                                           fromlist=[function]), function)), name


@pytest.mark.cuda
def test_cuda_backend_registers_the_cuda_c_kernels():
    from tinygrad_like.backend import get_backend

    table = get_backend("cuda").kernels
    for name, (module, function) in cuda_c.KERNELS.items():
        entry = getattr(table, name)
        if entry.func is cuda_c._covered_or_reference:  # half precision goes to the reference
            entry = entry.args[0]
        assert entry.func.__module__ == f"tinygrad_like.kernels.cuda.{module}", name
        assert entry.func.__name__ == function
        assert isinstance(entry.args[0], cuda_runtime.CupyRuntime)


def test_dtypes_the_kernels_do_not_cover_run_the_reference(cpu_shim):
    calls = []
    references = {"sgd_step": lambda params, *args, **kwargs: calls.append(params)}
    table = cuda_c.kernel_table(cpu_shim, references)
    half = [np.ones(3, np.float16)]
    table["sgd_step"](half, half, None, 0.1, 0.0, 0.0, False, 0.0, False, False)
    assert calls == [half]
    single = [np.ones(3, np.float32)]
    table["sgd_step"](single, single, None, 0.5, 0.0, 0.0, False, 0.0, False, False)
    assert len(calls) == 1 and (single[0] == 0.5).all()
    with pytest.raises(TypeError, match="float32 and float64, got float16"):
        table["max_pool2d"](np.ones((1, 1, 2, 2), np.float16), 2, 2, 0, 1)


# ---- launch arithmetic (pure Python) ---------------------------------------------------------
def test_grid_covers_the_work_and_is_capped():
    assert cuda_runtime.grid_1d(0) == 1
    assert cuda_runtime.grid_1d(1) == 1
    assert cuda_runtime.grid_1d(cuda_runtime.BLOCK) == 1
    assert cuda_runtime.grid_1d(cuda_runtime.BLOCK + 1) == 2
    assert cuda_runtime.grid_1d(10**12) == cuda_runtime.MAX_GRID


def test_chunk_starts_number_chunks_across_tensors():
    chunk = optimizer_kernels.CHUNK_SIZE
    assert optimizer_kernels.chunk_starts([1, 0, chunk, chunk + 1, 5]) == [0, 1, 1, 2, 4, 5]
    assert optimizer_kernels.chunk_starts([]) == [0]


def test_multi_tensor_table_layout():
    arrays = [np.zeros(3, np.float32), np.zeros((2, 5), np.float32)]
    grads = [np.ones(3, np.float32), np.ones((2, 5), np.float32)]
    table, total = optimizer_kernels.multi_tensor_table(cuda_runtime.CpuShimRuntime("unused"),
                                                        [arrays, grads, None], chunk_size=4)
    assert total == 1 + 3
    assert table.tolist() == [[0, 1, 4], [3, 10, 0],
                              [arrays[0].ctypes.data, arrays[1].ctypes.data, 0],
                              [grads[0].ctypes.data, grads[1].ctypes.data, 0], [0, 0, 0]]


@pytest.mark.parametrize("config", [((2, 2), 2, 0, 1), ((3, 2), (2, 1), 1, (2, 1)),
                                    (3, 2, 1, 2), ((1, 3), 1, (0, 1), 1), (2, 3, 1, 3)])
def test_pool_geometry_matches_torch_output_shape(config):
    kernel, stride, padding, dilation = config
    geometry, _ = pooling_kernels.pool_geometry("max_pool2d", (2, 3, 11, 9), kernel, stride,
                                                padding, dilation)
    expected = torch.nn.functional.max_pool2d(torch.zeros(2, 3, 11, 9), kernel, stride, padding,
                                              dilation).shape
    assert (geometry.out_height, geometry.out_width) == tuple(expected[2:])


@pytest.mark.parametrize("bad, error, words", [
    ({"padding": 2}, ValueError, "at most half"),
    ({"kernel": 0}, ValueError, "kernel_size must be positive"),
    ({"shape": (3, 8, 8)}, ValueError, "4-D input"),
    ({"shape": (1, 1, 2, 2), "kernel": 3, "padding": 1, "dilation": 2}, ValueError, "too small"),
    ({"stride": (1, 2, 3)}, TypeError, "pair of ints"),
])
def test_pool_geometry_errors(bad, error, words):
    args = {"shape": (1, 2, 8, 8), "kernel": 3, "stride": 1, "padding": 1, "dilation": 1} | bad
    with pytest.raises(error, match=words):
        pooling_kernels.pool_geometry("max_pool2d", args["shape"], args["kernel"],
                                      args["stride"], args["padding"], args["dilation"])


def test_launch_refuses_untyped_scalars_and_other_dtypes(cpu_shim):
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(TypeError, match="NumPy scalars"):
        cpu_shim.launch("pooling.cu", "avg_pool2d_forward_f32", 1, 1, [x, x, 16])
    with pytest.raises(TypeError, match="float32 and float64, got int32"):
        pooling_kernels.max_pool2d(cpu_shim, x.astype(np.int32), 2, 2, 0, 1)


# ---- pooling ---------------------------------------------------------------------------------
POOL_CONFIGS = [((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 1), (2, 1)),
                ((3, 3), (2, 2), (1, 1), (2, 2)), ((1, 3), (1, 2), (0, 1), (1, 1)),
                ((2, 3), (3, 1), (1, 1), (1, 3))]


def _torch_max_pool(x, grad, config):
    kernel, stride, padding, dilation = config
    tx = torch.tensor(x, requires_grad=True)
    out, indices = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, dilation,
                                                  return_indices=True)
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), indices.numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_max_pool2d_matches_torch(runtime, kernels, config, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 11, 9)).astype(dtype)
    x[0, 0] = rng.integers(0, 3, (11, 9))  # ties: the first maximum must win
    out, indices = kernels["max_pool2d"](*on_device(runtime, x), *config)
    grad = rng.standard_normal(out.shape).astype(dtype)
    expected_out, expected_indices, expected_dx = _torch_max_pool(x, grad, config)
    np.testing.assert_array_equal(to_host(out), expected_out)
    np.testing.assert_array_equal(to_host(indices), expected_indices)
    assert to_host(indices).dtype == np.int64
    reference_out, reference_indices = reference_conv.max_pool2d(x, *config)
    np.testing.assert_array_equal(to_host(out), reference_out)
    np.testing.assert_array_equal(to_host(indices), reference_indices)
    dx = kernels["max_pool2d_backward"](*on_device(runtime, grad, to_host(indices)), x.shape)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(to_host(dx), expected_dx, rtol=tolerance, atol=tolerance)
    assert to_host(dx).dtype == dtype


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", [c[:3] for c in POOL_CONFIGS])
def test_avg_pool2d_matches_torch(runtime, kernels, config, dtype, count_include_pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 10, 7)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.avg_pool2d(tx, *config, count_include_pad=count_include_pad)
    grad = rng.standard_normal(tuple(expected.shape)).astype(dtype)
    expected.backward(torch.tensor(grad))
    out = kernels["avg_pool2d"](*on_device(runtime, x), *config, count_include_pad)
    dx = kernels["avg_pool2d_backward"](*on_device(runtime, grad), x.shape, *config,
                                        count_include_pad)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(to_host(out), expected.detach().numpy(), rtol=tolerance,
                               atol=tolerance)
    np.testing.assert_allclose(to_host(dx), tx.grad.numpy(), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(to_host(out), reference_conv.avg_pool2d(x, *config, count_include_pad),
                               rtol=tolerance, atol=tolerance)


def test_pooling_grid_stride_loops_cover_more_work_than_threads(cpu_shim, monkeypatch):
    monkeypatch.setattr(cuda_runtime, "MAX_GRID", 2)  # 512 threads for 2 * 3 * 30 * 30 elements
    x = np.random.default_rng(2).standard_normal((2, 3, 60, 60))
    out, indices = pooling_kernels.max_pool2d(cpu_shim, x, 2, 2, 0, 1)
    expected_out, expected_indices = reference_conv.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(indices, expected_indices)
    dx = pooling_kernels.avg_pool2d_backward(cpu_shim, out, x.shape, 3, 2, 1, False)
    np.testing.assert_allclose(dx, reference_conv.avg_pool2d_backward(out, x.shape, (3, 3), (2, 2),
                                                                (1, 1), False), rtol=1e-12)


def test_pooling_rejects_mismatched_gradients(cpu_shim):
    grad = np.zeros((1, 2, 3, 3))
    with pytest.raises(ValueError, match="avg_pool2d_backward: grad has shape"):
        pooling_kernels.avg_pool2d_backward(cpu_shim, grad, (1, 2, 8, 8), 2, 2, 0, True)
    with pytest.raises(TypeError, match="indices must be int64"):
        pooling_kernels.max_pool2d_backward(cpu_shim, grad, grad.astype(np.int32), (1, 2, 6, 6))


# ---- embedding -------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [-1, 3])
@pytest.mark.parametrize("dtype", FLOATS)
def test_embedding_backward_adds_duplicate_rows(runtime, kernels, dtype, padding_idx):
    rng = np.random.default_rng(3)
    indices = rng.integers(0, 7, 300)  # every row index repeats many times
    grad = rng.standard_normal((300, 13)).astype(dtype)
    dweight = kernels["embedding_backward"](*on_device(runtime, grad, indices), 7, padding_idx)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    expected = reference_conv.embedding_backward(grad, indices, 7, padding_idx)
    np.testing.assert_allclose(to_host(dweight), expected, rtol=tolerance, atol=tolerance)
    weight = torch.zeros(7, 13, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(indices), weight,
                                  padding_idx=None if padding_idx < 0 else padding_idx
                                  ).backward(torch.tensor(grad, dtype=torch.float64))
    np.testing.assert_allclose(to_host(dweight), weight.grad.numpy(), rtol=tolerance,
                               atol=tolerance)
    if padding_idx >= 0:
        assert not to_host(dweight)[padding_idx].any()


def test_embedding_backward_takes_any_leading_shape(runtime, kernels):
    rng = np.random.default_rng(4)
    indices = rng.integers(0, 5, (3, 4))
    grad = rng.standard_normal((3, 4, 6))
    dweight = kernels["embedding_backward"](*on_device(runtime, grad, indices), 5, None)
    expected = reference_conv.embedding_backward(grad.reshape(12, 6), indices.ravel(), 5, -1)
    np.testing.assert_allclose(to_host(dweight), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="indices' shape"):
        kernels["embedding_backward"](*on_device(runtime, grad, indices[:2]), 5, -1)


# ---- deterministic variants (segment_sum.cu) -------------------------------------------------
@contextlib.contextmanager
def deterministic_algorithms():
    """tg.use_deterministic_algorithms(True) for a while; the flag is process-wide."""
    determinism.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        determinism.use_deterministic_algorithms(False)


@pytest.fixture
def deterministic():
    with deterministic_algorithms():
        yield


def schedules(runtime) -> list:
    """The runtime three times: on the CPU build in index order and in two shuffled thread
    orders (cpu_shim.h), on a GPU as it schedules."""
    if isinstance(runtime, cuda_runtime.CpuShimRuntime):
        return [runtime.scheduled(seed) for seed in (0, 1, 2)]
    return [runtime] * 3


def run_under_schedules(runtime, entry, *args) -> list:
    """The kernel-table entry's result on each of `schedules(runtime)`, on the host."""
    results = []
    for scheduled in schedules(runtime):
        result = cuda_c.kernel_table(scheduled)[entry](*on_device(scheduled, *args[:2]),
                                                       *args[2:])
        results.append(to_host(result))
    return results


def test_atomic_kernels_depend_on_the_schedule(cpu_shim):
    """The control: shuffled schedules do change atomic float sums, so the checks below, that
    the deterministic variants do not change, can fail."""
    rng = np.random.default_rng(10)
    indices, grad = rng.integers(0, 7, 300), rng.standard_normal((300, 13)).astype(np.float32)
    runs = run_under_schedules(cpu_shim, "embedding_backward", grad, indices, 7, None)
    assert not np.array_equal(runs[1], runs[2])


@pytest.mark.parametrize("padding_idx", [None, 3])
@pytest.mark.parametrize("dtype", FLOATS)
def test_deterministic_embedding_backward_is_the_sequential_sum(runtime, deterministic, dtype,
                                                                padding_idx):
    rng = np.random.default_rng(11)
    indices = rng.integers(0, 7, (20, 15))  # 300 lookups of 7 rows: each repeats ~40 times
    grad = rng.standard_normal((20, 15, 13)).astype(dtype)
    # np.add.at adds in index order, as the kernel's sorted runs do: equal to the bit
    expected = reference_conv.embedding_backward(grad.reshape(300, 13), indices.ravel(), 7,
                                           -1 if padding_idx is None else padding_idx)
    for dweight in run_under_schedules(runtime, "embedding_backward", grad, indices, 7,
                                       padding_idx):
        np.testing.assert_array_equal(dweight, expected)
        assert dweight.dtype == dtype


def test_deterministic_embedding_backward_skips_what_the_atomic_kernel_skips(cpu_shim):
    indices = np.array([2, -1, 0, 9, 2, 4, 2])  # -1 and 9 lie outside the 5 rows
    grad = np.random.default_rng(12).standard_normal((7, 3))
    embedding_backward = cuda_c.kernel_table(cpu_shim)["embedding_backward"]
    expected = embedding_backward(grad, indices, 5, 4)  # the atomic kernel
    with deterministic_algorithms():
        np.testing.assert_array_equal(embedding_backward(grad, indices, 5, 4), expected)
        empty = embedding_backward(np.zeros((0, 3)), np.zeros(0, np.int64), 5, None)
    assert empty.shape == (5, 3) and not empty.any()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", POOL_CONFIGS)
def test_deterministic_max_pool2d_backward(runtime, kernels, deterministic, config, dtype):
    rng = np.random.default_rng(13)
    x = rng.integers(0, 3, (2, 3, 11, 9)).astype(dtype)  # ties: overlapping windows share maxima
    out, indices = reference_conv.max_pool2d(x, *config)
    grad = rng.standard_normal(out.shape).astype(dtype)
    _, _, expected = _torch_max_pool(x, grad, config)
    runs = run_under_schedules(runtime, "max_pool2d_backward", grad, indices, x.shape)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(runs[0], expected, rtol=tolerance, atol=tolerance)
    if dtype == np.float64:  # np.bincount adds in output order in float64, as the kernel does
        np.testing.assert_array_equal(runs[0], reference_conv.max_pool2d_backward(grad, indices,
                                                                            x.shape))
    for dx in runs[1:]:
        np.testing.assert_array_equal(dx, runs[0])


def test_deterministic_max_pool2d_backward_skips_empty_windows_and_strides(cpu_shim,
                                                                           monkeypatch):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 3, 30, 30))
    out, indices = reference_conv.max_pool2d(x, (3, 3), (1, 1), (1, 1), (1, 1))
    indices[:, :, ::5, ::3] = -1  # what a window holding no input element reports
    grad = rng.standard_normal(out.shape)
    max_pool2d_backward = cuda_c.kernel_table(cpu_shim)["max_pool2d_backward"]
    # the atomic kernel, one thread per output in order: the adds in output order
    expected = max_pool2d_backward(grad, indices, x.shape)
    monkeypatch.setattr(cuda_runtime, "MAX_GRID", 2)  # 512 threads for 2 * 3 * 30 * 30 inputs
    with deterministic_algorithms():
        dx = max_pool2d_backward(grad, indices, x.shape)
    np.testing.assert_array_equal(dx, expected)


def _scatter_cases(rng):
    """(shape, index) pairs as getitem and gather backward pass them: repeated positions."""
    rows, cols = rng.integers(-6, 6, (4, 9)), rng.integers(0, 4, 9)
    return [((6, 5, 4), (rows, slice(1, 4), cols)),
            ((6, 5), (np.array([[0, 5, 5, 0, 5]]), Ellipsis)),
            ((6, 5), tuple(np.indices((6, 5), sparse=True)[:1]) + (rng.integers(0, 5, (6, 5)),))]


@pytest.mark.parametrize("dtype", FLOATS)
def test_deterministic_scatter_add_is_numpy_add_at(runtime, deterministic, dtype):
    rng = np.random.default_rng(15)
    for shape, index in _scatter_cases(rng):
        values = rng.standard_normal(np.zeros(shape)[index].shape).astype(dtype)
        expected = np.zeros(shape, dtype)
        np.add.at(expected, index, values)  # the "cpu" kernel-table entry scatter_add
        device_index = tuple(on_device(runtime, i)[0] if isinstance(i, np.ndarray) else i
                             for i in index)
        for scheduled in schedules(runtime):
            out = scheduled.xp.zeros(shape, dtype)
            segment_sum_kernels.scatter_add(scheduled, out, device_index,
                                            *on_device(scheduled, values))
            np.testing.assert_array_equal(to_host(out), expected)


def test_index_add_rows_checks_its_operands(cpu_shim):
    with pytest.raises(ValueError, match=r"values \(N, D\) and rows \(N,\)"):
        segment_sum_kernels.index_add_rows(cpu_shim, np.zeros((4, 2)), np.zeros(3, np.int64), 5)
    with pytest.raises(TypeError, match="float32 and float64, got int64"):
        segment_sum_kernels.index_add_rows(cpu_shim, np.zeros((4, 2), np.int64),
                                           np.zeros(4, np.int64), 5)


# ---- dropout ---------------------------------------------------------------------------------
# Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter, key, expected
PHILOX_KNOWN_ANSWERS = [
    ([0x00000000, 0x00000000, 0x00000000, 0x00000000], [0x00000000, 0x00000000],
     [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], [0xFFFFFFFF, 0xFFFFFFFF],
     [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def philox4x32_10_numpy(counters: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Philox4x32-10 over rows of (n, 4) counters and (n, 2) keys, in uint64 arithmetic."""
    mask = np.uint64(0xFFFFFFFF)
    c = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = keys[:, 0].astype(np.uint64), keys[:, 1].astype(np.uint64)
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + np.uint64(0x9E3779B9)) & mask, (k1 + np.uint64(0xBB67AE85)) & mask
        product0, product1 = np.uint64(0xD2511F53) * c[0], np.uint64(0xCD9E8D57) * c[2]
        c = [(product1 >> np.uint64(32)) ^ c[1] ^ k0, product1 & mask,
             (product0 >> np.uint64(32)) ^ c[3] ^ k1, product0 & mask]
    return np.stack(c, axis=1).astype(np.uint32)


def dropout_mask_numpy(n: int, p: float, seed: int, offset: int, dtype) -> np.ndarray:
    groups = -(-n // 4)
    counter = np.uint64(offset) + np.arange(groups, dtype=np.uint64)
    counters = np.zeros((groups, 4), np.uint64)
    counters[:, 0], counters[:, 1] = counter & np.uint64(0xFFFFFFFF), counter >> np.uint64(32)
    keys = np.tile(np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint64), (groups, 1))
    words = philox4x32_10_numpy(counters, keys).ravel()[:n]
    uniform = (words >> np.uint32(8)).astype(np.float64) / 2**24
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return np.where(uniform >= p, dtype(scale), dtype(0))


def test_philox_known_answers(runtime):
    counters, keys, expected = (np.array(column, np.uint32) for column in
                                zip(*PHILOX_KNOWN_ANSWERS))
    words = dropout_kernels.philox4x32_10(runtime, *on_device(runtime, counters, keys))
    np.testing.assert_array_equal(to_host(words), expected)
    np.testing.assert_array_equal(philox4x32_10_numpy(counters, keys), expected)


def test_philox_matches_the_numpy_generator(runtime):
    rng = np.random.default_rng(5)
    counters = rng.integers(0, 2**32, (1000, 4), dtype=np.uint32)
    keys = rng.integers(0, 2**32, (1000, 2), dtype=np.uint32)
    words = dropout_kernels.philox4x32_10(runtime, *on_device(runtime, counters, keys))
    np.testing.assert_array_equal(to_host(words), philox4x32_10_numpy(counters, keys))


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_mask_is_philox_of_seed_offset_and_index(runtime, kernels, dtype):
    seed, offset, n = 0x1234_5678_9ABC_DEF0 + 7, 2**32 - 3, 4 * 257 + 3  # the counter carries
    x = np.random.default_rng(6).standard_normal((n,)).astype(dtype).reshape(1, n)
    out, mask = kernels["dropout"](*on_device(runtime, x), 0.3, seed, offset)
    expected = dropout_mask_numpy(n, 0.3, seed, offset, dtype).reshape(1, n)
    np.testing.assert_array_equal(to_host(mask), expected)
    np.testing.assert_array_equal(to_host(out), x * expected)
    assert to_host(mask).dtype == dtype and to_host(out).shape == x.shape


def test_dropout_is_reproducible_and_offsets_give_fresh_masks(runtime, kernels):
    x = np.ones((5, 7, 11), np.float32)
    (device_x,) = on_device(runtime, x)
    first = to_host(kernels["dropout"](device_x, 0.5, 42, 0)[1])
    np.testing.assert_array_equal(to_host(kernels["dropout"](device_x, 0.5, 42, 0)[1]), first)
    assert (to_host(kernels["dropout"](device_x, 0.5, 43, 0)[1]) != first).any()
    # offset k skips the first k counters, that is the first 4 k elements
    shifted = to_host(kernels["dropout"](device_x, 0.5, 42, 3)[1]).ravel()
    np.testing.assert_array_equal(shifted[:-12], first.ravel()[12:])
    # float64 draws the same mask
    mask64 = kernels["dropout"](*on_device(runtime, x.astype(np.float64)), 0.5, 42, 0)[1]
    np.testing.assert_array_equal(to_host(mask64), first)
    assert dropout_kernels.counters_used(x.size) == -(-x.size // 4)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_dropout_keep_rate(runtime, kernels, p):
    x = np.ones(200_003, np.float32)
    out, mask = (to_host(a) for a in kernels["dropout"](*on_device(runtime, x), p, 7, 11))
    kept = mask != 0
    assert abs(kept.mean() - (1 - p)) < 0.005
    if p < 1:
        np.testing.assert_array_equal(np.unique(mask[kept]), [np.float32(1 / (1 - p))])
    assert not out[~kept].any()


def test_dropout_rejects_bad_probabilities(cpu_shim):
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        dropout_kernels.dropout(cpu_shim, np.ones(3), 1.5, 0, 0)


# ---- optimizers ------------------------------------------------------------------------------
SIZES = [(3, 5), (optimizer_kernels.CHUNK_SIZE * 2 + 17,), (1,), (0,), (7, 4, 2)]  # several chunks
STEPS = 4


def _problem(dtype, seed=7):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(size).astype(dtype) for size in SIZES]
    grads = [[rng.standard_normal(size).astype(dtype) for size in SIZES] for _ in range(STEPS)]
    return params, grads


def _assert_same(runtime, actual, expected, dtype):
    for got, want in zip(actual, expected):
        if exact(runtime):
            np.testing.assert_array_equal(to_host(got), want)
        else:
            rtol = 1e-6 if dtype == np.float32 else 1e-14
            np.testing.assert_allclose(to_host(got), want, rtol=rtol, atol=rtol)


SGD_CONFIGS = [
    {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, "maximize": False},
    {"momentum": 0.9, "dampening": 0.1, "nesterov": False, "weight_decay": 0.01, "maximize": False},
    {"momentum": 0.8, "dampening": 0.0, "nesterov": True, "weight_decay": 0.05, "maximize": True},
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", SGD_CONFIGS, ids=["plain", "momentum", "nesterov"])
def test_sgd_step_matches_torch_and_the_numpy_reference(runtime, kernels, config, dtype):
    params, grads = _problem(dtype)
    device_params = on_device(runtime, *params)
    device_buffers = on_device(runtime, *[np.zeros_like(p) for p in params])
    reference = [p.copy() for p in params]
    reference_buffers = [np.zeros_like(p) for p in params]
    torch_params = [torch.tensor(p, requires_grad=True) for p in params]
    torch_sgd = torch.optim.SGD(torch_params, lr=0.05, **config)
    momentum = config["momentum"]
    for step, step_grads in enumerate(grads):
        kernels["sgd_step"](device_params, on_device(runtime, *step_grads),
                            device_buffers if momentum else None, 0.05, first_step=step == 0,
                            **config)
        reference_optim.sgd_step(reference, step_grads, reference_buffers, 0.05, first_step=step == 0,
                           **config)
        for param, grad in zip(torch_params, step_grads):
            param.grad = torch.tensor(grad)
        torch_sgd.step()
    _assert_same(runtime, device_params, reference, dtype)
    if momentum:
        _assert_same(runtime, device_buffers, reference_buffers, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(device_params, torch_params):
        np.testing.assert_allclose(to_host(got), want.detach().numpy(), rtol=rtol, atol=rtol)


ADAM_CONFIGS = [{"weight_decay": wd, "decoupled_weight_decay": decoupled, "amsgrad": amsgrad,
                 "maximize": maximize} for wd, decoupled, amsgrad, maximize in
                [(0.0, False, False, False), (0.1, False, True, False), (0.1, True, True, True),
                 (0.02, True, False, False)]]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=["adam", "adam-l2-amsgrad",
                                                      "adamw-amsgrad-maximize", "adamw"])
def test_adam_step_matches_torch_and_the_numpy_reference(runtime, kernels, config, dtype):
    params, grads = _problem(dtype, seed=8)
    hyper = {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6}
    device_params = on_device(runtime, *params)
    device_state = [on_device(runtime, *[np.zeros_like(p) for p in params]) for _ in range(3)]
    reference = [p.copy() for p in params]
    reference_state = [[np.zeros_like(p) for p in params] for _ in range(3)]
    torch_params = [torch.tensor(p, requires_grad=True) for p in params]
    torch_class = torch.optim.AdamW if config["decoupled_weight_decay"] else torch.optim.Adam
    torch_adam = torch_class(torch_params, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                             eps=hyper["eps"], weight_decay=config["weight_decay"],
                             amsgrad=config["amsgrad"], maximize=config["maximize"])
    for step, step_grads in enumerate(grads, start=1):
        kernels["adam_step"](device_params, on_device(runtime, *step_grads), *device_state,
                             float(step), **hyper, **config)
        reference_optim.adam_step(reference, step_grads, *reference_state, float(step), **hyper,
                            **config)
        for param, grad in zip(torch_params, step_grads):
            param.grad = torch.tensor(grad)
        torch_adam.step()
    _assert_same(runtime, device_params, reference, dtype)
    for device_arrays, reference_arrays in zip(device_state, reference_state):
        _assert_same(runtime, device_arrays, reference_arrays, dtype)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(device_params, torch_params):
        np.testing.assert_allclose(to_host(got), want.detach().numpy(), rtol=rtol, atol=rtol)


def test_optimizer_steps_group_mixed_dtypes_and_cap_the_grid(cpu_shim, monkeypatch):
    monkeypatch.setattr(cuda_runtime, "MAX_GRID", 2)  # fewer blocks than chunks: blocks loop
    params32, grads32 = _problem(np.float32)
    params64, grads64 = _problem(np.float64, seed=9)
    params = [p for pair in zip(params32, params64) for p in pair]
    grads = [g for pair in zip(grads32[0], grads64[0]) for g in pair]
    reference = [p.copy() for p in params]
    buffers, reference_buffers = ([np.zeros_like(p) for p in params] for _ in range(2))
    options = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
               "weight_decay": 0.0, "maximize": False, "first_step": True}
    optimizer_kernels.sgd_step(cpu_shim, params, grads, buffers, **options)
    reference_optim.sgd_step(reference, grads, reference_buffers, **options)
    for got, want in zip(params + buffers, reference + reference_buffers):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


def test_optimizer_steps_check_their_lists(cpu_shim):
    params = [np.zeros(3, np.float32)]
    with pytest.raises(ValueError, match="1 params but 2 grads"):
        optimizer_kernels.sgd_step(cpu_shim, params, [params[0]] * 2, None, 0.1, 0.0, 0.0,
                                   False, 0.0, False, False)
    with pytest.raises(ValueError, match="needs momentum_buffers"):
        optimizer_kernels.sgd_step(cpu_shim, params, params, None, 0.1, 0.9, 0.0, False, 0.0,
                                   False, False)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        optimizer_kernels.adam_step(cpu_shim, [np.zeros((3, 2), np.float32).T], [np.zeros((2, 3))],
                                    [np.zeros((2, 3), np.float32)], [np.zeros((2, 3), np.float32)],
                                    None, 1.0, 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, False)
