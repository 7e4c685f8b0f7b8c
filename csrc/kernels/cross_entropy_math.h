// Cross-entropy arithmetic shared by kernels/cross_entropy.cpp and cuda/cross_entropy.cu: the
// formulas of kernels/cross_entropy.h, in double whatever the logits' dtype. A position's line is
// the C logits x[c * stride].
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/host_device.h"

namespace distml::cross_entropy_math {

// Whether a position writes skipped_value instead of a loss: its target is ignore_index (zeros), or
// outside [0, C) (NaN; the CPU kernel rejects those targets beforehand).
DISTML_HD bool skipped(int64_t y, int64_t ignore_index, int64_t C) { return y == ignore_index || y < 0 || y >= C; }

template <typename T>
DISTML_HD T skipped_value(int64_t y, int64_t ignore_index) {
  return y == ignore_index ? T(0) : std::numeric_limits<T>::quiet_NaN();
}

template <typename T>
DISTML_HD double class_weight(const T* weight, int64_t c) {
  return weight ? static_cast<double>(weight[c]) : 1.0;
}

// sum_c w[c], in double (C without weights).
template <typename T>
DISTML_HD double weight_total_of(const T* weight, int64_t C) {
  if (!weight) return static_cast<double>(C);
  double total = 0;
  for (int64_t c = 0; c < C; ++c) total += weight[c];
  return total;
}

// log sum_c exp(x[c]) from the line's maximum and sum_c exp(x[c] - max).
DISTML_HD double log_sum_of(double max, double sum) { return max + std::log(sum); }

// sum_c w[c] * logp[c] = sum_c w[c] * x[c] - log_sum * sum_c w[c]: the sum over the logits is taken
// in the pass that finds their maximum.
DISTML_HD double smooth_sum_of(double weighted_sum, double log_sum, double weight_total) {
  return weighted_sum - log_sum * weight_total;
}

// -(1 - eps) * w[y] * logp[y] - eps / C * sum_c w[c] * logp[c], with smooth = eps / C and
// smooth_sum = sum_c w[c] * logp[c] (taken only when eps != 0: 0 otherwise, so that a logit of -inf
// does not make the loss 0 * -inf).
DISTML_HD double loss_value(double eps, double smooth, double wy, double logp_y, double smooth_sum) {
  return -(1 - eps) * wy * logp_y - smooth * smooth_sum;
}

// d loss / d x[c], weight_total being sum_c w[c] (read only when eps != 0: the CPU loops run about 5%
// faster without the smoothing term's arithmetic).
DISTML_HD double grad_value(double eps, double smooth, double wy, double logp, double wc, bool is_target,
                            double weight_total) {
  const double p = std::exp(logp);
  const double grad = (1 - eps) * wy * (p - (is_target ? 1.0 : 0.0));
  return eps != 0 ? grad + smooth * (p * weight_total - wc) : grad;
}

// One position: loss, target_weight and (when g is not null) the gradient line; weight_total is
// weight_total_of(weight, C) (read only when eps != 0).
template <typename T>
DISTML_HD void line(const T* x, int64_t stride, int64_t C, int64_t y, int64_t ignore_index, const T* weight,
                    double weight_total, double eps, T* loss, T* target_weight, T* g) {
  if (skipped(y, ignore_index, C)) {
    const T fill = skipped_value<T>(y, ignore_index);
    *loss = *target_weight = fill;
    if (g)
      for (int64_t c = 0; c < C; ++c) g[c * stride] = fill;
    return;
  }
  double max = -std::numeric_limits<double>::infinity(), weighted_sum = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double xc = x[c * stride];
    max = max_of(max, xc);
    if (eps != 0) weighted_sum += class_weight(weight, c) * xc;
  }
  double sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(x[c * stride]) - max);
  const double log_sum = log_sum_of(max, sum);
  const double smooth_sum = eps != 0 ? smooth_sum_of(weighted_sum, log_sum, weight_total) : 0.0;
  const double smooth = eps / static_cast<double>(C), wy = class_weight(weight, y);
  *loss = static_cast<T>(loss_value(eps, smooth, wy, static_cast<double>(x[y * stride]) - log_sum, smooth_sum));
  *target_weight = static_cast<T>(wy);
  if (!g) return;
  for (int64_t c = 0; c < C; ++c)
    g[c * stride] = static_cast<T>(grad_value(eps, smooth, wy, static_cast<double>(x[c * stride]) - log_sum,
                                              class_weight(weight, c), c == y, weight_total));
}

}  // namespace distml::cross_entropy_math
