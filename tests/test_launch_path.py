"""The "cuda" device's launch path, without a GPU (issue 20, part 1).

Triton's binder is exercised directly; everything else runs the "cuda" backend's own code on
the launch-marshalling test device (tinygrad_like/backend/marshal_device.py): a stand-in CuPy,
each kernel compiled for sm_90 by the real binder and compiler, launched through the driver
"cuda" uses, and its arithmetic done by Triton's interpreter. Compiles are cached by Triton
for the session, so the module compiles each kernel specialisation once.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
import torch
from triton.backends.compiler import GPUTarget
from triton.compiler import make_backend as triton_backend
from triton.runtime import driver as triton_driver
from triton.runtime.jit import create_function_from_signature

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like import backend as devices
from tinygrad_like.backend import cupy_standin, marshal_device
from tinygrad_like.backend.marshal_device import LAUNCHES, MarshallingError
from tinygrad_like.kernels.triton import launch
from tinygrad_like.kernels.triton import softmax as softmax_kernels

POINTER = {"float32": "*fp32", "float16": "*fp16", "float64": "*fp64"}
INTERLEAVED = ["float32", "float16", "float64", "float16", "float32", "float64"]


class _DeviceMemory:
    """What a CuPy array shows a compiled launch: `.data.ptr` and `.dtype`."""

    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype)
        self.data = cupy_standin._Memory(1 << 20)


def test_the_binder_specialises_interleaved_dtypes_each_time():
    """Triton caches dtype -> pointer type by the dtype object's address: dtype objects made
    per argument and freed let a float16 argument inherit a float32 one's '*fp32'."""
    kernel = softmax_kernels.softmax_forward_kernel
    binder = create_function_from_signature(kernel.signature, kernel.params,
                                            triton_backend(GPUTarget("cuda", 90, 32)))
    for _ in range(50):
        for dtype in INTERLEAVED:
            arguments = [launch._CupyArg(_DeviceMemory(dtype)) for _ in range(2)]
            _, specialisation, _ = binder(*arguments, 10, 1, 1, 1, 1, 1, 1, 1, LOG=False,
                                          BLOCK=16)
            assert [kind for kind, *_ in specialisation[:2]] == [POINTER[dtype]] * 2


def test_compiled_launches_ask_cupy_not_torch(monkeypatch):
    """With torch imported (a CPU build here), Triton's NVIDIA driver would ask
    torch.cuda.is_available() and find no driver; the "cuda" launcher installs one on CuPy."""
    def torch_asked(*args):
        raise AssertionError("the compiled launch path asked torch.cuda")

    for name in ("is_available", "current_device", "current_stream", "get_device_capability"):
        monkeypatch.setattr(torch.cuda, name, torch_asked)
    monkeypatch.setitem(sys.modules, "cupy", cupy_standin)
    monkeypatch.setattr(triton_driver, "_active", None)
    previous = cupy_standin.configure(device_count=1, compute_capability="80")
    try:
        launch.Launcher(interpret=False)
        active = triton_driver.active
        assert isinstance(active, launch.CupyDriver) and active.cupy is cupy_standin
        assert active.get_current_target() == GPUTarget("cuda", 80, 32)
        with cupy_standin.cuda.Stream() as stream:
            assert active.get_current_stream(active.get_current_device()) == stream.ptr != 0
    finally:
        cupy_standin.configure(**previous)


@pytest.fixture(scope="module")
def gpu():
    """The "cuda" device, as built by cuda_device.make_backend, on two stand-in GPUs."""
    with marshal_device.as_cuda(device_count=2) as backend:
        yield backend


def _data(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_softmax_on_the_marshalling_device_matches_cpu_over_interleaved_dtypes(gpu):
    LAUNCHES.clear()
    x = _data(6, 37)
    for dtype in INTERLEAVED:
        out = F.softmax(tg.tensor(x, dtype=getattr(tg, dtype), device="cuda"), dim=-1)
        expected = F.softmax(tg.tensor(x, dtype=getattr(tg, dtype)), dim=-1)
        assert out.dtype == expected.dtype and out.device == "cuda"
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=2e-3, atol=1e-6)
        launched = LAUNCHES[-1]
        assert launched.arch == 90 and launched.grid == (6, 1, 1)
        assert (launched.signature["x_ptr"], launched.signature["out_ptr"]) == (POINTER[dtype],) * 2


