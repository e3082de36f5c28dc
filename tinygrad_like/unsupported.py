"""PyTorch names a program may reach for that tinygrad_like does not have.

`tg.<name>` for one of these raises NotImplementedError saying so (PEP 562's module
__getattr__), rather than an AttributeError that reads like a typo, so a port learns at
once which part of its program has no counterpart here.
"""

from __future__ import annotations

NOT_PROVIDED = {
    "jit": "TorchScript (torch.jit) has no counterpart: there is no graph capture here",
    "fx": "torch.fx has no counterpart: there is no graph capture here",
    "export": "torch.export has no counterpart: there is no graph capture here",
    "func": "torch.func (functional transforms such as vmap and jacrev) is not provided",
    "vmap": "torch.vmap is not provided",
    "distributions": "torch.distributions is not provided; tg.multinomial, tg.bernoulli and "
                     "Tensor.normal_/uniform_/exponential_ cover sampling",
    "sparse": "sparse tensors are not provided",
    "fft": "torch.fft is not provided",
    "linalg": "torch.linalg is not provided (matmul, bmm, einsum and norm are)",
    "special": "torch.special is not provided (erf is, as tg.erf)",
    "quantization": "quantized tensors are not provided",
    "ao": "torch.ao (quantization, pruning) is not provided",
    "mps": "there is no Apple GPU device; tg.backends.mps.is_available() is False",
    "xpu": "there is no Intel GPU device",
    "complex64": "complex dtypes are not provided",
    "complex128": "complex dtypes are not provided",
    "cfloat": "complex dtypes are not provided",
    "cdouble": "complex dtypes are not provided",
}


class NotProvidedError(NotImplementedError, AttributeError):
    """Also an AttributeError, so `hasattr(tg, "jit")` is False and probing code runs on."""


def module_getattr(name: str):
    if name in NOT_PROVIDED:
        raise NotProvidedError(f"tinygrad_like.{name}: {NOT_PROVIDED[name]}")
    raise AttributeError(f"module 'tinygrad_like' has no attribute {name!r}")
