"""GPU kernels beside the vendor libraries and PyTorch on the same shapes (marked `cuda`:
skipped without a GPU).

Run on a GPU machine with the `cuda` extra and a CUDA build of torch installed:

    pytest benchmarks/test_bench_gpu.py --benchmark-only --benchmark-group-by=group

- matmul 4096^3 in fp16 and fp32: the Triton kernel vs cuBLAS (CuPy's matmul)
- softmax (4096, 4096) and cross-entropy (4096, 50257), forward: the Triton kernels vs
  CuPy's fused-elementwise equivalents; extra_info holds the achieved memory bandwidth.
  Target (softmax): >= 90% of the device's copy bandwidth measured by test_copy_bandwidth.
- causal attention B=4 H=16 T=4096 D=64 fp16, forward and backward: the Triton
  FlashAttention-2 kernels vs torch's scaled_dot_product_attention, pinned to its flash
  kernel. Target: the forward at >= 90% of torch's speed.
- conv2d N=64 C=K=128 56x56 3x3 padding 1 (a ResNet stage-2 layer), fp16 and fp32, forward
  and backward (input and weight gradients): the Triton implicit GEMMs vs cuDNN through
  torch, which may pick its algorithms by timing but not use TF32 (our fp32 is IEEE).
  Target: >= 80% of cuDNN's speed.
- max_pool2d 2x2 on (64, 128, 112, 112) fp32 forward and backward, dropout p=0.1 on 64M
  fp32 elements, and one Adam step over ResNet-50's 55 weight tensors (25.5M fp32): the
  CUDA C kernels vs torch (Adam: torch.optim.Adam with fused=True and with foreach=True).

Every case is timed with CUDA events over back-to-back launches (gpu_timing.py): the median
ms per call of a few rounds is `extra_info["cuda_ms"]`, and the throughput columns come from
it; pytest-benchmark's own statistics are host times of whole rounds (`launches_per_round`
calls, one wait). A copy case measures the device's copy bandwidth, the softmax target's
yardstick. `make gpu-check` (benchmarks/gpu_check.py) runs this file with GPU_CHECK_RESULTS
set and builds benchmarks/gpu-report.md from the lines written there.

"backward" times the gradient kernels alone: torch differentiates a graph built once
(retain_graph=True), we call the backward kernels on the saved forward results. Attention
and conv record TFLOP/s (backward counted as 2.5x and 2x the forward's FLOPs, the usual
conventions, so the rows compare); pooling, dropout and Adam record GB/s of the traffic any
implementation needs.

Each case checks its result against the library's once before timing; dropout, whose mask
comes from another generator in torch, checks the drop rate and the 1 / (1 - p) scale.
"""

from __future__ import annotations

import json
import os
import statistics

import gpu_timing
import pytest
import torch
import torch.nn.functional as torch_functional
from torch.nn.attention import SDPBackend, sdpa_kernel

import tinygrad_like as tg

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not tg.cuda.is_available(), reason="needs an NVIDIA GPU and CuPy")]
# without a GPU the module's skip says so; with one, the torch cases need torch to see it too
needs_torch_cuda = pytest.mark.skipif(
    tg.cuda.is_available() and not torch.cuda.is_available(),
    reason=f"CuPy sees a GPU but torch {torch.__version__} does not (torch.cuda.is_available() "
           "is False): the PyTorch reference needs a CUDA build of torch")
TOLERANCE = {"float16": 1e-2, "float32": 1e-3}  # of the largest |reference| of each output


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


ROUNDS = 5
RESULTS = "GPU_CHECK_RESULTS"  # environment: a file that gets one JSON line per timed case


def measure(benchmark, cp, fn, library: str, flops: float = 0.0, traffic: float = 0.0):
    """Time `fn` with CUDA events over back-to-back launches (see gpu_timing.py) and record
    cuda_ms, and TFLOP/s for `flops` or GB/s for `traffic` bytes, in extra_info."""
    if torch.cuda.is_available():  # the events must see torch's kernels on the same stream
        assert torch.cuda.current_stream().cuda_stream == cp.cuda.get_current_stream().ptr
    new_event, elapsed = cp.cuda.Event, cp.cuda.get_elapsed_time
    launches = gpu_timing.launches_per_round(fn, new_event, elapsed)
    rounds = []
    benchmark.pedantic(lambda: rounds.append(gpu_timing.time_round(fn, launches, new_event,
                                                                   elapsed)),
                       rounds=ROUNDS, iterations=1)
    ms = statistics.median(rounds)
    benchmark.extra_info.update(cuda_ms=ms, launches_per_round=launches)
    if flops:
        benchmark.extra_info["TFLOP/s"] = flops / ms / 1e9
    if traffic:
        benchmark.extra_info["GB/s"] = traffic / ms / 1e6
    if os.environ.get(RESULTS):
        with open(os.environ[RESULTS], "a", encoding="utf-8") as file:
            file.write(json.dumps({"group": benchmark.group, "library": library,
                                   "rounds_ms": rounds, **benchmark.extra_info}) + "\n")


