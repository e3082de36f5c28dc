"""What the ahead-of-time compile checks and `tinygrad-like kernels` know about one kernel launch.

A `KernelVariant` is one (kernel, dtype, tuned configuration) a launcher can run, in the form
`triton.compile` takes (an ASTSource signature and constexpr values), plus the traffic model of
its benchmark shape for the roofline table. `catalog.py` lists every kernel's variants; the
helpers here build a variant's signature the way Triton's JIT would specialise a real launch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

GPU_DTYPES = ("fp32", "fp16", "bf16")  # the dtypes every GPU kernel is compiled for
ITEMSIZE = {"fp64": 8, "fp32": 4, "fp16": 2, "bf16": 2}  # bytes per element of each Triton dtype


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
    # for the issue bound: the elements the main loop visits over the whole benchmark (one
    # per row element and pass for a row kernel); 0 lets kernel_report count the loop's
    # iterations from its FLOPs instead (GEMM-shaped loops)
    loop_elements: float = 0.0
    notes: dict = field(default_factory=dict)


def signature_of(kernel, dtype: str, constexprs: dict, types: dict | None = None) -> dict:
    """The ASTSource signature in parameter order: "constexpr" for every name in constexprs,
    then the type in `types` if given, *dtype for pointers and i32 for sizes and strides."""
    types = types or {}
    return {name: "constexpr" if name in constexprs else
            types.get(name, f"*{dtype}" if name.endswith("_ptr") else "i32")
            for name in kernel.arg_names}


def jit_attrs(signature: dict, values: dict) -> dict:
    """What Triton's JIT specializes on at launch, for notes["attrs"]: pointers 16-byte aligned
    (fresh allocations) and the i32 arguments whose value (`values`) is a multiple of 16."""
    return {name: [["tt.divisibility", 16]] for name, kind in signature.items()
            if kind.startswith("*") or (kind == "i32" and values.get(name, 1) % 16 == 0)}


def retyped(variant: KernelVariant, dtype: str, tensor_cores: bool) -> KernelVariant:
    """`variant` (an fp32 one) as the launcher runs it for `dtype`: every fp32 pointer and
    scalar becomes `dtype` (float64 inputs keep their row statistics and partial sums in
    float64 too), with the same tiles, and the traffic scaled by the wider elements.
    `tensor_cores`: must the cubin use them (DMMA for float64 products)?"""
    scale = ITEMSIZE[dtype] / ITEMSIZE[variant.dtype]
    signature = {name: kind.replace(variant.dtype, dtype) for name, kind in
                 variant.signature.items()}
    return replace(variant, dtype=dtype, signature=signature, tensor_cores=tensor_cores,
                   bytes_moved=variant.bytes_moved * scale,
                   ideal_bytes=variant.ideal_bytes * scale, notes=dict(variant.notes))
