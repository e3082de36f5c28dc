"""Packaging that pyproject.toml cannot express: kernels/ installs as tinygrad_like.kernels."""

from setuptools import setup

setup(
    packages=[
        "tinygrad_like",
        "tinygrad_like.backend",
        "tinygrad_like.ops",
        "tinygrad_like.nn",
        "tinygrad_like.kernels",
    ],
    package_dir={"tinygrad_like": "tinygrad_like", "tinygrad_like.kernels": "kernels"},
    package_data={"tinygrad_like.kernels": ["cuda/*.cu", "cpu/*.cpp", "cpu/*.h", "triton/*.py"]},
)
