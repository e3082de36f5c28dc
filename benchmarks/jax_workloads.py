"""The benchmark workloads in plain JAX (jax.numpy, jax.lax, jax.nn), each one jitted program.

The loss functions of test_bench_core.py and test_bench_kernels.py take an array module
(`lib`) and call `functional(lib)`; with jax.numpy, this module is that functional namespace:
conv2d, max_pool2d, softmax and scaled_dot_product_attention with PyTorch's signatures and NCHW
layouts, so all three frameworks run one loss function on the same arrays.

The training steps are the four models of test_bench_training.py, written as parameter trees
and pure functions, with Adam/AdamW written out as torch.optim computes them (same defaults);
one jitted `(params, opt_state, batch) -> (params, opt_state, loss)` with the parameter and
optimizer buffers donated, as PyTorch updates them in place.

Every call is compiled before it is returned, so compilation is never timed, and each call
blocks until its outputs are computed (jax.block_until_ready).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from frameworks import load

jax = load("jax")  # after the XLA thread flags are set
jnp, lax = jax.numpy, jax.lax
BETAS, EPS = (0.9, 0.999), 1e-8
WEIGHT_DECAY = {"Adam": 0.0, "AdamW": 0.01}  # torch.optim's and tg.optim's defaults


# ---- a call, compiled outside the timing ---------------------------------------------------
def compiled_call(fn: Callable, arrays: Sequence[np.ndarray]) -> Callable:
    """fn(*arrays) jitted, on device copies of the arrays; compiled and run once here."""
    jitted, on_device = jax.jit(fn), [jax.device_put(array) for array in arrays]

    def run():
        return jax.block_until_ready(jitted(*on_device))

    run()
    return run


def with_grads(loss_fn: Callable, arrays: Sequence[np.ndarray],
               constants: Sequence[np.ndarray] = ()) -> Callable:
    """A call returning (loss, *gradients) of loss_fn(jnp, *arrays, *constants) with respect
    to the arrays; the constants are arguments too, so they are not folded into the program."""
    value_and_grad = jax.value_and_grad(lambda *args: loss_fn(jnp, *args),
                                        argnums=tuple(range(len(arrays))))

    def loss_and_grads(*args):
        loss, grads = value_and_grad(*args)
        return (loss, *grads)

    return compiled_call(loss_and_grads, [*arrays, *constants])


# ---- torch.nn.functional's calls, in JAX ----------------------------------------------------
def softmax(x, dim: int):
    return jax.nn.softmax(x, axis=dim)


def conv2d(x, weight, bias=None, padding: int = 0):
    """NCHW input, OIHW weight, stride 1: what torch.nn.functional.conv2d computes."""
    out = lax.conv_general_dilated(x, weight, window_strides=(1, 1),
                                   padding=[(padding, padding)] * 2,
                                   dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out if bias is None else out + bias[None, :, None, None]


def max_pool2d(x, kernel_size: int):
    window = (1, 1, kernel_size, kernel_size)
    return lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")


def scaled_dot_product_attention(q, k, v, is_causal: bool = False):
    """(batch, heads, length, dim) like torch's; jax.nn's attention takes heads third."""
    def heads_third(x):
        return jnp.swapaxes(x, 1, 2)

    out = jax.nn.dot_product_attention(heads_third(q), heads_third(k), heads_third(v),
                                       is_causal=is_causal)
    return heads_third(out)


# ---- the training workloads' models ------------------------------------------------------------
def linear_params(rng: np.random.Generator, fan_in: int, fan_out: int) -> dict:
    """torch.nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in)
    return {"w": rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32),
            "b": rng.uniform(-bound, bound, fan_out).astype(np.float32)}


def conv_params(rng: np.random.Generator, channels: int, kernels: int) -> dict:
    bound = 1 / math.sqrt(channels * 9)
    return {"w": rng.uniform(-bound, bound, (kernels, channels, 3, 3)).astype(np.float32),
            "b": rng.uniform(-bound, bound, kernels).astype(np.float32)}


def dense(params: dict, x):
    return x @ params["w"] + params["b"]


def layer_norm(params: dict, x, eps: float = 1e-5):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * lax.rsqrt(variance + eps) * params["gamma"] + params["beta"]


def mlp_init(rng):
    return {"hidden": linear_params(rng, 784, 256), "out": linear_params(rng, 256, 10)}


def mlp_apply(params, x):
    return dense(params["out"], jax.nn.relu(dense(params["hidden"], x.reshape(len(x), -1))))


def cnn_init(rng):
    return {"conv1": conv_params(rng, 1, 32), "conv2": conv_params(rng, 32, 64),
            "hidden": linear_params(rng, 64 * 5 * 5, 64), "out": linear_params(rng, 64, 10)}


def cnn_apply(params, x):
    for conv in ("conv1", "conv2"):
        x = max_pool2d(jax.nn.relu(conv2d(x, params[conv]["w"], params[conv]["b"])), 2)
    return dense(params["out"], jax.nn.relu(dense(params["hidden"], x.reshape(len(x), -1))))


def gru_lm_init(rng, vocab: int = 65, embedding: int = 64, hidden: int = 256):
    bound = 1 / math.sqrt(hidden)  # torch.nn.GRU's initialisation

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    return {"embed": rng.standard_normal((vocab, embedding), dtype=np.float32),
            "gru": {"w_input": uniform(embedding, 3 * hidden), "b_input": uniform(3 * hidden),
                    "w_hidden": uniform(hidden, 3 * hidden), "b_hidden": uniform(3 * hidden)},
            "out": linear_params(rng, hidden, vocab)}


