"""Ahead-of-time facts about every Triton kernel, for `tinygrad-like kernels` and the tests.

Each Triton module that serves an entry of the kernel table (backend/table.py) on "cuda" and
"interp", as backend/triton_kernels.py's TRITON_KERNELS maps them, has its launchable forms
listed in `kernels/triton/catalog.py` (COMPILE_VARIANTS). Every variant is compiled for
sm_80 (A100) and sm_90 (H100) with `triton.compile` (no GPU needed), and its cubin is read
with the `cuobjdump` that Triton ships: registers per thread, stack and local memory (above
0 means spilling), and from the SASS (tinygrad_like/sass.py) the tensor-core instructions
(HMMA on sm_80, HGMMA on sm_90, DMMA for float64), TMA and cp.async loads, and the main
loop's instructions and narrow global loads. Two optional notes on a variant: "arch"
(tuned for that architecture, compiled only for it) and "attrs" (argument name -> the
attributes the JIT would give it, e.g. [["tt.divisibility", 16]], so the compile sees the
alignment a real launch has); "main_loop" picks one of several working loops (sass.main_loop).

float64 runs on a GPU only for gradient checks: each fp32 variant is also compiled for
sm_90 in float64 (`fp64_cases`), with the same tiles, so it is known to compile.

The bound model (BOUND_MODEL) estimates, per variant and architecture, which of three
limits a launch on the benchmark shape hits first.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinygrad_like import sass

ARCHS = (80, 90)
# shared memory one block may use (the opt-in maximum): A100 and H100
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}


@dataclass(frozen=True)
class Machine:
    name: str
    sms: int
    clock: float  # Hz at which the peak FLOP/s figures are quoted
    bandwidth: float  # bytes/s of HBM
    # FLOP/s by (dtype, tensor cores): dense fp16/bf16 and TF32 tensor cores, FP32 on the FMA
    # units, FP64 on its tensor cores or FMA units
    peak_flops: dict


MACHINES = {
    80: Machine("A100 SXM", 108, 1.41e9, 2.039e12, {
        ("fp16", True): 312e12, ("bf16", True): 312e12, ("fp32", True): 156e12,
        ("fp32", False): 19.5e12, ("fp16", False): 78e12, ("bf16", False): 39e12,
        ("fp64", True): 19.5e12, ("fp64", False): 9.7e12}),
    90: Machine("H100 SXM", 132, 1.83e9, 3.35e12, {
        ("fp16", True): 989e12, ("bf16", True): 989e12, ("fp32", True): 494.7e12,
        ("fp32", False): 67e12, ("fp16", False): 134e12, ("bf16", False): 134e12,
        ("fp64", True): 67e12, ("fp64", False): 34e12}),
}
H100_BANDWIDTH = MACHINES[90].bandwidth
H100_PEAK_FLOPS = MACHINES[90].peak_flops
ISSUE_PER_SM = 4  # warp instructions per clock: one per scheduler, four schedulers per SM
BOUND_MODEL = """\
bound: the largest of three times for the benchmark shape on the architecture's machine
(sm_80: A100 SXM, 108 SMs at 1.41 GHz, 2.04 TB/s; sm_90: H100 SXM, 132 SMs at 1.83 GHz,
3.35 TB/s):
  tensor-core  FLOPs / peak (the tensor-core peak of the dtype when the SASS has tensor-core
               instructions, else the FMA units' peak; "fma" is printed then)
  memory       bytes the tiling moves from HBM (no L2 reuse) / bandwidth
  issue        warp instructions of the main loop / (SMs x 4 schedulers x clock), where the
               loop runs FLOPs / (FLOPs its MMA and FMA instructions do per iteration) times
               (tiled GEMM-shaped kernels), or the elements it visits / elements per
               iteration (row kernels); "?" after the bound: unknown, issue left out
Only the main loop counts for issue (prologue, epilogue and other loops are left out), and
every SM is assumed busy; "per elem" is the main loop's non-tensor-core instructions per
output element (per score element for attention) per iteration, summed over the threads."""
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


def fp64_cases(archs=(90,)) -> list[tuple]:
    """(float64 variant, arch): each fp32 variant retyped, compiled for sm_90 only (the GPU
    the project targets; float64 is for gradient checks, so one architecture shows that it
    compiles). Fused epilogues and log-softmax reuse their kernel's loop, so they are left
    out; a kernel that uses tensor cores in half precision must use DMMA in float64."""
    from tinygrad_like.kernels.triton.variants import retyped

    variants = kernel_variants()
    tensor_core_kernels = {v.kernel for v in variants if v.tensor_cores}
    return [(retyped(variant, "fp64", variant.kernel in tensor_core_kernels), arch)
            for variant, arch in compile_cases(archs) if variant.dtype == "fp32"
            and variant.constexprs.get("ACTIVATION", "none") == "none"
            and not variant.constexprs.get("LOG", False)]


def case_id(variant, arch: int) -> str:
    return f"{variant.name}-{variant.dtype}-{config_name(variant)}-sm_{arch}".replace(" ", "-")


def config_name(variant) -> str:
    """'128x128x32 w8 s3': the BLOCK_* sizes, warps and pipeline stages."""
    blocks = "x".join(str(v) for k, v in variant.constexprs.items() if k.startswith("BLOCK"))
    return f"{blocks} w{variant.num_warps} s{variant.num_stages}".strip()


def compiled(variant, arch: int) -> dict:
    """Compile `variant` for sm_<arch> once per process: {"cubin": bytes, "sass": text,
    "usage": cuobjdump -res-usage text, "shared": bytes of shared memory}."""
    key = (variant.kernel, arch, variant.num_warps, variant.num_stages,
           repr(sorted(variant.signature.items())), repr(sorted(variant.constexprs.items())),
           repr(sorted(variant.notes.get("attrs", {}).items())))
    if key not in _compiled:
        _compiled[key] = _compile(variant, arch)
    return _compiled[key]


def cubin_facts(variant, arch: int) -> dict:
    """The compiled variant's resources and what its SASS shows (see the module docstring)."""
    artifacts = compiled(variant, arch)
    found = RESOURCES.search(artifacts["usage"])
    if found is None:
        raise RuntimeError(f"cuobjdump -res-usage printed no resources for "
                           f"{variant.kernel.__name__}:\n{artifacts['usage']}")
    registers, stack, static_shared, local = map(int, found.groups())
    instructions = sass.parse(artifacts["sass"])
    loop = sass.main_loop(instructions, variant.notes.get("main_loop"))
    body = loop.instructions if loop else tuple(instructions)  # straight-line: the whole body
    return {"registers": registers, "stack": stack, "local": local,
            "shared": max(artifacts["shared"], static_shared),
            "tensor_core_ops": sass.tensor_core_ops(instructions),
            "tensor_core_kinds": sass.tensor_core_kinds(instructions),
            "tma_loads": sass.count(instructions, "UTMALDG"),
            "cp_async_loads": sass.count(instructions, "LDGSTS"),
            "loop": loop is not None, "loop_instructions": len(body),
            "loop_tensor_core_ops": sass.tensor_core_ops(body),
            "loop_narrow_loads": sass.narrow_global_loads(body),
            "loop_warp_flops": sass.loop_flops(body)}


def _compile(variant, arch: int) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget

    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # explicit: unset is deprecated
    kernel = variant.kernel
    attrs = {(kernel.arg_names.index(name),): value
             for name, value in variant.notes.get("attrs", {}).items()}
    source = triton.compiler.ASTSource(fn=kernel, signature=variant.signature,
                                       constexprs=variant.constexprs, attrs=attrs)
    result = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                            options={"num_warps": variant.num_warps,
                                     "num_stages": variant.num_stages})
    with tempfile.TemporaryDirectory() as folder:
        cubin = Path(folder) / f"{result.name}.cubin"
        cubin.write_bytes(result.asm["cubin"])
        return {"cubin": result.asm["cubin"], "usage": _cuobjdump("-res-usage", cubin),
                "sass": _cuobjdump("-sass", cubin), "shared": result.metadata.shared}


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


