"""Reading a kernel's SASS (`cuobjdump -sass`): its instructions, loops and memory accesses.

The ahead-of-time checks (tests/test_kernel_compile.py, `tinygrad-like kernels`) ask the same
few questions of every cubin: which loop does the work, how many instructions does it issue,
does it use the tensor cores, TMA (UTMALDG) or cp.async (LDGSTS), and does it load global
memory in narrow scalar pieces. Typical use:

    instructions = sass.parse(text)
    loop = sass.main_loop(instructions)          # None for straight-line code
    sass.count(loop.instructions, "UTMALDG")     # by mnemonic, the opcode before the first "."
    sass.narrow_global_loads(loop.instructions)  # LDG of 16 bits or less
    sass.tensor_core_ops(instructions)

A loop is a backward branch: a BRA whose target address lies before it (the trap `BRA self`
that ends every kernel is not one). The main loop is the innermost loop that does the most
of the kernel's work: tensor-core instructions first, then global memory traffic.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# `/*0a40*/  @!P3 LDGSTS.E.BYPASS.128 [R39], desc[UR14][R30.64], P6 ;`
_LINE = re.compile(r"/\*([0-9a-f]+)\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Za-z0-9_.]*)([^;]*);")
_TARGET = re.compile(r"0x([0-9a-f]+)")
TENSOR_CORE = ("HMMA", "HGMMA", "DMMA", "IMMA", "IGMMA", "QGMMA")
GLOBAL_LOADS = ("LDG", "LDGSTS", "UTMALDG")
# width in bits named by an LDG/LDGSTS modifier; a plain LDG.E moves 32 bits
_WIDTHS = {"U8": 8, "S8": 8, "U16": 16, "S16": 16, "64": 64, "128": 128}
# lanes x FLOPs per lane of one warp instruction on the FMA units (packed halves do two)
_FMA_FLOPS = {"FFMA": 64, "DFMA": 64, "HFMA2": 128}
# one warp's M, N, K in the sm_80 spellings (sm_90's HGMMA writes "64x128x16")
_MMA_SHAPES = {"884": (8, 8, 4), "8816": (8, 8, 16), "8832": (8, 8, 32), "1684": (16, 8, 4),
               "1688": (16, 8, 8), "16816": (16, 8, 16), "16832": (16, 8, 32)}


@dataclass(frozen=True)
class Instruction:
    address: int
    opcode: str  # with its modifiers: "LDG.E.U16", "HGMMA.64x128x16.F32"
    operands: str
    predicate: str = ""  # "@P3", "@!P0" or ""

    @property
    def mnemonic(self) -> str:
        return self.opcode.split(".")[0]


@dataclass(frozen=True)
class Loop:
    start: int  # address of its first instruction (the branch target)
    end: int  # address of the backward branch
    instructions: tuple[Instruction, ...]
    innermost: bool = True


def parse(sass: str) -> list[Instruction]:
    """The instructions of `cuobjdump -sass` output, in address order (one kernel per cubin)."""
    found = []
    for line in sass.splitlines():
        match = _LINE.search(line)
        if match:
            address, predicate, opcode, operands = match.groups()
            found.append(Instruction(int(address, 16), opcode, operands.strip(),
                                     (predicate or "").strip()))
    return found


def loops(instructions: list[Instruction]) -> list[Loop]:
    """Every loop (backward branch), in program order of its start."""
    spans = []
    for instruction in instructions:
        if instruction.mnemonic != "BRA":
            continue
        target = _TARGET.search(instruction.operands)
        if target and int(target.group(1), 16) < instruction.address:
            spans.append((int(target.group(1), 16), instruction.address))
    result = []
    for start, end in sorted(spans):
        inner = any(s >= start and e <= end and (s, e) != (start, end) for s, e in spans)
        body = tuple(i for i in instructions if start <= i.address <= end)
        result.append(Loop(start, end, body, innermost=not inner))
    return result


def main_loop(instructions: list[Instruction], index: int | None = None) -> Loop | None:
    """The innermost loop with the most tensor-core instructions, then global loads.

    `index` picks instead the index-th innermost loop that has any of them, in program order
    (a kernel with two such loops, such as attention's off-diagonal and diagonal tiles, names
    the one it means). None when the code has no loop.
    """
    candidates = [loop for loop in loops(instructions) if loop.innermost]
    if index is not None:
        working = [loop for loop in candidates
                   if tensor_core_ops(loop.instructions) or count(loop.instructions,
                                                                  *GLOBAL_LOADS)]
        return working[index] if index < len(working) else None
    if not candidates:
        return None
    return max(candidates, key=lambda loop: (tensor_core_ops(loop.instructions),
                                             count(loop.instructions, *GLOBAL_LOADS),
                                             -loop.start))


def count(instructions, *mnemonics: str) -> int:
    """How many instructions have one of `mnemonics` (the opcode before its first ".")."""
    return sum(instruction.mnemonic in mnemonics for instruction in instructions)


def tensor_core_ops(instructions) -> int:
    return count(instructions, *TENSOR_CORE)


def tensor_core_kinds(instructions) -> str:
    """The tensor-core mnemonics present, e.g. "HGMMA", or "-" for none."""
    return ",".join(sorted({i.mnemonic for i in instructions if i.mnemonic in TENSOR_CORE})) or "-"


def load_width(instruction: Instruction) -> int:
    """Bits one lane moves with an LDG or LDGSTS (32 unless a modifier says otherwise)."""
    for modifier in instruction.opcode.split(".")[1:]:
        if modifier in _WIDTHS:
            return _WIDTHS[modifier]
    return 32


def global_load_widths(instructions) -> Counter:
    """{bits: how many LDG instructions load that many bits per lane} (LDGSTS not included)."""
    return Counter(load_width(i) for i in instructions if i.mnemonic == "LDG")


def narrow_global_loads(instructions, bits: int = 16) -> int:
    """Scalar global loads of at most `bits` per lane: 16-bit operands fetched one at a time."""
    return sum(count for width, count in global_load_widths(instructions).items() if width <= bits)


def warp_flops(instruction: Instruction) -> float:
    """FLOPs one warp's issue of `instruction` does on the tensor cores or FMA units (0 else).

    HGMMA.64xNxK is a warpgroup's (4 warps') product, so each warp's issue counts a quarter;
    HMMA.16816 / DMMA.884 name one warp's M, N, K.
    """
    if instruction.mnemonic in _FMA_FLOPS:
        return _FMA_FLOPS[instruction.mnemonic]
    if instruction.mnemonic not in TENSOR_CORE:
        return 0.0
    shape = instruction.opcode.split(".")[1]
    sizes = _MMA_SHAPES.get(shape) or tuple(int(x) for x in shape.split("x") if x.isdigit())
    if len(sizes) != 3:
        raise ValueError(f"unknown tensor-core shape in {instruction.opcode}")
    flops = 2.0 * sizes[0] * sizes[1] * sizes[2]
    return flops / 4 if instruction.mnemonic.endswith("GMMA") else flops


def loop_flops(instructions) -> float:
    """FLOPs of one warp's pass through `instructions` (tensor-core and FMA instructions)."""
    return sum(warp_flops(instruction) for instruction in instructions)
