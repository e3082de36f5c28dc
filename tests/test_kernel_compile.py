"""Every Triton kernel variant compiles for sm_80 and sm_90 without spilling (no GPU needed).

The variants come from kernel_report, which collects from `kernels/triton/catalog.py` the
variants of every module in the kernel table; a kernel module the catalog does not list
fails here. Each compile takes seconds: kernel files keep their tuned configs few.
"""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

from tinygrad_like import cli, kernel_report, sass
from tinygrad_like.kernels.triton import catalog
from tinygrad_like.kernels.triton import matmul as matmul_kernels
from tinygrad_like.kernels.triton import matmul_tma

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
    served = sum(len(config.get("dtypes", "abc")) for configs in matmul_kernels.CONFIGS.values()
                 for config in configs)  # a config serves its "dtypes", else all three
    assert len(checked) == served


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
        # only a pure copy (conv2d's NCHW -> NHWC pass) does no arithmetic
        assert variant.flops > 0 or variant.name == "conv2d_channels_last"
        assert variant.bytes_moved >= variant.ideal_bytes > 0
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
       "tensor_core_kinds": "HGMMA", "tma_loads": 0, "cp_async_loads": 12, "loop": True,
       "loop_instructions": 84, "loop_narrow_loads": 0, "per_element": 1.3125,
       "bound": "tensor-core", "estimate_ms": 0.651, "ideal_ms": 0.139,
       "tensor_cores_expected": True, "shape": "4096x4096x4096"}


def test_format_table_has_one_line_per_row():
    lines = kernel_report.format_table([ROW, {**ROW, "arch": "sm_80"}]).splitlines()
    assert lines[0].split()[:4] == ["kernel", "dtype", "config", "arch"]
    assert "HGMMA" in lines[2] and "sm_80" in lines[3] and "0.651" in lines[2]
    assert " 64 " in lines[2]  # shared memory in KiB
    assert "tensor-core" in lines[2] and "1.312" in lines[2]


def test_cli_kernels_prints_the_table(monkeypatch, capsys):
    monkeypatch.setattr(kernel_report, "report_rows", lambda archs=(80, 90): [ROW])
    assert cli.main(["kernels"]) == 0
    assert "HGMMA" in capsys.readouterr().out


FP64_CASES = kernel_report.fp64_cases()


@pytest.mark.parametrize("variant, arch", FP64_CASES,
                         ids=[kernel_report.case_id(variant, arch) for variant, arch in FP64_CASES])
def test_fp64_variant_compiles(variant, arch):
    """float64 (gradient checks on a GPU) compiles with the fp32 tiles, fits shared memory
    and keeps its products on the tensor cores (DMMA). Spills are allowed here, as no
    benchmark runs in float64; `tinygrad-like kernels` prints them."""
    facts = kernel_report.cubin_facts(variant, arch)
    assert facts["shared"] <= kernel_report.SHARED_LIMIT[arch], f"shared memory: {facts}"
    if variant.tensor_cores:
        assert "DMMA" in facts["tensor_core_kinds"], f"no DMMA on sm_{arch}: {facts}"
    assert all(kind.startswith(("*fp64", "*i", "i", "constexpr", "fp64"))
               for kind in variant.signature.values()), variant.signature


def test_every_kernel_family_is_compiled_in_fp64():
    names = {variant.name for variant, _ in FP64_CASES}
    assert {"matmul", "softmax_forward", "softmax_backward_online", "cross_entropy_forward",
            "cross_entropy_backward", "attention_forward", "attention_backward_dq",
            "attention_backward_dkdv", "conv2d", "conv2d_backward_input",
            "conv2d_backward_weight"} <= names


# ---- matmul, online softmax and cross-entropy: what their SASS must show on sm_90 ----------
def test_persistent_tma_matmul_uses_tma_and_wgmma_without_spills():
    tma = [(v, arch) for v, arch in CASES if v.kernel is matmul_tma.matmul_tma_kernel]
    assert {kernel_report.config_name(v) for v, _ in tma} == {"128x256x64 w8 s3",
                                                             "128x128x64 w8 s4"}
    for variant, arch in tma:
        facts = kernel_report.cubin_facts(variant, arch)
        assert arch == 90 and facts["stack"] == 0 and facts["local"] == 0, facts
        assert facts["tma_loads"] > 0 and "HGMMA" in facts["tensor_core_kinds"], facts


def test_large_matmul_tile_fits_sm_90_registers():
    large = [v for v, arch in CASES if v.kernel is matmul_kernels.matmul_kernel and arch == 90
             and v.constexprs["BLOCK_N"] == 256]
    assert {v.dtype for v in large} == {"fp16", "bf16"} and any(v.name == "linear_gelu"
                                                                for v in large)
    for variant in large:
        facts = kernel_report.cubin_facts(variant, 90)
        assert facts["registers"] <= 255 and facts["stack"] == 0 and facts["local"] == 0, facts


