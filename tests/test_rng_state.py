"""tg.get_rng_state / tg.set_rng_state: a saved state makes every later draw repeat exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tinygrad_like as tg
from tinygrad_like.nn import functional as F
from tinygrad_like.random import get_rng_states, set_rng_states

DRAWS = {
    "randn": lambda device: tg.randn(4, 5, device=device),
    "rand": lambda device: tg.rand(7, device=device),
    "randint": lambda device: tg.randint(0, 1000, (16,), device=device),
    "randperm": lambda device: tg.randperm(40, device=device),
    "dropout mask": lambda device: F.dropout(tg.ones(256, device=device), 0.5),
    "init": lambda device: tg.nn.init.kaiming_uniform_(tg.empty(3, 6, device=device)),
}


def draw_all(device: str = "cpu", names=tuple(DRAWS)) -> dict[str, np.ndarray]:
    return {name: DRAWS[name](device).numpy() for name in names}


def assert_same_draws(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    assert list(first) == list(second)
    for name, a in first.items():
        assert a.dtype == second[name].dtype and np.array_equal(a, second[name]), name


def state_from_json(fields: dict, payload: bytes = b"") -> tg.Tensor:
    raw = json.dumps(fields).encode() + b"\n" + payload
    return tg.Tensor(np.frombuffer(raw, dtype=np.uint8))


@pytest.mark.parametrize("name", DRAWS)
def test_restoring_the_state_repeats_each_kind_of_draw(name):
    draw = DRAWS[name]
    tg.manual_seed(3)
    draw("cpu")
    state = tg.get_rng_state()
    expected = draw("cpu").numpy()
    assert not np.array_equal(draw("cpu").numpy(), expected), "the generator moved on"
    tg.set_rng_state(state)
    assert np.array_equal(draw("cpu").numpy(), expected)


def test_restoring_repeats_a_mixed_sequence_of_draws():
    tg.manual_seed(11)
    state = tg.get_rng_state()
    expected = draw_all()
    draw_all()
    tg.set_rng_state(state)
    assert_same_draws(draw_all(), expected)


def test_state_is_a_uint8_byte_tensor_of_json_not_pickle():
    state = tg.get_rng_state()
    assert state.dtype is tg.uint8 and state.ndim == 1 and state.device == "cpu"
    header, _, payload = state.numpy().tobytes().partition(b"\n")
    fields = json.loads(header)
    assert fields["device"] == "cpu" and fields["generator"] == "numpy.PCG64"
    assert payload == b""  # NumPy's generator state fits in the JSON


def test_state_survives_save_and_load_inside_a_training_state(tmp_path):
    tg.manual_seed(5)
    state = tg.get_rng_state()
    expected = draw_all()
    path = tmp_path / "state.safetensors"
    tg.save({"epoch": 1, "rng": {"cpu": state}, "history": [{"loss": 0.5}]}, path)
    loaded = tg.load(path)
    assert loaded["rng"]["cpu"].dtype is tg.uint8
    assert np.array_equal(loaded["rng"]["cpu"].numpy(), state.numpy())
    assert loaded["epoch"] == 1 and loaded["history"] == [{"loss": 0.5}]
    draw_all()
    tg.set_rng_state(loaded["rng"]["cpu"])
    assert_same_draws(draw_all(), expected)


def test_each_device_has_its_own_generator_and_a_cpu_state_fits_interp():
    tg.manual_seed(2)
    cpu_state = tg.get_rng_state("cpu")
    expected = draw_all("cpu")
    cpu_after = tg.get_rng_state("cpu").numpy()
    tg.set_rng_state(cpu_state, "interp")  # the same kind of generator (NumPy's PCG64)
    assert_same_draws(draw_all("interp"), expected)
    assert np.array_equal(tg.get_rng_state("cpu").numpy(), cpu_after), \
        "setting and drawing on 'interp' leave the 'cpu' generator alone"


def test_get_rng_states_covers_every_device_used():
    tg.randn(1, device="interp")
    states = get_rng_states()
    assert {"cpu", "interp"} <= set(states)
    expected = {device: draw_all(device) for device in ("cpu", "interp")}
    set_rng_states(states)
    for device, draws in expected.items():
        assert_same_draws(draw_all(device), draws)


def valid_fields() -> dict:
    return json.loads(tg.get_rng_state().numpy().tobytes().partition(b"\n")[0])


@pytest.mark.parametrize("bad_state, error, message", [
    ([1, 2, 3], TypeError, "expected the 1-D uint8 tensor.*got a list"),
    (np.zeros(8, np.uint8), TypeError, "got a ndarray"),
    (tg.zeros(8), TypeError, "got a 1-D float32 tensor"),
    (tg.zeros((2, 4), dtype=tg.uint8), TypeError, "got a 2-D uint8 tensor"),
    (tg.Tensor(np.frombuffer(b"\x80\xff garbage", dtype=np.uint8)), ValueError,
     "not a state from get_rng_state"),
    (state_from_json({"seed": 1}), ValueError, "not a state from get_rng_state"),
    (state_from_json(valid_fields() | {"version": 99}), ValueError, "version 99"),
    (state_from_json(valid_fields() | {"counter": -1}), ValueError, "counter must be"),
    (state_from_json(valid_fields() | {"seed": "1"}), ValueError, "seed must be"),
    (state_from_json(valid_fields() | {"generator": "cupy.XORWOW", "device": "cuda"}),
     ValueError, "for a cupy.XORWOW generator .device 'cuda'."),
    (state_from_json(valid_fields() | {"bit_generator": {"bit_generator": "MT19937"}}),
     ValueError, "does not fit device 'cpu'"),
    (state_from_json({k: v for k, v in valid_fields().items() if k != "bit_generator"}),
     ValueError, "does not fit device 'cpu': KeyError"),
])
def test_malformed_states_raise_and_leave_the_generator_alone(bad_state, error, message):
    tg.manual_seed(8)
    state = tg.get_rng_state()
    expected = tg.randn(5).numpy()
    tg.set_rng_state(state)
    with pytest.raises(error, match="set_rng_state: " + ".*" + message):
        tg.set_rng_state(bad_state)
    assert np.array_equal(tg.randn(5).numpy(), expected)


def test_cuda_rng_state_needs_cuda():
    if tg.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="tg.cuda.get_rng_state: CUDA is not available"):
        tg.cuda.get_rng_state()
    with pytest.raises(RuntimeError, match="tg.cuda.set_rng_state: CUDA is not available"):
        tg.cuda.set_rng_state(tg.get_rng_state())


def test_cuda_rng_state_names_only_cuda_devices():
    with pytest.raises(ValueError, match="tg.cuda.get_rng_state: expected a cuda device"):
        tg.cuda.get_rng_state("cpu")


@pytest.mark.cuda
def test_cuda_state_round_trips_through_a_checkpoint(tmp_path):
    draws = ("randn", "rand", "randint", "dropout mask")
    tg.manual_seed(4)
    state = tg.cuda.get_rng_state()
    assert state.dtype is tg.uint8 and state.device == "cpu"
    expected = draw_all("cuda", draws)
    tg.save({"cuda": state}, tmp_path / "state.safetensors")
    draw_all("cuda", draws)
    tg.cuda.set_rng_state(tg.load(tmp_path / "state.safetensors", map_location="cuda")["cuda"])
    assert_same_draws(draw_all("cuda", draws), expected)
    with pytest.raises(ValueError, match="set_rng_state: the state is for a numpy.PCG64"):
        tg.cuda.set_rng_state(tg.get_rng_state())