def torch_normal(*shapes, dtype: str) -> list:
    """Standard normal CUDA tensors, one per shape, from one seeded generator."""
    generator = torch.Generator("cuda").manual_seed(0)
    return [torch.randn(shape, generator=generator, device="cuda", dtype=getattr(torch, dtype))
            for shape in shapes]


def flat_float32(cp, result) -> list:
    """`result` (a CuPy array, a torch tensor or a sequence of them) as flat fp32 CuPy arrays."""
    results = result if isinstance(result, (list, tuple)) else [result]
    return [(cp.from_dlpack(r.detach()) if isinstance(r, torch.Tensor) else r)
            .astype(cp.float32).ravel() for r in results]


def relative_error(cp, result, reference) -> float:
    """The largest |result - reference| of any output, over that output's largest |reference|."""
    pairs = zip(flat_float32(cp, result), flat_float32(cp, reference), strict=True)
    return max(float(cp.abs(ours - theirs).max() / cp.abs(theirs).max()) for ours, theirs in pairs)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("library", ["tinygrad_like", "cublas"])
def test_matmul_4096(benchmark, cp, dtype, library):
    size = 4096
    a = cp.random.standard_normal((size, size)).astype(dtype)
    b = cp.random.standard_normal((size, size)).astype(dtype)
    kernels = tg.backend.get_backend("cuda").kernels
    fn = (lambda: kernels.matmul(a, b)) if library == "tinygrad_like" else (lambda: a @ b)
    reference = (a.astype("float32") @ b.astype("float32"))
    tolerance = 1e-2 if dtype == "float16" else 1e-3
    assert float(cp.abs(fn().astype("float32") - reference).max()) <= tolerance * size ** 0.5
    benchmark.group = f"gpu matmul 4096^3 {dtype}"
    measure(benchmark, cp, fn, library, flops=2 * size**3)


@pytest.mark.parametrize("library", ["tinygrad_like", "cupy"])
def test_softmax_4096(benchmark, cp, library):
    x = cp.random.standard_normal((4096, 4096)).astype("float32")
    kernels = tg.backend.get_backend("cuda").kernels

    def reference():
        exps = cp.exp(x - x.max(axis=1, keepdims=True))
        return exps / exps.sum(axis=1, keepdims=True)

    fn = (lambda: kernels.softmax(x, 1)) if library == "tinygrad_like" else reference
    assert float(cp.abs(fn() - reference()).max()) < 1e-6
    benchmark.group = "gpu softmax (4096, 4096) fp32"
    measure(benchmark, cp, fn, library, traffic=2 * x.nbytes)


@pytest.mark.parametrize("library", ["memcpy", "copy_kernel"])
def test_copy_bandwidth(benchmark, cp, library):
    """The device's copy bandwidth on the softmax benchmark's bytes (64 MiB read, 64 MiB
    written): cudaMemcpyAsync device to device, and CuPy's elementwise copy kernel; the
    softmax target is a fraction of the faster."""
    source = cp.random.standard_normal((4096, 4096)).astype("float32")
    target = cp.empty_like(source)
    if library == "memcpy":
        def fn():
            target.data.copy_from_device_async(source.data, source.nbytes)
    else:
        def fn():
            cp.copyto(target, source)
    fn()
    assert bool((target == source).all())
    benchmark.group = "gpu copy (4096, 4096) fp32"
    measure(benchmark, cp, fn, library, traffic=2 * source.nbytes)


@pytest.mark.parametrize("library", ["tinygrad_like", "cupy"])
def test_cross_entropy_vocabulary(benchmark, cp, library):
    logits = cp.random.standard_normal((4096, 50257)).astype("float32")
    target = cp.random.randint(0, 50257, 4096).astype("int64")
    kernels = tg.backend.get_backend("cuda").kernels

    def reference():
        top = logits.max(axis=1, keepdims=True)
        lse = top[:, 0] + cp.log(cp.exp(logits - top).sum(axis=1))
        return lse - logits[cp.arange(4096), target]

    def ours():
        return kernels.cross_entropy(logits, target, -100, 0.0)[0]

    fn = ours if library == "tinygrad_like" else reference
    assert float(cp.abs(fn() - reference()).max()) < 1e-3
    benchmark.group = "gpu cross-entropy (4096, 50257) fp32"
    measure(benchmark, cp, fn, library, traffic=logits.nbytes)


