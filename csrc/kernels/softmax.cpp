#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace distml {

// One softmax along n elements spaced `stride` apart.
template <typename T>
static void softmax_line(const T* x, T* y, int64_t n, int64_t stride, bool log) {
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) max = std::max(max, x[j * stride]);
  if (std::isinf(max)) max = max > 0 ? max : T(0);  // all -inf: keep exp(x - max) finite-or-zero
  double sum = 0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j * stride] - max);
    T shift = max + static_cast<T>(std::log(sum));
    for (int64_t j = 0; j < n; ++j) y[j * stride] = x[j * stride] - shift;
  } else {
    for (int64_t j = 0; j < n; ++j) {
      T e = std::exp(x[j * stride] - max);
      y[j * stride] = e;
      sum += e;
    }
    T scale = static_cast<T>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) y[j * stride] *= scale;
  }
}

template <typename T>
static void softmax_backward_line(const T* g, const T* y, T* gx, int64_t n, int64_t stride, bool log) {
  double dot = 0;
  if (log) {
    for (int64_t j = 0; j < n; ++j) dot += g[j * stride];
    T total = static_cast<T>(dot);
    for (int64_t j = 0; j < n; ++j) gx[j * stride] = g[j * stride] - std::exp(y[j * stride]) * total;
  } else {
    for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(g[j * stride]) * y[j * stride];
    T total = static_cast<T>(dot);
    for (int64_t j = 0; j < n; ++j) gx[j * stride] = y[j * stride] * (g[j * stride] - total);
  }
}

template <typename T>
static void forward_typed(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * n > 32768)
  for (int64_t line = 0; line < lines; ++line) {
    int64_t o = line / inner, i = line % inner;
    int64_t offset = o * n * inner + i;
    softmax_line(x + offset, y + offset, n, inner, log);
  }
}

template <typename T>
static void backward_typed(const T* g, const T* y, T* gx, int64_t outer, int64_t n, int64_t inner, bool log) {
  int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * n > 32768)
  for (int64_t line = 0; line < lines; ++line) {
    int64_t o = line / inner, i = line % inner;
    int64_t offset = o * n * inner + i;
    softmax_backward_line(g + offset, y + offset, gx + offset, n, inner, log);
  }
}

void softmax_forward(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, bool log, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return forward_typed(static_cast<const float*>(x), static_cast<float*>(out), outer, n, inner, log);
    case DType::f64:
      return forward_typed(static_cast<const double*>(x), static_cast<double*>(out), outer, n, inner, log);
    default:
      unsupported_dtype("softmax_forward", dtype);
  }
}

void softmax_backward(const void* grad, const void* y, void* grad_x, int64_t outer, int64_t n, int64_t inner,
                      bool log, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return backward_typed(static_cast<const float*>(grad), static_cast<const float*>(y),
                            static_cast<float*>(grad_x), outer, n, inner, log);
    case DType::f64:
      return backward_typed(static_cast<const double*>(grad), static_cast<const double*>(y),
                            static_cast<double*>(grad_x), outer, n, inner, log);
    default:
      unsupported_dtype("softmax_backward", dtype);
  }
}

}  // namespace distml
