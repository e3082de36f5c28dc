"""What the ahead-of-time compile checks and `tinygrad-like kernels` need from a kernel file.

Each kernel module exposes `compile_variants() -> list[KernelVariant]`: one entry per
(kernel, dtype, tuned configuration) it can launch with, plus the traffic model of
its benchmark shape for the roofline table.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KernelVariant:
    name: str  # e.g. "matmul", "softmax_forward_online"
    kernel: object  # the @triton.jit JITFunction (not an autotuner)
    dtype: str  # "fp32", "fp16", "bf16"
    signature: dict  # triton.compiler.ASTSource signature: {"a_ptr": "*fp16", "M": "i32", ...}
    constexprs: dict  # values for every tl.constexpr parameter
    num_warps: int = 4
    num_stages: int = 3
    tensor_cores: bool = False  # must the cubin contain HMMA (sm_80) / HGMMA (sm_90)?
    # for the roofline: the benchmark shape, FLOPs done, bytes this tiling moves from
    # HBM, and the ideal bytes (every input read once, every output written once)
    shape: str = ""
    flops: float = 0.0
    bytes_moved: float = 0.0
    ideal_bytes: float = 0.0
    notes: dict = field(default_factory=dict)
