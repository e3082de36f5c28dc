"""DistributedDataParallel: one model replica per rank, gradients averaged during backward.

How the gradient all-reduce overlaps the backward pass:
- at construction the parameters are split into buckets, walking them in reverse
  registration order (roughly the order backward produces their gradients), one dtype per
  bucket: the first of up to 1 MiB (PyTorch's first bucket; `bucket_cap_mb` if smaller), so
  that communication starts early in backward, the rest of up to `bucket_cap_mb`. A model
  whose gradients would fill fewer than `MIN_BUCKETS` buckets of that size is cut into about
  that many instead: with PyTorch's fixed sizes a small model is one bucket, whose
  all-reduce can only start when backward has ended (the sums are elementwise, so bucketing
  never changes a result). Every parameter gets a post-accumulate-grad hook;
- `forward` arms the reducer (unless under `no_sync()` or grad mode is off);
- during `backward()` the autograd engine calls a parameter's hook once its gradient for
  this backward is complete (after the last node that uses it, so an RNN weight reused at
  every step counts once). When every parameter of a bucket is ready, the bucket's gradients
  are copied into one flat buffer and its non-blocking all-reduce (MPI Iallreduce) starts,
  while backward goes on computing the next buckets' gradients. Buckets start strictly in
  bucket order, as all ranks must issue collectives in the same order. MPI moves a
  non-blocking collective along only inside MPI calls (Open MPI runs no progress thread), so
  every later gradient hook tests the all-reduces in flight: each test advances them, and
  they complete during backward rather than in the final wait;
- the hook that completes the last bucket waits for every bucket's all-reduce, divides by
  the world size and sets each `.grad` to its slice of the averaged buffer, so the
  gradients are averaged when `backward()` returns.

`state_dict()` is the wrapper's own, so its keys carry the `module.` prefix, as PyTorch's
DDP; save `ddp.module.state_dict()` for a checkpoint that loads into the bare model.
"""

from __future__ import annotations

import contextlib


from tinygrad_like import autograd
from tinygrad_like import distributed as dist
from tinygrad_like.distributed.process_group import resolve_group
from tinygrad_like.nn.module import Module
from tinygrad_like.tensor import Tensor


FIRST_BUCKET_BYTES = 2**20
MIN_BUCKETS = 4


