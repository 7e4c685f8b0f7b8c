#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// Layer normalisation of x viewed as M rows of N values: each row is normalised over its N
// values, then scaled by weight and shifted by bias (N values each; null means 1 and 0).
// Sums accumulate in double. dtype: f32 or f64.

// out = (x - mean) * rstd * weight + bias per row; mean[m] and rstd[m] = 1 / sqrt(var + eps)
// (biased variance, two passes) are written for the backward. Parallel over rows.
void layer_norm_forward(const void* x, const void* weight, const void* bias, void* out, void* mean, void* rstd,
                        int64_t M, int64_t N, double eps, DType dtype);

// With xhat = (x - mean) * rstd and gxhat = grad * weight:
// grad_x = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) per row (when grad_x is not null),
// grad_weight = sum over rows of grad * xhat, grad_bias = sum over rows of grad (each when not null).
void layer_norm_backward(const void* grad, const void* x, const void* mean, const void* rstd, const void* weight,
                         void* grad_x, void* grad_weight, void* grad_bias, int64_t M, int64_t N, DType dtype);

}  // namespace distml
