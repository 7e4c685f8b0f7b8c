#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// Batch normalisation of x viewed as (N, C, S): channel c is normalised over its N * S values
// (S is the product of the spatial sizes, 1 for (N, C) inputs). Per-channel vectors have C
// values of x's dtype; sums and statistics accumulate in double. The four kernels are the
// steps of torch's batch_norm_stats / batch_norm_elemt / batch_norm_backward_reduce /
// batch_norm_backward_elemt, so statistics reduced across processes (SyncBatchNorm) fit between them.

// mean[c] and the biased variance var[c] of channel c (two passes: the mean, then the squared
// deviations from it). Parallel over channels.
void batch_norm_stats(const void* x, void* mean, void* var, int64_t N, int64_t C, int64_t S, DType dtype);

// out = (x - mean[c]) * invstd[c] * weight[c] + bias[c]; weight and bias may be null (1 and 0).
// out may be x. Parallel over the N * C planes.
void batch_norm_elemt(const void* x, const void* mean, const void* invstd, const void* weight, const void* bias,
                      void* out, int64_t N, int64_t C, int64_t S, DType dtype);

// sum_dy[c] = sum of grad over channel c, sum_dy_xmu[c] = sum of grad * (x - mean[c]): the
// gradients of bias and (times invstd) weight, and what grad_x needs. Parallel over channels.
void batch_norm_backward_reduce(const void* grad, const void* x, const void* mean, void* sum_dy, void* sum_dy_xmu,
                                int64_t N, int64_t C, int64_t S, DType dtype);

// grad_x of batch_norm_elemt. With sum_dy and sum_dy_xmu (of `count` values per channel, the
// number the statistics were taken over) mean and invstd are the batch's own statistics, so
// the gradient flows through them too:
//   grad_x = (grad - sum_dy / count - (x - mean) * invstd^2 * sum_dy_xmu / count) * invstd * weight;
// with both null they are constants (evaluation): grad_x = grad * invstd * weight.
// weight may be null (1). Parallel over the N * C planes.
void batch_norm_backward_elemt(const void* grad, const void* x, const void* mean, const void* invstd,
                               const void* weight, const void* sum_dy, const void* sum_dy_xmu, int64_t count,
                               void* grad_x, int64_t N, int64_t C, int64_t S, DType dtype);

}  // namespace distml
