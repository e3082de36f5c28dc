"""tg.Generator: a random generator of its own, as torch.Generator.

Draws given `generator=g` (tg.rand, tg.randn, tg.randint, tg.randperm, the samplers,
random_split, DataLoader) come from g alone: they repeat for a seed and neither read nor
advance the global generator that `tg.manual_seed` controls. It is NumPy's PCG64, the CPU
device's kind, so `g.set_state(tg.get_rng_state())` works as in PyTorch. Its state is the
same JSON-headed uint8 tensor as tg.random's, never a pickle.
"""

from __future__ import annotations

import json
import secrets

import numpy as np

from tinygrad_like.backend import DEFAULT_SEED
from tinygrad_like.random import _FORMAT, _VERSION, _decode
from tinygrad_like.tensor import Tensor


class Generator:
    """A CPU generator seeded with PyTorch's default seed until `manual_seed` or `seed`."""

    def __init__(self, device="cpu"):
        if str(device) != "cpu":
            raise NotImplementedError(f"tg.Generator: only device='cpu' generators exist, got "
                                      f"{str(device)!r}; draws on other devices use that "
                                      "device's global generator (tg.cuda.manual_seed)")
        self.device = "cpu"
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Restart from `seed` (negative seeds wrap to 64 bits, as PyTorch's); returns self."""
        self._seed = int(seed) % 2**64
        self.rng = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy and return the new seed."""
        seed = secrets.randbits(63)
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        return self._seed

    @property
    def generator_name(self) -> str:
        return f"numpy.{type(self.rng.bit_generator).__name__}"

    def get_state(self) -> Tensor:
        """The generator's exact position as a 1-D uint8 tensor (tg.get_rng_state's format)."""
        header = json.dumps({"format": _FORMAT, "version": _VERSION, "device": self.device,
                             "generator": self.generator_name, "seed": self._seed, "counter": 0,
                             "bit_generator": self.rng.bit_generator.state})
        return Tensor(np.frombuffer(header.encode() + b"\n", dtype=np.uint8))

    def set_state(self, new_state: Tensor) -> Generator:
        """Continue from a `get_state` (or CPU `tg.get_rng_state`) tensor; returns self."""
        fields, _ = _decode(new_state)
        if fields.get("generator") != self.generator_name:
            raise ValueError(f"Generator.set_state: the state is for a {fields.get('generator')} "
                             f"generator, this one is {self.generator_name}")
        rng = np.random.default_rng(fields["seed"])
        try:
            rng.bit_generator.state = fields["bit_generator"]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"Generator.set_state: the state does not fit: "
                             f"{type(error).__name__}: {error}") from None
        self._seed, self.rng = fields["seed"], rng
        return self

    def __repr__(self) -> str:
        return f"tg.Generator(device={self.device!r}, initial_seed={self._seed})"
