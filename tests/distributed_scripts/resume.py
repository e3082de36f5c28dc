"""Train, checkpoint on rank 0, resume with another world size: the parameters must match
an uninterrupted one-process run with the same global batch, up to float rounding.

Usage: mpirun -n W python resume.py first|second CHECKPOINT. "first" runs steps 0..SPLIT-1
and rank 0 saves the bare model's and the optimizer's state; "second" loads it on every
rank, runs steps SPLIT..STEPS-1 and compares with the reference, trained here in-process.
"""

import sys

import numpy as np

import tinygrad_like as tg
from tinygrad_like import distributed as dist
from tinygrad_like import nn
from tinygrad_like.nn import functional as F
from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

SPLIT, STEPS, GLOBAL_BATCH = 3, 6, 8
phase, checkpoint = sys.argv[1], sys.argv[2]
dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()


def build():
    tg.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(step: int):
    rng = np.random.default_rng(100 + step)  # the same global batch whatever the world size
    return (tg.tensor(rng.standard_normal((GLOBAL_BATCH, 5)), dtype=tg.float32),
            tg.tensor(rng.integers(0, 3, GLOBAL_BATCH)))


def optimizer(params):
    return tg.optim.SGD(params, lr=0.2, momentum=0.9)


def run(model, opt, steps, share: slice | None = None) -> None:
    for step in steps:
        x, y = batch(step)
        if share is not None:
            x, y = x[share], y[share]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


local = GLOBAL_BATCH // size
mine = slice(rank * local, (rank + 1) * local)
model = build()
if phase == "second":
    state = tg.load(checkpoint)
    model.load_state_dict(state["model"])
ddp = DDP(model)
opt = optimizer(ddp.parameters())
if phase == "second":
    opt.load_state_dict(state["optim"])
run(ddp, opt, range(SPLIT) if phase == "first" else range(SPLIT, STEPS), mine)
if phase == "first":
    if rank == 0:
        tg.save({"model": model.state_dict(), "optim": opt.state_dict()}, checkpoint)
    dist.barrier()  # the checkpoint is complete before any rank exits
else:
    reference = build()
    reference_opt = optimizer(reference.parameters())
    run(reference, reference_opt, range(STEPS))
    for (name, p), q in zip(reference.named_parameters(), model.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    print(f"rank {rank}: OK", flush=True)
dist.destroy_process_group()
