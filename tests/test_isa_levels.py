"""The tests that compare with PyTorch, once for every instruction-set level this CPU runs.

The native kernels are built once per level (backend/native.py: baseline, x86-64-v3 with
AVX2+FMA, x86-64-v4 with AVX-512), and their roundings differ where a kernel fuses
multiply-adds or sums in vector lanes; PyTorch's own kernels differ by CPU the same way. A
tolerance that holds at one level by luck fails at another, which is how a machine with
AVX-512 once turned CI red. This process runs the best level the CPU has (the whole suite
covers it); every other level it runs gets the parity tests again, in a subprocess with
TINYGRAD_LIKE_ISA set. A level the CPU cannot run is skipped, with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_like.backend import native

TESTS = Path(__file__).resolve().parent
# Every test file that compares with PyTorch on the "cpu" device...
PARITY_TESTS = ["test_amp.py", "test_autograd.py", "test_bfloat16.py", "test_fused_ops.py",
                "test_lr_scheduler.py", "test_native.py", "test_native_conv_images.py",
                "test_native_short_attention.py",
                "test_nn.py",
                "test_nn_layers_torch_api.py", "test_nn_module_api.py",
                "test_nn_transformer_decoder.py", "test_ops.py", "test_optim.py",
                "test_properties.py", "test_pytorch_programs.py", "test_recurrent.py",
                "test_tensor.py", "test_torch_checkpoint.py", "test_torch_surface.py",
                "test_winograd.py"]
# ...and those that import torch for something no level changes.
NOT_PARITY_TESTS = {
    "test_triton_softmax.py": "Triton's interpreter does the arithmetic, not the native kernels",
    "test_fuzz.py": "checks exception types and result shapes, which no level changes",
    "test_distributed.py": "compares DistributedSampler's integer indices with PyTorch's",
    "test_data_torch_api.py": "compares samplers' indices and collated structures with torch's",
    "test_torch_checkpoint_safety.py": "checks which files tg.load refuses, and how",
    "test_launch_path.py": "imports torch only to check the GPU launch path never asks it",
    "test_scaling_plots.py": "checks that the scaling script restores torch's thread count",
}


def test_every_test_file_that_imports_torch_is_sorted_into_one_of_the_lists():
    imports_torch = re.compile(r"^\s*(import|from) torch\b", re.MULTILINE)
    importing_torch = {path.name for path in TESTS.glob("test_*.py")
                       if imports_torch.search(path.read_text())}
    assert importing_torch == set(PARITY_TESTS) | set(NOT_PARITY_TESTS)


@pytest.mark.slow
@pytest.mark.parametrize("level", list(native.ISA_MODULES))
def test_the_parity_tests_pass_at_every_instruction_set_level(level):
    if not native.available():
        pytest.skip(f"the native kernels are not in use: {native.reason()}")
    if level not in native.cpu_isa_levels():
        pytest.skip(f"this CPU cannot run {level} (it runs {', '.join(native.cpu_isa_levels())})")
    if level == native.build_info()["isa"]:
        pytest.skip(f"{level} is this process's level: the whole suite runs at it")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *PARITY_TESTS, "-q", "-x", "-p", "no:cacheprovider"],
        cwd=TESTS, env={**os.environ, native.ENV_ISA: level}, capture_output=True, text=True,
        timeout=1200)
    assert result.returncode == 0, f"at {level}:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
