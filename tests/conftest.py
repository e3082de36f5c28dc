"""Shared pytest hooks: tests marked `cuda` run only where tg.cuda.is_available()."""

from __future__ import annotations

import pytest

import tinygrad_like as tg


def pytest_collection_modifyitems(config, items):
    if tg.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CuPy (tg.cuda.is_available() is "
                                   "False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
