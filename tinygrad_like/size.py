"""tg.Size: a tensor's shape, a tuple with PyTorch's extras (torch.Size)."""

from __future__ import annotations


class Size(tuple):
    """A tuple of dimension sizes; slicing and adding keep it a Size."""

    __slots__ = ()

    def numel(self) -> int:
        count = 1
        for n in self:
            count *= n
        return count

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))

    def __repr__(self) -> str:
        return f"tinygrad_like.Size({list(self)})"

    def __str__(self) -> str:
        # error messages write f"shape {x.shape}": keep them the plain tuple, (2, 3)
        return tuple.__repr__(self)
