#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// GELU: out = x * Phi(x) with Phi the standard normal CDF (0.5 * (1 + erf(x / sqrt 2))), or with
// `tanh_approximation` 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))). Elementwise over n.
void gelu(const void* x, void* out, int64_t n, bool tanh_approximation, DType dtype);

// grad_x = grad * d gelu(x) / dx.
void gelu_backward(const void* grad, const void* x, void* grad_x, int64_t n, bool tanh_approximation, DType dtype);

}  // namespace distml
