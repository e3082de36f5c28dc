"""The SASS reader (tinygrad_like/sass.py) and the bound model of `tinygrad-like kernels`.

The synthetic SASS below has the shape `cuobjdump -sass` prints; the one real compile is the
sm_90 fp16 matmul that tests/test_kernel_compile.py compiles too (cached per process).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tinygrad_like import cli, kernel_report, sass

SASS = """
        Function : toy_kernel
        /*0000*/                   LDC R1, c[0x0][0x28] ;       /* 0x00000a00ff017b82 */
        /*0010*/                   LDG.E.U16 R2, desc[UR4][R2.64] ;
        /*0020*/                   FFMA R3, R2, R2, R3 ;
        /*0030*/                   LDG.E.U16 R4, desc[UR4][R6.64] ;
        /*0040*/                   LDG.E.128 R8, desc[UR4][R6.64] ;
        /*0050*/              @!P0 BRA 0x10 ;
        /*0060*/                   UTMALDG.2D [UR8], [UR4] ;
        /*0070*/                   HGMMA.64x128x16.F32 R24, gdesc[UR8].tnspB, R24 ;
        /*0080*/                   LDGSTS.E.BYPASS.128 [R39], desc[UR14][R30.64], P6 ;
        /*0090*/                   HMMA.16816.F32 R4, R8, R12, R4 ;
        /*00a0*/               @P3 BRA 0x60 ;
        /*00b0*/                   EXIT ;
        /*00c0*/                   BRA 0xc0;