ONLINE = [(v, arch) for v, arch in CASES if arch == 90 and v.dtype in ("fp32", "fp16")
          and v.name in ("softmax_forward_online", "cross_entropy_forward")]


@pytest.mark.parametrize("variant, arch", ONLINE,
                         ids=[kernel_report.case_id(v, arch) for v, arch in ONLINE])
def test_online_row_loops_reduce_once_and_load_vectors(variant, arch):
    """On the 50,257-wide vocabulary (rows not 16-byte aligned): the column loops keep
    per-lane state, so no block-wide reduction (BAR.SYNC, SHFL) runs inside them, and every
    global load of a loop is a 16-byte vector."""
    loops = sass.loops(sass.parse(kernel_report.compiled(variant, arch)["sass"]))
    assert len(loops) == (2 if variant.name.startswith("softmax") else 1)
    for loop in loops:
        assert sass.count(loop.instructions, "BAR", "SHFL") == 0
        widths = sass.global_load_widths(loop.instructions)
        assert set(widths) == {128}, widths


ONLINE_BACKWARD = [(v, arch) for v, arch in CASES if arch == 90 and v.name in
                   ("softmax_backward_online", "log_softmax_backward_online")]


@pytest.mark.parametrize("variant, arch", ONLINE_BACKWARD,
                         ids=[kernel_report.case_id(v, arch) for v, arch in ONLINE_BACKWARD])
def test_online_softmax_backward_loops_sum_per_lane_and_load_vectors(variant, arch):
    """The backward's sum loop and writing loop at 50,257 columns, fp32/fp16/bf16: per-lane
    partial sums (no BAR.SYNC or SHFL inside either loop) and 16-byte vector loads only, the
    rows split at 16-byte boundaries as the forward's are."""
    loops = sass.loops(sass.parse(kernel_report.compiled(variant, arch)["sass"]))
    assert len(loops) == 2
    for loop in loops:
        assert sass.count(loop.instructions, "BAR", "SHFL") == 0
        widths = sass.global_load_widths(loop.instructions)
        assert set(widths) == {128}, widths


CROSS_ENTROPY_BACKWARD = [(v, arch) for v, arch in CASES
                          if arch == 90 and v.name == "cross_entropy_backward"]


@pytest.mark.parametrize("variant, arch", CROSS_ENTROPY_BACKWARD,
                         ids=[kernel_report.case_id(v, arch) for v, arch in CROSS_ENTROPY_BACKWARD])
def test_cross_entropy_backward_tiles_load_vectors(variant, arch):
    """A (row, 4096-column) tile of the 50,257-wide logits has no loop and no reduction: its
    logits load as 16-byte vectors (8 logits per thread: 2 vectors in fp32, 1 in fp16/bf16),
    and the only narrower loads are the row's target, upstream gradient and lse and the
    head/tail columns' single element per thread (the first tile's branch)."""
    instructions = sass.parse(kernel_report.compiled(variant, arch)["sass"])
    assert not sass.loops(instructions)
    assert sass.count(instructions, "BAR", "SHFL") == 0
    widths = sass.global_load_widths(instructions)
    assert widths[128] == (2 if variant.dtype == "fp32" else 1), widths
    assert sum(widths.values()) - widths[128] <= 4, widths
    stores = {i.opcode for i in instructions if i.mnemonic == "STG"}
    assert "STG.E.128" in stores, stores


# ---- conv2d: channels-last gathers, what the 16-bit variants' SASS must show ---------------
CONV2D_HALF = [(v, arch) for v, arch in CASES if v.dtype in ("fp16", "bf16") and v.name in
               ("conv2d", "conv2d_backward_input", "conv2d_backward_weight")]


@pytest.mark.parametrize("variant, arch", CONV2D_HALF,
                         ids=[kernel_report.case_id(v, arch) for v, arch in CONV2D_HALF])
def test_conv2d_gathers_are_128_bit_cp_async_copies(variant, arch):
    """Gathered NHWC, each im2col row is contiguous channels: the main loop moves both operands
    with 16-byte cp.async copies (LDGSTS.128) into the tensor cores' shared-memory tiles and
    issues no register load from global memory at all, so no scalar 16-bit one; nor does the
    rest of the kernel (the bias loads two halves at a time). The same code NCHW-gathered
    issued 16 scalar 2-byte loads per thread per step."""
    facts = kernel_report.cubin_facts(variant, arch)
    instructions = sass.parse(kernel_report.compiled(variant, arch)["sass"])
    loop = sass.main_loop(instructions)
    copies = [i for i in loop.instructions if i.mnemonic == "LDGSTS"]
    assert copies and {sass.load_width(i) for i in copies} == {128}, facts
    assert sass.count(loop.instructions, "LDG") == 0
    assert sass.narrow_global_loads(instructions) == 0
    assert sass.tensor_core_kinds(loop.instructions) == ("HMMA" if arch == 80 else "HGMMA")
    assert facts["stack"] == 0 and facts["local"] == 0, facts
    # the main loops count taps and pixels instead of dividing them out per step, so their
    # index and mask instructions issue in less time than the tensor cores take (the model
    # of `tinygrad-like kernels --help`)
    estimate = kernel_report.bound_estimate(variant, arch, facts)
    assert estimate["issue_ms"] < estimate["compute_ms"], estimate


