"""tg.nn: layers and functional ops (the layers arrive with the nn issue)."""

from tinygrad_like.nn import functional  # noqa: F401
