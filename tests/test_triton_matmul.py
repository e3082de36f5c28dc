"""The Triton matmul kernel (kernels/triton/matmul.py) on the "interp" device, against "cpu".

The "interp" device runs the very kernel and launcher that "cuda" uses through Triton's
interpreter; "cpu" is the NumPy reference. Shapes are small and never multiples of the
32 x 32 x 32 interpreter tiles, so every tail mask is exercised. Tests marked `cuda`
repeat the parity checks compiled on a GPU and are skipped without one.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_like as tg
import tinygrad_like.nn.functional as F

pytest.importorskip("triton")
pytest.importorskip("torch")  # the interpreter's carrier for NumPy memory

from tinygrad_like.kernels.triton import matmul as matmul_kernels
from tinygrad_like.kernels.triton.launch import Launcher, arch_for

TOLERANCE = {"float64": {"rtol": 1e-12, "atol": 1e-12},
             "float32": {"rtol": 1e-5, "atol": 1e-4},
             # float32 accumulation, one rounding to float16 at the store
             "float16": {"rtol": 2e-3, "atol": 2e-3},
             "bfloat16": {"rtol": 1e-2, "atol": 1e-2}}
SHAPES = [((67, 45), (45, 33)), ((3, 67, 45), (45, 33)), ((2, 1, 5, 7), (3, 7, 4)),
          ((45,), (45, 33)), ((67, 45), (45,)), ((45,), (45,)), ((2, 3, 45), (45,)),
          ((1, 1), (1, 1)), ((0, 5), (5, 3)), ((4, 0), (0, 3))]


def arrays(*shapes, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def on(device, *values, dtype=tg.float32, requires_grad=False):
    return [tg.Tensor(v, dtype=dtype, device=device, requires_grad=requires_grad) for v in values]


def reference_matmul(a, b):
    """The cpu backend's product in float32 (inputs already rounded to their dtype)."""
    return (tg.Tensor(a.astype(np.float32)) @ tg.Tensor(b.astype(np.float32))).numpy()


class RecordingLauncher(Launcher):
    """The interp Launcher, keeping every array it hands to a kernel."""

    def __init__(self):
        super().__init__(interpret=True)
        self.passed = []

    def arg(self, array):
        self.passed.append(array)
        return super().arg(array)


@pytest.mark.parametrize("shape_a, shape_b", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_matches_cpu(shape_a, shape_b):
    a, b = arrays(shape_a, shape_b)
    out = tg.matmul(*on("interp", a, b))
    expected = tg.matmul(*on("cpu", a, b))
    assert out.device == "interp" and out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected.numpy(), **TOLERANCE["float32"])


def test_matmul_of_transposed_views_matches_cpu():
    a, b = arrays((45, 67), (33, 45))
    out = on("interp", a)[0].mT @ on("interp", b)[0].mT
    np.testing.assert_allclose(out.numpy(), reference_matmul(a.T, b.T), **TOLERANCE["float32"])


@pytest.mark.parametrize("layout", ["transposed", "sliced", "broadcast", "uncollapsible"])
def test_kernel_reads_strided_operands_in_place(layout):
    """No operand is copied: the kernel gets views of the caller's memory and their strides."""
    base_a, base_b, rows_last, cols_last = arrays((2, 3, 9, 8), (2, 3, 8, 10), (2, 3, 8, 9),
                                                  (2, 3, 10, 8))
    a, b = {"transposed": (rows_last.mT, cols_last.mT),
            "sliced": (base_a[:, :, 1:8:2], base_b[:, :, :, ::3]),
            "broadcast": (base_a[:1], base_b[0, 1]),
            "uncollapsible": (base_a.transpose(1, 0, 2, 3), base_b.transpose(1, 0, 2, 3))}[layout]
    launcher = RecordingLauncher()
    out = matmul_kernels.matmul(launcher, a, b)
    np.testing.assert_allclose(out, np.matmul(a, b), **TOLERANCE["float32"])
    read = launcher.passed[0::3], launcher.passed[1::3]
    assert all(np.shares_memory(view, a) for view in read[0])
    assert all(np.shares_memory(view, b) for view in read[1])


