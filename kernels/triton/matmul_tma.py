"""The sm_90 (Hopper) matmul: a persistent kernel whose operands arrive through TMA.

What one program computes. The grid is one program per SM (NUM_SMS), not one per tile: each
program walks the tiles of every C matrix in the stack, starting at its program id and
stepping by NUM_SMS (Triton tutorial 09-persistent-matmul), in the grouped order of
matmul.py. A tile is BLOCK_M x BLOCK_N of C[b]; its K loop asks the Tensor Memory Accelerator
for a BLOCK_M x BLOCK_K box of A[b] and a BLOCK_K x BLOCK_N box of B[b] (UTMALDG), which lands
swizzled in shared memory where the warpgroup MMA (HGMMA) reads it, so no thread computes an
address or a mask: boxes hanging over the edge of a matrix are filled with zeros by the TMA
unit, and the store of C through a descriptor clips them.

Why persistent. With 132 SMs and 128 x 256 tiles, a 4096 x 4096 product has 512 tiles: a
launch of one program per tile leaves a ragged last wave and pays each program's prologue
(descriptor prefetch, pipeline fill) per tile; the persistent loop pays it once per SM and
lets the pipeline of the next tile start while the epilogue of the last one drains.

Layouts. Descriptors are 3-D (stack, rows, columns) over the storage as it is, so
transposed operands (the `.mT` views of the backward pass, the weight.T of nn.Linear) are not
copied: A_COLUMN_MAJOR / B_COLUMN_MAJOR say that the storage is (stack, K, M) or
(stack, N, K) and the loaded box is transposed in shared memory, which wgmma reads directly
for 16-bit operands. TMA needs 16-byte aligned bases and strides and a unit last stride; the
launcher (matmul.py) sends every other layout, and float32 / float64, to the pointer kernel.

The grouped tile order and the bias + activation epilogue are shared with matmul.py's kernel
and live here so that both kernel files import them from one place.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Tiles of the persistent kernel (16-bit operands only): 128 x 256 x 64 with 8 warps keeps
# the 2 x 4 warpgroup MMA busy and fits 3 stages of A and B boxes plus the C box in shared
# memory; 128 x 128 x 64 serves products too small to fill 132 SMs with the large tile.
# tests/test_kernel_compile.py compiles each for sm_90 and checks UTMALDG, HGMMA, no spills.
CONFIGS = [
    {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8,
     "num_stages": 3},
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8,
     "num_stages": 4},
]
DTYPES = ("float16", "bfloat16")  # the tensor-core dtypes wgmma reads transposed from shared


@triton.jit
def grouped_tile(tile, tiles_m, tiles_n, GROUP_M: tl.constexpr):
    """(row, column) of tile number `tile`: GROUP_M tile rows walked column by column."""
    tiles_per_group = GROUP_M * tiles_n
    first_m = (tile // tiles_per_group) * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (tile % tiles_per_group) % group_rows
    pid_n = (tile % tiles_per_group) // group_rows
    return pid_m, pid_n


@triton.jit
def epilogue(acc, bias_ptr, cols, N, HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr):
    """Bias per column, then ReLU or exact GELU, on the accumulator before C is stored."""
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(acc.dtype)[None, :]
    if ACTIVATION == "relu":
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == "gelu":
        # exact GELU, x * Phi(x) through erf: what tg.nn.GELU() computes by default
        acc = 0.5 * acc * (1.0 + tl.math.erf(acc * 0.7071067811865476))
    return acc


@triton.jit
def matmul_tma_kernel(
    a_desc, b_desc, c_desc, bias_ptr,
    M, N, K, stack,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    NUM_SMS: tl.constexpr, A_COLUMN_MAJOR: tl.constexpr = False,
    B_COLUMN_MAJOR: tl.constexpr = False, HAS_BIAS: tl.constexpr = False,
    ACTIVATION: tl.constexpr = "none",
):
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    tiles_per_matrix = tiles_m * tiles_n
    k_steps = tl.cdiv(K, BLOCK_K)
    for tile in tl.range(tl.program_id(0), stack * tiles_per_matrix, NUM_SMS):
        matrix = tile // tiles_per_matrix
        pid_m, pid_n = grouped_tile(tile % tiles_per_matrix, tiles_m, tiles_n, GROUP_M)
        row, col = pid_m * BLOCK_M, pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(k_steps):
            if A_COLUMN_MAJOR:
                a = a_desc.load([matrix, k * BLOCK_K, row]).reshape(BLOCK_K, BLOCK_M).T
            else:
                a = a_desc.load([matrix, row, k * BLOCK_K]).reshape(BLOCK_M, BLOCK_K)
            if B_COLUMN_MAJOR:
                b = b_desc.load([matrix, col, k * BLOCK_K]).reshape(BLOCK_N, BLOCK_K).T
            else:
                b = b_desc.load([matrix, k * BLOCK_K, col]).reshape(BLOCK_K, BLOCK_N)
            acc = tl.dot(a, b, acc)
        # the epilogue runs on one half of the columns at a time: GELU's erf on the whole
        # 128 x 256 fp32 accumulator would need more than the 255 registers a thread has
        halves = acc.reshape(BLOCK_M, 2, BLOCK_N // 2).permute(0, 2, 1).split()
        for half in tl.static_range(2):
            part = halves[half]
            part_col = col + half * (BLOCK_N // 2)
            part = epilogue(part, bias_ptr, part_col + tl.arange(0, BLOCK_N // 2), N, HAS_BIAS,
                            ACTIVATION)
            c_desc.store([matrix, row, part_col],
                         part.to(c_desc.dtype).reshape(1, BLOCK_M, BLOCK_N // 2))


def storage_layout(x, alignment: int = 16) -> tuple | None:
    """(shape, element strides, column_major) of a (stack, rows, cols) view as a descriptor
    over its storage, or None where TMA cannot read it in place.

    TMA wants a 16-byte aligned base, a unit last stride and the other strides multiples of
    16 bytes. A stack of one matrix may have any stride of its own: the box never leaves it.
    """
    itemsize = x.itemsize
    address = x.data.ptr if hasattr(x.data, "ptr") else x.ctypes.data  # CuPy or NumPy
    stack, rows, cols = x.shape
    stride_b, stride_r, stride_c = (s // itemsize for s in x.strides)
    if stride_c == 1:
        shape, strides, column_major = [stack, rows, cols], [stride_b, stride_r], False
    elif stride_r == 1:
        shape, strides, column_major = [stack, cols, rows], [stride_b, stride_c], True
    else:
        return None
    if stack == 1:
        strides[0] = shape[1] * strides[1]
    if address % alignment or any(s <= 0 or s * itemsize % alignment for s in strides):
        return None
    return shape, strides + [1], column_major
