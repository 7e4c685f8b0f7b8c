// Per-element optimizer arithmetic shared by kernels/optim.cpp and cuda/optim.cu, following
// torch.optim's single-tensor code operation for operation. Options arrive as flags of any type
// convertible to bool: the CPU kernels pass std::true_type / std::false_type, so each combination
// compiles to a branch-free (vectorizable) loop; the CUDA kernels pass plain bools (a uniform branch).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/optim.h"

namespace distml::optim_math {

// torch.lerp's two-sided form: start + weight * (end - start) for weight < 0.5, else from the end, so it
// is exact at both ends; `from_start` is chosen once per call.
template <typename T, typename Flag>
DISTML_HD T lerp(T start, T end, T weight, Flag from_start) {
  return from_start ? start + weight * (end - start) : end - (end - start) * (T(1) - weight);
}

// Scalars are rounded to T once, as PyTorch does when it applies a Python float to a tensor.
template <typename T>
struct SgdScalars {
  T neg_lr, momentum, keep, decay;
  explicit SgdScalars(const SgdOptions& o)
      : neg_lr(T(-o.lr)), momentum(T(o.momentum)), keep(T(1 - o.dampening)), decay(T(o.weight_decay)) {}
};

// Element j of one tensor; buf is read only with momentum, `first` starts it at the gradient.
template <typename T, typename Maximize, typename Decay, typename Momentum, typename Nesterov>
DISTML_HD void sgd_element(T* p, const T* g, T* buf, int64_t j, bool first, const SgdScalars<T>& s,
                           Maximize maximize, Decay use_decay, Momentum use_momentum, Nesterov nesterov) {
  T d = maximize ? -g[j] : g[j];
  if (use_decay) d = d + s.decay * p[j];
  if (use_momentum) {
    buf[j] = first ? d : buf[j] * s.momentum + s.keep * d;
    d = nesterov ? d + s.momentum * buf[j] : buf[j];
  }
  p[j] = p[j] + s.neg_lr * d;
}

template <typename T>
struct AdamScalars {
  T beta2, one_minus_beta1, one_minus_beta2, eps, decay, shrink;
  explicit AdamScalars(const AdamOptions& o)
      : beta2(T(o.beta2)), one_minus_beta1(T(1 - o.beta1)), one_minus_beta2(T(1 - o.beta2)), eps(T(o.eps)),
        decay(T(o.weight_decay)), shrink(T(1 - o.lr * o.weight_decay)) {}
};

// The bias corrections of a tensor at its step count `step` (computed on the host, in double).
template <typename T>
struct AdamStepScalars {
  T neg_step_size, bias_correction2_sqrt;
  AdamStepScalars() = default;
  AdamStepScalars(const AdamOptions& o, double step)
      : neg_step_size(T(-(o.lr / (1 - std::pow(o.beta1, step))))),
        bias_correction2_sqrt(T(std::pow(1 - std::pow(o.beta2, step), 0.5))) {}
};

// Element j of one tensor; v_max is read only with amsgrad.
template <typename T, typename Maximize, typename Decay, typename Decoupled, typename Amsgrad, typename FromStart>
DISTML_HD void adam_element(T* p, const T* g, T* m, T* v, T* v_max, int64_t j, const AdamScalars<T>& s,
                            const AdamStepScalars<T>& t, Maximize maximize, Decay use_decay, Decoupled decoupled,
                            Amsgrad amsgrad, FromStart from_start) {
  T d = maximize ? -g[j] : g[j];
  if (use_decay) {
    if (decoupled) p[j] = p[j] * s.shrink;
    else d = d + s.decay * p[j];
  }
  m[j] = lerp(m[j], d, s.one_minus_beta1, from_start);
  v[j] = v[j] * s.beta2 + s.one_minus_beta2 * d * d;
  T second = v[j];
  if (amsgrad) second = v_max[j] = max_of(v_max[j], v[j]);
  const T denom = std::sqrt(second) / t.bias_correction2_sqrt + s.eps;
  p[j] = p[j] + t.neg_step_size * m[j] / denom;
}

}  // namespace distml::optim_math