def test_batches_beyond_one_launch_are_split(monkeypatch):
    monkeypatch.setattr(matmul_kernels, "MAX_GRID_BATCH", 2)
    a, b = arrays((5, 3, 4), (5, 4, 2))
    out = matmul_kernels.matmul(Launcher(interpret=True), a, b)
    np.testing.assert_allclose(out, np.matmul(a, b), **TOLERANCE["float32"])


def test_float16_accumulates_in_float32():
    a, b = arrays((67, 45), (45, 33), dtype=np.float16)
    out = tg.matmul(*on("interp", a, b, dtype=tg.float16))
    assert out.dtype == tg.float16
    np.testing.assert_allclose(out.numpy().astype(np.float32), reference_matmul(a, b),
                               **TOLERANCE["float16"])


def test_float64_is_computed_in_float64():
    a, b = arrays((67, 45), (45, 33), dtype=np.float64)
    out = tg.matmul(*on("interp", a, b, dtype=tg.float64))
    assert out.dtype == tg.float64
    np.testing.assert_allclose(out.numpy(), a @ b, **TOLERANCE["float64"])


@pytest.mark.parametrize("shape_a, shape_b", [((3, 5, 7), (7, 4)), ((2, 1, 5, 7), (3, 7, 4)),
                                              ((7,), (2, 7, 4))])
def test_gradients_match_cpu(shape_a, shape_b):
    a, b = arrays(shape_a, shape_b)
    grads = {}
    for device in ("interp", "cpu"):
        x, y = on(device, a, b, requires_grad=True)
        out = x @ y
        upstream = tg.Tensor(arrays(out.shape, seed=1)[0], device=device)
        out.backward(upstream)
        grads[device] = (x.grad.numpy(), y.grad.numpy())
    for got, expected in zip(grads["interp"], grads["cpu"]):
        np.testing.assert_allclose(got, expected, **TOLERANCE["float32"])


def test_gradcheck_through_the_kernel_in_float64():
    a, b = on("interp", *arrays((2, 3, 4), (4, 2), dtype=np.float64), dtype=tg.float64,
              requires_grad=True)
    assert tg.gradcheck(lambda x, y: (x @ y).tanh(), (a, b))