ATTENTION_SHAPE = (4, 16, 4096, 64)  # batch, heads, length, head dim


@needs_torch_cuda
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("library", ["tinygrad_like", "torch"])
def test_attention_causal_4096(benchmark, cp, direction, library):
    batch, heads, length, dim = ATTENTION_SHAPE
    q, k, v, grad = torch_normal(*[ATTENTION_SHAPE] * 4, dtype="float16")
    flat_q, flat_k, flat_v, flat_grad = (cp.from_dlpack(t.reshape(batch * heads, length, dim))
                                         for t in (q, k, v, grad))
    kernels = tg.backend.get_backend("cuda").kernels
    scale = dim**-0.5  # torch's default
    out, lse = kernels.attention(flat_q, flat_k, flat_v, None, True, scale)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # the kernel the target is set against
        torch_out = torch_functional.scaled_dot_product_attention(*leaves, is_causal=True)
        ours, theirs = {
            "forward": (
                lambda: kernels.attention(flat_q, flat_k, flat_v, None, True, scale)[0],
                lambda: torch_functional.scaled_dot_product_attention(q, k, v, is_causal=True)),
            "backward": (
                lambda: kernels.attention_backward(flat_grad, flat_q, flat_k, flat_v, out, lse,
                                                   None, True, scale),
                lambda: torch.autograd.grad(torch_out, leaves, grad, retain_graph=True)),
        }[direction]
        assert relative_error(cp, ours(), theirs()) <= TOLERANCE["float16"]
        fn = ours if library == "tinygrad_like" else theirs
        benchmark.group = f"gpu attention {ATTENTION_SHAPE} causal float16 {direction}"
        forward_flops = 4 * batch * heads * length**2 * dim / 2  # two products, half masked
        measure(benchmark, cp, fn, library,
                flops=forward_flops * (1 if direction == "forward" else 2.5))


CONV_INPUT, CONV_WEIGHT = (64, 128, 56, 56), (128, 128, 3, 3)
CONV_GEOMETRY = ((1, 1), (1, 1), (1, 1))  # stride, padding, dilation


@needs_torch_cuda
@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("library", ["tinygrad_like", "cudnn"])
def test_conv2d_resnet_stage2(benchmark, cp, monkeypatch, dtype, direction, library):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    # the output has the input's shape (C = K, stride 1, padding 1), so grad does too
    x, weight, grad = torch_normal(CONV_INPUT, CONV_WEIGHT, CONV_INPUT, dtype=dtype)
    weight.mul_(weight[0].numel() ** -0.5)  # Kaiming's scale keeps fp16 outputs near 1
    cp_x, cp_weight, cp_grad = (cp.from_dlpack(t) for t in (x, weight, grad))
    kernels = tg.backend.get_backend("cuda").kernels
    leaves = [t.detach().requires_grad_() for t in (x, weight)]
    torch_out = torch_functional.conv2d(*leaves, padding=1)
    ours, theirs = {
        "forward": (lambda: kernels.conv2d(cp_x, cp_weight, None, *CONV_GEOMETRY),
                    lambda: torch_functional.conv2d(x, weight, padding=1)),
        "backward": (
            lambda: (kernels.conv2d_backward_input(cp_grad, cp_weight, cp_x.shape, *CONV_GEOMETRY),
                     kernels.conv2d_backward_weight(cp_grad, cp_x, cp_weight.shape,
                                                    *CONV_GEOMETRY)),
            lambda: torch.autograd.grad(torch_out, leaves, grad, retain_graph=True)),
    }[direction]
    assert relative_error(cp, ours(), theirs()) <= TOLERANCE[dtype]
    fn = ours if library == "tinygrad_like" else theirs
    benchmark.group = f"gpu conv2d {CONV_INPUT} 3x3 {dtype} {direction}"
    forward_flops = 2 * torch_out.numel() * weight[0].numel()
    measure(benchmark, cp, fn, library,  # backward: dx and dweight
            flops=forward_flops * (1 if direction == "forward" else 2))


POOL_INPUT, POOL_OUTPUT = (64, 128, 112, 112), (64, 128, 56, 56)
POOL_WINDOW = ((2, 2), (2, 2), (0, 0), (1, 1))  # kernel, stride, padding, dilation


