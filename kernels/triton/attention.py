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

The forward's key loop is split in two, so the per-score work of the long part is the online
softmax alone (the tensor cores do the products; everything else issues per score element):
- full blocks: keys every row of the block sees (below the causal diagonal, inside S), with
  no bounds, causal or -inf test. The softmax runs in base 2: scale * log2(e) is computed
  once, so a score costs one FFMA (scale and subtract the max), one MUFU.EX2, a max and an
  add; the row max is taken on the unscaled products (the launcher negates q for a
  negative scale).
- masked blocks: the diagonal block(s) of a causal program and the tail block past the last
  multiple of BLOCK_N; only here are keys tested against S and the causal rule.
An additive mask is read in every block. The head dims are compile-time (HEAD_DIM, and
EVEN_N says S is a multiple of BLOCK_N), so unpadded head dims and even lengths compile to
unmasked loads. Compiled launches are autotuned over FORWARD_CONFIGS (the interpreter runs
INTERP_CONFIG); on sm_90, fp16/bf16 q, k and v that TMA can read in place go to
attention_tma.py's kernel (tiles through descriptors), tuned over the same half-precision
tiles. The dq and dk/dv kernels of the backward take one tile each from CONFIGS,
and recompute P with exp from the natural-log lse the forward writes.

Fully masked rows (every key hidden, or S == 0) have lse = +inf and out = 0; in the backward
exp(scores - inf) = 0, so they contribute nothing and no NaN appears anywhere.

Arrays are (Z, L, D) with any strides (the flattened batch x heads first): q, k, v, mask,
out and g are addressed through their strides, so transposed (B, L, H, D) views and
broadcast masks (0 strides) run without copies. Head dims need not be powers of two: D and
Dv are padded to the next power of two with masked loads (at least 16, the smallest tl.dot).
fp16/bf16 inputs feed the tensor cores and accumulate in fp32; fp32 stays IEEE
(input_precision="ieee", no TF32); fp64 accumulates in fp64 (the "interp" gradient checks).
The scale reaches the kernels as an fp64 scalar argument (no upload), so fp64 results keep
every digit. lse and delta are fp32 (fp64 for fp64 inputs). The NumPy reference:
backend/reference_attention.py.
"""

from __future__ import annotations

import functools

import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from tinygrad_like.kernels.triton import attention_tma
from tinygrad_like.kernels.triton.attention_tma import (LOG2E, key_range, softmax_block,
                                                        write_out)
from tinygrad_like.kernels.triton.launch import device_capability
from tinygrad_like.kernels.triton.matmul_tma import storage_layout

SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")
MAX_HEAD_DIM = 128


def _forward_tiles(blocks, stages, warps: int | None = None) -> list:
    """triton.Configs over BLOCK_M x BLOCK_N x stages; unless `warps` is given, 8 warps (two
    warpgroups on sm_90) for a 128-row block, whose score and output tiles spill from 4
    warps' registers, and 4 for a 64-row one."""
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_stages=s,
                          num_warps=warps or (8 if m == 128 else 4))
            for m, n in blocks for s in stages]


