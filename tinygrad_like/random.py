"""The generators' state, as PyTorch's torch.get_rng_state / torch.set_rng_state.

Each device has its own generator (backend/__init__.py): NumPy's PCG64 on "cpu" and
"interp", cuRAND's XORWOW through CuPy on "cuda", each with the seed and counter that
counter-based kernels (dropout) draw at. A state is a 1-D uint8 tensor on the CPU, as
PyTorch's ByteTensor: one line of JSON (the device, the generator's kind, seed, counter
and NumPy's bit-generator state), then, for "cuda", the raw cuRAND states. JSON rather
than pickle, so a state read from an untrusted checkpoint executes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from tinygrad_like import dtypes
from tinygrad_like.backend import get_backend, loaded_devices
from tinygrad_like.tensor import Tensor

_FORMAT = "tinygrad_like.rng_state"
_VERSION = 1


def get_rng_state(device="cpu") -> Tensor:
    """The state of `device`'s generator as a uint8 tensor on the CPU.

    As torch.get_rng_state this is the CPU generator's by default; `device` names another
    ("interp", or "cuda" as tg.cuda.get_rng_state does).
    """
    backend = get_backend(device)
    fields, payload = backend.rng_state()
    header = json.dumps({"format": _FORMAT, "version": _VERSION, "device": backend.name,
                         **fields})
    return Tensor(np.frombuffer(header.encode() + b"\n" + payload, dtype=np.uint8))


def set_rng_state(new_state: Tensor, device="cpu") -> None:
    """Restore `device`'s generator from a `get_rng_state` tensor: later draws (rand, randn,
    randint, randperm, init, dropout masks) repeat exactly.

    Only that device's generator changes, as torch.set_rng_state changes only the CPU's. The
    state may come from another device with the same kind of generator ("cpu" and "interp"
    both use NumPy's PCG64). A tensor that is not such a state raises TypeError or
    ValueError and leaves the generator as it was.
    """
    backend = get_backend(device)
    fields, payload = _decode(new_state)
    if fields.get("generator") != backend.generator_name:
        raise ValueError(f"set_rng_state: the state is for a {fields.get('generator')} generator "
                         f"(device {fields.get('device')!r}), but device {backend.name!r} uses "
                         f"{backend.generator_name}")
    try:
        backend.set_rng_state(fields, payload)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"set_rng_state: the state does not fit device {backend.name!r}: "
                         f"{type(error).__name__}: {error}") from None


def get_rng_states() -> dict[str, Tensor]:
    """Every device's generator state used so far in this process, by device name: what a
    checkpoint needs to continue a run exactly."""
    return {device: get_rng_state(device) for device in loaded_devices()}


def set_rng_states(states: Mapping[str, Tensor]) -> None:
    """Restore what `get_rng_states` returned, each device from its own state."""
    for device, state in states.items():
        set_rng_state(state, device)


def _decode(state) -> tuple[dict, bytes]:
    """(JSON fields, raw bytes) of a state tensor, with the fields every device needs checked."""
    if not isinstance(state, Tensor) or state.dtype is not dtypes.uint8 or state.ndim != 1:
        described = (f"a {state.ndim}-D {state.dtype.name} tensor" if isinstance(state, Tensor)
                     else f"a {type(state).__name__}")
        raise TypeError(f"set_rng_state: expected the 1-D uint8 tensor that get_rng_state "
                        f"returns, got {described}")
    header, _, payload = state.numpy().tobytes().partition(b"\n")
    try:
        fields = json.loads(header)
    except ValueError:  # not UTF-8 or not JSON
        fields = None
    if not isinstance(fields, dict) or fields.get("format") != _FORMAT:
        raise ValueError("set_rng_state: the tensor is not a state from get_rng_state "
                         "(its header is not tinygrad_like's generator-state JSON)")
    if fields.get("version") != _VERSION:
        raise ValueError(f"set_rng_state: state format version {fields.get('version')!r}; this "
                         f"tinygrad_like reads version {_VERSION}")
    for name in ("seed", "counter"):
        value = fields.get(name)
        if type(value) is not int or value < 0:
            raise ValueError(f"set_rng_state: the state's {name} must be a non-negative "
                             f"integer, got {value!r}")
    return fields, payload
