"""Scaled dot-product attention forward without the (L, S) score matrix, and the checks,
strides, tile table and masking that its backward (attention_backward.py) shares.

FlashAttention-2 (Dao, 2023), following the Triton tutorial 06-fused-attention. For one
(batch x head) z, queries q (L, D), keys k (S, D), values v (S, Dv):

    scores = q k^T * scale + mask     (-inf where the mask, the causal rule or a tail hides a key)
    out    = softmax(scores) v,       lse = log sum_j exp(scores_ij)   per query row i

Forward: one program owns BLOCK_M query rows and walks the keys in BLOCK_N blocks, keeping
per row a running max m, a running sum l of exp(scores - m) and an unnormalized output acc,
all three rescaled by exp(m - m') when a block raises the max to m' (the online softmax).
out = acc / l and lse = m + log l are written once. The scores and probabilities only ever
exist as one BLOCK_M x BLOCK_N tile in registers: q is read once, k and v once per query
block, and HBM holds nothing of size L x S (a 4096-token head in fp32 would be 64 MiB).
With is_causal, key j is visible to query i iff j <= i (top-left aligned, as PyTorch), so
the loop stops at the block's last row: key blocks wholly above the diagonal are skipped.
Programs take the last (longest) query blocks first, so the grid's tail is short blocks.

of 5): the price of no atomics and deterministic results, as in the tutorial.

Fully masked rows (every key hidden, or S == 0) have lse = +inf and out = 0; in the backward
exp(scores - inf) = 0, so they contribute nothing and no NaN appears anywhere.

Arrays are (Z, L, D) with any strides (the flattened batch x heads first): q, k, v, mask,
out and g are addressed through their strides, so transposed (B, L, H, D) views and
broadcast masks (0 strides) run without copies. Head dims need not be powers of two: D and
Dv are padded to the next power of two with masked loads (at least 16, the smallest tl.dot).
fp16/bf16 inputs feed the tensor cores and accumulate in fp32; fp32 stays IEEE
(input_precision="ieee", no TF32); fp64 accumulates in fp64 (the "interp" gradient checks).
lse and delta are fp32 (fp64 for fp64 inputs). The NumPy reference: backend/reference_attention.py.
"""

from __future__ import annotations

import triton
import triton.language as tl

SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")
MAX_HEAD_DIM = 128
# Tiles per kernel and precision, for padded head dims up to 64 and up to 128. Half precision
# runs on the tensor cores; fp32 (and fp64) products run on the FMA units and hold twice the
# bytes per operand, so their tiles are smaller. Each is compiled for sm_80 and sm_90 by
# tests/test_kernel_compile.py and must not spill.
CONFIGS = {
    ("forward", "half", 64): {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    ("forward", "half", 128): {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
    ("forward", "full", 64): {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
    ("forward", "full", 128): {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
    ("dq", "half", 64): {"BLOCK_M": 128, "BLOCK_N": 32, "num_warps": 4, "num_stages": 3},
    ("dq", "half", 128): {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 3},
    ("dq", "full", 64): {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
    ("dq", "full", 128): {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2},
    ("dkdv", "half", 64): {"BLOCK_M": 32, "BLOCK_N": 128, "num_warps": 8, "num_stages": 3},
    ("dkdv", "half", 128): {"BLOCK_M": 32, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3},
    ("dkdv", "full", 64): {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
    ("dkdv", "full", 128): {"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 8, "num_stages": 1},
}
# The interpreter runs every program in Python: tiles big enough for few steps, small enough
# that the tests' 37-token sequences still cross block boundaries and masked tails.
INTERP_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32}


@triton.jit
def masked_scores(scores, mask_ptr, query, key, L, S, stride_ml, stride_ms,
                   HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr):
    """scores + mask[query, key], and -inf where a key is hidden or an index is out of range.

    `query` and `key` broadcast to the tile's shape: (M, 1) and (1, N) for the row-major
    tiles, (1, M) and (N, 1) for the dk/dv kernel's transposed ones.
    """
    valid = (query < L) & (key < S)
    if HAS_MASK:
        # 64-bit: a (L, S) mask of one head may span more than 2**31 elements
        offsets = query.to(tl.int64) * stride_ml + key.to(tl.int64) * stride_ms
        scores += tl.load(mask_ptr + offsets, mask=valid, other=0.0).to(scores.dtype)
    if IS_CAUSAL:
        valid &= key <= query
    return tl.where(valid, scores, float("-inf"))


@triton.jit
def attention_forward_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, out_ptr, lse_ptr, scale_ptr,
    L, S, D, DV,
    stride_qz, stride_ql, stride_qd,
    stride_kz, stride_ks, stride_kd,
    stride_vz, stride_vs, stride_vd,
    stride_mz, stride_ml, stride_ms,
    HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    """BLOCK_M query rows of one z: an online softmax over key blocks, out and lse written once."""
    query_blocks = tl.cdiv(L, BLOCK_M)
    pid = tl.program_id(0)
    z = (pid // query_blocks).to(tl.int64)  # 64-bit: Z * L * D may pass 2**31 elements
    start_m = (query_blocks - 1 - pid % query_blocks) * BLOCK_M  # longest causal blocks first
    q_ptr += z * stride_qz
    k_ptr += z * stride_kz
    v_ptr += z * stride_vz
    if HAS_MASK:
        mask_ptr += z * stride_mz
    compute = tl.float64 if q_ptr.dtype.element_ty == tl.float64 else tl.float32
    scale = tl.load(scale_ptr).to(compute)

    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    dims_v = tl.arange(0, BLOCK_DV)
    q = tl.load(q_ptr + rows[:, None] * stride_ql + dims[None, :] * stride_qd,
                mask=(rows[:, None] < L) & (dims[None, :] < D), other=0.0)

    running_max = tl.full([BLOCK_M], float("-inf"), compute)
    running_sum = tl.zeros([BLOCK_M], compute)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], compute)
    end = tl.minimum(S, start_m + BLOCK_M) if IS_CAUSAL else S
    for start_n in range(0, end, BLOCK_N):
        keys = start_n + offs_n
        k = tl.load(k_ptr + keys[:, None] * stride_ks + dims[None, :] * stride_kd,
                    mask=(keys[:, None] < S) & (dims[None, :] < D), other=0.0)
        v = tl.load(v_ptr + keys[:, None] * stride_vs + dims_v[None, :] * stride_vd,
                    mask=(keys[:, None] < S) & (dims_v[None, :] < DV), other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision="ieee", out_dtype=compute) * scale
        scores = masked_scores(scores, mask_ptr, rows[:, None], keys[None, :], L, S,
                                stride_ml, stride_ms, HAS_MASK, IS_CAUSAL)
        new_max = tl.maximum(running_max, tl.max(scores, 1))
        # while every key so far is hidden the max is -inf: shift by 0, so exp gives 0, not NaN
        shift = tl.where(new_max == float("-inf"), 0.0, new_max).to(compute)
        p = tl.exp(scores - shift[:, None])
        correction = tl.exp(running_max - shift)
        running_sum = running_sum * correction + tl.sum(p, 1)
        # P is rounded to v's dtype for the tensor cores; the sum above used it unrounded
        acc = tl.dot(p.to(v.dtype), v, acc * correction[:, None], input_precision="ieee",
                     out_dtype=compute)
        running_max = new_max

    hidden = running_sum == 0.0  # every key hidden (or S == 0): out 0, lse +inf
    running_sum = tl.where(hidden, 1.0, running_sum).to(compute)
    out = acc / running_sum[:, None]
    lse = tl.where(hidden, float("inf"), running_max + tl.log(running_sum))
    # out and lse are fresh contiguous arrays: addressed by their shapes
    out_ptrs = out_ptr + z * L * DV + rows[:, None] * DV + dims_v[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty),
             mask=(rows[:, None] < L) & (dims_v[None, :] < DV))
    tl.store(lse_ptr + z * L + rows, lse.to(lse_ptr.dtype.element_ty), mask=rows < L)



# ---- launchers: the kernel table's entries, called as fn(launcher, *reference args) ----------
def attention(launcher, q, k, v, mask, is_causal: bool, scale: float):
    """(out (Z, L, Dv) in q's dtype, lse (Z, L) in float32, float64 for float64 inputs)."""
    Z, L, S, D, DV = check_operands("attention", q, k, v, mask)
    xp = launcher.xp
    out = launcher.empty((Z, L, DV), q.dtype)
    lse = launcher.empty((Z, L), _stat_dtype(xp, q))
    if Z * L == 0:
        return out, lse
    pointers, strides = operand_pointers(launcher, q, k, v, mask)
    config = tile_config(launcher, "forward", q.dtype, D, DV)
    grid = (Z * triton.cdiv(L, config["BLOCK_M"]),)
    launcher.kernel(attention_forward_kernel)[grid](
        *pointers, launcher.arg(out), launcher.arg(lse), launcher.arg(scale_array(xp, scale, q)),
        L, S, D, DV, *strides, HAS_MASK=mask is not None, IS_CAUSAL=bool(is_causal), **config)
    return out, lse



def check_operands(op: str, q, k, v, mask) -> tuple[int, int, int, int, int]:
    """(Z, L, S, D, Dv) after checking shapes and dtypes, with errors that name the problem."""
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError(f"{op}: expected (Z, L, D) queries, (Z, S, D) keys and (Z, S, Dv) "
                         f"values, got shapes {q.shape}, {k.shape} and {v.shape}")
    (Z, L, D), (S, DV) = q.shape, v.shape[1:]
    if k.shape != (Z, S, D) or v.shape[0] != Z:
        raise ValueError(f"{op}: q {q.shape}, k {k.shape} and v {v.shape} need one Z, q and k "
                         f"one head dim, and k and v one sequence length")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"{op}: expected one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if q.dtype.name not in SUPPORTED_DTYPES:
        raise TypeError(f"{op}: the Triton kernel supports {', '.join(SUPPORTED_DTYPES)}, got "
                        f"{q.dtype}")
    if not (1 <= D <= MAX_HEAD_DIM and 1 <= DV <= MAX_HEAD_DIM):
        raise ValueError(f"{op}: head dims from 1 to {MAX_HEAD_DIM} are supported, got "
                         f"D={D} and Dv={DV}")
    if mask is not None:
        if tuple(mask.shape) != (Z, L, S):
            raise ValueError(f"{op}: expected a mask of shape {(Z, L, S)} (broadcast it first), "
                             f"got {mask.shape}")
        if mask.dtype.kind != "f":
            raise TypeError(f"{op}: expected an additive float mask (-inf hides a key), got "
                            f"{mask.dtype}")
    return Z, L, S, D, DV


def operand_pointers(launcher, q, k, v, mask, *others) -> tuple[list, list]:
    """Kernel pointers and (z, row, column) element strides of q, k, v, mask and `others`
    (out, g), in the kernels' argument order; no mask passes None and strides of 0.

    An array is copied first if a stride is negative (a flip), or if one z's rows and
    columns span 2**31 elements: the kernels' in-batch offsets are 32-bit. The mask's are
    64-bit, so a broadcast (L, S) mask is never copied for its size.
    """
    pointers, strides = [], []
    for array in (q, k, v, mask, *others):
        if array is None:
            pointers.append(None)
            strides += [0, 0, 0]
            continue
        steps = [s // array.itemsize for s in array.strides]
        span = sum((n - 1) * s for n, s in zip(array.shape[1:], steps[1:]))
        if min(steps) < 0 or (array is not mask and span >= 2**31):
            array = launcher.xp.ascontiguousarray(array)
            steps = [s // array.itemsize for s in array.strides]
        pointers.append(launcher.arg(array))
        strides += steps
    return pointers, strides


def _stat_dtype(xp, q):
    """lse's and delta's dtype: float32, float64 for float64 inputs."""
    return xp.float64 if q.dtype == xp.float64 else xp.float32


def scale_array(xp, scale: float, q):
    """scale as a one-element array in the compute dtype: a Python float would reach Triton as
    fp32, and float64 results would differ from the reference in about the 8th digit."""
    return xp.asarray([scale], dtype=_stat_dtype(xp, q))


def tile_config(launcher, job: str, dtype, D: int, DV: int) -> dict:
    """Tile sizes and launch options for one kernel: the GPU's table or the interpreter's."""
    blocks = {"BLOCK_D": _head_block(D), "BLOCK_DV": _head_block(DV)}
    if launcher.interpret:
        return {**INTERP_CONFIG, **blocks}
    precision = "half" if dtype.itemsize == 2 else "full"
    return {**CONFIGS[job, precision, max(64, blocks["BLOCK_D"], blocks["BLOCK_DV"])], **blocks}


def _head_block(dim: int) -> int:
    """A head dim padded to a power of two of at least 16 (tl.dot's smallest side)."""
    return max(16, triton.next_power_of_2(dim))
