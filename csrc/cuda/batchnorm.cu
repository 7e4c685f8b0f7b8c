// Batch normalisation of x viewed as (N, C, S) (kernels/batchnorm.h) on a CUDA device. The per-channel
// sums (stats, backward_reduce) take one block per channel, reducing in double across its threads;
// the elementwise steps one thread per value. The arithmetic is kernels/batchnorm_math.h's.
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "kernels/batchnorm_math.h"

namespace distml::cuda {
namespace {

namespace bn = batchnorm_math;

// The offset in x of value i < N * S of channel c.
__device__ int64_t channel_offset(int64_t i, int64_t c, int64_t C, int64_t S) {
  return i / S * C * S + c * S + i % S;
}

template <typename T>
__global__ void stats_kernel(const T* x, T* mean, T* var, int64_t N, int64_t C, int64_t S) {
  __shared__ double shared[kThreads / kWarp];
  const int64_t count = N * S;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double sum = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += x[channel_offset(i, c, C, S)];
    const double m = block_reduce(sum, shared, Sum{}, 0.0) / count;
    double squares = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
      squares += bn::squared_deviation(x[channel_offset(i, c, C, S)], m);
    squares = block_reduce(squares, shared, Sum{}, 0.0);
    if (threadIdx.x == 0) {
      mean[c] = static_cast<T>(m);
      var[c] = static_cast<T>(squares / count);
    }
  }
}

template <typename T>
__global__ void backward_reduce_kernel(const T* grad, const T* x, const T* mean, T* sum_dy, T* sum_dy_xmu, int64_t N,
                                       int64_t C, int64_t S) {
  __shared__ double shared[kThreads / kWarp];
  const int64_t count = N * S;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const double m = mean[c];
    double dy = 0, dy_xmu = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const int64_t at = channel_offset(i, c, C, S);
      dy += grad[at];
      dy_xmu += bn::grad_times_deviation(grad[at], x[at], m);
    }
    dy = block_reduce(dy, shared, Sum{}, 0.0);
    dy_xmu = block_reduce(dy_xmu, shared, Sum{}, 0.0);
    if (threadIdx.x == 0) {
      sum_dy[c] = static_cast<T>(dy);
      sum_dy_xmu[c] = static_cast<T>(dy_xmu);
    }
  }
}

template <typename T>
void stats_typed(const void* x, void* mean, void* var, int64_t N, int64_t C, int64_t S, Stream stream) {
  stats_kernel<<<blocks_for(C, 1), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(mean),
                                                         static_cast<T*>(var), N, C, S);
}

template <typename T>
void elemt_typed(const void* x_data, const void* mean_data, const void* invstd_data, const void* weight_data,
                 const void* bias_data, void* out_data, int64_t N, int64_t C, int64_t S, Stream stream) {
  const T *x = static_cast<const T*>(x_data), *mean = static_cast<const T*>(mean_data);
  const T *invstd = static_cast<const T*>(invstd_data), *weight = static_cast<const T*>(weight_data);
  const T* bias = static_cast<const T*>(bias_data);
  T* out = static_cast<T*>(out_data);
  launch_each(N * C * S, stream, [=] __device__(int64_t i) {
    const int64_t c = i / S % C;
    out[i] = bn::elemt_value(x[i], mean[c], bn::elemt_scale(invstd, weight, c), bn::elemt_shift(bias, c));
  });
}

template <typename T>
void backward_reduce_typed(const void* grad, const void* x, const void* mean, void* sum_dy, void* sum_dy_xmu,
                           int64_t N, int64_t C, int64_t S, Stream stream) {
  backward_reduce_kernel<<<blocks_for(C, 1), kThreads, 0, stream>>>(
      static_cast<const T*>(grad), static_cast<const T*>(x), static_cast<const T*>(mean), static_cast<T*>(sum_dy),
      static_cast<T*>(sum_dy_xmu), N, C, S);
}

template <typename T>
void backward_elemt_typed(const void* grad_data, const void* x_data, const void* mean_data, const void* invstd_data,
                          const void* weight_data, const void* sum_dy_data, const void* sum_dy_xmu_data,
                          int64_t count, void* grad_x_data, int64_t N, int64_t C, int64_t S, Stream stream) {
  const T *grad = static_cast<const T*>(grad_data), *x = static_cast<const T*>(x_data);
  const T *mean = static_cast<const T*>(mean_data), *invstd = static_cast<const T*>(invstd_data);
  const T *weight = static_cast<const T*>(weight_data), *sum_dy = static_cast<const T*>(sum_dy_data);
  const T* sum_dy_xmu = static_cast<const T*>(sum_dy_xmu_data);
  T* grad_x = static_cast<T*>(grad_x_data);
  launch_each(N * C * S, stream, [=] __device__(int64_t i) {
    const int64_t c = i / S % C;
    const auto k = bn::backward_coefficients(invstd, weight, sum_dy, sum_dy_xmu, count, c);
    grad_x[i] = bn::backward_value(grad[i], x[i], mean[c], k.a, k.b, k.d);
  });
}

}  // namespace

void batch_norm_stats(const void* x, void* mean, void* var, int64_t N, int64_t C, int64_t S, DType dtype,
                      Stream stream) {
  if (C == 0) return;
  launch_float("batch_norm_stats", dtype, mean,
               [&](auto type) { stats_typed<decltype(type)>(x, mean, var, N, C, S, stream); });
}

void batch_norm_elemt(const void* x, const void* mean, const void* invstd, const void* weight, const void* bias,
                      void* out, int64_t N, int64_t C, int64_t S, DType dtype, Stream stream) {
  if (N * C * S == 0) return;
  launch_float("batch_norm_elemt", dtype, out,
               [&](auto type) { elemt_typed<decltype(type)>(x, mean, invstd, weight, bias, out, N, C, S, stream); });
}

void batch_norm_backward_reduce(const void* grad, const void* x, const void* mean, void* sum_dy, void* sum_dy_xmu,
                                int64_t N, int64_t C, int64_t S, DType dtype, Stream stream) {
  if (C == 0) return;
  launch_float("batch_norm_backward_reduce", dtype, sum_dy, [&](auto type) {
    backward_reduce_typed<decltype(type)>(grad, x, mean, sum_dy, sum_dy_xmu, N, C, S, stream);
  });
}

void batch_norm_backward_elemt(const void* grad, const void* x, const void* mean, const void* invstd,
                               const void* weight, const void* sum_dy, const void* sum_dy_xmu, int64_t count,
                               void* grad_x, int64_t N, int64_t C, int64_t S, DType dtype, Stream stream) {
  if (N * C * S == 0) return;
  launch_float("batch_norm_backward_elemt", dtype, grad_x, [&](auto type) {
    backward_elemt_typed<decltype(type)>(grad, x, mean, invstd, weight, sum_dy, sum_dy_xmu, count, grad_x, N, C, S,
                                      stream);
  });
}

}  // namespace distml::cuda
