"""2 ranks with per-rank batch B train exactly as one process with batch 2B.

Usage: mpirun -n 2 python ddp_parity.py float32|float64. Every rank also trains the
single-process reference itself (the models are tiny), so it can compare after each step;
every rank's parameters must also be bitwise equal to every other rank's.
"""

import sys

import numpy as np

import tinygrad_like as tg
from tinygrad_like import distributed as dist
from tinygrad_like import nn
from tinygrad_like.nn import functional as F
from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()
dtype = {"float32": tg.float32, "float64": tg.float64}[sys.argv[1]]
rtol = 1e-5 if dtype == tg.float32 else 1e-12
STEPS, BATCH = 20, 4  # BATCH per rank


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(F.max_pool2d(self.conv(x).relu(), 2).flatten(1))


class TinyGRULM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 5)
        self.gru = nn.GRU(5, 7, batch_first=True)
        self.head = nn.Linear(7, 6)

    def forward(self, ids):
        out, _ = self.gru(self.embed(ids))
        return self.head(out).reshape(-1, 6)


def batches(kind: str):
    rng = np.random.default_rng(7)
    for _ in range(STEPS):
        n = BATCH * size
        if kind == "cnn":
            x = tg.tensor(rng.standard_normal((n, 1, 8, 8)), dtype=dtype)
            y = tg.tensor(rng.integers(0, 5, n))
        else:
            ids = rng.integers(0, 6, (n, 9))
            x, y = tg.tensor(ids[:, :-1]), tg.tensor(ids[:, 1:].reshape(-1))
        yield x, y


def params_of(model) -> list:
    return [p.detach().numpy().copy() for p in model.parameters()]


def check_same_everywhere(model, what: str) -> None:
    gathered = [None] * size
    dist.all_gather_object(gathered, params_of(model))
    for r in range(1, size):
        for a, b in zip(gathered[0], gathered[r]):
            if not np.array_equal(a, b):
                raise AssertionError(f"{what}: rank {r}'s parameters differ from rank 0's")


def train(build, kind: str) -> None:
    tg.manual_seed(rank)  # DDP must broadcast rank 0's initial parameters
    ddp = DDP(build().to(dtype), bucket_cap_mb=0.0005)  # several buckets
    assert len(ddp.reducer.buckets) > 1
    tg.manual_seed(0)
    reference = build().to(dtype)
    if rank != 0:  # rank 0's own model is what DDP broadcast
        with tg.no_grad():
            for p, q in zip(reference.parameters(), ddp.module.parameters()):
                p.copy_(q)
    check_same_everywhere(ddp.module, f"{kind}: after construction")
    for p, q in zip(params_of(reference), params_of(ddp.module)):
        assert rank != 0 or np.array_equal(p, q)
    opt = tg.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    opt_ref = tg.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for step, (x, y) in enumerate(batches(kind)):
        if kind == "gru":
            mine = slice(rank * BATCH * 8, (rank + 1) * BATCH * 8)
        else:
            mine = slice(rank * BATCH, (rank + 1) * BATCH)
        local_x = x[rank * BATCH:(rank + 1) * BATCH]
        opt.zero_grad()
        F.cross_entropy(ddp(local_x), y[mine]).backward()
        opt.step()
        opt_ref.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        opt_ref.step()
        check_same_everywhere(ddp.module, f"{kind}: step {step}")
        for name, (p, q) in zip([n for n, _ in reference.named_parameters()],
                                zip(params_of(reference), params_of(ddp.module))):
            np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f"{kind} {sys.argv[1]} step {step} {name}")
    assert all(k.startswith("module.") for k in ddp.state_dict())


def check_no_sync() -> None:
    """Two micro-batches accumulated under no_sync, then one synchronised backward: the
    averaged gradient is the mean over ranks of each rank's summed gradients."""
    tg.manual_seed(0)
    ddp = DDP(TinyCNN().to(dtype))
    xs = [tg.tensor(np.random.default_rng(r).standard_normal((2, 1, 8, 8)), dtype=dtype)
          for r in range(size)]
    with ddp.no_sync():
        ddp(xs[rank]).sum().backward()
    local = [p.grad.numpy().copy() for p in ddp.module.parameters()]
    ddp(xs[rank]).sum().backward()
    everyone = [None] * size
    dist.all_gather_object(everyone, [2 * g for g in local])
    for p, *grads in zip(ddp.module.parameters(), *everyone):
        np.testing.assert_allclose(p.grad.numpy(), sum(grads) / size, rtol=rtol)


train(TinyCNN, "cnn")
train(TinyGRULM, "gru")
check_no_sync()
dist.destroy_process_group()
print(f"rank {rank}: OK", flush=True)
