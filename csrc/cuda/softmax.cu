// softmax / log_softmax of x viewed as [outer, n, inner] along n (kernels/softmax.h's layout) on a
// CUDA device. inner == 1 (the last dim): one block per line, reducing across its threads; otherwise
// one thread per line, running the host kernel's forward_line / backward_line (kernels/softmax_math.h).
#include <limits>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "kernels/softmax_math.h"

namespace distml::cuda {
namespace {

constexpr int kRowThreads = 256;
constexpr int kLineThreads = 256;

template <typename T>
__global__ void forward_rows(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  __shared__ T shared_max[kRowThreads / kWarp];
  __shared__ double shared_sum[kRowThreads / kWarp];
  const T lowest = -std::numeric_limits<T>::infinity();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* in = x + r * n;
    T* out = y + r * n;
    T max = lowest;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) max = max_of(max, in[j]);
    const T shift = softmax_math::shift_of(block_reduce(max, shared_max, Max{}, lowest));
    double sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += softmax_math::exp_shifted(in[j], shift);
    sum = block_reduce(sum, shared_sum, Sum{}, 0.0);
    if (log) {
      const T log_sum = static_cast<T>(std::log(sum));
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        out[j] = softmax_math::log_softmax_value(in[j], shift, log_sum);
    } else {
      const T scale = softmax_math::scale_of<T>(sum);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        out[j] = softmax_math::exp_shifted(in[j], shift) * scale;
    }
  }
}

template <typename T>
__global__ void backward_rows(const T* g, const T* y, T* gx, int64_t rows, int64_t n, bool log) {
  __shared__ double shared_sum[kRowThreads / kWarp];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *gr = g + r * n, *yr = y + r * n;
    T* out = gx + r * n;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      dot += log ? static_cast<double>(gr[j]) : static_cast<double>(gr[j]) * yr[j];
    const T total = static_cast<T>(block_reduce(dot, shared_sum, Sum{}, 0.0));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      out[j] = log ? softmax_math::log_softmax_grad(gr[j], yr[j], total)
                   : softmax_math::softmax_grad(gr[j], yr[j], total);
  }
}

template <typename T>
__global__ void forward_lines(const T* x, T* y, int64_t lines, int64_t n, int64_t inner, bool log) {
  const int64_t step = gridDim.x * int64_t{blockDim.x};
  for (int64_t line = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; line < lines; line += step) {
    const int64_t offset = line / inner * n * inner + line % inner;
    softmax_math::forward_line(x + offset, y + offset, n, inner, log);
  }
}

template <typename T>
__global__ void backward_lines(const T* g, const T* y, T* gx, int64_t lines, int64_t n, int64_t inner, bool log) {
  const int64_t step = gridDim.x * int64_t{blockDim.x};
  for (int64_t line = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; line < lines; line += step) {
    const int64_t offset = line / inner * n * inner + line % inner;
    softmax_math::backward_line(g + offset, y + offset, gx + offset, n, inner, log);
  }
}

template <typename T>
void forward_typed(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, bool log, Stream stream) {
  const T* in = static_cast<const T*>(x);
  T* y = static_cast<T*>(out);
  if (inner == 1)
    forward_rows<<<blocks_for(outer, 1), kRowThreads, 0, stream>>>(in, y, outer, n, log);
  else
    forward_lines<<<blocks_for(outer * inner, kLineThreads), kLineThreads, 0, stream>>>(in, y, outer * inner, n, inner,
                                                                                        log);
}

template <typename T>
void backward_typed(const void* grad, const void* y, void* grad_x, int64_t outer, int64_t n, int64_t inner, bool log,
                    Stream stream) {
  const T *g = static_cast<const T*>(grad), *out = static_cast<const T*>(y);
  T* gx = static_cast<T*>(grad_x);
  if (inner == 1)
    backward_rows<<<blocks_for(outer, 1), kRowThreads, 0, stream>>>(g, out, gx, outer, n, log);
  else
    backward_lines<<<blocks_for(outer * inner, kLineThreads), kLineThreads, 0, stream>>>(g, out, gx, outer * inner, n,
                                                                                         inner, log);
}

}  // namespace

void softmax_forward(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, bool log, DType dtype,
                     Stream stream) {
  if (outer * n * inner == 0) return;
  launch_float("softmax_forward", dtype, out,
               [&](auto type) { forward_typed<decltype(type)>(x, out, outer, n, inner, log, stream); });
}

void softmax_backward(const void* grad, const void* y, void* grad_x, int64_t outer, int64_t n, int64_t inner,
                      bool log, DType dtype, Stream stream) {
  if (outer * n * inner == 0) return;
  launch_float("softmax_backward", dtype, grad_x,
               [&](auto type) { backward_typed<decltype(type)>(grad, y, grad_x, outer, n, inner, log, stream); });
}

}  // namespace distml::cuda
