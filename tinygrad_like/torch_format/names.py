"""The names PyTorch's checkpoints use for dtypes and storages, as plain strings.

They are copied from torch (torch/storage.py's `_dtype_to_storage_type_map`, and the dtypes
that torch/_weights_only_unpickler.py admits) so that neither reading nor writing needs torch.
"""

from __future__ import annotations

from tinygrad_like import dtypes
from tinygrad_like.dtypes import DType

# the legacy typed-storage class that each dtype's storages are pickled as
STORAGE_OF_DTYPE = {
    "float64": "DoubleStorage", "float32": "FloatStorage", "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage", "int64": "LongStorage", "int32": "IntStorage",
    "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage",
    "bool": "BoolStorage", "complex64": "ComplexFloatStorage",
    "complex128": "ComplexDoubleStorage", "qint8": "QInt8Storage", "quint8": "QUInt8Storage",
    "qint32": "QInt32Storage", "quint4x2": "QUInt4x2Storage", "quint2x4": "QUInt2x4Storage",
}
DTYPE_OF_STORAGE = {storage: dtype for dtype, storage in STORAGE_OF_DTYPE.items()}

# every dtype torch's weights_only unpickler admits as a global `torch.<name>`
TORCH_DTYPES = frozenset(
    list(STORAGE_OF_DTYPE)
    + ["complex32", "uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e4m3fnuz",
       "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2",
       "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16"]
    + [f"uint{bits}" for bits in range(1, 8)] + [f"int{bits}" for bits in range(1, 8)])


def tinygrad_dtype(torch_name: str) -> DType | None:
    """The tinygrad_like dtype that holds torch's `torch_name` exactly, or None if there is
    none (complex, quantized, unsigned wider than a byte, float8, ...)."""
    try:
        dtype = dtypes.to_dtype(torch_name)
    except TypeError:
        return None
    return dtype if dtype.name == torch_name else None  # "int" or "float" are aliases, not names