class _Reducer:
    """Buckets of parameters, and the all-reduces of one backward pass."""

    def __init__(self, params: list, group, bucket_cap_bytes: int, find_unused: bool,
                 first_bucket_bytes: int = FIRST_BUCKET_BYTES):
        self.params, self.group, self.find_unused = params, group, find_unused
        total_bytes = sum(p._array.nbytes for p in params)
        bucket_cap_bytes = min(bucket_cap_bytes, max(total_bytes // MIN_BUCKETS, 1))
        first_bucket_bytes = min(first_bucket_bytes, bucket_cap_bytes)
        self.buckets: list[list[int]] = []  # parameter indices, in reverse order
        open_bucket: dict = {}  # dtype -> (bucket index, bytes so far)
        for index in reversed(range(len(params))):
            param = params[index]
            nbytes = param._array.nbytes
            current = open_bucket.get(param._array.dtype)
            cap = first_bucket_bytes if current is None or current[0] == 0 else bucket_cap_bytes
            if current is None or (current[1] + nbytes > cap and current[1] > 0):
                self.buckets.append([])
                current = (len(self.buckets) - 1, 0)
            self.buckets[current[0]].append(index)
            open_bucket[param._array.dtype] = (current[0], current[1] + nbytes)
        self.bucket_of = {id(params[i]): b for b, indices in enumerate(self.buckets)
                          for i in indices}
        self.armed = False

    def arm(self, outputs) -> None:
        if self.armed:
            unfinished = [self.params[i].shape for b, indices in enumerate(self.buckets)
                          if self.pending[b] for i in indices if id(self.params[i])
                          in self.pending[b]]
            raise RuntimeError(
                "DistributedDataParallel: expected to have finished reduction in the prior "
                "iteration before starting a new one; parameters of shapes "
                f"{unfinished[:5]} got no gradient. If the model has parameters that some "
                "forward passes do not use, pass find_unused_parameters=True; also make "
                "sure every output of forward takes part in the loss")
        self.armed = True
        self.pending = [{id(self.params[i]) for i in indices} for indices in self.buckets]
        self.ready_params: set[int] = set()
        self.works: list = []
        self.flat: list = []
        if self.find_unused:
            used = _reachable_leaves(outputs)
            for param in self.params:
                if id(param) not in used:
                    self.mark_ready(param)

    def mark_ready(self, param) -> None:
        if not self.armed or id(param) not in self.bucket_of:
            return
        self.pending[self.bucket_of[id(param)]].discard(id(param))
        for work in self.works:
            work.is_completed()  # a test advances an all-reduce in flight (module docstring)
        while len(self.works) < len(self.buckets) and not self.pending[len(self.works)]:
            self._start(len(self.works))
        if len(self.works) == len(self.buckets):
            self._finish()

    def _start(self, bucket: int) -> None:
        params = [self.params[i] for i in self.buckets[bucket]]
        xp = params[0].backend.xp  # NumPy, or CuPy for "cuda" parameters (NCCL)
        flat = xp.concatenate([xp.zeros(p._array.size, p._array.dtype) if p.grad is None
                               else p.grad._array.astype(p._array.dtype, copy=False).ravel()
                               for p in params])
        self.flat.append(flat)
        self.works.append(dist.all_reduce(Tensor._wrap(flat, params[0].backend),
                                          group=self.group, async_op=True))

    def _finish(self) -> None:
        self.armed = False
        size = self.group.size()
        for bucket, (work, flat) in enumerate(zip(self.works, self.flat)):
            work.wait()
            flat /= size
            offset = 0
            for i in self.buckets[bucket]:
                param = self.params[i]
                n = param._array.size
                param.grad = Tensor._wrap(flat[offset:offset + n].reshape(param._array.shape),
                                          param.backend)
                offset += n
        self.works, self.flat = [], []


def _reachable_leaves(outputs) -> set:
    """ids of the leaf tensors the autograd graph of `outputs` reaches."""
    tensors = outputs if isinstance(outputs, (tuple, list)) else [outputs]
    if isinstance(outputs, dict):
        tensors = list(outputs.values())
    stack = [t._ctx for t in tensors if isinstance(t, Tensor) and t._ctx is not None]
    leaves, seen = {id(t) for t in tensors if isinstance(t, Tensor)}, set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for edge in node.edges:
            if isinstance(edge, Tensor):
                leaves.add(id(edge))
            elif edge is not None:
                stack.append(edge)
    return leaves


def _signature(module: Module) -> list:
    return ([("parameter", name, tuple(p.shape), p.dtype.name)
             for name, p in module.named_parameters()]
            + [("buffer", name, tuple(b.shape), b.dtype.name)
               for name, b in module.named_buffers()])


def _first_mismatch(signatures: list) -> str | None:
    reference = signatures[0]
    for rank, signature in enumerate(signatures[1:], start=1):
        for index in range(max(len(reference), len(signature))):
            mine = signature[index] if index < len(signature) else None
            ref = reference[index] if index < len(reference) else None
            if mine != ref:
                def describe(entry):
                    if entry is None:
                        return "nothing"
                    kind, name, shape, dtype = entry
                    return f"{kind} {name!r} of shape {shape} and dtype {dtype}"
                return (f"rank {rank} has {describe(mine)} where rank 0 has {describe(ref)} "
                        f"(entry {index} of named_parameters() then named_buffers())")
    return None


class DistributedDataParallel(Module):
    """Data parallelism as torch.nn.parallel.DistributedDataParallel (see the module
    docstring for how gradients are bucketed and averaged)."""

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb: float = 25,
                 find_unused_parameters: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False):
        super().__init__()
        group = resolve_group(process_group, "DistributedDataParallel")
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got "
                            f"{type(module).__name__}")
        if dim != 0:
            raise NotImplementedError("DistributedDataParallel: only dim=0 is supported")
        on_gpu = any(p.device.startswith("cuda") for p in module.parameters())
        if not on_gpu and (device_ids is not None or output_device is not None):
            # as PyTorch for a CPU module: each rank's module lives on its own device already
            raise ValueError(f"DistributedDataParallel: device_ids and output_device must be "
                             f"None for a module on the CPU, got {device_ids!r} and "
                             f"{output_device!r}")
        if on_gpu and device_ids is not None and len(device_ids) != 1:
            raise ValueError(f"DistributedDataParallel: a GPU module takes one device per "
                             f"process, device_ids=[local_rank]; got {device_ids!r}")
        # gradient_as_bucket_view and static_graph are PyTorch's memory and speed hints: the
        # gradients here are always views of the averaged bucket, and the graph is re-walked
        # each step either way, so both change nothing but are accepted as PyTorch does
        self.module = module
        self.process_group = group
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        signatures = [None] * group.size()
        dist.all_gather_object(signatures, _signature(module), group=group)
        mismatch = _first_mismatch(signatures)
        if mismatch is not None:
            raise RuntimeError("DistributedDataParallel: the model differs between ranks: "
                               + mismatch)
        self._broadcast([t for _, t in module.named_parameters()] + list(module.buffers()))
        params = [p for p in module.parameters() if p.requires_grad]
        self.reducer = _Reducer(params, group, int(bucket_cap_mb * 2**20),
                                find_unused_parameters)
        self._hook_handles = [p.register_post_accumulate_grad_hook(self.reducer.mark_ready)
                              for p in params]

    def _broadcast(self, tensors: list) -> None:
        works = [dist.broadcast(t, self.process_group.ranks[0], group=self.process_group,
                                async_op=True) for t in tensors]
        for work in works:
            work.wait()

    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self.training:
            buffers = list(self.module.buffers())
            if buffers:
                self._broadcast(buffers)
        outputs = self.module(*args, **kwargs)
        if autograd.is_grad_enabled() and self.require_backward_grad_sync and \
                self.reducer.params:
            self.reducer.arm(outputs)
        return outputs

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside accumulate gradients locally, with no
        communication; the first synchronised backward after it averages the sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous
