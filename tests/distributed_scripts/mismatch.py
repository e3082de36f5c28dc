"""Rank 1 builds a different model: DDP must raise the same clear error on every rank."""

from tinygrad_like import distributed as dist
from tinygrad_like import nn
from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
rank = dist.get_rank()
hidden = 5 if rank == 0 else 6
try:
    DDP(nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 2)))
except RuntimeError as error:
    print(f"rank {rank}: caught: {error}", flush=True)
dist.destroy_process_group()