def gru_lm_apply(params, ids):
    """torch.nn.GRU's gates (reset, update, new), the input projection of every step in one
    matmul and the recurrence in lax.scan."""
    gru = params["gru"]
    inputs = params["embed"][ids] @ gru["w_input"] + gru["b_input"]

    def cell(state, projected):
        input_reset, input_update, input_new = jnp.split(projected, 3, axis=-1)
        hidden_reset, hidden_update, hidden_new = jnp.split(
            state @ gru["w_hidden"] + gru["b_hidden"], 3, axis=-1)
        reset = jax.nn.sigmoid(input_reset + hidden_reset)
        update = jax.nn.sigmoid(input_update + hidden_update)
        new = jnp.tanh(input_new + reset * hidden_new)
        state = (1 - update) * new + update * state
        return state, state

    initial = jnp.zeros((ids.shape[0], gru["w_hidden"].shape[0]), inputs.dtype)
    _, states = lax.scan(cell, initial, jnp.swapaxes(inputs, 0, 1))
    logits = dense(params["out"], jnp.swapaxes(states, 0, 1))
    return logits.reshape(-1, logits.shape[-1])


def transformer_init(rng, vocab: int = 100, width: int = 128, ff: int = 512, layers: int = 2):
    def norm():
        return {"gamma": np.ones(width, np.float32), "beta": np.zeros(width, np.float32)}

    return {"embed": rng.standard_normal((vocab, width), dtype=np.float32),
            "layers": [{"qkv": linear_params(rng, width, 3 * width),
                        "proj": linear_params(rng, width, width), "norm1": norm(),
                        "ff1": linear_params(rng, width, ff), "ff2": linear_params(rng, ff, width),
                        "norm2": norm()} for _ in range(layers)],
            "out": linear_params(rng, width, vocab)}


def transformer_apply(params, ids, heads: int = 4):
    """nn.TransformerEncoderLayer as the benchmark builds it: post-norm, ReLU, no dropout."""
    x = params["embed"][ids]
    batch, length, width = x.shape
    for layer in params["layers"]:
        q, k, v = (part.reshape(batch, length, heads, width // heads)
                   for part in jnp.split(dense(layer["qkv"], x), 3, axis=-1))
        attended = jax.nn.dot_product_attention(q, k, v).reshape(batch, length, width)
        x = layer_norm(layer["norm1"], x + dense(layer["proj"], attended))
        x = layer_norm(layer["norm2"], x + dense(layer["ff2"], jax.nn.relu(dense(layer["ff1"], x))))
    return dense(params["out"], x).reshape(-1, params["out"]["w"].shape[1])


MODELS = {"mlp": (mlp_init, mlp_apply), "cnn": (cnn_init, cnn_apply),
          "gru_lm": (gru_lm_init, gru_lm_apply),
          "transformer": (transformer_init, transformer_apply)}


# ---- loss, optimizer and the training step --------------------------------------------------
def cross_entropy(logits, targets):
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_probs, targets[:, None], axis=-1).mean()


def adam_init(params) -> tuple:
    # two trees of their own: the step donates every buffer, and one buffer cannot go twice
    return (jnp.zeros((), jnp.int32), jax.tree.map(jnp.zeros_like, params),
            jax.tree.map(jnp.zeros_like, params))


def adam_update(params, grads, state, lr: float, weight_decay: float):
    """torch.optim.AdamW's update (Adam's where weight_decay is 0): decoupled decay, then the
    bias-corrected step."""
    step, first, second = state
    step = step + 1
    first = jax.tree.map(lambda m, g: BETAS[0] * m + (1 - BETAS[0]) * g, first, grads)
    second = jax.tree.map(lambda v, g: BETAS[1] * v + (1 - BETAS[1]) * g * g, second, grads)
    step_size = lr / (1 - BETAS[0] ** step)
    correction = jnp.sqrt(1 - BETAS[1] ** step)

    def update(p, m, v):
        return p * (1 - lr * weight_decay) - step_size * m / (jnp.sqrt(v) / correction + EPS)

    return jax.tree.map(update, params, first, second), (step, first, second)


def make_step(workload: str, optimizer: str, options: dict, inputs: np.ndarray,
              targets: np.ndarray) -> Callable[[], float]:
    """A call running one training step of `workload` on its fixed batch; returns the loss."""
    init, apply = MODELS[workload]
    weight_decay = options.get("weight_decay", WEIGHT_DECAY[optimizer])

    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(apply(p, batch[0]), batch[1]))(
            params)
        params, opt_state = adam_update(params, grads, opt_state, options["lr"], weight_decay)
        return params, opt_state, loss

    params = jax.device_put(init(np.random.default_rng(0)))
    opt_state = adam_init(params)
    # jax's default integers are 32-bit; converted here so the batch is not converted per step
    batch = tuple(jax.device_put(array.astype(np.int32) if array.dtype.kind == "i" else array)
                  for array in (inputs, targets))
    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, batch).compile()

    def step() -> float:
        nonlocal params, opt_state
        params, opt_state, loss = jax.block_until_ready(compiled(params, opt_state, batch))
        return float(loss)

    return step