@pytest.mark.parametrize("activation", ["none", "relu", "gelu"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("x_shape", [(37, 45), (2, 5, 45), (45,)])
def test_fused_linear_matches_cpu(activation, with_bias, x_shape):
    x, weight, bias = arrays(x_shape, (33, 45), (33,))
    out = matmul_kernels.linear(Launcher(interpret=True), x, weight,
                                bias if with_bias else None, activation)
    expected = F.linear(*on("cpu", x, weight, *([bias] if with_bias else [])))
    expected = {"none": expected, "relu": F.relu(expected), "gelu": F.gelu(expected)}[activation]
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected.numpy(), **TOLERANCE["float32"])


def test_fused_linear_reads_a_strided_bias():
    x, weight, bias = arrays((5, 6), (4, 6), (8,))
    out = matmul_kernels.linear(Launcher(interpret=True), x, weight, bias[::2])
    np.testing.assert_allclose(out, x @ weight.T + bias[::2], **TOLERANCE["float32"])


def test_fused_linear_in_float16():
    x, weight, bias = arrays((37, 45), (33, 45), (33,), dtype=np.float16)
    out = matmul_kernels.linear(Launcher(interpret=True), x, weight, bias, "relu")
    assert out.dtype == np.float16
    expected = np.maximum(reference_matmul(x, weight.T) + bias.astype(np.float32), 0)
    np.testing.assert_allclose(out.astype(np.float32), expected, **TOLERANCE["float16"])


# ---- the sm_90 persistent TMA kernel (matmul_tma.py), run by the interpreter ---------------
@pytest.fixture
def tma_everywhere(monkeypatch):
    """Route every product through the persistent kernel, as a compiled sm_90 launch would,
    recording the descriptor layouts of each launch."""
    layouts = []
    real = matmul_kernels._launch_tma
    monkeypatch.setattr(matmul_kernels, "_uses_tma", lambda launcher, dtype: True)
    monkeypatch.setattr(matmul_kernels, "_launch_tma",
                        lambda *args: layouts.append(args[2]) or real(*args))
    return layouts


@pytest.mark.parametrize("layout", ["plain", "a_transposed", "b_transposed"])
def test_persistent_tma_kernel_matches_numpy(layout, tma_everywhere):
    # 3 matrices of 37 x 48 tiles over 3 programs: every program walks several tiles and
    # crosses matrices; 37 rows and 40 = 2.5 K steps leave partial boxes at every edge
    a, b = arrays((3, 37, 40), (3, 40, 48), dtype=np.float16)
    if layout == "a_transposed":  # (3, 48, 40) read in place from (3, 40, 48) storage
        a = arrays((3, 40, 48), dtype=np.float16)[0].transpose(0, 2, 1)
    elif layout == "b_transposed":
        b = np.ascontiguousarray(b.transpose(0, 2, 1)).transpose(0, 2, 1)
    out = matmul_kernels.matmul(Launcher(interpret=True), a, b)
    assert [column_major for _, _, column_major in tma_everywhere[0]] == [
        layout == "a_transposed", layout == "b_transposed", False]
    np.testing.assert_allclose(out.astype(np.float32), reference_matmul(a, b),
                               **TOLERANCE["float16"])


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_persistent_tma_kernel_fused_linear(activation, tma_everywhere):
    x, weight, bias = arrays((21, 40), (24, 40), (24,), dtype=np.float16)
    out = matmul_kernels.linear(Launcher(interpret=True), x, weight, bias, activation)
    assert tma_everywhere and tma_everywhere[0][1][2]  # the weight read K-major, no copy
    expected = F.linear(*on("cpu", x, weight, bias, dtype=tg.float32))
    expected = {"relu": F.relu, "gelu": F.gelu}[activation](expected).numpy()
    np.testing.assert_allclose(out.astype(np.float32), expected, **TOLERANCE["float16"])


def test_layouts_tma_cannot_read_use_the_pointer_kernel(tma_everywhere):
    # 45 fp16 columns are 90 bytes: not a multiple of 16, so no descriptor; the batch of
    # broadcast b has stride 0
    a, b = arrays((67, 45), (45, 33), dtype=np.float16)
    out = matmul_kernels.matmul(Launcher(interpret=True), a, b)
    c, d = arrays((2, 8, 16), (16, 8), dtype=np.float16)
    matmul_kernels.matmul(Launcher(interpret=True), c, d)
    assert tma_everywhere == []
    np.testing.assert_allclose(out.astype(np.float32), reference_matmul(a, b),
                               **TOLERANCE["float16"])


def test_wide_tiles_run_their_epilogue_in_halves(monkeypatch):
    # the 128 x 256 sm_90 tile applies bias and GELU to 128 columns at a time
    monkeypatch.setattr(matmul_kernels, "INTERP_CONFIG",
                        {"BLOCK_M": 16, "BLOCK_N": 256, "BLOCK_K": 16, "GROUP_M": 2})
    x, weight, bias = arrays((20, 24), (300, 24), (300,))
    out = matmul_kernels.linear(Launcher(interpret=True), x, weight, bias, "gelu")
    expected = F.gelu(F.linear(*on("cpu", x, weight, bias))).numpy()
    np.testing.assert_allclose(out, expected, **TOLERANCE["float32"])


@pytest.mark.parametrize("call, error, message", [
    (lambda launch: matmul_kernels.matmul(launch, np.ones((3, 4)), np.ones((5, 6))),
     ValueError, r"shapes \(3, 4\) and \(5, 6\) cannot be multiplied \(4 != 5\)"),
    (lambda launch: matmul_kernels.matmul(launch, np.ones((2, 3, 4)), np.ones((3, 4, 5))),
     ValueError, r"batch dimensions of shapes \(2, 3, 4\) and \(3, 4, 5\)"),
    (lambda launch: matmul_kernels.matmul(launch, np.ones(4), np.ones((4, 5))),
     ValueError, r"got shapes \(4,\) and \(4, 5\)"),
    (lambda launch: matmul_kernels.matmul(launch, np.ones((2, 2), np.float32), np.ones((2, 2))),
     TypeError, "expected one dtype, got float32 and float64"),
    (lambda launch: matmul_kernels.matmul(launch, np.ones((2, 2), int), np.ones((2, 2), int)),
     TypeError, "supports float16, bfloat16, float32, float64, got int64"),
    (lambda launch: matmul_kernels.linear(launch, np.ones((2, 3)), np.ones((4, 3)), None, "tanh"),
     ValueError, "activation must be one of"),
    (lambda launch: matmul_kernels.linear(launch, np.ones((2, 3)), np.ones((4, 2))),
     ValueError, r"input of shape \(2, 3\) has 3 features but the weight of shape \(4, 2\)"),
    (lambda launch: matmul_kernels.linear(launch, np.ones((2, 3)), np.ones((4, 3)), np.ones(3)),
     ValueError, r"bias of shape \(4,\)"),
])
def test_launcher_errors_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call(Launcher(interpret=True))


def test_integer_tensors_on_interp_are_refused_not_miscomputed():
    a = tg.ones(2, 3, dtype=tg.int64, device="interp")
    with pytest.raises(TypeError, match="matmul: the Triton kernel supports"):
        a @ a.T


@pytest.mark.parametrize("capability, arch", [(80, 80), (86, 80), (89, 80), (90, 90), (120, 90)])
def test_configs_are_picked_by_compute_capability(capability, arch):
    assert arch_for("matmul", capability, matmul_kernels.CONFIGS) == arch


def test_large_sm_90_tile_serves_only_16_bit_operands():
    large = [c for c in matmul_kernels.CONFIGS[90] if c["BLOCK_N"] == 256]
    assert large == [{"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8,
                      "num_warps": 8, "num_stages": 3, "dtypes": ("float16", "bfloat16")}]
    tuned = {dtype: matmul_kernels._autotuned(90, dtype).configs for dtype in
             ("float16", "float32")}
    assert len(tuned["float16"]) == 3 and len(tuned["float32"]) == 2


def test_gpus_older_than_ampere_are_refused():
    with pytest.raises(RuntimeError, match="compute capability 8.0 or newer, got 7.5"):
        arch_for("matmul", 75, matmul_kernels.CONFIGS)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [tg.float32, tg.float16])
