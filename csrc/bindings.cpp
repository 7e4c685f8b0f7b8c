// The only PYBIND11_MODULE. Each binding checks and unpacks its arguments and calls a kernel
// from kernels/, comm/ or cuda/; no arithmetic lives here.
#include <pybind11/native_enum.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <mpi.h>
#include <omp.h>

#include "blas_threads.h"
#include "buffer.h"
#include "comm/process_group.h"
#include "cuda/kernels.h"
#include "dtype.h"
#include "kernels/scatter.h"
#include "kernels/optim.h"
#include "kernels/softmax.h"
#include "kernels/im2col.h"
#include "kernels/conv_direct.h"
#include "kernels/winograd.h"
#include "kernels/depthwise.h"
#include "kernels/pool.h"
#include "kernels/cross_entropy.h"
#include "kernels/ctc.h"
#include "kernels/activation.h"
#include "kernels/rnn.h"
#include "kernels/batchnorm.h"
#include "kernels/layernorm.h"
#include "kernels/half.h"

namespace py = pybind11;
using namespace distml;

#ifndef DISTML_MPI_WRAPPER
#define DISTML_MPI_WRAPPER "unknown"
#endif
#ifndef DISTML_MPI_COMPILER_VERSION
#define DISTML_MPI_COMPILER_VERSION "unknown"
#endif

// The DType of a numpy array, or a TypeError naming what came (kernel bindings take Buffers: buffer.h).
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
    case 'E': return DType::bf16;  // ml_dtypes.bfloat16: the collectives only
  }
  throw py::type_error("unsupported dtype " + std::string(py::str(a.dtype())));
}

static void require_contiguous(const py::array& a, const char* what) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(what) + " must be C-contiguous");
}

#ifdef DISTML_WITH_CUDA
static cuda::Stream stream_of(const Buffer& b) { return reinterpret_cast<cuda::Stream>(b.stream); }
// In a binding of a kernel with a CUDA twin: run `call` (the twin) and return when the arrays are on a GPU.
#define DISTML_ON_CUDA(device, call) \
  if ((device) == Device::cuda) return call
#else
#define DISTML_ON_CUDA(device, call)
#endif

// A kernel binding's arrays, each with the element count it must have: C-contiguous, of one dtype, on
// one device (a CUDA one only where the kernel has a twin, `cuda_twin`). Returns that dtype and device.
struct Arrays {
  DType dtype;
  Device device;
};
static Arrays check_buffers(const char* what, std::initializer_list<std::pair<const Buffer*, int64_t>> arrays,
                            bool cuda_twin) {
  const Buffer& first = *arrays.begin()->first;
  for (const auto& [a, size] : arrays) {
    if (!cuda_twin) require_host(*a, what);
    common_device(what, {&first, a}, cuda_twin);
    require_contiguous(*a, what);
    if (!a->same_dtype(first)) throw py::type_error(std::string(what) + ": dtypes differ");
    if (a->size() != size)
      throw py::value_error(std::string(what) + ": expected an array of " + std::to_string(size) + " elements, got " +
                            std::to_string(a->size()));
  }
  return {dtype_of(first), first.device};
}

// For the kernels without a CUDA version.
static DType check_arrays(const char* what, std::initializer_list<std::pair<const Buffer*, int64_t>> arrays) {
  return check_buffers(what, arrays, false).dtype;
}