@needs_torch_cuda
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("library", ["tinygrad_like", "torch"])
def test_max_pool2d_2x2(benchmark, cp, direction, library):
    x, grad = torch_normal(POOL_INPUT, POOL_OUTPUT, dtype="float32")
    cp_x, cp_grad = cp.from_dlpack(x), cp.from_dlpack(grad)
    kernels = tg.backend.get_backend("cuda").kernels
    out, indices = kernels.max_pool2d(cp_x, *POOL_WINDOW)
    leaf = x.detach().requires_grad_()
    torch_out = torch_functional.max_pool2d(leaf, 2)
    ours, theirs = {
        "forward": (lambda: kernels.max_pool2d(cp_x, *POOL_WINDOW)[0],
                    lambda: torch_functional.max_pool2d(x, 2)),
        "backward": (lambda: kernels.max_pool2d_backward(cp_grad, indices, cp_x.shape),
                     lambda: torch.autograd.grad(torch_out, leaf, grad, retain_graph=True)),
    }[direction]
    assert relative_error(cp, ours(), theirs()) == 0.0  # a max and a scatter round nothing
    fn = ours if library == "tinygrad_like" else theirs
    benchmark.group = f"gpu max_pool2d 2x2 {POOL_INPUT} fp32 {direction}"
    # forward: x in, out and int64 indices out (torch's CUDA kernel writes them too);
    # backward: grad and indices in, dx out: the same bytes
    measure(benchmark, cp, fn, library, traffic=cp_x.nbytes + out.nbytes + indices.nbytes)


@needs_torch_cuda
@pytest.mark.parametrize("library", ["tinygrad_like", "torch"])
def test_dropout_64m(benchmark, cp, library):
    p = 0.1
    (x,) = torch_normal((64 * 2**20,), dtype="float32")
    cp_x = cp.from_dlpack(x)
    kernels = tg.backend.get_backend("cuda").kernels

    def ours():
        return kernels.dropout(cp_x, p, 0, 0)[0]  # Philox seed 0, counter offset 0

    def theirs():
        return torch_functional.dropout(x, p, training=True)

    fn = ours if library == "tinygrad_like" else theirs
    (out,) = flat_float32(cp, fn())
    kept = out != 0
    assert abs(1 - float(kept.mean()) - p) < 1e-3  # 64M draws: the rate's std is 4e-5
    assert relative_error(cp, out, cp.where(kept, cp_x / (1 - p), 0)) < 1e-6
    benchmark.group = "gpu dropout p=0.1 (64M,) fp32"
    # read x, write out; both also write a mask (ours fp32, torch's bool), not counted
    measure(benchmark, cp, fn, library, traffic=2 * cp_x.nbytes)


def resnet50_weight_shapes() -> list[tuple[int, ...]]:
    """ResNet-50's conv and fc weights (torchvision's layout): 55 tensors, 25.5M elements."""
    shapes = [(64, 3, 7, 7)]
    channels = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(width, channels, 1, 1), (width, width, 3, 3), (4 * width, width, 1, 1)]
            if block == 0:  # the projection shortcut
                shapes.append((4 * width, channels, 1, 1))
            channels = 4 * width
    return shapes + [(1000, 2048), (1000,)]


@needs_torch_cuda
@pytest.mark.parametrize("library", ["tinygrad_like", "torch_fused", "torch_foreach"])
def test_adam_step_resnet50(benchmark, cp, library):
    lr, betas, eps = 1e-3, (0.9, 0.999), 1e-8
    shapes = resnet50_weight_shapes()
    tensors = torch_normal(*shapes, *shapes, dtype="float32")
    params = [torch.nn.Parameter(t) for t in tensors[:len(shapes)]]
    for param, grad in zip(params, tensors[len(shapes):]):
        param.grad = grad
    cp_params = [cp.from_dlpack(param.detach()).copy() for param in params]
    cp_grads = [cp.from_dlpack(param.grad) for param in params]
    exp_avgs, exp_avg_sqs = ([cp.zeros_like(param) for param in cp_params] for _ in range(2))
    kernels = tg.backend.get_backend("cuda").kernels
    implementation = "foreach" if library == "torch_foreach" else "fused"
    optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, **{implementation: True})

    def ours():  # the step count stays 1: it changes two scalars, not the work
        kernels.adam_step(cp_params, cp_grads, exp_avgs, exp_avg_sqs, None, 1, lr, *betas, eps,
                          0.0, False, False, False)
        return cp_params

    def theirs():
        optimizer.step()
        return params

    # both take their first step from the same parameters, gradients and zero moments
    assert relative_error(cp, ours(), theirs()) <= 1e-6
    fn = ours if library == "tinygrad_like" else theirs
    benchmark.group = f"gpu adam step, ResNet-50 weights ({len(shapes)} tensors, 25.5M) fp32"
    # read param, grad and both moments; write param and both moments
    measure(benchmark, cp, fn, library, traffic=7 * sum(param.nbytes for param in cp_params))
