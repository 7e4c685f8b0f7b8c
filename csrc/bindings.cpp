// The only PYBIND11_MODULE. Each binding checks and unpacks its arguments and calls a kernel
// from kernels/, comm/ or cuda/; no arithmetic lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <mpi.h>
#include <omp.h>

#include "dtype.h"
#include "kernels/scatter.h"

namespace py = pybind11;
using namespace distml;

#ifndef DISTML_MPI_WRAPPER
#define DISTML_MPI_WRAPPER "unknown"
#endif
#ifndef DISTML_MPI_COMPILER_VERSION
#define DISTML_MPI_COMPILER_VERSION "unknown"
#endif

// The DType of a numpy array, or a TypeError naming what came.
static DType dtype_of(const py::array& a) {
  switch (a.dtype().char_()) {
    case 'e': return DType::f16;
    case 'f': return DType::f32;
    case 'd': return DType::f64;
    case 'b': return DType::i8;
    case 'h': return DType::i16;
    case 'i': return DType::i32;
    case 'l': return DType::i64;
    case 'q': return DType::i64;
    case 'B': return DType::u8;
    case '?': return DType::b8;
  }
  throw py::type_error("unsupported dtype " + std::string(py::str(a.dtype())));
}

static void require_contiguous(const py::array& a, const char* what) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(what) + " must be C-contiguous");
}

static py::dict build_info() {
  py::dict info;
  char mpi_library[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(mpi_library, &length);
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  info["compiler"] = std::string(DISTML_MPI_WRAPPER) + " (" + DISTML_MPI_COMPILER_VERSION + ")";
  info["cxx_version"] = std::string(__VERSION__);
  info["mpi_library"] = std::string(mpi_library, length > 0 ? length - 1 : 0);
  info["mpi_standard"] = std::to_string(major) + "." + std::to_string(minor);
  info["openmp"] = _OPENMP;
#ifdef DISTML_WITH_CUDA
  info["cuda"] = true;
#else
  info["cuda"] = false;
#endif
  return info;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "distml's compiled core: tensor kernels and MPI collectives";
  m.def("build_info", &build_info, "Compiler, MPI library and version, and whether CUDA was compiled in.");
  m.def("set_num_threads", [](int n) { omp_set_num_threads(n); }, "Threads used by the OpenMP kernels.");
  m.def("get_num_threads", []() { return omp_get_max_threads(); });

  // ---- kernels/ (tensor kernels) ----
  m.def("scatter_add", [](py::array target, py::array_t<int64_t, py::array::c_style> index, py::array values) {
    require_contiguous(target, "target");
    require_contiguous(values, "values");
    if (target.dtype().not_equal(values.dtype())) throw py::type_error("scatter_add: target and values dtypes differ");
    if (index.size() != values.size()) throw py::value_error("scatter_add: index and values sizes differ");
    DType dtype = dtype_of(target);
    void* out = target.mutable_data();
    py::gil_scoped_release release;
    scatter_add(out, target.size(), index.data(), values.data(), values.size(), dtype);
  }, "target.flat[index] += values, repeated indices accumulating (index: int64).");

  // ---- comm/ (collectives) ----
}
