"""`tg.cuda`: whether the "cuda" device can be used here."""

from tinygrad_like.backend.cuda import is_available  # noqa: F401
