"""Packaging that pyproject.toml cannot express: kernels/ installs as tinygrad_like.kernels."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tinygrad_like", "tinygrad_like.*"]) + ["tinygrad_like.kernels"],
    package_dir={"tinygrad_like": "tinygrad_like", "tinygrad_like.kernels": "kernels"},
    package_data={"tinygrad_like.kernels": ["cuda/*.cu", "cpu/*.cpp", "cpu/*.h", "triton/*.py"]},
)
