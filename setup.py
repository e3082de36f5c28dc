"""Packaging that pyproject.toml cannot express: kernels/ installs as tinygrad_like.kernels,
and the optional native extension tinygrad_like._C is built by CMake (CMakeLists.txt).

CMake builds the kernels once per instruction-set level (_C, and on x86-64 _C_x86_64_v3 and
_C_x86_64_v4) into the folder of _C. The extension is optional: if CMake, a C++ compiler or
pybind11 is missing, or the build fails, a warning is printed and the pure-Python package is
installed all the same; the CPU backend then runs on NumPy alone and `tg.backend_info()`
says why.
"""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """An extension with no sources of its own: CMake knows how to build it."""

    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """One CMake build makes every module; setuptools then copies those that exist."""

    def build_extensions(self) -> None:
        # the directory setuptools expects the modules in: build/lib.* for a wheel,
        # a staging folder for an editable install
        target_dir = Path(self.get_ext_fullpath(self.extensions[0].name)).resolve().parent
        try:
            self.run_cmake(target_dir)
        except (ImportError, OSError, subprocess.CalledProcessError) as error:
            self.warn(f"tinygrad_like: the native extension _C was not built ({error}); "
                      "installing the pure-Python package, whose CPU backend uses NumPy alone")
            if not self.inplace:  # an earlier build's modules must not ship as if just built
                for ext in self.extensions:
                    Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            self.extensions.clear()  # nothing to copy or to list among the outputs
            return
        # CMake builds the x86-64 levels only where they exist (CMakeLists.txt)
        self.extensions = [ext for ext in self.extensions
                           if Path(self.get_ext_fullpath(ext.name)).exists()]

    def run_cmake(self, target_dir: Path) -> None:
        import pybind11

        build_dir = Path(self.build_temp).resolve() / "cmake"
        config = "Debug" if self.debug else "Release"
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={target_dir}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY_{config.upper()}={target_dir}",
            f"-DCMAKE_BUILD_TYPE={config}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        ]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--config", config, "-j", jobs],
                       check=True)


setup(
    packages=find_packages(include=["tinygrad_like", "tinygrad_like.*"]) + ["tinygrad_like.kernels"],
    package_dir={"tinygrad_like": "tinygrad_like", "tinygrad_like.kernels": "kernels"},
    package_data={"tinygrad_like.kernels": ["cuda/*.cu", "cuda/*.h", "cuda/*.py", "cpu/*.cpp",
                                            "cpu/*.h", "triton/*.py"]},
    # the kernels built once per instruction-set level (CMakeLists.txt, backend/native.py)
    ext_modules=[CMakeExtension(f"tinygrad_like.{module}")
                 for module in ("_C", "_C_x86_64_v3", "_C_x86_64_v4")],
    cmdclass={"build_ext": CMakeBuild},
)