# The forward's autotuning sets, per precision and padded head dim. Half precision runs on the
# tensor cores; fp32 (and fp64) products run on the FMA units and hold twice the bytes per
# operand, so one small tile serves them. Every tile is compiled for sm_80 and sm_90 by
# tests/test_kernel_compile.py and must not spill or exceed shared memory.
FORWARD_CONFIGS = {
    ("half", 64): _forward_tiles([(64, 64), (64, 128), (128, 64), (128, 128)], (3, 4)),
    ("half", 128): _forward_tiles([(64, 64), (128, 64)], (2, 3)),
    ("full", 64): _forward_tiles([(64, 32)], (2,), warps=8),
    ("full", 128): _forward_tiles([(64, 16)], (2,), warps=8),
}
# The backward kernels' tiles (attention_backward.py), one per precision and padded head dim.
CONFIGS = {
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
def load_rows(ptr, index, stride_index, stride_dim, count,
              CHECK_INDEX: tl.constexpr, DIM: tl.constexpr, BLOCK_DIM: tl.constexpr):
    """A (len(index), BLOCK_DIM) tile of rows `index` of a (count, DIM) matrix, zero-padded;
    bounds are tested only where asked (CHECK_INDEX) or padded (DIM < BLOCK_DIM)."""
    dims = tl.arange(0, BLOCK_DIM)
    ptrs = ptr + index[:, None] * stride_index + dims[None, :] * stride_dim
    if CHECK_INDEX:
        tile = tl.load(ptrs, mask=(index[:, None] < count) & (dims[None, :] < DIM), other=0.0)
    elif DIM < BLOCK_DIM:
        tile = tl.load(ptrs, mask=dims[None, :] < DIM, other=0.0)
    else:
        tile = tl.load(ptrs)
    return tile


@triton.jit
def _key_blocks(acc, running_max, running_sum, q, k_ptr, v_ptr, mask_ptr, rows, lo, hi,
                qk_scale, log2e, L, S, stride_ks, stride_kd, stride_vs, stride_vd,
                stride_ml, stride_ms,
                MASKED: tl.constexpr, HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr,
                EVEN_N: tl.constexpr, HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """The online softmax over key blocks [lo, hi) (attention_tma.softmax_block), k and v
    loaded through pointers: only MASKED blocks of an uneven S test key indices."""
    offs_n = tl.arange(0, BLOCK_N)
    check_keys: tl.constexpr = MASKED and not EVEN_N
    for start_n in range(lo, hi, BLOCK_N):
        keys = start_n + offs_n
        k = load_rows(k_ptr, keys, stride_ks, stride_kd, S, check_keys, HEAD_DIM, BLOCK_D)
        qk = tl.dot(q, tl.trans(k), input_precision="ieee", out_dtype=acc.dtype)
        p, correction, running_max, running_sum = softmax_block(
            qk, running_max, running_sum, mask_ptr, rows, keys, qk_scale, log2e, L, S,
            stride_ml, stride_ms, MASKED, HAS_MASK, IS_CAUSAL, check_keys)
        v = load_rows(v_ptr, keys, stride_vs, stride_vd, S, check_keys, HEAD_DIM_V, BLOCK_DV)
        # P is rounded to v's dtype for the tensor cores; the sum above used it unrounded
        acc = tl.dot(p.to(v.dtype), v, acc * correction[:, None], input_precision="ieee",
                     out_dtype=acc.dtype)
    return acc, running_max, running_sum


@triton.jit
def attention_forward_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, out_ptr, lse_ptr, scale: tl.float64,
    L, S,
    stride_qz, stride_ql, stride_qd,
    stride_kz, stride_ks, stride_kd,
    stride_vz, stride_vs, stride_vd,
    stride_mz, stride_ml, stride_ms,
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr,
    HAS_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr, EVEN_N: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    """BLOCK_M query rows of one z: full key blocks, then the masked ones, out and lse once."""
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
    # tl.full keeps fp64 constants exact (a Python float operand would be rounded to fp32)
    log2e = tl.full([], LOG2E, compute)
    qk_scale = tl.full([], scale, compute) * log2e  # >= 0: the launcher folds a sign into q

    rows = start_m + tl.arange(0, BLOCK_M)
    q = load_rows(q_ptr, rows, stride_ql, stride_qd, L, True, HEAD_DIM, BLOCK_D)

    running_max = tl.full([BLOCK_M], float("-inf"), compute)
    running_sum = tl.zeros([BLOCK_M], compute)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], compute)
    full_end, hi = key_range(start_m, S, IS_CAUSAL, BLOCK_M, BLOCK_N)
    acc, running_max, running_sum = _key_blocks(
        acc, running_max, running_sum, q, k_ptr, v_ptr, mask_ptr, rows, 0, full_end,
        qk_scale, log2e, L, S, stride_ks, stride_kd, stride_vs, stride_vd, stride_ml, stride_ms,
        False, HAS_MASK, IS_CAUSAL, EVEN_N, HEAD_DIM, HEAD_DIM_V, BLOCK_N, BLOCK_D, BLOCK_DV)
    if IS_CAUSAL or not EVEN_N:
        acc, running_max, running_sum = _key_blocks(
            acc, running_max, running_sum, q, k_ptr, v_ptr, mask_ptr, rows, full_end, hi,
            qk_scale, log2e, L, S, stride_ks, stride_kd, stride_vs, stride_vd, stride_ml,
            stride_ms, True, HAS_MASK, IS_CAUSAL, EVEN_N, HEAD_DIM, HEAD_DIM_V, BLOCK_N,
            BLOCK_D, BLOCK_DV)

    write_out(acc, running_max, running_sum, out_ptr, lse_ptr, z, rows, L, HEAD_DIM_V, BLOCK_DV)