def test_the_marshalling_device_refuses_a_pointer_of_the_wrong_type(gpu, monkeypatch):
    """The old bug's symptom, forced: every argument claims float32."""
    monkeypatch.setattr(launch, "triton_dtype", lambda name: launch._TritonDtype("float32"))
    x = tg.tensor(_data(3, 5), dtype=tg.float16, device="cuda")
    with pytest.raises(MarshallingError, match=r"x_ptr was specialised as \*fp32 but points "
                                               r"into float16 memory"):
        F.softmax(x, dim=-1)


def test_launches_run_on_cupys_current_stream(gpu):
    x = tg.tensor(_data(4, 9), device="cuda")
    with cupy_standin.cuda.Stream() as stream:
        F.softmax(x, dim=-1)
    assert LAUNCHES[-1].stream == stream.ptr != 0
    F.softmax(x, dim=-1)
    assert LAUNCHES[-1].stream == 0


@pytest.mark.parametrize("dtype, kernel", [("float32", "matmul_kernel"),
                                           ("float16", "matmul_tma_kernel")])
def test_matmul_on_the_marshalling_device_matches_cpu(gpu, dtype, kernel):
    """float16 on sm_90 takes the persistent kernel, its operands as host TMA descriptors."""
    LAUNCHES.clear()
    a, b = _data(40, 32, seed=1, dtype=dtype), _data(32, 24, seed=2, dtype=dtype)
    out = tg.tensor(a, device="cuda") @ tg.tensor(b, device="cuda")
    expected = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(out.numpy().astype(np.float32), expected,
                               rtol=1e-5 if dtype == "float32" else 2e-3, atol=1e-2)
    assert {launched.kernel for launched in LAUNCHES} == {kernel}


def test_cross_entropy_on_the_marshalling_device_matches_cpu(gpu):
    logits, target = _data(7, 50, seed=3), np.arange(7) * 3
    loss = F.cross_entropy(tg.tensor(logits, device="cuda"), tg.tensor(target, device="cuda"))
    expected = F.cross_entropy(tg.tensor(logits), tg.tensor(target))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-5)


def test_bfloat16_is_tagged_16_bit_storage_that_launches_with_bf16_pointers(gpu):
    x = _data(5, 33, seed=4)
    t = tg.tensor(x, dtype=tg.bfloat16, device="cuda")
    assert t.dtype == tg.bfloat16 and isinstance(t._array, launch.Bfloat16Array)
    assert t._array.bits.dtype == np.uint16  # CuPy has no bfloat16: its bits travel as uint16
    np.testing.assert_array_equal(t.numpy(), tg.tensor(x, dtype=tg.bfloat16).numpy())
    out = F.softmax(t, dim=-1)
    assert out.dtype == tg.bfloat16
    assert LAUNCHES[-1].signature["x_ptr"] == LAUNCHES[-1].signature["out_ptr"] == "*bf16"
    expected = F.softmax(tg.tensor(x, dtype=tg.bfloat16), dim=-1).float().numpy()
    np.testing.assert_allclose(out.float().numpy(), expected, rtol=1e-2, atol=1e-3)
    total = cupy_standin.add(t._array, t._array)  # in float32, rounded: never on the bits
    assert isinstance(total, launch.Bfloat16Array)
    np.testing.assert_array_equal(total.get(), tg.tensor(x, dtype=tg.bfloat16).numpy() * 2)


def test_cuda_index_selects_that_gpu(gpu, monkeypatch):
    monkeypatch.setattr(devices, "_loaded", {})
    LAUNCHES.clear()
    try:
        _launch_on_the_second_gpu()
    finally:
        cupy_standin.cuda.runtime.setDevice(0)


def _launch_on_the_second_gpu():
    x = tg.tensor(_data(3, 8), device="cuda:1")
    assert devices.get_backend("cuda").index == 1 and x._array.device.id == 1
    F.softmax(x, dim=-1)
    assert LAUNCHES[-1].device == 1

    errors = []

    def launch_from_a_new_thread():  # a new thread starts on device 0
        try:
            F.softmax(x, dim=-1)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)

    launched = len(LAUNCHES)
    worker = threading.Thread(target=launch_from_a_new_thread)
    worker.start()
    worker.join()
    assert not errors and len(LAUNCHES) == launched + 1 and LAUNCHES[-1].device == 1
    with pytest.raises(RuntimeError, match=r"runs 'cuda' on 'cuda:1'"):
        tg.zeros(2, device="cuda:0")


def test_an_absent_cuda_index_raises(gpu, monkeypatch):
    monkeypatch.setattr(devices, "_loaded", {})
    with pytest.raises(RuntimeError, match=r"'cuda:2' is not available: CuPy sees 2 GPU"):
        tg.zeros(2, device="cuda:2")