@pytest.mark.parametrize("shape_a, shape_b", [((300, 200), (200, 130)),
                                              ((3, 67, 45), (45, 33)),
                                              ((2, 1, 5, 7), (3, 7, 4))])
def test_cuda_matmul_matches_cpu(dtype, shape_a, shape_b):
    a, b = arrays(shape_a, shape_b)
    out = tg.matmul(*on("cuda", a, b, dtype=dtype)).float().numpy()
    rounded = [tg.Tensor(x, dtype=dtype, device="cuda").float().numpy() for x in (a, b)]
    np.testing.assert_allclose(out, reference_matmul(*rounded), **TOLERANCE[dtype.name])


@pytest.mark.cuda
def test_cuda_matmul_gradients_match_cpu():
    a, b = arrays((3, 70, 45), (45, 33))
    grads = {}
    for device in ("cuda", "cpu"):
        x, y = on(device, a, b, requires_grad=True)
        (x @ y).sum().backward()
        grads[device] = (x.grad.numpy(), y.grad.numpy())
    for got, expected in zip(grads["cuda"], grads["cpu"]):
        np.testing.assert_allclose(got, expected, **TOLERANCE["float32"])


@pytest.mark.cuda
@pytest.mark.parametrize("activation", ["none", "relu", "gelu"])
def test_cuda_fused_linear_matches_cpu(activation):
    import cupy

    x, weight, bias = arrays((300, 200), (130, 200), (130,))
    out = matmul_kernels.linear(Launcher(interpret=False), *map(cupy.asarray, (x, weight, bias)),
                                activation)
    expected = F.linear(*on("cpu", x, weight, bias))
    expected = {"none": expected, "relu": F.relu(expected), "gelu": F.gelu(expected)}[activation]
    np.testing.assert_allclose(cupy.asnumpy(out), expected.numpy(), **TOLERANCE["float32"])
