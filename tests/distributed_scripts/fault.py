"""Rank 1 raises in the middle of a training step while rank 0 waits in an all-reduce:
init_process_group's excepthook must abort the job so that no rank hangs."""

import tinygrad_like as tg
from tinygrad_like import distributed as dist
from tinygrad_like import nn
from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
model = DDP(nn.Linear(3, 2))
for step in range(3):
    loss = model(tg.randn(4, 3)).sum()
    if step == 1 and dist.get_rank() == 1:
        raise ValueError("rank 1 fails on purpose")
    loss.backward()
print("unreachable: rank", dist.get_rank(), flush=True)