def roofline_ms(variant, bytes_moved: float, arch: int = 90,
                tensor_cores: bool | None = None) -> float:
    """Time in ms on sm_<arch>'s machine for the variant's FLOPs and `bytes_moved`, whichever
    bound is higher; `tensor_cores` defaults to whether the variant must use them."""
    machine = MACHINES[arch]
    tensor_cores = variant.tensor_cores if tensor_cores is None else tensor_cores
    peak = machine.peak_flops.get((variant.dtype, tensor_cores),
                                  machine.peak_flops["fp32", False])
    return 1e3 * max(variant.flops / peak, bytes_moved / machine.bandwidth)


def elements_per_iteration(variant) -> int | None:
    """Output (or score) elements one program's main-loop iteration works on: BLOCK_M x
    BLOCK_N for GEMM-shaped loops, BLOCK for row kernels."""
    blocks = variant.constexprs
    if "BLOCK_M" in blocks and "BLOCK_N" in blocks:
        return blocks["BLOCK_M"] * blocks["BLOCK_N"]
    return blocks.get("BLOCK")


def bound_estimate(variant, arch: int, facts: dict) -> dict:
    """{"compute_ms", "memory_ms", "issue_ms" (None if unknown), "bound", "per_element"}."""
    machine, warps = MACHINES[arch], variant.num_warps
    tensor_cores = facts["tensor_core_ops"] > 0
    peak = machine.peak_flops.get((variant.dtype, tensor_cores),
                                  machine.peak_flops["fp32", False])
    per_iteration = elements_per_iteration(variant)
    issued = facts["loop_instructions"] - facts["loop_tensor_core_ops"]
    per_element = 32 * warps * issued / per_iteration if per_iteration else None
    iterations = None
    if variant.loop_elements and per_iteration:
        iterations = variant.loop_elements / per_iteration
    elif facts["loop_warp_flops"] and "BLOCK_M" in variant.constexprs:  # GEMM-shaped
        iterations = variant.flops / (facts["loop_warp_flops"] * warps)
    issue = (1e3 * facts["loop_instructions"] * warps * iterations
             / (machine.sms * ISSUE_PER_SM * machine.clock)) if iterations else None
    compute = "tensor-core" if tensor_cores else "fma"
    times = {compute: 1e3 * variant.flops / peak,
             "memory": 1e3 * variant.bytes_moved / machine.bandwidth, "issue": issue or 0.0}
    bound = max(times, key=times.get)
    return {"compute_ms": times[compute], "memory_ms": times["memory"], "issue_ms": issue,
            "bound": bound if issue is not None else bound + "?", "estimate_ms": times[bound],
            "per_element": per_element}