"""


def test_parse_reads_address_predicate_opcode_and_operands():
    instructions = sass.parse(SASS)
    assert len(instructions) == 13
    branch = instructions[5]
    assert (branch.address, branch.predicate, branch.opcode) == (0x50, "@!P0", "BRA")
    assert instructions[7].mnemonic == "HGMMA" and instructions[7].opcode.endswith("16.F32")


def test_loops_are_backward_branches_and_the_trap_is_not_one():
    loops = sass.loops(sass.parse(SASS))
    assert [(loop.start, loop.end, len(loop.instructions)) for loop in loops] == [
        (0x10, 0x50, 5), (0x60, 0xa0, 5)]


def test_the_main_loop_is_the_one_with_tensor_core_work():
    instructions = sass.parse(SASS)
    assert sass.main_loop(instructions).start == 0x60
    assert sass.main_loop(instructions, index=0).start == 0x10  # picked by the variant
    assert sass.main_loop(sass.parse(SASS.split("/*0050*/")[0])) is None


def test_counts_widths_and_narrow_loads():
    first, second = sass.loops(sass.parse(SASS))
    assert sass.global_load_widths(first.instructions) == {16: 2, 128: 1}
    assert sass.narrow_global_loads(first.instructions) == 2
    assert sass.narrow_global_loads(second.instructions) == 0
    assert sass.count(second.instructions, "UTMALDG", "LDGSTS") == 2
    assert sass.tensor_core_ops(second.instructions) == 2
    assert sass.tensor_core_kinds(second.instructions) == "HGMMA,HMMA"
    assert sass.tensor_core_kinds(first.instructions) == "-"


def test_warp_flops_of_tensor_core_and_fma_instructions():
    def flops(opcode):
        return sass.warp_flops(sass.Instruction(0, opcode, ""))

    assert flops("HGMMA.64x128x16.F32") == 2 * 64 * 128 * 16 / 4  # a warpgroup's product
    assert flops("HMMA.16816.F32") == 2 * 16 * 8 * 16
    assert flops("DMMA.884") == 2 * 8 * 8 * 4
    assert flops("FFMA") == 64 and flops("HFMA2") == 128 and flops("LDG.E") == 0
    with pytest.raises(ValueError, match="HMMA.SP"):
        flops("HMMA.SP")


class Toy:
    """A KernelVariant-shaped stand-in: a 128 x 128 GEMM tile, 8 warps."""
    name, dtype, num_warps, tensor_cores, loop_elements = "toy", "fp16", 8, True, 0.0
    constexprs = {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}
    flops, bytes_moved = 2.0 * 4096**3, 3 * 4096**2 * 2.0


FACTS = {"tensor_core_ops": 2, "loop_instructions": 84, "loop_tensor_core_ops": 2,
         "loop_warp_flops": 2 * 64 * 128 * 16 / 4 * 2}


def test_a_lean_gemm_loop_is_tensor_core_bound():
    estimate = kernel_report.bound_estimate(Toy, 90, FACTS)
    assert estimate["bound"] == "tensor-core"
    assert estimate["compute_ms"] == pytest.approx(1e3 * Toy.flops / 989e12)
    assert estimate["per_element"] == pytest.approx(82 * 256 / 128**2)
    # the loop runs flops / (per-warp loop flops x 8 warps) times
    iterations = Toy.flops / (FACTS["loop_warp_flops"] * 8)
    assert estimate["issue_ms"] == pytest.approx(1e3 * 84 * 8 * iterations / (132 * 4 * 1.83e9))


def test_a_busy_loop_is_issue_bound_and_a_row_kernel_memory_bound():
    busy = {**FACTS, "loop_instructions": 2000}
    assert kernel_report.bound_estimate(Toy, 90, busy)["bound"] == "issue"

    class Row(Toy):
        constexprs, tensor_cores, flops = {"BLOCK": 4096}, False, 5.0 * 4096**2
        loop_elements, bytes_moved = 4096.0**2, 2 * 4096**2 * 2.0

    row = {"tensor_core_ops": 0, "loop_instructions": 100, "loop_tensor_core_ops": 0,
           "loop_warp_flops": 640.0}
    estimate = kernel_report.bound_estimate(Row, 80, row)
    assert estimate["bound"] == "memory" and estimate["issue_ms"] > 0
    assert estimate["per_element"] == pytest.approx(100 * 256 / 4096)
    # neither loop_elements nor a GEMM loop: the issue time is unknown, and says so
    unknown = kernel_report.bound_estimate(type("NoCount", (Row,), {"loop_elements": 0.0}),
                                           80, row)
    assert unknown["issue_ms"] is None and unknown["bound"] == "memory?"


def test_help_states_the_bound_model(capsys):
    with pytest.raises(SystemExit):
        cli.main(["kernels", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert " ".join(kernel_report.BOUND_MODEL.split()) in out
    assert "--dump DIR" in out


def test_dump_writes_cubin_and_sass(monkeypatch, tmp_path, capsys):
    variant = type("V", (), {"name": "toy", "dtype": "fp16", "num_warps": 4, "num_stages": 3,
                             "constexprs": {"BLOCK": 64}})
    row = {"case": (variant, 90)}
    monkeypatch.setattr(kernel_report, "report_rows", lambda archs=(80, 90): [row])
    monkeypatch.setattr(kernel_report, "format_table", lambda rows: "table")
    monkeypatch.setattr(kernel_report, "compiled", lambda v, arch: {"cubin": b"\x7fELF",
                                                                     "sass": SASS})
    assert cli.main(["kernels", "--dump", str(tmp_path / "out")]) == 0
    stem = tmp_path / "out" / "toy-fp16-64-w4-s3-sm_90"
    assert stem.with_suffix(".cubin").read_bytes() == b"\x7fELF"
    assert "HGMMA" in stem.with_suffix(".sass").read_text()
    assert "wrote 2 files" in capsys.readouterr().out


def test_a_real_sm90_matmul_shows_its_loop():
    pytest.importorskip("triton")
    variant = next(v for v, arch in kernel_report.compile_cases((90,))
                   if v.name == "matmul" and v.dtype == "fp16")
    facts = kernel_report.cubin_facts(variant, 90)
    assert facts["loop"] and facts["loop_tensor_core_ops"] > 0
    assert facts["loop_narrow_loads"] == 0
    assert facts["cp_async_loads"] + facts["tma_loads"] > 0
    estimate = kernel_report.bound_estimate(variant, 90, facts)
    assert estimate["issue_ms"] > 0 and estimate["per_element"] > 0
    assert estimate["bound"] in ("tensor-core", "memory", "issue")


def test_fp64_variants_are_retyped_fp32_ones():
    from tinygrad_like.kernels.triton.variants import retyped

    fp32 = next(v for v, _ in kernel_report.compile_cases((90,)) if v.dtype == "fp32")
    fp64 = retyped(fp32, "fp64", tensor_cores=True)
    assert fp64.dtype == "fp64" and fp64.tensor_cores and fp64.constexprs == fp32.constexprs
    assert "*fp32" not in fp64.signature.values() and "*fp64" in fp64.signature.values()
    assert fp64.bytes_moved == 2 * fp32.bytes_moved
    assert replace(fp32).signature == fp32.signature  # the original is untouched
