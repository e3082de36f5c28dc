"""GPU timing with CUDA events over back-to-back launches (used by test_bench_gpu.py).

A host clock with a synchronize after every call measures the launch latency and the
host's round trip as much as the kernel. Here the GPU's own clock times a round: an event
is recorded, `launches` calls are queued with nothing between them, a second event is
recorded, and only then does the host wait. Once the queue runs ahead of the GPU the
kernels run back to back, and the elapsed time over `launches` is the time per launch.

The events come from the caller (CuPy's `cp.cuda.Event` and `cp.cuda.get_elapsed_time`),
so the logic runs in the tests with a stand-in clock. The events are recorded on CuPy's
current stream: every timed call must run on that stream (torch's current stream is the
same legacy default stream unless a program changes either).
"""

from __future__ import annotations

import statistics
from typing import Callable

ROUND_MS = 25.0  # aim for rounds this long, so event resolution (~0.5 us) does not matter
MAX_LAUNCHES = 200


def time_round(fn: Callable, launches: int, new_event: Callable,
               elapsed_ms: Callable) -> float:
    """Milliseconds per call over one round of `launches` back-to-back calls of `fn`."""
    if launches < 1:
        raise ValueError(f"time_round: launches must be at least 1, got {launches}")
    start, end = new_event(), new_event()
    start.record()
    for _ in range(launches):
        fn()
    end.record()
    end.synchronize()
    return elapsed_ms(start, end) / launches


def launches_per_round(fn: Callable, new_event: Callable, elapsed_ms: Callable,
                       warmup: int = 3, round_ms: float = ROUND_MS) -> int:
    """Warm `fn` up (compiles, autotuning, allocator) and pick how many calls fill a round."""
    per_call = time_round(fn, warmup, new_event, elapsed_ms)
    if per_call <= 0:
        return MAX_LAUNCHES
    return max(1, min(MAX_LAUNCHES, round(round_ms / per_call)))


def cuda_event_ms(fn: Callable, new_event: Callable, elapsed_ms: Callable, rounds: int = 5,
                  launches: int | None = None) -> dict:
    """{"ms": median ms per call, "rounds": per-round ms per call, "launches": per round}."""
    launches = launches or launches_per_round(fn, new_event, elapsed_ms)
    per_round = [time_round(fn, launches, new_event, elapsed_ms) for _ in range(rounds)]
    return {"ms": statistics.median(per_round), "rounds": per_round, "launches": launches}
