#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// Cross-entropy of logits (N, C, L) against class indices target (N, L), fused with its
// gradient: log-softmax over C, then per (n, l) with y = target[n, l] and eps = label_smoothing
//   loss = -(1 - eps) * w[y] * logp[y] - eps / C * sum_c w[c] * logp[c]
//   target_weight = w[y]                       (the denominator of the weighted mean)
//   grad[c] = d loss / d logits[c]            (only when grad is not null)
// with w = 1 when weight is null, and zeros wherever target == ignore_index.
// Targets outside [0, C) other than ignore_index throw std::out_of_range. Parallel over n.
void cross_entropy(const void* logits, const int64_t* target, const void* weight, void* loss, void* target_weight,
                   void* grad, int64_t N, int64_t C, int64_t L, int64_t ignore_index, double label_smoothing,
                   DType dtype);

}  // namespace distml
