"""tg.amp: mixed precision, as torch.amp: `autocast` regions and the `GradScaler`.

    scaler = tg.amp.GradScaler("cpu")
    with tg.autocast("cpu"):               # bfloat16 matmuls and convolutions
        loss = loss_fn(model(x), y)        # losses in float32
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()

`cpu_amp` and `cuda_amp` are PyTorch's older per-device spellings, tg.cpu.amp and
tg.cuda.amp, whose autocast takes no device_type.
"""

from __future__ import annotations

from types import SimpleNamespace

from tinygrad_like import dtypes
from tinygrad_like.amp.autocast import (autocast, clear_autocast_cache, get_autocast_dtype,
                                        is_autocast_cache_enabled, is_autocast_enabled)
from tinygrad_like.amp.grad_scaler import GradScaler


def _device_autocast(device_type: str, default_dtype):
    class DeviceAutocast(autocast):
        __doc__ = f"tg.{device_type}.amp.autocast: tg.autocast({device_type!r}, ...)."

        def __init__(self, enabled: bool = True, dtype=default_dtype,
                     cache_enabled: bool = True):
            super().__init__(device_type, dtype=dtype, enabled=enabled,
                             cache_enabled=cache_enabled)

    DeviceAutocast.__name__ = DeviceAutocast.__qualname__ = "autocast"
    return DeviceAutocast


def _device_grad_scaler(device_type: str):
    class DeviceGradScaler(GradScaler):
        __doc__ = f"tg.{device_type}.amp.GradScaler: tg.amp.GradScaler({device_type!r}, ...)."

        def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                     backoff_factor: float = 0.5, growth_interval: int = 2000,
                     enabled: bool = True):
            super().__init__(device_type, init_scale, growth_factor, backoff_factor,
                             growth_interval, enabled)

    DeviceGradScaler.__name__ = DeviceGradScaler.__qualname__ = "GradScaler"
    return DeviceGradScaler


cpu_amp = SimpleNamespace(autocast=_device_autocast("cpu", dtypes.bfloat16),
                          GradScaler=_device_grad_scaler("cpu"))
cuda_amp = SimpleNamespace(autocast=_device_autocast("cuda", dtypes.float16),
                           GradScaler=_device_grad_scaler("cuda"))
cpu_namespace = SimpleNamespace(amp=cpu_amp)  # tg.cpu: of torch.cpu, programs use only .amp

__all__ = ["GradScaler", "autocast", "clear_autocast_cache", "get_autocast_dtype",
           "is_autocast_cache_enabled", "is_autocast_enabled"]