def _time_launches(kernel_call, quantiles) -> list:
    """The autotuner's timer: CUDA events on CuPy's current stream around back-to-back
    launches (Triton's default timer asks torch.cuda, which a CPU build of torch lacks)."""
    import cupy

    kernel_call()  # compiles the config, and warms the caches
    stream = cupy.cuda.get_current_stream()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(TUNING_REPEATS):
        start.record(stream)
        for _ in range(TUNING_LAUNCHES):
            kernel_call()
        end.record(stream)
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / TUNING_LAUNCHES)
    times.sort()
    return [times[min(len(times) - 1, int(q * len(times)))] for q in quantiles]


TUNING_REPEATS, TUNING_LAUNCHES = 5, 10


def _tuned_forward(configs: list):
    """The forward kernel autotuned over `configs`, once per (shape, flags, dtype); EVEN_N
    follows the chosen BLOCK_N."""
    even_n = triton.heuristics({"EVEN_N": lambda args: args["S"] % args["BLOCK_N"] == 0})
    return triton.autotune(configs, key=["L", "S", "HEAD_DIM", "HEAD_DIM_V", "HAS_MASK",
                                         "IS_CAUSAL"], do_bench=_time_launches)(
        even_n(attention_forward_kernel))


TUNED_FORWARD = {key: _tuned_forward(configs) for key, configs in FORWARD_CONFIGS.items()}


@functools.cache
def _tuned_forward_tma(head: int):
    """attention_tma.py's kernel over the half-precision tiles of FORWARD_CONFIGS, each
    descriptor's box set per tile; EVEN_N follows the chosen BLOCK_N."""
    configs = [triton.Config(c.kwargs, num_warps=c.num_warps, num_stages=c.num_stages,
                             pre_hook=attention_tma.set_boxes)
               for c in FORWARD_CONFIGS["half", head]]
    even_n = triton.heuristics({"EVEN_N": lambda args: args["S"] % args["BLOCK_N"] == 0})
    return triton.autotune(configs, key=["L", "S", "HEAD_DIM_V", "BLOCK_D", "HAS_MASK",
                                         "IS_CAUSAL"], do_bench=_time_launches)(
        even_n(attention_tma.attention_forward_tma_kernel))


def _uses_tma(launcher, dtype) -> bool:
    """Whether a forward goes to the TMA kernel: 16-bit operands, compiled on sm_90 or later."""
    return (dtype.name in attention_tma.DTYPES and not launcher.interpret
            and device_capability() >= 90)


