#include "kernels/activation.h"

#include <cmath>

namespace distml {

static constexpr double kSqrtHalf = 0.70710678118654752440;
static constexpr double kInvSqrt2Pi = 0.39894228040143267794;
static constexpr double kSqrt2OverPi = 0.79788456080286535588;
static constexpr double kCoef = 0.044715;

template <typename T>
static void gelu_typed(const T* x, T* out, int64_t n, bool approx) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    out[i] = static_cast<T>(approx ? 0.5 * v * (1 + std::tanh(kSqrt2OverPi * (v + kCoef * v * v * v)))
                                   : 0.5 * v * (1 + std::erf(v * kSqrtHalf)));
  }
}

template <typename T>
static void gelu_backward_typed(const T* grad, const T* x, T* grad_x, int64_t n, bool approx) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    double d;
    if (approx) {
      const double inner = kSqrt2OverPi * (v + kCoef * v * v * v);
      const double t = std::tanh(inner);
      d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * kSqrt2OverPi * (1 + 3 * kCoef * v * v);
    } else {
      d = 0.5 * (1 + std::erf(v * kSqrtHalf)) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
    }
    grad_x[i] = static_cast<T>(grad[i] * d);
  }
}

void gelu(const void* x, void* out, int64_t n, bool approx, DType dtype) {
  switch (dtype) {
    case DType::f32: return gelu_typed(static_cast<const float*>(x), static_cast<float*>(out), n, approx);
    case DType::f64: return gelu_typed(static_cast<const double*>(x), static_cast<double*>(out), n, approx);
    default: unsupported_dtype("gelu", dtype);
  }
}

void gelu_backward(const void* grad, const void* x, void* grad_x, int64_t n, bool approx, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return gelu_backward_typed(static_cast<const float*>(grad), static_cast<const float*>(x),
                                 static_cast<float*>(grad_x), n, approx);
    case DType::f64:
      return gelu_backward_typed(static_cast<const double*>(grad), static_cast<const double*>(x),
                                 static_cast<double*>(grad_x), n, approx);
    default: unsupported_dtype("gelu_backward", dtype);
  }
}

}  // namespace distml
