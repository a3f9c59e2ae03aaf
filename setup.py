"""The compiled time loops (rnnkit/kernels/_loops.cpp); everything else is in pyproject.toml.

Each loop library is built for three x86-64 levels (AVX-512, AVX2, baseline) and rnnkit loads
the best one the CPU runs (`rnnkit.kernels.compiled`); other CPUs get the baseline build. The
builds are optional: without a C++ compiler with OpenMP, rnnkit installs all the same and runs
its Python loops, and `layer.kernel_path` says why.
"""

import platform

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "rnnkit/kernels/_loops.cpp"
X86 = platform.machine().lower() in {"x86_64", "amd64"}
# module name -> -march (None: the compiler's default target)
LEVELS = {"_loops_avx512": "x86-64-v4", "_loops_avx2": "x86-64-v3"} if X86 else {}
LEVELS["_loops"] = None


class OptionalBuild(build_ext):
    """GCC-style flags, and no loops at all where the compiler is not GCC-like (MSVC)."""

    def build_extensions(self):
        if self.compiler.compiler_type != "unix":
            print(f"rnnkit: no compiled loops with the {self.compiler.compiler_type} compiler")
            self.extensions = []
        super().build_extensions()


def loops(name: str, march: str | None) -> Extension:
    flags = ["-O3", "-fopenmp", "-fno-exceptions", "-std=gnu++17", f"-DRNNKIT_MODULE={name}"]
    if march is not None:
        flags.append(f"-march={march}")
    return Extension(
        f"rnnkit.kernels.{name}",
        [SOURCE],
        language="c++",
        extra_compile_args=flags,
        extra_link_args=["-fopenmp"],
        optional=True,
    )


setup(
    ext_modules=[loops(name, march) for name, march in LEVELS.items()],
    cmdclass={"build_ext": OptionalBuild},
)