def _forward_tma(launcher, q, k, v, mask, out, lse, scale: float, flags: dict) -> bool:
    """Launch attention_tma.py's kernel if TMA can read q, k and v where they are (see
    matmul_tma.storage_layout; the head dim must be the unit stride); False if not."""
    (Z, L, _), S = q.shape, k.shape[1]
    layouts = [storage_layout(x) for x in (q, k, v)] if S else [None]  # no empty boxes
    if not all(layout and not layout[2] for layout in layouts):
        return False
    descriptors = [TensorDescriptor(launcher.arg(x), shape, strides, [1, 16, 16])
                   for x, (shape, strides, _) in zip((q, k, v), layouts)]
    pointers, strides = operand_pointers(launcher, None, None, None, mask)
    args = (*descriptors, pointers[3], launcher.arg(out), launcher.arg(lse), float(scale), L, S,
            *strides[9:])
    flags = {name: flags[name] for name in
             ("HEAD_DIM_V", "HAS_MASK", "IS_CAUSAL", "BLOCK_D", "BLOCK_DV")}
    if launcher.interpret:
        config = {**INTERP_CONFIG, "EVEN_N": S % INTERP_CONFIG["BLOCK_N"] == 0}
        attention_tma.set_boxes({**dict(zip(("q_desc", "k_desc", "v_desc"), descriptors)),
                                 **flags, **config})
        kernel = launcher.kernel(attention_tma.attention_forward_tma_kernel)
    else:
        config = {}
        kernel = launcher.kernel(_tuned_forward_tma(max(64, flags["BLOCK_D"],
                                                        flags["BLOCK_DV"])))
    kernel[lambda meta: (Z * triton.cdiv(L, meta["BLOCK_M"]),)](*args, **flags, **config)
    return True


# ---- launchers: the kernel table's entries, called as fn(launcher, *reference args) ----------
def attention(launcher, q, k, v, mask, is_causal: bool, scale: float):
    """(out (Z, L, Dv) in q's dtype, lse (Z, L) in float32, float64 for float64 inputs)."""
    Z, L, S, D, DV = check_operands("attention", q, k, v, mask)
    out = launcher.empty((Z, L, DV), q.dtype)
    lse = launcher.empty((Z, L), _stat_dtype(launcher.xp, q))
    if Z * L == 0:
        return out, lse
    if scale < 0:  # q k^T * scale = (-q) k^T * |scale|: the loop's max needs a scale >= 0
        q, scale = launcher.xp.negative(q), -scale
    flags = {"HEAD_DIM": D, "HEAD_DIM_V": DV, "HAS_MASK": mask is not None,
             "IS_CAUSAL": bool(is_causal), "BLOCK_D": _head_block(D), "BLOCK_DV": _head_block(DV)}
    if _uses_tma(launcher, q.dtype) and _forward_tma(launcher, q, k, v, mask, out, lse, scale,
                                                     flags):
        return out, lse
    pointers, strides = operand_pointers(launcher, q, k, v, mask)
    args = (*pointers, launcher.arg(out), launcher.arg(lse), float(scale), L, S, *strides)
    if launcher.interpret:
        config = INTERP_CONFIG
        grid = (Z * triton.cdiv(L, config["BLOCK_M"]),)
        launcher.kernel(attention_forward_kernel)[grid](
            *args, **flags, **config, EVEN_N=S % config["BLOCK_N"] == 0)
        return out, lse
    head = max(64, flags["BLOCK_D"], flags["BLOCK_DV"])
    tuned = TUNED_FORWARD[_precision(q.dtype), head]
    launcher.kernel(tuned)[lambda meta: (Z * triton.cdiv(L, meta["BLOCK_M"]),)](*args, **flags)
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


def tile_config(launcher, job: str, dtype, D: int, DV: int) -> dict:
    """Tile sizes and launch options for a backward kernel: the GPU's table or the interpreter's."""
    blocks = {"BLOCK_D": _head_block(D), "BLOCK_DV": _head_block(DV)}
    if launcher.interpret:
        return {**INTERP_CONFIG, **blocks}
    head = max(64, blocks["BLOCK_D"], blocks["BLOCK_DV"])
    return {**CONFIGS[job, _precision(dtype), head], **blocks}


def _precision(dtype) -> str:
    """"half" for 16-bit inputs (the tensor cores' tiles), "full" for fp32 and fp64."""
    return "half" if dtype.itemsize == 2 else "full"


def _head_block(dim: int) -> int:
    """A head dim padded to a power of two of at least 16 (tl.dot's smallest side)."""
    return max(16, triton.next_power_of_2(dim))