def report_rows(archs=ARCHS, fp64: bool = True) -> list[dict]:
    """One row per kernel, dtype, config and architecture (float64 ones last)."""
    cases = compile_cases(archs) + (fp64_cases([a for a in archs if a == 90]) if fp64 else [])
    rows = []
    for variant, arch in cases:
        facts = cubin_facts(variant, arch)
        rows.append({"kernel": variant.name, "dtype": variant.dtype,
                     "config": config_name(variant), "arch": f"sm_{arch}", "case": (variant,
                                                                                   arch),
                     **facts, **bound_estimate(variant, arch, facts),
                     "tensor_cores_expected": variant.tensor_cores, "shape": variant.shape,
                     "ideal_ms": roofline_ms(variant, variant.ideal_bytes, arch)})
    return rows


def dump(rows: list[dict], folder: str | os.PathLike) -> list[Path]:
    """Write each row's cubin and SASS to `folder` as <case id>.cubin and .sass."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in rows:
        variant, arch = row["case"]
        artifacts = compiled(variant, arch)
        stem = folder / case_id(variant, arch)
        stem.with_suffix(".cubin").write_bytes(artifacts["cubin"])
        stem.with_suffix(".sass").write_text(artifacts["sass"])
        written += [stem.with_suffix(".cubin"), stem.with_suffix(".sass")]
    return written


COLUMNS = [("kernel", "kernel", "<"), ("dtype", "dtype", "<"), ("config", "config", "<"),
           ("arch", "arch", "<"), ("registers", "regs", ">"), ("shared", "shared KiB", ">"),
           ("spill", "spill B", ">"), ("tensor_core_ops", "TC ops", ">"),
           ("tensor_core_kinds", "TC kind", "<"), ("tma_loads", "TMA", ">"),
           ("cp_async_loads", "cp.async", ">"), ("loop_instructions", "loop instrs", ">"),
           ("loop_narrow_loads", "narrow LDG", ">"), ("per_element", "per elem", ">"),
           ("bound", "bound", "<"), ("estimate_ms", "est ms", ">"), ("ideal_ms", "ideal ms", ">"),
           ("shape", "shape", "<")]


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of report_rows(), shared memory in KiB and times in ms."""
    def cell(key, row):
        if key == "spill":
            return str(row["stack"] + row["local"])
        value = row[key]
        if key == "shared":
            return f"{value / 1024:.0f}"
        if key == "loop_instructions" and not row.get("loop", True):
            return f"{value} (no loop)"
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[cell(key, row) for key, _, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(f"{text:{align}{width}}" for text, (_, _, align), width
                       in zip(line, COLUMNS, widths)).rstrip() for line in cells]
    lines.insert(1, "-" * len(lines[0]))
    note = ("TMA / cp.async: UTMALDG / LDGSTS instructions; loop instrs, narrow LDG (16 bits or "
            "less): in the main loop; est ms: the bound's time; ideal ms: each input read "
            "once, each output written once. The model: `tinygrad-like kernels --help`.")
    return "\n".join(lines + ["", note])
