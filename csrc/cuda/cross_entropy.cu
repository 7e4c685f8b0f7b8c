// Cross-entropy of logits (N, C, L) with its gradient (kernels/cross_entropy.h) on a CUDA device.
// L == 1 with many classes: one block per row, reducing across its threads; otherwise one thread per
// position, running the host kernel's line (kernels/cross_entropy_math.h).
#include <limits>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "kernels/cross_entropy_math.h"

namespace distml::cuda {
namespace {

namespace ce = cross_entropy_math;

// Rows of at least this many classes take a block each.
constexpr int64_t kRowClasses = 128;

template <typename T>
__global__ void rows_kernel(const T* logits, const int64_t* target, const T* weight, T* loss, T* target_weight,
                            T* grad, int64_t N, int64_t C, int64_t ignore_index, double eps) {
  __shared__ double shared[kThreads / kWarp];
  const double lowest = -std::numeric_limits<double>::infinity();
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* x = logits + n * C;
    T* g = grad ? grad + n * C : nullptr;
    const int64_t y = target[n];
    if (ce::skipped(y, ignore_index, C)) {  // the same for every thread of the block
      const T fill = ce::skipped_value<T>(y, ignore_index);
      if (threadIdx.x == 0) loss[n] = target_weight[n] = fill;
      if (g)
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) g[c] = fill;
      continue;
    }
    double max = lowest, weighted_sum = 0, weight_total = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const double xc = x[c];
      max = max_of(max, xc);
      if (eps != 0) {
        weighted_sum += ce::class_weight(weight, c) * xc;
        weight_total += ce::class_weight(weight, c);
      }
    }
    max = block_reduce(max, shared, Max{}, lowest);
    double sum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += std::exp(static_cast<double>(x[c]) - max);
    const double log_sum = ce::log_sum_of(max, block_reduce(sum, shared, Sum{}, 0.0));
    double smooth_sum = 0;
    if (eps != 0) {  // the same for every thread of the block
      weight_total = block_reduce(weight_total, shared, Sum{}, 0.0);
      smooth_sum = ce::smooth_sum_of(block_reduce(weighted_sum, shared, Sum{}, 0.0), log_sum, weight_total);
    }
    const double smooth = eps / static_cast<double>(C), wy = ce::class_weight(weight, y);
    if (threadIdx.x == 0) {
      loss[n] = static_cast<T>(ce::loss_value(eps, smooth, wy, static_cast<double>(x[y]) - log_sum, smooth_sum));
      target_weight[n] = static_cast<T>(wy);
    }
    if (g)
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        g[c] = static_cast<T>(ce::grad_value(eps, smooth, wy, static_cast<double>(x[c]) - log_sum,
                                             ce::class_weight(weight, c), c == y, weight_total));
  }
}

template <typename T>
void cross_entropy_typed(const void* logits_data, const int64_t* target, const void* weight_data, void* loss_data,
                         void* target_weight_data, void* grad_data, int64_t N, int64_t C, int64_t L,
                         int64_t ignore_index, double eps, Stream stream) {
  const T* logits = static_cast<const T*>(logits_data);
  const T* weight = static_cast<const T*>(weight_data);
  T* loss = static_cast<T*>(loss_data);
  T* target_weight = static_cast<T*>(target_weight_data);
  T* grad = static_cast<T*>(grad_data);
  if (L == 1 && C >= kRowClasses) {
    rows_kernel<<<blocks_for(N, 1), kThreads, 0, stream>>>(logits, target, weight, loss, target_weight, grad, N, C,
                                                          ignore_index, eps);
    return;
  }
  launch_each(N * L, stream, [=] __device__(int64_t i) {
    const int64_t n = i / L, l = i % L;
    const double weight_total = eps != 0 ? ce::weight_total_of(weight, C) : 0.0;  // per thread: C loads with weights
    ce::line(logits + n * C * L + l, L, C, target[i], ignore_index, weight, weight_total, eps, loss + i,
             target_weight + i, grad ? grad + n * C * L + l : nullptr);
  });
}

}  // namespace

void cross_entropy(const void* logits, const int64_t* target, const void* weight, void* loss, void* target_weight,
                   void* grad, int64_t N, int64_t C, int64_t L, int64_t ignore_index, double label_smoothing,
                   DType dtype, Stream stream) {
  if (N * L == 0) return;
  launch_float("cross_entropy", dtype, loss, [&](auto type) {
    cross_entropy_typed<decltype(type)>(logits, target, weight, loss, target_weight, grad, N, C, L, ignore_index,
                                     label_smoothing, stream);
  });
}

}  // namespace distml::cuda
