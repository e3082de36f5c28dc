"""Several Python threads computing at once: per-thread modes, and kernels safe to share.

Grad mode and inference mode are per thread, as in PyTorch: one thread's `no_grad()`, or the
no_grad a backward pass runs under, must not stop another thread's forward from recording
its graph. The native pool, the BLAS thread limit (native_blas.py) and the native buffer
cache are shared by every thread and must give each caller what it would get alone.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tinygrad_like as tg
from tinygrad_like import nn, optim
from tinygrad_like.backend import native, native_blas
from tinygrad_like.models.cnn import CNN

STEPS = 20


def run_in_threads(*jobs, timeout: float = 300.0) -> list:
    """Start every job in a thread of its own at the same moment; their results, in order.
    An exception in a job is raised here."""
    results, errors = [None] * len(jobs), []
    start = threading.Barrier(len(jobs))

    def run(index, job):
        try:
            start.wait()
            results[index] = job()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread did not finish: a deadlock?"
    if errors:
        raise errors[0]
    return results


def digits_batches(seed: int, count: int, batch: int = 32):
    rng = np.random.default_rng(seed)
    return [(tg.tensor(rng.standard_normal((batch, 1, 8, 8)).astype(np.float32)),
             tg.tensor(rng.integers(0, 10, batch))) for _ in range(count)]


def fresh_cnn(seed: int) -> CNN:
    tg.manual_seed(seed)  # in the main thread: the generator is shared, as PyTorch's is
    return CNN()


def train_cnn(model: CNN, batches) -> dict:
    optimizer = optim.Adam(model.parameters(), lr=2e-3)
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


def evaluate_forever(model: CNN, batches, stop: threading.Event) -> int:
    """Forward passes under no_grad until `stop`; checks each leaves no graph behind."""
    passes = 0
    while not stop.is_set() or passes == 0:
        with tg.no_grad():
            for x, _ in batches:
                assert not model(x).requires_grad
                passes += 1
    return passes


def test_two_trainings_and_an_evaluation_at_once_match_each_training_alone():
    data = [digits_batches(seed, STEPS) for seed in (1, 2)]
    alone = [train_cnn(fresh_cnn(seed), batches) for seed, batches in zip((10, 20), data)]
    models = [fresh_cnn(seed) for seed in (10, 20)]
    evaluated, trainings_done = fresh_cnn(30), threading.Event()
    finished = []

    def training(model, batches):
        def job():
            try:
                return train_cnn(model, batches)
            finally:  # also on failure, so that the evaluation stops
                finished.append(model)
                if len(finished) == len(models):
                    trainings_done.set()
        return job

    *together, passes = run_in_threads(*(training(m, b) for m, b in zip(models, data)),
                                       lambda: evaluate_forever(evaluated, data[0][:4],
                                                                trainings_done))
    assert passes > 0
    for alone_params, together_params in zip(alone, together):
        for name, value in alone_params.items():
            # every kernel of this CNN is deterministic for a fixed thread count: bitwise
            np.testing.assert_array_equal(together_params[name], value, err_msg=name)


# ---- per-thread modes ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", [tg.no_grad, tg.inference_mode, lambda: tg.set_grad_enabled(False)])
def test_a_mode_set_in_one_thread_is_not_seen_by_another(mode):
    w = tg.randn(3, requires_grad=True)
    entered, recorded = threading.Event(), threading.Event()
    seen = {}

    def inside_the_mode():
        with mode():
            entered.set()
            recorded.wait(10)
            seen["mode thread records"] = (w * 2).requires_grad

    def outside():
        entered.wait(10)
        seen["other thread records"] = (w * 2).requires_grad
        seen["other thread grad mode"] = tg.is_grad_enabled()
        recorded.set()

    run_in_threads(inside_the_mode, outside)
    assert seen == {"mode thread records": False, "other thread records": True,
                    "other thread grad mode": True}
    assert tg.is_grad_enabled() and not tg.is_inference_mode_enabled()


def test_a_new_thread_starts_with_grad_on_whatever_its_parent_runs_under():
    with tg.no_grad(), tg.inference_mode():
        (grad_mode, inference), = run_in_threads(
            lambda: (tg.is_grad_enabled(), tg.is_inference_mode_enabled()))
    assert grad_mode and not inference  # as PyTorch: modes are not inherited by threads


def test_inference_mode_turns_grad_off_and_restores_both_modes():
    w = tg.randn(2, requires_grad=True)
    with tg.inference_mode():
        assert tg.is_inference_mode_enabled() and not tg.is_grad_enabled()
        assert not (w * 2).requires_grad
        with tg.inference_mode(False):
            assert not tg.is_inference_mode_enabled() and not tg.is_grad_enabled()
    assert tg.is_grad_enabled() and not tg.is_inference_mode_enabled()

    @tg.inference_mode
    def bare():
        return w * 2

    @tg.no_grad
    def bare_no_grad():
        return w * 2

    assert not bare().requires_grad and not bare_no_grad().requires_grad


def test_backward_in_one_thread_leaves_another_threads_forward_recording():
    """backward() runs its ops under no_grad; another thread's forward meanwhile must record."""
    x = tg.randn(64, 64, requires_grad=True)
    losses = []

    def backward_many_times():
        for _ in range(200):
            (x @ x).tanh().sum().backward()

    def forward_many_times():
        for _ in range(200):
            y = (x * 3).sum()
            losses.append(y.requires_grad)

    run_in_threads(backward_many_times, forward_many_times)
    assert all(losses) and len(losses) == 200


# ---- shared native state ------------------------------------------------------------------
needs_native = pytest.mark.skipif(not native.available(), reason="tinygrad_like._C not built")


@needs_native
def test_native_kernels_called_from_several_threads_give_each_its_own_result():
    """The pool runs one job at a time; large outputs come from the shared buffer cache."""
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((512, 1024)).astype(np.float32) for _ in range(4)]
    expected = [tg.tensor(x).softmax(-1).relu().numpy().copy() for x in inputs]

    def job(x):
        return lambda: [tg.tensor(x).softmax(-1).relu().numpy().copy() for _ in range(20)]

    for outputs, reference in zip(run_in_threads(*(job(x) for x in inputs)), expected):
        for out in outputs:
            np.testing.assert_array_equal(out, reference)


@needs_native
@pytest.mark.skipif(not native_blas.available(), reason=native_blas.status())
def test_the_blas_thread_limit_is_restored_after_concurrent_winograd_gemms():
    from threadpoolctl import threadpool_info

    before = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    rng = np.random.default_rng(1)
    a = rng.standard_normal((36, 64, 48)).astype(np.float32)
    b = rng.standard_normal((36, 48, 40)).astype(np.float32)
    expected = np.matmul(a, b)

    def job():
        return [native_blas.batched_gemm(a, b) for _ in range(50)]

    for outputs in run_in_threads(job, job, job):
        for out in outputs:
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    after = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    assert after == before
