"""Ahead-of-time facts about every Triton kernel, for `tinygrad-like kernels` and the tests.

Each Triton module that serves an entry of the kernel table (backend/table.py) on "cuda" and
"interp", as backend/triton_kernels.py's TRITON_KERNELS maps them, has its launchable forms
listed in `kernels/triton/catalog.py` (COMPILE_VARIANTS). Every variant is compiled for
sm_80 (A100) and sm_90 (H100) with `triton.compile` (no GPU needed), and its cubin is read
with the `cuobjdump` that Triton ships: registers per thread, stack and local memory (above
0 means spilling), and the tensor-core instructions in the SASS (HMMA on sm_80; on sm_90 the
PTX's wgmma appears as HGMMA; DMMA for float64). Two optional notes on a variant: "arch"
(tuned for that architecture, compiled only for it) and "attrs" (argument name -> the
attributes the JIT would give it, e.g. [["tt.divisibility", 16]], so the compile sees the
alignment a real launch has).

The roofline estimate is for one H100 SXM: time = max(flops / peak, bytes / bandwidth),
once for the bytes the kernel's tiling moves and once for the ideal bytes (each input
read once, each output written once).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

ARCHS = (80, 90)
# shared memory one block may use (the opt-in maximum): A100 and H100
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
H100_BANDWIDTH = 3.35e12  # bytes/s, HBM3
# FLOP/s by (dtype, tensor cores): dense fp16/bf16 and TF32 tensor cores, FP32 on the FMA
# units, FP64 on its tensor cores or FMA units
H100_PEAK_FLOPS = {("fp16", True): 989e12, ("bf16", True): 989e12, ("fp32", True): 494.7e12,
                   ("fp32", False): 67e12, ("fp16", False): 134e12, ("bf16", False): 134e12,
                   ("fp64", True): 67e12, ("fp64", False): 34e12}
TENSOR_CORE_OPS = re.compile(r"\b(HMMA|HGMMA|DMMA|IMMA|IGMMA|QGMMA)\b")
RESOURCES = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_compiled: dict[tuple, dict] = {}


def kernel_variants() -> list:
    """The catalog's variants of each kernel module in the table, in the table's order.

    Modules not written yet are skipped; a written module the catalog does not list is an error.
    """
    try:
        import triton  # noqa: F401
    except ImportError:
        raise RuntimeError("the kernel report compiles with Triton: install triton (no GPU "
                           "needed)") from None
    from tinygrad_like.backend.triton_kernels import TRITON_KERNELS
    from tinygrad_like.kernels.triton.catalog import COMPILE_VARIANTS

    variants = []
    for module in dict.fromkeys(module for module, _ in TRITON_KERNELS.values()):
        name = f"tinygrad_like.kernels.triton.{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:  # the module exists but something it imports does not
                raise
            continue
        if module not in COMPILE_VARIANTS:
            raise RuntimeError(f"kernels/triton/{module}.py has no compile variants: list them "
                               f"in COMPILE_VARIANTS of kernels/triton/catalog.py")
        variants += COMPILE_VARIANTS[module]()
    return variants


def compile_cases(archs=ARCHS) -> list[tuple]:
    """(variant, arch) pairs to compile: each variant for its own arch, or for every arch."""
    return [(variant, arch) for variant in kernel_variants() for arch in archs
            if variant.notes.get("arch", arch) == arch]


def case_id(variant, arch: int) -> str:
    return f"{variant.name}-{variant.dtype}-{config_name(variant)}-sm_{arch}".replace(" ", "-")


def config_name(variant) -> str:
    """'128x128x32 w8 s3': the BLOCK_* sizes, warps and pipeline stages."""
    blocks = "x".join(str(v) for k, v in variant.constexprs.items() if k.startswith("BLOCK"))
    return f"{blocks} w{variant.num_warps} s{variant.num_stages}".strip()


def cubin_facts(variant, arch: int) -> dict:
    """Compile `variant` for sm_<arch> (once per process) and read its cubin's resources."""
    key = (variant.kernel, arch, variant.num_warps, variant.num_stages,
           repr(sorted(variant.signature.items())), repr(sorted(variant.constexprs.items())),
           repr(sorted(variant.notes.get("attrs", {}).items())))
    if key not in _compiled:
        _compiled[key] = _compile_and_read(variant, arch)
    return _compiled[key]


