"""`tg.distributed`: process groups and collectives, as `torch.distributed`.

The "mpi" backend (mpi4py over Open MPI) runs on CPU tensors; launch with
`mpirun -n N python script.py` and call `init_process_group("mpi")`. "nccl" (distributed/
nccl.py) runs the tensor collectives on 'cuda' tensors through CuPy's NCCL, one GPU per rank,
still launched by mpirun. `tg.nn.parallel.DistributedDataParallel` is built on these calls.
"""

from tinygrad_like.distributed.collectives import (Work, all_gather, all_gather_into_tensor,
                                                   all_gather_object, all_reduce, broadcast,
                                                   broadcast_object_list, irecv, isend, recv,
                                                   reduce_scatter, reduce_scatter_tensor, send)
from tinygrad_like.distributed.process_group import (ProcessGroup, ReduceOp, abort, barrier,
                                                     destroy_process_group, get_backend,
                                                     get_rank, get_world_size,
                                                     init_process_group, is_available,
                                                     is_initialized, new_group)

__all__ = ["ProcessGroup", "ReduceOp", "Work", "abort", "all_gather", "all_gather_into_tensor",
           "all_gather_object", "all_reduce", "barrier", "broadcast", "broadcast_object_list",
           "destroy_process_group", "get_backend", "get_rank", "get_world_size",
           "init_process_group", "irecv", "is_available", "is_initialized", "isend",
           "new_group", "recv", "reduce_scatter", "reduce_scatter_tensor", "send"]