# ---- attention forward (kernels/triton/attention.py): the loop over full key blocks -----------
ATTENTION_D64 = [(variant, arch) for variant, arch in CASES
                 if variant.name == "attention_forward" and variant.dtype == "fp16"
                 and variant.notes["head_dim"] == 64]


@pytest.mark.parametrize("variant, arch", ATTENTION_D64,
                         ids=[kernel_report.case_id(variant, arch) for variant, arch in ATTENTION_D64])
def test_attention_forward_full_block_loop_issues_little_beside_the_tensor_cores(variant, arch):
    """Issue 20: at D=64 the fp16 forward's full-block (off-diagonal) loop issues at most ~8
    non-tensor-core instructions per score element on sm_90 (about 19 before the split), with
    HGMMA and no spills; no spills on sm_80 either. A 64-key tile spreads the loop's fixed
    cost (barriers, cp.async addressing, the output rescale) over half the scores, so its
    bound is looser; the 128-key tiles carry the target."""
    facts = kernel_report.cubin_facts(variant, arch)
    assert facts["stack"] == 0 and facts["local"] == 0, f"spills on sm_{arch}: {facts}"
    if arch != 90:
        return
    assert "HGMMA" in facts["tensor_core_kinds"], facts
    instructions = sass.parse(kernel_report.compiled(variant, arch)["sass"])
    full, masked = [sass.main_loop(instructions, index) for index in (0, 1)]
    assert sass.tensor_core_ops(full.instructions) and len(full.instructions) < len(
        masked.instructions), "the full-block loop must come first and skip the masking"
    assert_score_element_budget(variant, kernel_report.compiled(variant, arch)["sass"])


def assert_score_element_budget(variant, text: str) -> None:
    """At most 8 non-tensor-core instructions per score element in the main loop with
    128-key tiles, 10 with 64-key ones."""
    per_element = catalog.instructions_per_score_element(variant, text)
    limit = 8.0 if variant.constexprs["BLOCK_N"] == 128 else 10.0
    assert per_element <= limit, f"{per_element:.2f} instructions per score element"


ATTENTION_TMA = [(v, arch) for v, arch in CASES if v.name == "attention_forward_tma"]


@pytest.mark.parametrize("variant, arch", ATTENTION_TMA,
                         ids=[kernel_report.case_id(v, arch) for v, arch in ATTENTION_TMA])
def test_attention_forward_tma_loads_its_tiles_through_descriptors(variant, arch):
    """Issue 20: the sm_90 forward of 16-bit operands (attention_tma.py) reads q, k and v with
    TMA: the full-block loop's k and v boxes are UTMALDG copies feeding HGMMA, with no
    per-thread global load or cp.async; no spills. At D=64 its loop issues at most 8
    non-tensor-core instructions per score element with 128-key tiles, 10 with 64-key ones
    (the rescale of the 64-wide output and the pipeline's barriers over half the scores)."""
    facts = kernel_report.cubin_facts(variant, arch)
    assert arch == 90 and facts["stack"] == 0 and facts["local"] == 0, facts
    assert facts["tma_loads"] > 0 and "HGMMA" in facts["tensor_core_kinds"], facts
    text = kernel_report.compiled(variant, arch)["sass"]
    full = sass.main_loop(sass.parse(text), 0)
    assert sass.count(full.instructions, "UTMALDG") == 2  # a k box and a v box
    assert sass.count(full.instructions, "LDG", "LDGSTS") == 0
    assert sass.tensor_core_kinds(full.instructions) == "HGMMA"
    if variant.notes["head_dim"] == 64:
        assert_score_element_budget(variant, text)


CHANNELS_LAST = [(v, arch) for v, arch in CASES if v.name == "conv2d_channels_last"]


@pytest.mark.parametrize("variant, arch", CHANNELS_LAST,
                         ids=[kernel_report.case_id(v, arch) for v, arch in CHANNELS_LAST])
def test_conv2d_channels_last_copy_moves_16_byte_vectors(variant, arch):
    """The NCHW -> NHWC pass reads along the pixels and writes along the channels, each side
    in 16-byte vectors, the transposition done in shared memory."""
    instructions = sass.parse(kernel_report.compiled(variant, arch)["sass"])
    assert {i.opcode for i in instructions if i.mnemonic == "LDG"} == {"LDG.E.128"}
    assert {i.opcode for i in instructions if i.mnemonic == "STG"} == {"STG.E.128"}
