// Batch-norm arithmetic shared by kernels/batchnorm.cpp and cuda/batchnorm.cu (the formulas of
// kernels/batchnorm.h). Per-channel coefficients are computed in double and rounded to T once.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"

namespace distml::batchnorm_math {

// The terms batch_norm_stats and batch_norm_backward_reduce sum over a channel, in double.
DISTML_HD double squared_deviation(double x, double mean) {
  const double d = x - mean;
  return d * d;
}

DISTML_HD double grad_times_deviation(double g, double x, double mean) { return g * (x - mean); }

// out = (x - mean) * scale + shift, with scale = invstd * weight and shift = bias (weight, bias may be null).
template <typename T>
DISTML_HD T elemt_scale(const T* invstd, const T* weight, int64_t c) {
  return static_cast<T>(static_cast<double>(invstd[c]) * (weight ? static_cast<double>(weight[c]) : 1.0));
}

template <typename T>
DISTML_HD T elemt_shift(const T* bias, int64_t c) {
  return bias ? bias[c] : T(0);
}

template <typename T>
DISTML_HD T elemt_value(T x, T mean, T scale, T shift) {
  return (x - mean) * scale + shift;
}

// grad_x = grad * a - (x - mean) * b - d for channel c; b = d = 0 without the sums (evaluation).
template <typename T>
struct BackwardCoefficients {
  T a, b, d;
};

template <typename T>
DISTML_HD BackwardCoefficients<T> backward_coefficients(const T* invstd, const T* weight, const T* sum_dy,
                                                        const T* sum_dy_xmu, int64_t count, int64_t c) {
  const double istd = invstd[c], scale = istd * (weight ? static_cast<double>(weight[c]) : 1.0);
  return {static_cast<T>(scale),
          static_cast<T>(sum_dy ? static_cast<double>(sum_dy_xmu[c]) / count * istd * istd * scale : 0.0),
          static_cast<T>(sum_dy ? static_cast<double>(sum_dy[c]) / count * scale : 0.0)};
}

template <typename T>
DISTML_HD T backward_value(T grad, T x, T mean, T a, T b, T d) {
  return grad * a - (x - mean) * b - d;
}

}  // namespace distml::batchnorm_math
