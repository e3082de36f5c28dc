"""The process group: which processes train together, over MPI (mpi4py) on the CPU, or over
NCCL on 'cuda' tensors (distributed/nccl.py) with MPI still launching the ranks.

`init_process_group("mpi")` reads the rank and world size from the MPI launcher (`mpirun -n N
python train.py`), as PyTorch's MPI backend does; there is no rendezvous address to pass.
It also installs an excepthook that calls MPI_Abort: a rank that dies of an uncaught exception
would otherwise leave the others blocked forever in their next collective (Open MPI's mpirun
only ends the job once every rank has exited), so instead every rank is killed at once and
mpirun exits non-zero.
"""

from __future__ import annotations

import enum
import sys
import traceback


class ReduceOp(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"


class ProcessGroup:
    """A set of ranks and the MPI communicator they talk over (`new_group` makes sub-groups);
    `nccl` is the group's NCCL communicator under the "nccl" backend, else None."""

    def __init__(self, comm, ranks: list[int], nccl=None):
        self.comm = comm
        self.ranks = ranks  # global ranks of the members, in group-rank order
        self.nccl = nccl

    def rank(self) -> int:
        return self.comm.Get_rank()

    def size(self) -> int:
        return self.comm.Get_size()

    def __repr__(self) -> str:
        return f"ProcessGroup(ranks={self.ranks})"


class _World:
    group: ProcessGroup | None = None
    backend: str | None = None
    previous_excepthook = None


_world = _World()


_loaded_mpi = []  # mpi4py's MPI module once imported: every collective reaches it


def _mpi():
    if _loaded_mpi:
        return _loaded_mpi[0]
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError("tg.distributed: the 'mpi' backend needs mpi4py and an MPI library "
                           "(pip install 'tinygrad_like[distributed]')") from error
    _loaded_mpi.append(MPI)
    return MPI


def _abort_on_uncaught_exception(kind, value, tb) -> None:
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    _world.group.comm.Abort(1)


def abort(code: int = 1) -> None:
    """End every rank of the job now (MPI_Abort): for an error one rank meets alone, after
    which the others would wait for it forever."""
    default_group("abort").comm.Abort(code)


def init_process_group(backend: str = "mpi", init_method: str | None = None,
                       world_size: int = -1, rank: int = -1, timeout=None,
                       group_name: str = "") -> None:
    """Join the default process group; the rank and world size come from mpirun.

    backend="mpi" (or its alias "gloo") works on CPU tensors, "nccl" on 'cuda' tensors."""
    if _world.group is not None:
        raise RuntimeError("init_process_group: the default process group is already "
                           "initialised; call destroy_process_group() first")
    if backend not in ("mpi", "gloo", "nccl"):
        raise ValueError(f"init_process_group: unknown backend {backend!r}; this build "
                         "supports 'mpi' ('gloo' is accepted as an alias on the CPU) and "
                         "'nccl' (on 'cuda' tensors)")
    comm = _mpi().COMM_WORLD
    if world_size not in (-1, comm.Get_size()) or rank not in (-1, comm.Get_rank()):
        raise ValueError(f"init_process_group: world_size={world_size}, rank={rank} disagree "
                         f"with the MPI launcher's {comm.Get_size()} processes (this is rank "
                         f"{comm.Get_rank()}); leave them unset under mpirun")
    nccl = _nccl_communicator(comm) if backend == "nccl" else None
    _world.group = ProcessGroup(comm, list(range(comm.Get_size())), nccl)
    _world.backend = "nccl" if backend == "nccl" else "mpi"
    _world.previous_excepthook = sys.excepthook
    sys.excepthook = _abort_on_uncaught_exception


def _nccl_communicator(comm):
    from tinygrad_like.distributed.nccl import make_communicator

    node = comm.Split_type(_mpi().COMM_TYPE_SHARED)  # the ranks on this machine
    try:
        return make_communicator(comm, node)
    finally:
        node.Free()


def is_available() -> bool:
    try:
        _mpi()
    except RuntimeError:
        return False
    return True


def is_initialized() -> bool:
    return _world.group is not None


def default_group(call: str) -> ProcessGroup:
    if _world.group is None:
        raise RuntimeError(f"{call}: the default process group is not initialised; call "
                           "tg.distributed.init_process_group('mpi') first (under mpirun)")
    return _world.group


def resolve_group(group: ProcessGroup | None, call: str) -> ProcessGroup:
    world = default_group(call)
    return world if group is None else group


def get_backend(group: ProcessGroup | None = None) -> str:
    resolve_group(group, "get_backend")
    return _world.backend


def get_rank(group: ProcessGroup | None = None) -> int:
    return resolve_group(group, "get_rank").rank()


def get_world_size(group: ProcessGroup | None = None) -> int:
    return resolve_group(group, "get_world_size").size()


def barrier(group: ProcessGroup | None = None) -> None:
    resolve_group(group, "barrier").comm.Barrier()


def new_group(ranks: list[int] | None = None) -> ProcessGroup | None:
    """A group of some ranks (all of them by default), as an MPI sub-communicator.

    Like PyTorch, every rank of the default group must call it, members or not; a rank
    outside `ranks` gets None back."""
    world = default_group("new_group")
    ranks = list(range(world.size())) if ranks is None else sorted(set(int(r) for r in ranks))
    if not ranks or ranks[0] < 0 or ranks[-1] >= world.size():
        raise ValueError(f"new_group: ranks {ranks} must be a non-empty subset of "
                         f"0..{world.size() - 1}")
    member = world.rank() in ranks
    comm = world.comm.Split(0 if member else _mpi().UNDEFINED, ranks.index(world.rank())
                            if member else 0)
    if not member:
        return None
    # a sub-group's NCCL communicator is its own: its ranks are the sub-group's ranks
    return ProcessGroup(comm, ranks, None if world.nccl is None else _nccl_communicator(comm))


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Leave the default group (or free a sub-group); MPI itself is finalised at exit."""
    world = default_group("destroy_process_group")
    target = world if group is None else group
    if target.nccl is not None:
        target.nccl.destroy()
    if target is not world:
        group.comm.Free()
        return
    sys.excepthook = _world.previous_excepthook
    _world.group = _world.backend = _world.previous_excepthook = None
