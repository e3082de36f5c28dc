"""Batched matrix multiplication C[b] = A[b] @ B[b], with a fused bias + activation epilogue.

What one program computes. The grid is (tiles of one C matrix, batch). Program
(pid, b) owns one BLOCK_M x BLOCK_N tile of C[b]. It walks K in BLOCK_K steps,
each step loading a BLOCK_M x BLOCK_K slab of A[b] and a BLOCK_K x BLOCK_N slab of
B[b] and adding their product (`tl.dot`, tensor cores for 16-bit inputs) into a
float32 accumulator that stays in registers; C is written once, after the epilogue
(bias per column, then ReLU or GELU) has run on that accumulator, so nn.Linear
costs no extra pass over its output.

Why the program order is grouped (Triton tutorial 03-matrix-multiplication).
Numbered row by row, programs running at the same time would share one row of A
tiles but need every column of B tiles. Instead GROUP_M consecutive tile rows
are walked column by column: a wave of programs then touches GROUP_M rows of A and
a few columns of B, which stay in L2 while the wave reuses them.

Memory traffic. Each program reads BLOCK_M x K of A and K x BLOCK_N of B, so over
the whole grid A is read N / BLOCK_N times and B M / BLOCK_M times (ideal: once
each); bigger tiles divide the traffic and L2 reuse from the grouping removes more.
The roofline model (catalog.py) counts it with no L2 reuse at all, an upper bound.

Tails are masked, not padded: out-of-range loads read 0 (adding nothing to the
dot) and the store skips rows and columns outside C. Every operand is addressed
by its (batch, row, column) strides in elements, so transposed views (`.mT` in
the backward pass), slices and broadcast batch operands (batch stride 0) run
without copies.

Precision: float16 and bfloat16 inputs accumulate in float32 and are stored in
the input dtype. float32 uses exact IEEE products (`input_precision="ieee"`, the
same answer as NumPy) unless the caller opts into TF32 with ALLOW_TF32. float64
accumulates in float64 (DMMA on sm_80 and later), so gradients can be checked in
double precision through the GPU path. The NumPy reference is `np.matmul` in
backend/cpu.py.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from tinygrad_like.kernels.triton import matmul_tma
from tinygrad_like.kernels.triton.launch import arch_for, device_capability
from tinygrad_like.kernels.triton.matmul_tma import epilogue, grouped_tile

# Tiles per compute capability (80: A100-class, 90: H100-class): a large tile for big
# products and a small one that keeps every SM busy on small ones. A config serves every
# dtype and epilogue unless it names its "dtypes"; each is compiled for its architecture in
# the dtypes it serves and with the fused GELU epilogue, and none may spill or overflow shared
# memory (tests/test_kernel_compile.py). fp32 without TF32 runs on the FMA units and holds far
# more operand registers than the tensor-core dtypes: its 128 x 128 tiles need 8 warps,
# and BLOCK_K = 64 tiles spill once the GELU epilogue is fused, so K steps are 32 wide; the
# 128 x 256 x 64 tile is for 16-bit operands only (wgmma's largest efficient shape with two
# warpgroups), where it halves the traffic of A per FLOP. On sm_90, 16-bit operands that TMA
# can read in place go to the persistent kernel of matmul_tma.py instead (its own CONFIGS).
# float64 fits shared memory only in the small tile on sm_90; triton.autotune drops
# configs that run out of resources. Each config costs compile time in the tests.
HALF = ("float16", "bfloat16")
CONFIGS = {
    80: [
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32, "GROUP_M": 8,
         "num_warps": 8, "num_stages": 3},
        {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8,
         "num_warps": 4, "num_stages": 4},
    ],
    90: [
        {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8,
         "num_warps": 8, "num_stages": 3, "dtypes": HALF},
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32, "GROUP_M": 8,
         "num_warps": 8, "num_stages": 4},
        {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8,
         "num_warps": 4, "num_stages": 4},
    ],
}
# The interpreter runs every program in Python: small tiles keep the tests fast.
INTERP_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}
# The persistent kernel on the interpreter (tests only): 16-row boxes, 3 "SMs", so programs
# walk several tiles of several matrices.
INTERP_TMA_CONFIG = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 2, "NUM_SMS": 3}
ACTIVATIONS = ("none", "relu", "gelu")
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")
MAX_GRID_BATCH = 65535  # CUDA's limit on grid dimension y


@triton.jit
def matmul_kernel(
    a_ptr, b_ptr, c_ptr, bias_ptr,
    M, N, K,
    stride_ab, stride_am, stride_ak,
    stride_bb, stride_bk, stride_bn,
    stride_cb, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ALLOW_TF32: tl.constexpr = False, HAS_BIAS: tl.constexpr = False,
    ACTIVATION: tl.constexpr = "none",
):
    # grouped order: GROUP_M tile rows are walked column by column (see the module docstring)
    pid_m, pid_n = grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N),
                                GROUP_M)

    # 64-bit offsets: one stack or even one matrix (a language model's logits) may span
    # more than 2**31 elements; K steps (BLOCK_K * stride) stay 32-bit
    batch = tl.program_id(1).to(tl.int64)
    a_ptr += batch * stride_ab
    b_ptr += batch * stride_bb
    c_ptr += batch * stride_cb

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    row_offsets = rows.to(tl.int64)[:, None]
    col_offsets = cols.to(tl.int64)[None, :]
    a_ptrs = a_ptr + row_offsets * stride_am + ks[None, :] * stride_ak
    b_ptrs = b_ptr + ks[:, None] * stride_bk + col_offsets * stride_bn

    acc_dtype = tl.float64 if c_ptr.dtype.element_ty == tl.float64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    for k in range(tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=(rows[:, None] < M) & (ks[None, :] < k_left), other=0.0)
        b = tl.load(b_ptrs, mask=(ks[:, None] < k_left) & (cols[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc, input_precision="tf32" if ALLOW_TF32 else "ieee")
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk

    if BLOCK_N <= 128:
        acc = epilogue(acc, bias_ptr, cols, N, HAS_BIAS, ACTIVATION)
        c_ptrs = c_ptr + row_offsets * stride_cm + col_offsets * stride_cn
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty),
                 mask=(rows[:, None] < M) & (cols[None, :] < N))
    else:  # half the columns at a time: GELU on a whole 128 x 256 tile would spill
        halves = acc.reshape(BLOCK_M, 2, BLOCK_N // 2).permute(0, 2, 1).split()
        for half in tl.static_range(2):
            cols = pid_n * BLOCK_N + half * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
            part = epilogue(halves[half], bias_ptr, cols, N, HAS_BIAS, ACTIVATION)
            c_ptrs = c_ptr + row_offsets * stride_cm + cols.to(tl.int64)[None, :] * stride_cn
            tl.store(c_ptrs, part.to(c_ptr.dtype.element_ty),
                     mask=(rows[:, None] < M) & (cols[None, :] < N))


@functools.cache
def _autotuned(arch: int, dtype: str):
    """The kernel wrapped in triton.autotune over this architecture's configs for `dtype`."""
    configs = [_config(c) for c in CONFIGS[arch] if dtype in c.get("dtypes", (dtype,))]
    return triton.autotune(configs=configs, key=["M", "N", "K"],
                           do_bench=_time_with_cupy)(matmul_kernel)


@functools.cache
def _autotuned_tma(num_sms: int):
    """The persistent kernel over matmul_tma.CONFIGS, each descriptor's box set per config."""
    configs = [_config(c, NUM_SMS=num_sms, pre_hook=_set_boxes) for c in matmul_tma.CONFIGS]
    return triton.autotune(configs=configs, key=["M", "N", "K"],
                           do_bench=_time_with_cupy)(matmul_tma.matmul_tma_kernel)


def _config(config: dict, pre_hook=None, **extra) -> triton.Config:
    return triton.Config({**{k: v for k, v in config.items() if k.isupper()}, **extra},
                         num_warps=config["num_warps"], num_stages=config["num_stages"],
                         pre_hook=pre_hook)


def _set_boxes(args: dict) -> None:
    """The TMA box of each descriptor for the config about to run (autotune's pre_hook); C is
    stored in two halves of its columns (see matmul_tma.py's epilogue)."""
    m, n, k = args["BLOCK_M"], args["BLOCK_N"], args["BLOCK_K"]
    a_box = [k, m] if args["A_COLUMN_MAJOR"] else [m, k]
    b_box = [n, k] if args["B_COLUMN_MAJOR"] else [k, n]
    for name, box in (("a_desc", a_box), ("b_desc", b_box), ("c_desc", [m, n // 2])):
        args[name].block_shape = [1, *box]


def _time_with_cupy(kernel_call, quantiles, repeats: int = 20) -> list[float]:
    """Milliseconds per call at `quantiles`, timed with CuPy events.

    Triton's default benchmarker times with torch.cuda, which the CuPy-based "cuda"
    device does not need installed.
    """
    import cupy

    kernel_call()  # compiles this config
    times = []
    for _ in range(repeats):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        kernel_call()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return [float(np.quantile(times, q)) for q in quantiles]


def _device_arch() -> int:
    return arch_for("matmul", device_capability(), CONFIGS)


def _check(name: str, a, b) -> None:
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{name}: the kernel multiplies matrices, got shapes {a.shape} and "
                         f"{b.shape} (lift vectors to matrices first)")
    if a.dtype != b.dtype:
        raise TypeError(f"{name}: expected one dtype, got {a.dtype} and {b.dtype}")
    if a.dtype.name not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: the Triton kernel supports {', '.join(SUPPORTED_DTYPES)}, "
                        f"got {a.dtype}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be multiplied "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    if getattr(a, "device", None) != getattr(b, "device", None):  # CuPy arrays know their GPU
        raise RuntimeError(f"{name}: operands are on different devices "
                           f"({getattr(a, 'device', 'host')} and {getattr(b, 'device', 'host')})")


def _stacks(arrays: list, batch_shape: tuple) -> tuple[tuple, list]:
    """Views of `arrays` (batch dims `batch_shape`) as (outer..., stack, rows, cols), never copies.

    Unit batch dims are dropped, then the innermost batch dims whose strides chain in
    every array (stride[i] == stride[i + 1] * size[i + 1]) merge into one `stack` dim,
    which the kernel covers with grid axis 1. The dims left outside are looped over.
    """
    sizes = tuple(s for s in batch_shape if s != 1)
    arrays = [x.reshape(sizes + x.shape[-2:]) for x in arrays]  # dropping unit dims is a view
    split = max(len(sizes) - 1, 0)
    while split > 0 and all(x.strides[split - 1] == x.strides[split] * sizes[split]
                            for x in arrays):
        split -= 1
    stack = math.prod(sizes[split:])
    return sizes[:split], [x.reshape(sizes[:split] + (stack,) + x.shape[-2:]) for x in arrays]


def _grid(M: int, N: int, batch: int):
    """One program per BLOCK_M x BLOCK_N tile of C (axis 0), one row of programs per matrix."""
    return lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]), batch)


def _launch(launcher, a, b, out, bias, activation: str, allow_tf32: bool) -> None:
    """out = activation(a @ b + bias) for a (..., M, K), b (..., K, N) broadcast to out's batch."""
    xp = launcher.xp
    batch = out.shape[:-2]
    # the interpreter's torch views cannot have negative strides (flipped arrays): copy those
    a, b = (xp.ascontiguousarray(x) if any(s < 0 for s in x.strides) else x for x in (a, b))
    a = xp.broadcast_to(a, batch + a.shape[-2:])
    b = xp.broadcast_to(b, batch + b.shape[-2:])
    outer, (a, b, c) = _stacks([a, b, out], batch)
    (M, K), N = a.shape[-2:], b.shape[-1]
    if launcher.interpret:
        kernel, config = launcher.kernel(matmul_kernel), INTERP_CONFIG
    else:  # the autotuner supplies the tiles
        kernel, config = _autotuned(_device_arch(), a.dtype.name), {}
    tma = _uses_tma(launcher, a.dtype)
    bias_arg = None if bias is None else launcher.arg(bias)
    for index in np.ndindex(*outer):
        views = [x[index] for x in (a, b, c)]
        layouts = [matmul_tma.storage_layout(x) for x in views] if tma else [None]
        if all(layouts):
            _launch_tma(launcher, views, layouts, bias_arg, activation)
            continue
        for start in range(0, len(views[0]), MAX_GRID_BATCH):
            chunk = [x[start:start + MAX_GRID_BATCH] for x in views]
            grid = _grid(M, N, len(chunk[0]))
            strides = [s // x.itemsize for x in chunk for s in x.strides]
            kernel[grid](*(launcher.arg(x) for x in chunk), bias_arg, M, N, K, *strides,
                         ALLOW_TF32=allow_tf32, HAS_BIAS=bias is not None,
                         ACTIVATION=activation, **config)


def _uses_tma(launcher, dtype) -> bool:
    """Whether 16-bit products go to the persistent TMA kernel: compiled on sm_90 and later."""
    return (dtype.name in matmul_tma.DTYPES and not launcher.interpret
            and _device_arch() >= 90)


def _launch_tma(launcher, views, layouts, bias_arg, activation: str) -> None:
    """One persistent launch for a (stack, M, K) @ (stack, K, N) -> (stack, M, N) product."""
    (stack, M, K), N = views[0].shape, views[1].shape[-1]
    descriptors = [TensorDescriptor(launcher.arg(x), shape, strides, [1, 8, 8])
                   for x, (shape, strides, _) in zip(views, layouts)]
    flags = {"A_COLUMN_MAJOR": layouts[0][2], "B_COLUMN_MAJOR": layouts[1][2]}
    if launcher.interpret:
        kernel, config = launcher.kernel(matmul_tma.matmul_tma_kernel), INTERP_TMA_CONFIG
        _set_boxes({**dict(zip(("a_desc", "b_desc", "c_desc"), descriptors)), **flags,
                    **config})
    else:
        sms = launcher.xp.cuda.Device().attributes["MultiProcessorCount"]
        kernel, config = _autotuned_tma(sms), {}

    def grid(meta):
        tiles = stack * triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"])
        return (min(meta["NUM_SMS"], tiles),)

    kernel[grid](*descriptors, bias_arg, M, N, K, stack, HAS_BIAS=bias_arg is not None,
                 ACTIVATION=activation, **flags, **config)


def matmul(launcher, a, b, allow_tf32: bool = False):
    """a @ b for arrays of >= 2 dims whose batch dims broadcast, like np.matmul."""
    _check("matmul", a, b)
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None
    out = launcher.empty(batch + (a.shape[-2], b.shape[-1]), a.dtype)
    if out.size:
        _launch(launcher, a, b, out, None, "none", allow_tf32)
    return out


def linear(launcher, x, weight, bias=None, activation: str = "none", allow_tf32: bool = False):
    """activation(x @ weight.T + bias) in one kernel, for x (..., in) and weight (out, in).

    activation is "none", "relu" or "gelu" (exact, through erf).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"linear: activation must be one of {ACTIVATIONS}, got {activation!r}")
    if x.ndim < 1 or weight.ndim != 2:
        raise ValueError(f"linear: expected an input of >= 1 dims and a 2-D weight, got shapes "
                         f"{x.shape} and {weight.shape}")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1]} features but the "
                         f"weight of shape {weight.shape} expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: expected a bias of shape ({weight.shape[0]},) for a weight of "
                         f"shape {weight.shape}, got {bias.shape}")
    if bias is not None and bias.dtype != weight.dtype:
        raise TypeError(f"linear: expected a {weight.dtype} bias, got {bias.dtype}")
    # a view unless x's leading dims do not chain (then NumPy/CuPy copy)
    rows = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
    _check("linear", rows, weight.T)
    if bias is not None:
        bias = launcher.xp.ascontiguousarray(bias)  # the kernel reads it with unit stride
    out = launcher.empty((rows.shape[0], weight.shape[0]), x.dtype)
    if out.size:
        _launch(launcher, rows, weight.T, out, bias, activation, allow_tf32)
    return out.reshape(x.shape[:-1] + (weight.shape[0],))