// An int64 index array (targets, argmax indices, positions) of `size` elements on `like`'s device.
static const int64_t* index_data(const char* what, const Buffer& index, const Buffer& like, int64_t size) {
  common_device(what, {&like, &index}, true);
  require_contiguous(index, what);
  if (index.dtype != static_cast<int>(DType::i64))
    throw py::type_error(std::string(what) + ": expected int64 indices, got " + index.dtype_name());
  if (index.size() != size)
    throw py::value_error(std::string(what) + ": expected " + std::to_string(size) + " indices, got " +
                          std::to_string(index.size()));
  return static_cast<const int64_t*>(index.data());
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
  py::list cuda_kernels;
#ifdef DISTML_WITH_CUDA
  info["cuda"] = true;
  const int version = cuda::compiled_runtime_version();
  info["cuda_version"] = std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
  info["cuda_archs"] = py::str(DISTML_CUDA_ARCHS).attr("split")(",");
  for (const char* name : cuda::kKernelNames) cuda_kernels.append(name);
#else
  info["cuda"] = false;
#endif
  info["cuda_kernels"] = cuda_kernels;
  return info;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "distml's compiled core: tensor kernels and MPI collectives";
  m.def("build_info", &build_info,
        "Compiler, MPI library and version; whether CUDA was compiled in, its version and architectures, and the "
        "kernels with a CUDA version.");
  m.def("set_num_threads", [](int n) { omp_set_num_threads(n); }, "Threads used by the OpenMP kernels.");
  m.def("get_num_threads", []() { return omp_get_max_threads(); });
  m.def("blas_threads_callback", []() { return reinterpret_cast<uintptr_t>(&blas_threads_callback); },
        "The address of the callback that runs OpenBLAS's parallel jobs on the OpenMP threads (blas_threads.h).");

  // ---- kernels/ (tensor kernels) ----
  m.def("scatter_add", [](Buffer target, Buffer index, Buffer values) {
    auto [dtype, device] = check_buffers("scatter_add", {{&target, target.size()}, {&values, values.size()}}, true);
    const int64_t* positions = index_data("scatter_add index", index, target, values.size());
    void* out = target.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::scatter_add(out, target.size(), positions, values.data(), values.size(), dtype,
                                             stream_of(target)));
    scatter_add(out, target.size(), positions, values.data(), values.size(), dtype);
  }, "target.flat[index] += values, repeated indices accumulating (index: int64; on a GPU, indices out of range "
     "are skipped).");
  m.def("f32_to_half_divided", [](Buffer src, Buffer dst, float divisor) {
    require_host(src, "f32_to_half_divided");
    require_host(dst, "f32_to_half_divided");
    require_contiguous(src, "src");
    require_contiguous(dst, "dst");
    const bool bf16 = dst.dtype == static_cast<int>(DType::bf16);
    if (src.dtype != static_cast<int>(DType::f32) || !(bf16 || dst.dtype == static_cast<int>(DType::f16)) ||
        src.size() != dst.size())
      throw py::type_error("f32_to_half_divided: expected float32 src and float16 or bfloat16 dst of one size, got " +
                           src.dtype_name() + " and " + dst.dtype_name());
    auto out = static_cast<uint16_t*>(dst.mutable_data());
    auto in = static_cast<const float*>(src.data());
    py::gil_scoped_release release;
    (bf16 ? f32_to_bf16_divided : f32_to_f16_divided)(in, out, src.size(), divisor);
  }, "dst = half(half(src) / divisor), half being dst's float16 or bfloat16: the compression hooks' cast.");
  m.def("half_to_f32", [](Buffer src, Buffer dst) {
    require_host(src, "half_to_f32");
    require_host(dst, "half_to_f32");
    require_contiguous(src, "src");
    require_contiguous(dst, "dst");
    const bool bf16 = src.dtype == static_cast<int>(DType::bf16);
    if (!(bf16 || src.dtype == static_cast<int>(DType::f16)) || dst.dtype != static_cast<int>(DType::f32) ||
        src.size() != dst.size())
      throw py::type_error("half_to_f32: expected float16 or bfloat16 src and float32 dst of one size, got " +
                           src.dtype_name() + " and " + dst.dtype_name());
    auto out = static_cast<float*>(dst.mutable_data());
    auto in = static_cast<const uint16_t*>(src.data());
    py::gil_scoped_release release;
    (bf16 ? bf16_to_f32 : f16_to_f32)(in, out, src.size());
  }, "dst = float32(src), src float16 or bfloat16 (exact).");
  m.def("softmax_forward", [](Buffer x, Buffer out, int64_t outer, int64_t n, int64_t inner, bool log) {
    require_contiguous(x, "x");
    require_contiguous(out, "out");
    if (!x.same_dtype(out)) throw py::type_error("softmax_forward: x and out dtypes differ");
    if (x.size() != outer * n * inner || out.size() != x.size()) throw py::value_error("softmax_forward: sizes differ");
    DType dtype = dtype_of(x);
    void* y = out.mutable_data();
    [[maybe_unused]] Device device = common_device("softmax_forward", {&x, &out}, true);
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::softmax_forward(x.data(), y, outer, n, inner, log, dtype, stream_of(x)));
    softmax_forward(x.data(), y, outer, n, inner, log, dtype);
  }, "out = softmax (or log_softmax) of x viewed as [outer, n, inner], along n.");
  m.def("softmax_backward", [](Buffer grad, Buffer out, Buffer grad_x, int64_t outer, int64_t n,
                               int64_t inner, bool log) {
    for (auto* a : {&grad, &out, &grad_x}) {
      require_contiguous(*a, "softmax_backward arrays");
      if (!a->same_dtype(grad)) throw py::type_error("softmax_backward: dtypes differ");
      if (a->size() != outer * n * inner) throw py::value_error("softmax_backward: sizes differ");
    }
    DType dtype = dtype_of(grad);
    void* gx = grad_x.mutable_data();
    [[maybe_unused]] Device device = common_device("softmax_backward", {&grad, &out, &grad_x}, true);
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::softmax_backward(grad.data(), out.data(), gx, outer, n, inner, log, dtype,
                                                  stream_of(grad)));
    softmax_backward(grad.data(), out.data(), gx, outer, n, inner, log, dtype);
  }, "grad_x of softmax (or log_softmax) from grad of its output and the output itself.");

  // Convolution columns: `geometry` is (N, C, D, H, W, KD, KH, KW, SD, SH, SW, PD, PH, PW, DD, DH, DW, OD, OH, OW).
  static auto conv_geometry3d = [](const std::vector<int64_t>& v) {
    if (v.size() != 20) throw py::value_error("geometry: expected 20 values, got " + std::to_string(v.size()));
    return ConvGeometry3d{v[0],  v[1],  v[2],  v[3],  v[4],  v[5],  v[6],  v[7],  v[8],  v[9],
                          v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19]};
  };
  static auto column_sizes = [](const ConvGeometry3d& g) {
    return std::pair{g.N * g.C * g.D * g.H * g.W, g.N * g.C * g.KD * g.KH * g.KW * g.OD * g.OH * g.OW};
  };
  m.def("im2col", [](Buffer x, Buffer cols, std::vector<int64_t> geometry, bool batch_major) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, cols_size] = column_sizes(g);
    DType dtype = check_arrays("im2col", {{&x, x_size}, {&cols, cols_size}});
    void* out = cols.mutable_data();
    py::gil_scoped_release release;
    im2col(x.data(), out, g, batch_major, dtype);
  }, "Unfold x (N, C, D, H, W) into columns (C*KD*KH*KW, N, L), or (N, C*KD*KH*KW, L) when batch_major.");
  m.def("col2im", [](Buffer cols, Buffer x, std::vector<int64_t> geometry, bool batch_major) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, cols_size] = column_sizes(g);
    DType dtype = check_arrays("col2im", {{&x, x_size}, {&cols, cols_size}});
    void* out = x.mutable_data();
    py::gil_scoped_release release;
    col2im(cols.data(), out, g, batch_major, dtype);
  }, "x (N, C, D, H, W) = the sum of the columns folded back onto it: im2col's adjoint.");
  // Depthwise convolutions: x (N, C, D, H, W), weight (C*M, K), out (N, C*M, OD, OH, OW) (kernels/depthwise.h).
  static auto depthwise_sizes = [](const ConvGeometry3d& g, int64_t M) {
    return std::tuple{g.N * g.C * g.D * g.H * g.W, g.C * M * g.KD * g.KH * g.KW, g.N * g.C * M * g.OD * g.OH * g.OW};
  };
  m.def("depthwise_conv", [](Buffer x, Buffer w, Buffer out, std::vector<int64_t> geometry, int64_t M) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, w_size, out_size] = depthwise_sizes(g, M);
    DType dtype = check_arrays("depthwise_conv", {{&x, x_size}, {&w, w_size}, {&out, out_size}});
    void* y = out.mutable_data();
    py::gil_scoped_release release;
    depthwise_conv(x.data(), w.data(), y, g, M, dtype);
  }, "out = the depthwise convolution of x by weight (each output channel c*M + m reads channel c).");
  m.def("depthwise_conv_input_grad", [](Buffer grad_out, Buffer w, Buffer grad_x,
                                        std::vector<int64_t> geometry, int64_t M) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, w_size, out_size] = depthwise_sizes(g, M);
    DType dtype = check_arrays("depthwise_conv_input_grad", {{&grad_out, out_size}, {&w, w_size}, {&grad_x, x_size}});
    void* gx = grad_x.mutable_data();
    py::gil_scoped_release release;
    depthwise_conv_input_grad(grad_out.data(), w.data(), gx, g, M, dtype);
  }, "grad_x of depthwise_conv.");
  m.def("depthwise_conv_weight_grad", [](Buffer grad_out, Buffer x, Buffer grad_w,
                                         std::vector<int64_t> geometry, int64_t M) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, w_size, out_size] = depthwise_sizes(g, M);
    DType dtype = check_arrays("depthwise_conv_weight_grad", {{&grad_out, out_size}, {&x, x_size}, {&grad_w, w_size}});
    void* gw = grad_w.mutable_data();
    py::gil_scoped_release release;
    depthwise_conv_weight_grad(grad_out.data(), x.data(), gw, g, M, dtype);
  }, "grad_w of depthwise_conv: summed over the batch and the output positions.");
  // Winograd F(2x2, 3x3) tiles (kernels/winograd.h).
  m.def("winograd_input_tiles", [](Buffer x, Buffer tiles, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad,
                                   int64_t OH, int64_t OW) {
    const int64_t count = N * ((OH + 1) / 2) * ((OW + 1) / 2);
    DType dtype = check_arrays("winograd_input_tiles", {{&x, N * C * H * W}, {&tiles, 16 * C * count}});
    void* out = tiles.mutable_data();
    py::gil_scoped_release release;
    winograd_input_tiles(x.data(), out, N, C, H, W, pad, OH, OW, dtype);
  }, "tiles (16, C, N * TH * TW) = B^T d B of x (N, C, H, W)'s 4x4 tiles, zero-padded by pad.");
  m.def("winograd_output_tiles", [](Buffer products, Buffer out, int64_t N, int64_t O, int64_t OH, int64_t OW) {
    const int64_t count = N * ((OH + 1) / 2) * ((OW + 1) / 2);
    DType dtype = check_arrays("winograd_output_tiles", {{&products, 16 * O * count}, {&out, N * O * OH * OW}});
    void* y = out.mutable_data();
    py::gil_scoped_release release;
    winograd_output_tiles(products.data(), y, N, O, OH, OW, dtype);
  }, "out (N, O, OH, OW) = A^T m A of the products (16, O, N * TH * TW), cropped.");
  m.def("winograd_output_tiles_grad", [](Buffer grad_out, Buffer products_grad, int64_t N, int64_t O, int64_t OH,
                                         int64_t OW) {
    const int64_t count = N * ((OH + 1) / 2) * ((OW + 1) / 2);
    DType dtype = check_arrays("winograd_output_tiles_grad",
                               {{&grad_out, N * O * OH * OW}, {&products_grad, 16 * O * count}});
    void* out = products_grad.mutable_data();
    py::gil_scoped_release release;
    winograd_output_tiles_grad(grad_out.data(), out, N, O, OH, OW, dtype);
  }, "products_grad (16, O, N * TH * TW) = A g A^T of grad_out (N, O, OH, OW)'s 2x2 tiles "
     "(winograd_output_tiles' adjoint).");
  // Direct convolutions: x (N, C, D, H, W), weight (O, C / groups, K), out (N, O, OD, OH, OW) (kernels/conv_direct.h).
  static auto direct_sizes = [](const ConvGeometry3d& g, int64_t O, int64_t groups) {
    if (groups < 1 || g.C % groups || O % groups)
      throw py::value_error("conv_direct: groups must divide the input and output channels");
    return std::tuple{g.N * g.C * g.D * g.H * g.W, O * (g.C / groups) * g.KD * g.KH * g.KW,
                      g.N * O * g.OD * g.OH * g.OW};
  };
  m.def("conv_direct", [](Buffer x, Buffer w, Buffer out, std::vector<int64_t> geometry, int64_t O, int64_t groups) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, w_size, out_size] = direct_sizes(g, O, groups);
    DType dtype = check_arrays("conv_direct", {{&x, x_size}, {&w, w_size}, {&out, out_size}});
    void* y = out.mutable_data();
    py::gil_scoped_release release;
    conv_direct(x.data(), w.data(), y, g, O, groups, dtype);
  }, "out = the convolution of x by weight, computed directly (for small planes).");
  m.def("conv_direct_input_grad", [](Buffer grad_out, Buffer w, Buffer grad_x, std::vector<int64_t> geometry,
                                     int64_t O, int64_t groups) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, w_size, out_size] = direct_sizes(g, O, groups);
    DType dtype = check_arrays("conv_direct_input_grad", {{&grad_out, out_size}, {&w, w_size}, {&grad_x, x_size}});
    void* gx = grad_x.mutable_data();
    py::gil_scoped_release release;
    conv_direct_input_grad(grad_out.data(), w.data(), gx, g, O, groups, dtype);
  }, "grad_x of conv_direct.");
  m.def("conv_direct_weight_grad", [](Buffer grad_out, Buffer x, Buffer grad_w, std::vector<int64_t> geometry,
                                      int64_t O, int64_t groups) {
    ConvGeometry3d g = conv_geometry3d(geometry);
    auto [x_size, w_size, out_size] = direct_sizes(g, O, groups);
    DType dtype = check_arrays("conv_direct_weight_grad", {{&grad_out, out_size}, {&x, x_size}, {&grad_w, w_size}});
    void* gw = grad_w.mutable_data();
    py::gil_scoped_release release;
    conv_direct_weight_grad(grad_out.data(), x.data(), gw, g, O, groups, dtype);
  }, "grad_w of conv_direct: summed over the batch.");
  // Pooling windows: `geometry` is (P, D, H, W, KD, KH, KW, SD, SH, SW, PD, PH, PW, DD, DH, DW, OD, OH, OW)
  // (kernels/pool.h).
  static auto pool_geometry = [](const std::vector<int64_t>& v) {
    if (v.size() != 19) throw py::value_error("geometry: expected 19 values, got " + std::to_string(v.size()));
    return PoolGeometry{v[0], v[1],  v[2],  v[3],  v[4],  v[5],  v[6],  v[7],  v[8], v[9],
                        v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18]};
  };
  m.def("max_pool", [](Buffer x, Buffer out, Buffer indices, std::vector<int64_t> geometry) {
    PoolGeometry g = pool_geometry(geometry);
    auto [dtype, device] =
        check_buffers("max_pool", {{&x, g.P * g.D * g.H * g.W}, {&out, g.P * g.OD * g.OH * g.OW}}, true);
    index_data("max_pool indices", indices, out, out.size());
    void* y = out.mutable_data();
    auto index = static_cast<int64_t*>(indices.mutable_data());
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::max_pool(x.data(), y, index, g, dtype, stream_of(x)));
    max_pool(x.data(), y, index, g, dtype);
  }, "Window maxima of the planes x (P, D, H, W) and the flat index of each maximum within its plane.");
  m.def("max_pool_backward", [](Buffer grad_out, Buffer indices, Buffer grad_x, int64_t planes) {
    if (planes <= 0 || grad_out.size() % planes || grad_x.size() % planes)
      throw py::value_error("max_pool_backward: sizes are not a multiple of the number of planes");
    auto [dtype, device] =
        check_buffers("max_pool_backward", {{&grad_out, grad_out.size()}, {&grad_x, grad_x.size()}}, true);
    const int64_t* index = index_data("max_pool_backward indices", indices, grad_out, grad_out.size());
    void* gx = grad_x.mutable_data();
    const int64_t in_size = grad_x.size() / planes, out_size = grad_out.size() / planes;
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::max_pool_backward(grad_out.data(), index, gx, planes, in_size, out_size, dtype,
                                                   stream_of(grad_out)));
    max_pool_backward(grad_out.data(), index, gx, planes, in_size, out_size, dtype);
  }, "grad_x (planes, in) of a max pooling: each output's gradient added at its maximum's index in its plane.");
  m.def("avg_pool", [](Buffer x, Buffer out, std::vector<int64_t> geometry, bool count_include_pad,
                       int64_t divisor_override) {
    PoolGeometry g = pool_geometry(geometry);
    auto [dtype, device] =
        check_buffers("avg_pool", {{&x, g.P * g.D * g.H * g.W}, {&out, g.P * g.OD * g.OH * g.OW}}, true);
    void* y = out.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::avg_pool(x.data(), y, g, count_include_pad, divisor_override, dtype, stream_of(x)));
    avg_pool(x.data(), y, g, count_include_pad, divisor_override, dtype);
  }, "Window averages of the planes x (P, D, H, W) with PyTorch's divisor rules (divisor_override 0: none).");
  m.def("avg_pool_backward", [](Buffer grad_out, Buffer grad_x, std::vector<int64_t> geometry,
                                bool count_include_pad, int64_t divisor_override) {
    PoolGeometry g = pool_geometry(geometry);
    auto [dtype, device] = check_buffers(
        "avg_pool_backward", {{&grad_out, g.P * g.OD * g.OH * g.OW}, {&grad_x, g.P * g.D * g.H * g.W}}, true);
    void* gx = grad_x.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::avg_pool_backward(grad_out.data(), gx, g, count_include_pad, divisor_override, dtype,
                                                   stream_of(grad_out)));
    avg_pool_backward(grad_out.data(), gx, g, count_include_pad, divisor_override, dtype);
  }, "grad_x of avg_pool.");
  m.def("cross_entropy", [](Buffer logits, Buffer target, std::optional<Buffer> weight, Buffer loss,
                            Buffer target_weight, std::optional<Buffer> grad, int64_t N, int64_t C, int64_t L,
                            int64_t ignore_index, double label_smoothing) {
    auto [dtype, device] = check_buffers(
        "cross_entropy", {{&logits, N * C * L}, {&loss, N * L}, {&target_weight, N * L}}, true);
    const int64_t* y = index_data("cross_entropy target", target, logits, N * L);
    if (weight) check_buffers("cross_entropy weight", {{&logits, N * C * L}, {&*weight, C}}, true);
    if (grad) check_buffers("cross_entropy grad", {{&logits, N * C * L}, {&*grad, N * C * L}}, true);
    const void* w = weight ? weight->data() : nullptr;
    void* g = grad ? grad->mutable_data() : nullptr;
    void* out = loss.mutable_data();
    void* tw = target_weight.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::cross_entropy(logits.data(), y, w, out, tw, g, N, C, L, ignore_index,
                                               label_smoothing, dtype, stream_of(logits)));
    cross_entropy(logits.data(), y, w, out, tw, g, N, C, L, ignore_index, label_smoothing, dtype);
  }, "Per-position cross-entropy of logits (N, C, L) and class targets (N, L, int64), its class weight, and "
     "optionally its gradient (kernels/cross_entropy.h; on a GPU, a target out of range gives NaN).");
  using Index = py::array_t<int64_t, py::array::c_style>;
  static auto check_ctc = [](const char* what, const Index& targets, const Index& input_lengths,
                             const Index& target_lengths, const Buffer& log_alpha, int64_t T, int64_t N, int64_t S) {
    if (targets.size() != N * S || input_lengths.size() != N || target_lengths.size() != N)
      throw py::value_error(std::string(what) + ": targets must have N * S elements, the lengths N");
    if (log_alpha.dtype != static_cast<int>(DType::f64) || !log_alpha.c_contiguous ||
        log_alpha.size() != N * T * (2 * S + 1))
      throw py::value_error(std::string(what) + ": log_alpha must be C-contiguous float64 of N * T * (2S + 1)");
  };
  m.def("ctc_loss_forward", [](Buffer log_probs, Index targets, Index input_lengths, Index target_lengths,
                               Buffer nll, Buffer log_alpha, int64_t T, int64_t N, int64_t C, int64_t S,
                               int64_t blank) {
    DType dtype = check_arrays("ctc_loss_forward", {{&log_probs, T * N * C}, {&nll, N}});
    check_ctc("ctc_loss_forward", targets, input_lengths, target_lengths, log_alpha, T, N, S);
    void* out = nll.mutable_data();
    double* alpha = static_cast<double*>(log_alpha.mutable_data());
    py::gil_scoped_release release;
    ctc_loss_forward(log_probs.data(), targets.data(), input_lengths.data(), target_lengths.data(), out, alpha, T, N,
                     C, S, blank, dtype);
  }, "Per-sample CTC negative log-likelihood of log_probs (T, N, C), keeping log_alpha (kernels/ctc.h).");
  m.def("ctc_loss_backward", [](Buffer grad_nll, Buffer log_probs, Index targets, Index input_lengths,
                                Index target_lengths, Buffer nll, Buffer log_alpha, Buffer grad, int64_t T,
                                int64_t N, int64_t C, int64_t S, int64_t blank, bool zero_infinity) {
    DType dtype = check_arrays("ctc_loss_backward",
                               {{&log_probs, T * N * C}, {&grad_nll, N}, {&nll, N}, {&grad, T * N * C}});
    check_ctc("ctc_loss_backward", targets, input_lengths, target_lengths, log_alpha, T, N, S);
    void* out = grad.mutable_data();
    const double* alpha = static_cast<const double*>(log_alpha.data());
    py::gil_scoped_release release;
    ctc_loss_backward(grad_nll.data(), log_probs.data(), targets.data(), input_lengths.data(), target_lengths.data(),
                      nll.data(), alpha, out, T, N, C, S, blank, zero_infinity, dtype);
  }, "Gradient of the CTC loss with respect to log_probs, from forward's log_alpha (kernels/ctc.h).");
  m.def("gelu", [](Buffer x, Buffer out, bool tanh_approximation) {
    DType dtype = check_arrays("gelu", {{&x, x.size()}, {&out, x.size()}});
    void* y = out.mutable_data();
    py::gil_scoped_release release;
    gelu(x.data(), y, x.size(), tanh_approximation, dtype);
  }, "out = GELU(x), exact (erf) or the tanh approximation.");
  m.def("gelu_backward", [](Buffer grad, Buffer x, Buffer grad_x, bool tanh_approximation) {
    DType dtype = check_arrays("gelu_backward", {{&grad, x.size()}, {&x, x.size()}, {&grad_x, x.size()}});
    void* gx = grad_x.mutable_data();
    py::gil_scoped_release release;
    gelu_backward(grad.data(), x.data(), gx, x.size(), tanh_approximation, dtype);
  }, "grad_x of GELU.");

  // Recurrent layers (kernels/rnn.h): `sizes` is (mode, steps, batch, input, hidden, proj, reverse), mode 0 tanh,
  // 1 relu, 2 LSTM, 3 GRU; batch_sizes (steps) int64, non-increasing from batch. Arrays a mode does not use are None.
  m.def("rnn_set_blas", [](py::capsule sgemm, py::capsule dgemm) {
    set_blas(reinterpret_cast<SgemmFn>(sgemm.get_pointer()), reinterpret_cast<DgemmFn>(dgemm.get_pointer()));
  }, "Hand the kernels scipy.linalg.cython_blas's sgemm and dgemm (their __pyx_capi__ capsules).");
  struct RnnArgs {
    RnnShape shape;
    int64_t rows, state, gate_size;
  };
  static auto rnn_args = [](const std::vector<int64_t>& v, const py::array_t<int64_t, py::array::c_style>& sizes) {
    if (v.size() != 7) throw py::value_error("rnn sizes: expected 7 values, got " + std::to_string(v.size()));
    if (v[0] < 0 || v[0] > 3) throw py::value_error("rnn mode must be 0..3, got " + std::to_string(v[0]));
    RnnShape s{static_cast<RnnMode>(v[0]), v[1], v[2], v[3], v[4], v[5], v[6] != 0};
    if (sizes.size() != s.steps) throw py::value_error("rnn: batch_sizes must hold one size per step");
    int64_t rows = 0, previous = s.batch;
    for (int64_t t = 0; t < s.steps; ++t) {
      int64_t b = sizes.data()[t];
      if (b < 0 || b > previous || (t == 0 && b != s.batch))
        throw py::value_error("rnn: batch_sizes must be non-increasing and start at the batch size");
      rows += b;
      previous = b;
    }
    int64_t gates = s.mode == RnnMode::lstm ? 4 : s.mode == RnnMode::gru ? 3 : 1;
    return RnnArgs{s, rows, s.proj ? s.proj : s.hidden, gates * s.hidden};
  };
  // The data of an array that must be present exactly when `wanted`, with `size` elements of `like`'s dtype.
  static auto rnn_optional = [](std::optional<Buffer> a, bool wanted, const Buffer& like, int64_t size,
                                const char* what) -> void* {
    if (!wanted) {
      if (a) throw py::value_error(std::string("rnn: ") + what + " must be None here");
      return nullptr;
    }
    if (!a) throw py::value_error(std::string("rnn: ") + what + " is required here");
    check_arrays(what, {{&like, like.size()}, {&*a, size}});
    return a->mutable_data();
  };
  m.def("rnn_forward", [](std::vector<int64_t> sizes, py::array_t<int64_t, py::array::c_style> batch_sizes,
                          Buffer x, Buffer h0, std::optional<Buffer> c0, Buffer w_ih, Buffer w_hh,
                          std::optional<Buffer> b_ih, std::optional<Buffer> b_hh,
                          std::optional<Buffer> w_hr, Buffer y, Buffer h_n, std::optional<Buffer> c_n,
                          Buffer gates, Buffer h_prev, std::optional<Buffer> aux1,
                          std::optional<Buffer> aux2, std::optional<Buffer> h_raw) {
    RnnArgs a = rnn_args(sizes, batch_sizes);
    const RnnShape& s = a.shape;
    bool lstm = s.mode == RnnMode::lstm, bias = b_ih.has_value();
    DType dtype = check_arrays("rnn_forward", {{&x, a.rows * s.input}, {&h0, s.batch * a.state},
                                               {&w_ih, a.gate_size * s.input}, {&w_hh, a.gate_size * a.state},
                                               {&y, a.rows * a.state}, {&h_n, s.batch * a.state},
                                               {&gates, a.rows * a.gate_size}, {&h_prev, a.rows * a.state}});
    if (s.proj && !lstm) throw py::value_error("rnn_forward: a projection needs mode LSTM");
    RnnSaved saved{gates.mutable_data(), h_prev.mutable_data(),
                   rnn_optional(aux1, lstm || s.mode == RnnMode::gru, x, a.rows * s.hidden, "aux1"),
                   rnn_optional(aux2, lstm, x, a.rows * s.hidden, "aux2"),
                   rnn_optional(h_raw, s.proj > 0, x, a.rows * s.hidden, "h_raw")};
    const void* c0_data = rnn_optional(c0, lstm, x, s.batch * s.hidden, "c0");
    void* c_n_data = rnn_optional(c_n, lstm, x, s.batch * s.hidden, "c_n");
    const void* b_ih_data = rnn_optional(b_ih, bias, x, a.gate_size, "b_ih");
    const void* b_hh_data = rnn_optional(b_hh, bias, x, a.gate_size, "b_hh");
    const void* w_hr_data = rnn_optional(w_hr, s.proj > 0, x, s.proj * s.hidden, "w_hr");
    void* y_data = y.mutable_data();
    void* h_n_data = h_n.mutable_data();
    py::gil_scoped_release release;
    rnn_forward(s, batch_sizes.data(), x.data(), h0.data(), c0_data, w_ih.data(), w_hh.data(), b_ih_data, b_hh_data,
                w_hr_data, y_data, h_n_data, c_n_data, saved, dtype);
  }, "One recurrent layer in one direction over packed rows x (rows, input): y, h_n, c_n and what backward needs.");
  m.def("rnn_backward", [](std::vector<int64_t> sizes, py::array_t<int64_t, py::array::c_style> batch_sizes,
                           Buffer x, Buffer w_ih, Buffer w_hh, std::optional<Buffer> w_hr,
                           Buffer gates, Buffer h_prev, std::optional<Buffer> aux1,
                           std::optional<Buffer> aux2, std::optional<Buffer> h_raw, Buffer dy,
                           Buffer dh_n, std::optional<Buffer> dc_n, std::optional<Buffer> dx,
                           Buffer dh0, std::optional<Buffer> dc0, Buffer dw_ih, Buffer dw_hh,
                           std::optional<Buffer> db_ih, std::optional<Buffer> db_hh,
                           std::optional<Buffer> dw_hr) {
    RnnArgs a = rnn_args(sizes, batch_sizes);
    const RnnShape& s = a.shape;
    bool lstm = s.mode == RnnMode::lstm, bias = db_ih.has_value();
    DType dtype = check_arrays("rnn_backward", {{&x, a.rows * s.input}, {&w_ih, a.gate_size * s.input},
                                                {&w_hh, a.gate_size * a.state}, {&gates, a.rows * a.gate_size},
                                                {&h_prev, a.rows * a.state}, {&dy, a.rows * a.state},
                                                {&dh_n, s.batch * a.state}, {&dh0, s.batch * a.state},
                                                {&dw_ih, a.gate_size * s.input}, {&dw_hh, a.gate_size * a.state}});
    if (s.proj && !lstm) throw py::value_error("rnn_backward: a projection needs mode LSTM");
    RnnSaved saved{gates.mutable_data(), h_prev.mutable_data(),
                   rnn_optional(aux1, lstm || s.mode == RnnMode::gru, x, a.rows * s.hidden, "aux1"),
                   rnn_optional(aux2, lstm, x, a.rows * s.hidden, "aux2"),
                   rnn_optional(h_raw, s.proj > 0, x, a.rows * s.hidden, "h_raw")};
    const void* w_hr_data = rnn_optional(w_hr, s.proj > 0, x, s.proj * s.hidden, "w_hr");
    const void* dc_n_data = rnn_optional(dc_n, lstm, x, s.batch * s.hidden, "dc_n");
    void* dx_data = dx ? rnn_optional(dx, true, x, a.rows * s.input, "dx") : nullptr;
    void* dc0_data = rnn_optional(dc0, lstm, x, s.batch * s.hidden, "dc0");
    void* db_ih_data = rnn_optional(db_ih, bias, x, a.gate_size, "db_ih");
    void* db_hh_data = rnn_optional(db_hh, bias, x, a.gate_size, "db_hh");
    void* dw_hr_data = rnn_optional(dw_hr, s.proj > 0, x, s.proj * s.hidden, "dw_hr");
    void* dh0_data = dh0.mutable_data();
    void* dw_ih_data = dw_ih.mutable_data();
    void* dw_hh_data = dw_hh.mutable_data();
    py::gil_scoped_release release;
    rnn_backward(s, batch_sizes.data(), x.data(), w_ih.data(), w_hh.data(), w_hr_data, saved, dy.data(), dh_n.data(),
                 dc_n_data, dx_data, dh0_data, dc0_data, dw_ih_data, dw_hh_data, db_ih_data, db_hh_data, dw_hr_data,
                 dtype);
  }, "Gradients of rnn_forward from dy, dh_n, dc_n and its saved buffers (dx None: not wanted).");

  // Optimizer steps: one list per role (params, grads, state), entry i a C-contiguous array of params[i]'s dtype
  // and size; a state list the options leave unused (needed=false) may be empty. One call updates a whole group.
  static auto optim_pointers = [](const std::vector<Buffer>& arrays, const std::vector<Buffer>& params,
                                  const char* what, bool writable, bool needed) {
    std::vector<void*> out(params.size(), nullptr);
    if (arrays.empty() && !needed) return out;
    if (arrays.size() != params.size())
      throw py::value_error(std::string(what) + ": expected " + std::to_string(params.size()) + " arrays, got " +
                            std::to_string(arrays.size()));
    for (size_t i = 0; i < arrays.size(); ++i) {
      const Buffer& a = arrays[i];
      common_device(what, {&params[0], &a}, true);
      require_contiguous(a, what);
      if (!a.same_dtype(params[0]))
        throw py::type_error(std::string(what) + "[" + std::to_string(i) + "]: expected dtype " +
                             params[0].dtype_name() + ", got " + a.dtype_name());
      if (a.size() != params[i].size())
        throw py::value_error(std::string(what) + "[" + std::to_string(i) + "]: expected " +
                              std::to_string(params[i].size()) + " elements, got " + std::to_string(a.size()));
      out[i] = writable ? a.mutable_data() : const_cast<void*>(a.data());
    }
    return out;
  };
  // Element counts of the params; `per_param` (fresh flags, steps) must hold one value per param when needed.
  static auto optim_sizes = [](const std::vector<Buffer>& params, size_t per_param, bool needed) {
    if (params.empty()) throw py::value_error("optimizer step: empty parameter list");
    if (needed && per_param != params.size())
      throw py::value_error("optimizer step: expected " + std::to_string(params.size()) + " per-parameter values, got " +
                            std::to_string(per_param));
    std::vector<int64_t> sizes;
    for (const auto& p : params) sizes.push_back(p.size());
    return sizes;
  };
  m.def("sgd_step", [](std::vector<Buffer> params, std::vector<Buffer> grads, std::vector<Buffer> buffers,
                       std::vector<uint8_t> fresh, double lr, double momentum, double dampening, double weight_decay,
                       bool nesterov, bool maximize) {
    auto sizes = optim_sizes(params, fresh.size(), momentum != 0);
    auto p = optim_pointers(params, params, "params", true, true);
    auto g = optim_pointers(grads, params, "grads", false, true);
    auto b = optim_pointers(buffers, params, "momentum_buffers", true, momentum != 0);
    DType dtype = dtype_of(params[0]);
    SgdOptions options{lr, momentum, dampening, weight_decay, nesterov, maximize};
    py::gil_scoped_release release;
    DISTML_ON_CUDA(params[0].device, cuda::sgd_step(sizes.size(), sizes.data(), p.data(), g.data(), b.data(),
                                                    fresh.data(), dtype, options, stream_of(params[0])));
    sgd_step(sizes.size(), sizes.data(), p.data(), g.data(), b.data(), fresh.data(), dtype, options);
  }, "torch.optim.SGD's update over a group, in place; fresh[i] starts momentum buffer i at the gradient.");
  m.def("adam_step", [](std::vector<Buffer> params, std::vector<Buffer> grads, std::vector<Buffer> exp_avgs,
                        std::vector<Buffer> exp_avg_sqs, std::vector<Buffer> max_exp_avg_sqs,
                        std::vector<double> steps, double lr, double beta1, double beta2, double eps,
                        double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay) {
    auto sizes = optim_sizes(params, steps.size(), true);
    auto p = optim_pointers(params, params, "params", true, true);
    auto g = optim_pointers(grads, params, "grads", false, true);
    auto m1 = optim_pointers(exp_avgs, params, "exp_avgs", true, true);
    auto m2 = optim_pointers(exp_avg_sqs, params, "exp_avg_sqs", true, true);
    auto mx = optim_pointers(max_exp_avg_sqs, params, "max_exp_avg_sqs", true, amsgrad);
    DType dtype = dtype_of(params[0]);
    AdamOptions options{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay};
    py::gil_scoped_release release;
    DISTML_ON_CUDA(params[0].device, cuda::adam_step(sizes.size(), sizes.data(), p.data(), g.data(), m1.data(),
                                                     m2.data(), mx.data(), steps.data(), dtype, options,
                                                     stream_of(params[0])));
    adam_step(sizes.size(), sizes.data(), p.data(), g.data(), m1.data(), m2.data(), mx.data(), steps.data(), dtype,
              options);
  }, "torch.optim.Adam's (decoupled: AdamW's) update over a group, in place; steps[i] counts this step.");
  m.def("rmsprop_step", [](std::vector<Buffer> params, std::vector<Buffer> grads,
                           std::vector<Buffer> square_avgs, std::vector<Buffer> grad_avgs,
                           std::vector<Buffer> buffers, double lr, double alpha, double eps, double weight_decay,
                           double momentum, bool centered, bool maximize) {
    auto sizes = optim_sizes(params, 0, false);
    require_host(params[0], "rmsprop_step");
    auto p = optim_pointers(params, params, "params", true, true);
    auto g = optim_pointers(grads, params, "grads", false, true);
    auto sq = optim_pointers(square_avgs, params, "square_avgs", true, true);
    auto ga = optim_pointers(grad_avgs, params, "grad_avgs", true, centered);
    auto b = optim_pointers(buffers, params, "momentum_buffers", true, momentum > 0);
    DType dtype = dtype_of(params[0]);
    RmspropOptions options{lr, alpha, eps, weight_decay, momentum, centered, maximize};
    py::gil_scoped_release release;
    rmsprop_step(sizes.size(), sizes.data(), p.data(), g.data(), sq.data(), ga.data(), b.data(), dtype, options);
  }, "torch.optim.RMSprop's update over a group, in place.");
  m.def("adagrad_step", [](std::vector<Buffer> params, std::vector<Buffer> grads, std::vector<Buffer> sums,
                           std::vector<double> steps, double lr, double lr_decay, double weight_decay, double eps,
                           bool maximize) {
    auto sizes = optim_sizes(params, steps.size(), true);
    require_host(params[0], "adagrad_step");
    auto p = optim_pointers(params, params, "params", true, true);
    auto g = optim_pointers(grads, params, "grads", false, true);
    auto s = optim_pointers(sums, params, "sums", true, true);
    DType dtype = dtype_of(params[0]);
    AdagradOptions options{lr, lr_decay, weight_decay, eps, maximize};
    py::gil_scoped_release release;
    adagrad_step(sizes.size(), sizes.data(), p.data(), g.data(), s.data(), steps.data(), dtype, options);
  }, "torch.optim.Adagrad's update over a group, in place; steps[i] counts this step.");
  m.def("adadelta_step", [](std::vector<Buffer> params, std::vector<Buffer> grads,
                            std::vector<Buffer> square_avgs, std::vector<Buffer> acc_deltas, double lr,
                            double rho, double eps, double weight_decay, bool maximize) {
    auto sizes = optim_sizes(params, 0, false);
    require_host(params[0], "adadelta_step");
    auto p = optim_pointers(params, params, "params", true, true);
    auto g = optim_pointers(grads, params, "grads", false, true);
    auto sq = optim_pointers(square_avgs, params, "square_avgs", true, true);
    auto acc = optim_pointers(acc_deltas, params, "acc_deltas", true, true);
    DType dtype = dtype_of(params[0]);
    AdadeltaOptions options{lr, rho, eps, weight_decay, maximize};
    py::gil_scoped_release release;
    adadelta_step(sizes.size(), sizes.data(), p.data(), g.data(), sq.data(), acc.data(), dtype, options);
  }, "torch.optim.Adadelta's update over a group, in place.");

  // Batch normalisation of x viewed as (N, C, S) (kernels/batchnorm.h): per-channel vectors hold C values of x's
  // dtype; an optional one (weight, bias, the sums) is None when absent.
  static auto channel_vector = [](const std::optional<Buffer>& v, const Buffer& x, int64_t C,
                                  const char* what) -> const void* {
    if (!v) return nullptr;
    check_buffers(what, {{&x, x.size()}, {&*v, C}}, true);
    return v->data();
  };
  m.def("batch_norm_stats", [](Buffer x, Buffer mean, Buffer var, int64_t N, int64_t C, int64_t S) {
    auto [dtype, device] = check_buffers("batch_norm_stats", {{&x, N * C * S}, {&mean, C}, {&var, C}}, true);
    void* mean_data = mean.mutable_data();
    void* var_data = var.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::batch_norm_stats(x.data(), mean_data, var_data, N, C, S, dtype, stream_of(x)));
    batch_norm_stats(x.data(), mean_data, var_data, N, C, S, dtype);
  }, "Per-channel mean and biased variance of x (N, C, S).");
  m.def("batch_norm_elemt", [](Buffer x, Buffer mean, Buffer invstd, std::optional<Buffer> weight,
                               std::optional<Buffer> bias, Buffer out, int64_t N, int64_t C, int64_t S) {
    auto [dtype, device] = check_buffers(
        "batch_norm_elemt", {{&x, N * C * S}, {&mean, C}, {&invstd, C}, {&out, N * C * S}}, true);
    const void* w = channel_vector(weight, x, C, "batch_norm_elemt weight");
    const void* b = channel_vector(bias, x, C, "batch_norm_elemt bias");
    void* y = out.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::batch_norm_elemt(x.data(), mean.data(), invstd.data(), w, b, y, N, C, S, dtype,
                                                  stream_of(x)));
    batch_norm_elemt(x.data(), mean.data(), invstd.data(), w, b, y, N, C, S, dtype);
  }, "out = (x - mean) * invstd * weight + bias per channel of x (N, C, S); out may be x.");
  m.def("batch_norm_backward_reduce", [](Buffer grad, Buffer x, Buffer mean, Buffer sum_dy,
                                         Buffer sum_dy_xmu, int64_t N, int64_t C, int64_t S) {
    auto [dtype, device] = check_buffers(
        "batch_norm_backward_reduce",
        {{&grad, N * C * S}, {&x, N * C * S}, {&mean, C}, {&sum_dy, C}, {&sum_dy_xmu, C}}, true);
    void* dy = sum_dy.mutable_data();
    void* dy_xmu = sum_dy_xmu.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::batch_norm_backward_reduce(grad.data(), x.data(), mean.data(), dy, dy_xmu, N, C, S,
                                                            dtype, stream_of(grad)));
    batch_norm_backward_reduce(grad.data(), x.data(), mean.data(), dy, dy_xmu, N, C, S, dtype);
  }, "Per-channel sums of grad and of grad * (x - mean).");
  m.def("batch_norm_backward_elemt", [](Buffer grad, Buffer x, Buffer mean, Buffer invstd,
                                        std::optional<Buffer> weight, std::optional<Buffer> sum_dy,
                                        std::optional<Buffer> sum_dy_xmu, int64_t count, Buffer grad_x,
                                        int64_t N, int64_t C, int64_t S) {
    auto [dtype, device] = check_buffers(
        "batch_norm_backward_elemt",
        {{&grad, N * C * S}, {&x, N * C * S}, {&mean, C}, {&invstd, C}, {&grad_x, N * C * S}}, true);
    if (sum_dy.has_value() != sum_dy_xmu.has_value())
      throw py::value_error("batch_norm_backward_elemt: pass both sum_dy and sum_dy_xmu, or neither");
    if (sum_dy && count <= 0) throw py::value_error("batch_norm_backward_elemt: count must be positive");
    const void* w = channel_vector(weight, x, C, "batch_norm_backward_elemt weight");
    const void* dy = channel_vector(sum_dy, x, C, "batch_norm_backward_elemt sum_dy");
    const void* dy_xmu = channel_vector(sum_dy_xmu, x, C, "batch_norm_backward_elemt sum_dy_xmu");
    void* gx = grad_x.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::batch_norm_backward_elemt(grad.data(), x.data(), mean.data(), invstd.data(), w, dy,
                                                           dy_xmu, count, gx, N, C, S, dtype, stream_of(grad)));
    batch_norm_backward_elemt(grad.data(), x.data(), mean.data(), invstd.data(), w, dy, dy_xmu, count, gx, N, C, S,
                              dtype);
  }, "grad_x of batch_norm_elemt: through the batch statistics (with the sums over count values) or not (None).");
  m.def("layer_norm_forward", [](Buffer x, std::optional<Buffer> weight, std::optional<Buffer> bias, Buffer out,
                                 Buffer mean, Buffer rstd, int64_t M, int64_t N, double eps) {
    DType dtype = check_arrays("layer_norm_forward", {{&x, M * N}, {&out, M * N}, {&mean, M}, {&rstd, M}});
    const void* w = channel_vector(weight, x, N, "layer_norm_forward weight");
    const void* b = channel_vector(bias, x, N, "layer_norm_forward bias");
    void *y = out.mutable_data(), *mu = mean.mutable_data(), *rs = rstd.mutable_data();
    py::gil_scoped_release release;
    layer_norm_forward(x.data(), w, b, y, mu, rs, M, N, eps, dtype);
  }, "out = layer norm of each of x's M rows of N values, times weight plus bias; each row's mean and rstd.");
  m.def("layer_norm_backward", [](Buffer grad, Buffer x, Buffer mean, Buffer rstd, std::optional<Buffer> weight,
                                  std::optional<Buffer> grad_x, std::optional<Buffer> grad_weight,
                                  std::optional<Buffer> grad_bias, int64_t M, int64_t N) {
    DType dtype = check_arrays("layer_norm_backward", {{&grad, M * N}, {&x, M * N}, {&mean, M}, {&rstd, M}});
    const void* w = channel_vector(weight, x, N, "layer_norm_backward weight");
    void* gx = grad_x ? (check_arrays("layer_norm_backward grad_x", {{&x, M * N}, {&*grad_x, M * N}}),
                         grad_x->mutable_data()) : nullptr;
    void* gw = grad_weight ? (channel_vector(grad_weight, x, N, "layer_norm_backward grad_weight"),
                              grad_weight->mutable_data()) : nullptr;
    void* gb = grad_bias ? (channel_vector(grad_bias, x, N, "layer_norm_backward grad_bias"),
                            grad_bias->mutable_data()) : nullptr;
    py::gil_scoped_release release;
    layer_norm_backward(grad.data(), x.data(), mean.data(), rstd.data(), w, gx, gw, gb, M, N, dtype);
  }, "grad_x, grad_weight and grad_bias (each written when given) of layer_norm_forward.");

  // ---- comm/ (collectives) ----
  py::register_exception<CommError>(m, "DistBackendError", PyExc_RuntimeError);
  py::class_<Work, std::shared_ptr<Work>>(m, "Work", "Handle of a queued collective.")
      .def("wait", &Work::wait, py::call_guard<py::gil_scoped_release>(), "Block until done; raise its error.")
      .def("is_completed", &Work::is_completed);
  // Standard-library enums (native_enum, not py::enum_): ReduceOp is an IntEnum as users of
  // torch.distributed.ReduceOp expect (isinstance, iteration, == with ints, pickling).
  py::native_enum<ReduceOp>(m, "ReduceOp", "enum.IntEnum",
                            "torch.distributed.ReduceOp's reductions; AVG travels as SUM, divided afterwards.")
      .value("SUM", ReduceOp::sum)
      .value("PRODUCT", ReduceOp::prod)
      .value("MAX", ReduceOp::max)
      .value("MIN", ReduceOp::min)
      .value("AVG", ReduceOp::avg)
      .finalize();
  m.def("reduce_into", [](Buffer dst, Buffer src, ReduceOp op) {
    auto [dtype, device] = check_buffers("reduce_into", {{&dst, dst.size()}, {&src, dst.size()}}, true);
    void* d = dst.mutable_data();
    py::gil_scoped_release release;
    DISTML_ON_CUDA(device, cuda::reduce_into(d, src.data(), dst.size(), dtype, op, stream_of(dst)));
    reduce_into(d, src.data(), dst.size(), dtype, op);
  }, "dst = dst (op) src elementwise, in place: the reduction step of the collectives (op: not AVG).");
  py::native_enum<Algo>(m, "Algo", "enum.Enum", "The allreduce algorithm, by its DISTML_ALLREDUCE_ALGO name.")
      .value("auto", Algo::automatic)
      .value("ring", Algo::ring)
      .value("rd", Algo::recursive_doubling)
      .value("shm", Algo::shared_memory)
      .value("hier", Algo::hierarchical)
      .finalize();
  py::class_<Tuning>(m, "Tuning", "Algorithm choice (algo, an Algo) and sizes.")
      .def(py::init<>())
      .def_readwrite("algo", &Tuning::allreduce)
      .def_readwrite("rd_max_bytes", &Tuning::rd_max_bytes)
      .def_readwrite("chunk_bytes", &Tuning::chunk_bytes)
      .def_readwrite("window", &Tuning::window)
      .def_readwrite("tree_max_bytes", &Tuning::tree_max_bytes)
      .def_readwrite("shared_one_round_bytes", &Tuning::shared_one_round_bytes)
      .def_readwrite("shared_chunk_bytes", &Tuning::shared_chunk_bytes)
      .def_readwrite("hierarchical_chunk_bytes", &Tuning::hierarchical_chunk_bytes);
  // Buffers: C-contiguous numpy arrays (the Python layer copies strided views), dtype from numpy.
  static auto writable = [](py::array a, const char* what) {
    require_contiguous(a, what);
    if (!a.writeable()) throw py::value_error(std::string(what) + " must be writeable");
    return a.mutable_data();
  };
  // op: a ReduceOp, taken as the int it is (an IntEnum): casting the enum costs ~0.5 us a call.
  static auto reducible = [](const py::array& a, int op) {
    DType dtype = dtype_of(a);
    if (dtype == DType::b8) throw py::type_error("bool tensors cannot be reduced");
    if (op < static_cast<int>(ReduceOp::sum) || op > static_cast<int>(ReduceOp::min))
      throw py::value_error("op must be ReduceOp.SUM, PRODUCT, MAX or MIN (AVG is a SUM divided afterwards), got " +
                            std::to_string(op));
    return dtype;
  };
  // big must hold `times` x small's elements (the all_gather output, the reduce_scatter input).
  static auto sized = [](const py::array& big, const py::array& small, size_t times, const char* what) {
    require_contiguous(big, what);
    require_contiguous(small, what);
    if (big.dtype().not_equal(small.dtype()))
      throw py::type_error(std::string(what) + ": dtypes differ (" + std::string(py::str(small.dtype())) + " and " +
                           std::string(py::str(big.dtype())) + ")");
    if (static_cast<size_t>(big.size()) != static_cast<size_t>(small.size()) * times)
      throw py::value_error(std::string(what) + ": expected " + std::to_string(times) + " x " +
                            std::to_string(small.size()) + " elements in the larger tensor, got " +
                            std::to_string(big.size()));
  };
  using Release = py::call_guard<py::gil_scoped_release>;
  py::class_<ProcessGroup, std::shared_ptr<ProcessGroup>>(m, "ProcessGroup", "Ranks on a private communicator.")
      .def_static("world", &ProcessGroup::world, Release(),
                  "Duplicate MPI_COMM_WORLD (MPI must be initialised) once every rank reported within "
                  "join_timeout seconds.")
      .def("split", &ProcessGroup::split, Release(), "Collective: a group of `ranks`, None on other ranks.")
      .def("free", &ProcessGroup::free, py::arg("exiting") = false, Release(),
           "Tell the peers this rank leaves (exiting: its program ends), then free the communicator.")
      .def_property_readonly("rank", &ProcessGroup::rank)
      .def_property_readonly("size", &ProcessGroup::size)
      .def_property_readonly("local_rank", &ProcessGroup::local_rank)
      .def_property_readonly("local_size", &ProcessGroup::local_size)
      .def_property_readonly("shared_memory", &ProcessGroup::shared_memory)
      .def_property_readonly("hierarchical", &ProcessGroup::hierarchical)
      .def_property_readonly("timeout", &ProcessGroup::timeout)
      .def_property("tuning", [](const ProcessGroup& g) { return g.tuning(); }, &ProcessGroup::set_tuning,
                    "A copy of the algorithm settings; assign to change them.")
      .def("world_rank", &ProcessGroup::world_rank)
      .def("allreduce", [](ProcessGroup& g, py::array buf, int op, bool async) {
        DType dtype = reducible(buf, op);
        void* data = writable(buf, "tensor");
        py::gil_scoped_release release;
        return g.allreduce(data, buf.size(), dtype, static_cast<ReduceOp>(op), async);
      })
      .def("broadcast", [](ProcessGroup& g, py::array buf, int root, bool async) {
        void* data = writable(buf, "tensor");
        py::gil_scoped_release release;
        return g.broadcast(data, buf.size(), dtype_of(buf), root, async);
      })
      .def("allgather", [](ProcessGroup& g, py::array in, py::array out, bool async) {
        sized(out, in, g.size(), "all_gather");
        void* data = writable(out, "output");
        py::gil_scoped_release release;
        return g.allgather(in.data(), data, in.size(), dtype_of(in), async);
      })
      .def("reduce_scatter", [](ProcessGroup& g, py::array in, py::array out, int op, bool async) {
        sized(in, out, g.size(), "reduce_scatter");
        DType dtype = reducible(in, op);
        void* data = writable(out, "output");
        py::gil_scoped_release release;
        return g.reduce_scatter(in.data(), data, out.size(), dtype, static_cast<ReduceOp>(op), async);
      })
      .def("reduce", [](ProcessGroup& g, py::array buf, int op, int root, bool async) {
        DType dtype = reducible(buf, op);
        void* data = writable(buf, "tensor");
        py::gil_scoped_release release;
        return g.reduce(data, buf.size(), dtype, static_cast<ReduceOp>(op), root, async);
      })
      .def("gather", [](ProcessGroup& g, py::array in, py::array out, int root, bool async) {
        require_contiguous(in, "input");
        void* data = nullptr;
        if (g.rank() == root) {
          sized(out, in, g.size(), "gather");
          data = writable(out, "output");
        }
        py::gil_scoped_release release;
        return g.gather(in.data(), data, in.size(), dtype_of(in), root, async);
      }, "out is used on root only.")
      .def("scatter", [](ProcessGroup& g, py::array in, py::array out, int root, bool async) {
        if (g.rank() == root) sized(in, out, g.size(), "scatter");
        void* data = writable(out, "output");
        const void* source = g.rank() == root ? in.data() : nullptr;
        py::gil_scoped_release release;
        return g.scatter(source, data, out.size(), dtype_of(out), root, async);
      }, "in is used on root only.")
      .def("barrier", &ProcessGroup::barrier, Release())
      .def("send", [](ProcessGroup& g, py::array buf, int dst, int tag, bool async) {
        require_contiguous(buf, "tensor");
        py::gil_scoped_release release;
        return g.send(buf.data(), buf.size(), dtype_of(buf), dst, tag, async);
      })
      .def("recv", [](ProcessGroup& g, py::array buf, int src, int tag, bool async) {
        void* data = writable(buf, "tensor");
        auto source = std::make_shared<int>(-1);
        std::shared_ptr<Work> work;
        {
          py::gil_scoped_release release;
          work = g.recv(data, buf.size(), dtype_of(buf), src < 0 ? MPI_ANY_SOURCE : src, tag, source, async);
        }
        return py::make_tuple(work, py::cpp_function([source] { return *source; }));
      }, "src < 0 receives from any rank. Returns (work, source) where source() is the sender once done.");
  m.def("comm_shutdown", [] { Engine::get().shutdown(); }, Release(), "Drain the queue and join the comm thread.");
  m.def("comm_failure", [] { return Engine::get().failure(); }, "Why collectives are unusable, or ''.");
  m.def("mpi_abort", [](int code) { MPI_Abort(MPI_COMM_WORLD, code); }, Release(), "End every rank of the job.");
  m.def("mpi_init_thread", [](int required) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, required, &provided);
    return provided;
  }, Release(), "MPI_Init_thread without the GIL, so a Python watchdog can bound it.");
  // The flight recorder (distml.distributed.flight_recorder wraps these).
  m.def("fr_set_capacity", [](size_t n) { FlightRecorder::get().set_capacity(n); }, "Keep the last n collectives.");
  m.def("fr_configure", [](const std::string& folder, int rank, const std::string& meta_json,
                           const std::string& stacks_path) {
    FlightRecorder::get().configure(folder, rank, meta_json, stacks_path);
  }, "Where dumps go (folder/flight-<rank>.json), the JSON object they add as 'process', and the "
     "file of faulthandler's stacks they take in.");
  m.def("fr_set_bucket", [](int bucket) { FlightRecorder::get().set_bucket(bucket); },
        "DDP's bucket index for the collectives this thread queues next (-1: none).");
  m.def("fr_json", [] { return FlightRecorder::get().json(); }, Release(), "The records and groups as JSON.");
  m.def("fr_dump", [](const std::string& reason) { return FlightRecorder::get().dump(reason); }, Release(),
        "Write the dump now; returns its path ('' when unconfigured).");
  m.def("fr_install_signal_handler", [] { return FlightRecorder::get().install_signal_handler(); },
        "Start the dump thread and dump on SIGUSR1.");
}
