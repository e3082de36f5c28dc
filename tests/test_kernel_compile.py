"""Every Triton kernel variant compiles for sm_80 and sm_90 without spilling (no GPU needed).

The variants come from kernel_report, which collects from `kernels/triton/catalog.py` the
variants of every module in the kernel table; a kernel module the catalog does not list
fails here. Each compile takes seconds: kernel files keep their tuned configs few.
"""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

from tinygrad_like import cli, kernel_report
from tinygrad_like.kernels.triton import matmul as matmul_kernels

CASES = kernel_report.compile_cases()


@pytest.mark.parametrize("variant, arch", CASES,
                         ids=[kernel_report.case_id(variant, arch) for variant, arch in CASES])
def test_variant_compiles_without_spills(variant, arch):
    facts = kernel_report.cubin_facts(variant, arch)
    assert facts["stack"] == 0 and facts["local"] == 0, f"spills on sm_{arch}: {facts}"
    assert facts["shared"] <= kernel_report.SHARED_LIMIT[arch], f"shared memory: {facts}"
    if variant.tensor_cores:
        assert facts["tensor_core_ops"] > 0, f"no tensor-core instructions on sm_{arch}: {facts}"


def test_every_matmul_config_and_dtype_is_checked():
    checked = {(variant.dtype, kernel_report.config_name(variant), arch)
               for variant, arch in CASES if variant.name == "matmul"}
    assert len(checked) == sum(3 * len(configs) for configs in matmul_kernels.CONFIGS.values())


def test_modules_not_written_yet_are_skipped(monkeypatch):
    from tinygrad_like.backend import triton_kernels

    monkeypatch.setitem(triton_kernels.TRITON_KERNELS, "future_op", ("not_written_yet", "op"))
    names = {variant.name for variant in kernel_report.kernel_variants()}
    assert "matmul" in names


def test_a_kernel_module_missing_from_the_catalog_is_refused(monkeypatch):
    from tinygrad_like.kernels.triton import catalog

    monkeypatch.delitem(catalog.COMPILE_VARIANTS, "softmax")
    with pytest.raises(RuntimeError, match="softmax.py has no compile variants"):
        kernel_report.kernel_variants()


def test_roofline_of_the_tiling_is_never_below_the_ideal():
    for variant, _ in CASES:
        assert variant.flops > 0 and variant.bytes_moved >= variant.ideal_bytes > 0
        assert (kernel_report.roofline_ms(variant, variant.bytes_moved)
                >= kernel_report.roofline_ms(variant, variant.ideal_bytes))


def test_matmul_traffic_model():
    variant = next(v for v, _ in CASES if v.name == "matmul" and v.dtype == "fp16"
                   and v.constexprs["BLOCK_M"] == v.constexprs["BLOCK_N"] == 128)
    size = 4096
    # A read 4096 / 128 times, B 4096 / 128 times, C written once, 2 bytes each
    assert variant.bytes_moved == (32 + 32 + 1) * size * size * 2
    assert variant.ideal_bytes == 3 * size * size * 2
    # memory-bound at 3.35 TB/s, not compute-bound at 989 TFLOP/s, with no L2 reuse
    assert kernel_report.roofline_ms(variant, variant.bytes_moved) == pytest.approx(
        1e3 * variant.bytes_moved / 3.35e12)


ROW = {"kernel": "matmul", "dtype": "fp16", "config": "128x128x32 w8 s4", "arch": "sm_90",
       "registers": 114, "shared": 65536, "stack": 0, "local": 0, "tensor_core_ops": 2,
       "tensor_core_kinds": "HGMMA", "tensor_cores_expected": True, "shape": "4096x4096x4096",
       "roofline_ms": 0.651, "ideal_ms": 0.139}


def test_format_table_has_one_line_per_row():
    lines = kernel_report.format_table([ROW, {**ROW, "arch": "sm_80"}]).splitlines()
    assert lines[0].split()[:4] == ["kernel", "dtype", "config", "arch"]
    assert "HGMMA" in lines[2] and "sm_80" in lines[3] and "0.651" in lines[2]
    assert " 64 " in lines[2]  # shared memory in KiB


def test_cli_kernels_prints_the_table(monkeypatch, capsys):
    monkeypatch.setattr(kernel_report, "report_rows", lambda archs=(80, 90): [ROW])
    assert cli.main(["kernels"]) == 0
    assert "HGMMA" in capsys.readouterr().out
