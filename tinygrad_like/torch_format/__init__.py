"""PyTorch's zip checkpoint format (what torch.save writes since 1.6), without torch.

A checkpoint is an uncompressed zip: `<archive>/data.pkl` is a pickle of the saved object
in which every tensor is a call of `torch._utils._rebuild_tensor_v2` on a storage named by
a persistent id; `<archive>/data/<key>` holds each storage's raw bytes; small records
(`version`, `byteorder`, ...) describe the file. `reader` parses the pickle with a
restricted unpickler that admits only what `torch.load(weights_only=True)` admits (it never
imports or runs anything else); `writer` emits the same names as text, so torch need not be
installed for either direction.
"""

from tinygrad_like.torch_format.reader import LEGACY_MAGIC, read_checkpoint
from tinygrad_like.torch_format.writer import write_checkpoint

__all__ = ["LEGACY_MAGIC", "read_checkpoint", "write_checkpoint"]
