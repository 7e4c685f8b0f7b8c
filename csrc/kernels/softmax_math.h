// Softmax arithmetic shared by kernels/softmax.cpp and cuda/softmax.cu. A line is n elements
// spaced `stride` apart; sums accumulate in double.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/host_device.h"

namespace distml::softmax_math {

// The shift subtracted before exp: the line's maximum, or 0 when that is -inf (every element
// -inf: exp(x - shift) stays 0 rather than NaN).
template <typename T>
DISTML_HD T shift_of(T max) {
  return std::isinf(max) && max < 0 ? T(0) : max;
}

template <typename T>
DISTML_HD T exp_shifted(T x, T shift) {
  return std::exp(x - shift);
}

// log_softmax(x) = (x - shift) - log(sum), in that order (as PyTorch): x - (shift + log(sum)) would
// round shift + log(sum) to x's precision, losing digits when |x| is large.
template <typename T>
DISTML_HD T log_softmax_value(T x, T shift, T log_sum) {
  return (x - shift) - log_sum;
}

// softmax(x) = exp_shifted(x) * scale.
template <typename T>
DISTML_HD T scale_of(double sum) {
  return static_cast<T>(1.0 / sum);
}

// Backward, with total = sum(g * y) over the line (softmax) or sum(g) (log_softmax).
template <typename T>
DISTML_HD T softmax_grad(T g, T y, T total) {
  return y * (g - total);
}

template <typename T>
DISTML_HD T log_softmax_grad(T g, T y, T total) {
  return g - std::exp(y) * total;
}

template <typename T>
DISTML_HD void forward_line(const T* x, T* y, int64_t n, int64_t stride, bool log) {
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) max = max_of(max, x[j * stride]);
  const T shift = shift_of(max);
  double sum = 0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) sum += exp_shifted(x[j * stride], shift);
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t j = 0; j < n; ++j) y[j * stride] = log_softmax_value(x[j * stride], shift, log_sum);
  } else {
    for (int64_t j = 0; j < n; ++j) {
      T e = exp_shifted(x[j * stride], shift);
      y[j * stride] = e;
      sum += e;
    }
    const T scale = scale_of<T>(sum);
    for (int64_t j = 0; j < n; ++j) y[j * stride] *= scale;
  }
}

template <typename T>
DISTML_HD void backward_line(const T* g, const T* y, T* gx, int64_t n, int64_t stride, bool log) {
  double dot = 0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) dot += g[j * stride];
    const T total = static_cast<T>(dot);
    for (int64_t j = 0; j < n; ++j) gx[j * stride] = log_softmax_grad(g[j * stride], y[j * stride], total);
  } else {
    for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(g[j * stride]) * y[j * stride];
    const T total = static_cast<T>(dot);
    for (int64_t j = 0; j < n; ++j) gx[j * stride] = softmax_grad(g[j * stride], y[j * stride], total);
  }
}

}  // namespace distml::softmax_math
