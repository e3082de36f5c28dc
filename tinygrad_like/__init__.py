"""tinygrad_like: a small, readable deep-learning framework.

    import tinygrad_like as tg
    x = tg.randn(3, 4, requires_grad=True)
    (x @ x.T).relu().sum().backward()
"""

from tinygrad_like import autograd, nn, ops
from tinygrad_like.grad_mode import (enable_grad, inference_mode, is_grad_enabled,
                                     is_inference_mode_enabled, no_grad, set_grad_enabled)
from tinygrad_like.backend import Device as device  # noqa: N813  (tg.device, as torch.device)
from tinygrad_like.backend import manual_seed
from tinygrad_like.backend.info import backend_info
from tinygrad_like.creation import (arange, empty, eye, from_dlpack, from_numpy, full, full_like,
                                    linspace, ones, ones_like, rand, rand_like, randint, randn,
                                    randn_like, randperm, tensor, zeros, zeros_like)
from tinygrad_like.dtypes import (bfloat16, bool_, float16, float32, float64, int8, int16, int32,
                                  int64, uint8, DType, get_default_dtype, set_default_dtype)
from tinygrad_like.determinism import (are_deterministic_algorithms_enabled,
                                       is_deterministic_algorithms_warn_only_enabled,
                                       use_deterministic_algorithms)
from tinygrad_like.generator import Generator
from tinygrad_like.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tinygrad_like.ops import PUBLIC_OPS
from tinygrad_like.tensor import Tensor
from tinygrad_like import amp, cuda, data, distributed, metrics, optim, random
from tinygrad_like.amp import (autocast, get_autocast_dtype, is_autocast_cache_enabled,
                               is_autocast_enabled)
from tinygrad_like.amp import cpu_namespace as cpu  # tg.cpu.amp
from tinygrad_like import utils
from tinygrad_like.random import get_rng_state, set_rng_state
from tinygrad_like.serialization import load, save
from tinygrad_like.sampling import bernoulli, multinomial
from tinygrad_like.size import Size
from tinygrad_like import accelerator, backends
from tinygrad_like.backends import get_float32_matmul_precision, set_float32_matmul_precision
from tinygrad_like.compile import compile  # noqa: A004  (tg.compile, as torch.compile)
from tinygrad_like.unsupported import module_getattr as __getattr__  # tg.jit: a clear error


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(t: Tensor) -> bool:
    return t.is_floating_point()


def numel(t: Tensor) -> int:
    return t.numel()

bool = bool_  # noqa: A001  (tg.bool, as torch.bool)
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
short = int16

globals().update(PUBLIC_OPS)  # tg.add, tg.cat, tg.where, ... (the op table in ops/__init__.py)

__version__ = "0.1.0"
