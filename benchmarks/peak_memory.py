"""One causal attention forward + backward in this fresh process, and how much its peak resident
set grew (Linux VmHWM, reset just before), printed as JSON for test_bench_kernels.py.

    python benchmarks/peak_memory.py tinygrad_like|torch|jax '[4, 8, 2048, 64]'

The inputs, and for JAX the compiled program, exist before the reset, so the growth is what
the forward and backward hold: the output, the gradients and whatever they keep in between.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import frameworks


def status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def reset_peak() -> int:
    """Resets the peak resident set (VmHWM) to the current one, and returns that in KiB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return status_kib("VmRSS:")


def autograd_growth_kib(framework: str, arrays: list[np.ndarray]) -> int:
    lib = frameworks.load(framework)
    *leaves, grad = [lib.from_numpy(array) for array in arrays]
    leaves = [leaf.requires_grad_() for leaf in leaves]
    before = reset_peak()
    out = lib.nn.functional.scaled_dot_product_attention(*leaves, is_causal=True)
    out.backward(grad)
    return status_kib("VmHWM:") - before


def jax_growth_kib(arrays: list[np.ndarray]) -> int:
    jax_workloads = frameworks.load("jax_workloads")
    jax = jax_workloads.jax

    def forward_backward(q, k, v, grad):
        def attention(q, k, v):
            return jax_workloads.scaled_dot_product_attention(q, k, v, is_causal=True)

        out, pullback = jax.vjp(attention, q, k, v)
        return out, pullback(grad)

    on_device = [jax.device_put(array) for array in arrays]
    compiled = jax.jit(forward_backward).lower(*on_device).compile()
    before = reset_peak()
    jax.block_until_ready(compiled(*on_device))
    return status_kib("VmHWM:") - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=("tinygrad_like", "torch", "jax"))
    parser.add_argument("shape", type=json.loads, help="(batch, heads, length, dim) as JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(args.shape, dtype=np.float32) for _ in range(4)]  # q k v grad
    if args.framework == "jax":
        growth = jax_growth_kib(arrays)
    else:
        growth = autograd_growth_kib(args.framework, arrays)
    print(json.dumps({"peak_growth_mib": growth / 1024}))


if __name__ == "__main__":
    main()
