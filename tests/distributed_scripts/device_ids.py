"""DDP must refuse device_ids and output_device for a CPU module, naming them; run without
mpirun, as a singleton group of one rank."""

import pytest

from tinygrad_like import distributed as dist
from tinygrad_like import nn
from tinygrad_like.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
for options in ({"device_ids": [0]}, {"output_device": 0}, {"device_ids": [0], "output_device": 0}):
    with pytest.raises(ValueError, match="device_ids and output_device must be None for a "
                                         "module on the CPU"):
        DDP(nn.Linear(3, 2), **options)
DDP(nn.Linear(3, 2), device_ids=None, output_device=None)
dist.destroy_process_group()
print("OK", flush=True)
