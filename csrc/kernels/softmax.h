#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// Softmax (or log-softmax when `log`) of x viewed as [outer, n, inner] along the middle
// dim, written to out. Sums accumulate in double. dtype: f32 or f64.
void softmax_forward(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, bool log, DType dtype);

// Gradient wrt x given grad of the output and the output y of softmax_forward:
// softmax: y * (g - sum(g * y)); log-softmax: g - exp(y) * sum(g).
void softmax_backward(const void* grad, const void* y, void* grad_x, int64_t outer, int64_t n, int64_t inner,
                      bool log, DType dtype);

}  // namespace distml