def _compile_and_read(variant, arch: int) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget

    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # explicit: unset is deprecated
    kernel = variant.kernel
    attrs = {(kernel.arg_names.index(name),): value
             for name, value in variant.notes.get("attrs", {}).items()}
    source = triton.compiler.ASTSource(fn=kernel, signature=variant.signature,
                                       constexprs=variant.constexprs, attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": variant.num_warps,
                                       "num_stages": variant.num_stages})
    with tempfile.TemporaryDirectory() as folder:
        cubin = Path(folder) / f"{compiled.name}.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        usage = _cuobjdump("-res-usage", cubin)
        sass = _cuobjdump("-sass", cubin)
    found = RESOURCES.search(usage)
    if found is None:
        raise RuntimeError(f"cuobjdump -res-usage printed no resources for {kernel.__name__}:\n"
                           f"{usage}")
    registers, stack, static_shared, local = map(int, found.groups())
    mnemonics = TENSOR_CORE_OPS.findall(sass)
    return {"registers": registers, "stack": stack, "local": local,
            "shared": max(compiled.metadata.shared, static_shared),
            "tensor_core_ops": len(mnemonics),
            "tensor_core_kinds": ",".join(sorted(set(mnemonics))) or "-"}


def _cuobjdump(flag: str, cubin: Path) -> str:
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.exists():
        raise RuntimeError(f"cuobjdump not found at {tool}: it ships with Triton's NVIDIA "
                           f"backend")
    done = subprocess.run([str(tool), flag, str(cubin)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump {flag} {cubin.name} failed: {done.stderr.strip()}")
    return done.stdout


def roofline_ms(variant, bytes_moved: float) -> float:
    """H100 time in ms for the variant's FLOPs and `bytes_moved`, whichever bound is higher."""
    peak = H100_PEAK_FLOPS.get((variant.dtype, variant.tensor_cores),
                               H100_PEAK_FLOPS["fp32", False])
    return 1e3 * max(variant.flops / peak, bytes_moved / H100_BANDWIDTH)


def report_rows(archs=ARCHS) -> list[dict]:
    """One row per kernel, dtype, config and architecture."""
    rows = []
    for variant, arch in compile_cases(archs):
        rows.append({"kernel": variant.name, "dtype": variant.dtype,
                     "config": config_name(variant), "arch": f"sm_{arch}",
                     **cubin_facts(variant, arch), "tensor_cores_expected": variant.tensor_cores,
                     "shape": variant.shape, "roofline_ms": roofline_ms(variant,
                                                                        variant.bytes_moved),
                     "ideal_ms": roofline_ms(variant, variant.ideal_bytes)})
    return rows


COLUMNS = [("kernel", "kernel", "<"), ("dtype", "dtype", "<"), ("config", "config", "<"),
           ("arch", "arch", "<"), ("registers", "regs", ">"), ("shared", "shared KiB", ">"),
           ("stack", "stack B", ">"), ("local", "local B", ">"),
           ("tensor_core_ops", "TC ops", ">"), ("tensor_core_kinds", "TC kind", "<"),
           ("shape", "shape", "<"), ("roofline_ms", "H100 ms", ">"),
           ("ideal_ms", "ideal ms", ">")]


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of report_rows(), shared memory in KiB and times in ms."""
    def cell(key, value):
        if key == "shared":
            return f"{value / 1024:.0f}"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[cell(key, row[key]) for key, _, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(f"{text:{align}{width}}" for text, (_, _, align), width
                       in zip(line, COLUMNS, widths)).rstrip() for line in cells]
    lines.insert(1, "-" * len(lines[0]))
    note = ("H100 ms: max(FLOPs / peak, bytes / 3.35 TB/s) for the bytes the tiling moves; "
            "ideal ms: for each input read once and each output written once.")
    return "\n".join(lines + ["", note])
