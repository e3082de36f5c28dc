"""Rank 1 is killed with SIGKILL in the middle of a training step while rank 0 waits in an
all-reduce: mpirun must end every rank and exit non-zero (no excepthook runs on SIGKILL)."""

import os
import signal

import tinygrad_like as tg
from tinygrad_like import distributed as dist
from tinygrad_like import nn
from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
model = DDP(nn.Linear(3, 2))
for step in range(3):
    loss = model(tg.randn(4, 3)).sum()
    if step == 1 and dist.get_rank() == 1:
        print("rank 1 kills itself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    loss.backward()
print("unreachable: rank", dist.get_rank(), flush=True)
