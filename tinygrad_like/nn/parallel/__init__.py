"""`tg.nn.parallel`: data parallelism over `tg.distributed`, as `torch.nn.parallel`."""

from tinygrad_like.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
