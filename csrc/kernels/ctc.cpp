#include "kernels/ctc.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace distml {

static constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// log(exp(a) + exp(b)) and of three terms; -inf terms (most of them in CTC) cost no exp.
static inline double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  return b == kNegInf ? a : a + std::log1p(std::exp(b - a));
}

static inline double log_add3(double a, double b, double c) {
  if (a < b) std::swap(a, b);
  if (a < c) std::swap(a, c);
  if (a == kNegInf) return kNegInf;
  const double rest = (b == kNegInf ? 0.0 : std::exp(b - a)) + (c == kNegInf ? 0.0 : std::exp(c - a));
  return rest == 0.0 ? a : a + std::log1p(rest);
}

// One sample's view of the inputs: its extended labels and log-probabilities.
template <typename T>
struct Sample {
  const T* lp;  // lp[t * N * C + c] is step t, class c of this sample
  const int64_t* target;
  int64_t N, C, blank, steps, L;

  int64_t label(int64_t s) const { return s % 2 == 0 ? blank : target[s / 2]; }
  double logp(int64_t t, int64_t s) const { return static_cast<double>(lp[t * N * C + label(s)]); }
  // May position s be reached from s - 2, skipping the blank between two different labels?
  bool skips(int64_t s) const { return s >= 2 && label(s) != blank && label(s) != label(s - 2); }
};

static void check_targets(const int64_t* targets, const int64_t* target_lengths, int64_t N, int64_t C, int64_t S) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < target_lengths[n]; ++k) {
      const int64_t y = targets[n * S + k];
      if (y < 0 || y >= C) throw std::out_of_range("ctc_loss: target " + std::to_string(y) + " is out of bounds.");
    }
}

template <typename T>
static void forward_typed(const T* log_probs, const int64_t* targets, const int64_t* input_lengths,
                          const int64_t* target_lengths, T* nll, double* log_alpha, int64_t T_, int64_t N, int64_t C,
                          int64_t S, int64_t blank) {
  check_targets(targets, target_lengths, N, C, S);
  const int64_t width = 2 * S + 1;
#pragma omp parallel for schedule(static) if (N * T_ * width > kParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    const Sample<T> x{log_probs + n * C, targets + n * S, N, C, blank, input_lengths[n], 2 * target_lengths[n] + 1};
    double* alpha = log_alpha + n * T_ * width;
    std::fill(alpha, alpha + T_ * width, kNegInf);
    if (x.steps == 0) {
      nll[n] = static_cast<T>(x.L == 1 ? 0.0 : std::numeric_limits<double>::infinity());
      continue;
    }
    for (int64_t s = 0; s < std::min<int64_t>(2, x.L); ++s) alpha[s] = x.logp(0, s);
    for (int64_t t = 1; t < x.steps; ++t) {
      const double* prev = alpha + (t - 1) * width;
      double* cur = alpha + t * width;
      for (int64_t s = 0; s < x.L; ++s)
        cur[s] = log_add3(prev[s], s >= 1 ? prev[s - 1] : kNegInf, x.skips(s) ? prev[s - 2] : kNegInf) + x.logp(t, s);
    }
    const double* last = alpha + (x.steps - 1) * width;
    nll[n] = static_cast<T>(-log_add(last[x.L - 1], x.L > 1 ? last[x.L - 2] : kNegInf));
  }
}

template <typename T>
static void backward_typed(const T* grad_nll, const T* log_probs, const int64_t* targets, const int64_t* input_lengths,
                           const int64_t* target_lengths, const T* nll, const double* log_alpha, T* grad, int64_t T_,
                           int64_t N, int64_t C, int64_t S, int64_t blank, bool zero_infinity) {
  const int64_t width = 2 * S + 1;
#pragma omp parallel for schedule(static) if (N * T_ * width > kParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    const Sample<T> x{log_probs + n * C, targets + n * S, N, C, blank, input_lengths[n], 2 * target_lengths[n] + 1};
    const double loss = static_cast<double>(nll[n]), scale = static_cast<double>(grad_nll[n]);
    const bool dropped = zero_infinity && std::isinf(loss);
    for (int64_t t = dropped ? 0 : x.steps; t < T_; ++t)  // steps that do not count get zero
      std::fill(grad + (t * N + n) * C, grad + (t * N + n + 1) * C, T(0));
    if (dropped || x.steps == 0) continue;
    const double* alpha = log_alpha + n * T_ * width;
    std::vector<double> beta(x.steps * x.L, kNegInf), per_class(C);
    for (int64_t s = std::max<int64_t>(0, x.L - 2); s < x.L; ++s)  // the paths end on the last label or blank
      beta[(x.steps - 1) * x.L + s] = x.logp(x.steps - 1, s);
    for (int64_t t = x.steps - 2; t >= 0; --t) {
      const double* next = beta.data() + (t + 1) * x.L;
      for (int64_t s = 0; s < x.L; ++s)
        beta[t * x.L + s] = log_add3(next[s], s + 1 < x.L ? next[s + 1] : kNegInf,
                                     s + 2 < x.L && x.skips(s + 2) ? next[s + 2] : kNegInf) + x.logp(t, s);
    }
    for (int64_t t = 0; t < x.steps; ++t) {
      // per_class[c] = sum over positions s with label c of alpha beta, scaled by exp(-top)
      const double* a = alpha + t * width;
      const double* b = beta.data() + t * x.L;
      double top = kNegInf;
      for (int64_t s = 0; s < x.L; ++s) top = std::max(top, a[s] + b[s]);
      std::fill(per_class.begin(), per_class.end(), 0.0);
      if (top != kNegInf)
        for (int64_t s = 0; s < x.L; ++s) per_class[x.label(s)] += std::exp(a[s] + b[s] - top);
      const double path = std::exp(top + loss);  // the sums' scale over p
      const T* lp = x.lp + t * N * C;
      T* g = grad + (t * N + n) * C;
      for (int64_t c = 0; c < C; ++c) {
        const double prob = std::exp(static_cast<double>(lp[c]));
        g[c] = static_cast<T>((prob - (per_class[c] == 0.0 ? 0.0 : per_class[c] * path / prob)) * scale);
      }
    }
  }
}

void ctc_loss_forward(const void* log_probs, const int64_t* targets, const int64_t* input_lengths,
                      const int64_t* target_lengths, void* nll, double* log_alpha, int64_t T, int64_t N, int64_t C,
                      int64_t S, int64_t blank, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return forward_typed(static_cast<const float*>(log_probs), targets, input_lengths, target_lengths,
                           static_cast<float*>(nll), log_alpha, T, N, C, S, blank);
    case DType::f64:
      return forward_typed(static_cast<const double*>(log_probs), targets, input_lengths, target_lengths,
                           static_cast<double*>(nll), log_alpha, T, N, C, S, blank);
    default: unsupported_dtype("ctc_loss_forward", dtype);
  }
}

void ctc_loss_backward(const void* grad_nll, const void* log_probs, const int64_t* targets,
                       const int64_t* input_lengths, const int64_t* target_lengths, const void* nll,
                       const double* log_alpha, void* grad, int64_t T, int64_t N, int64_t C, int64_t S, int64_t blank,
                       bool zero_infinity, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return backward_typed(static_cast<const float*>(grad_nll), static_cast<const float*>(log_probs), targets,
                            input_lengths, target_lengths, static_cast<const float*>(nll), log_alpha,
                            static_cast<float*>(grad), T, N, C, S, blank, zero_infinity);
    case DType::f64:
      return backward_typed(static_cast<const double*>(grad_nll), static_cast<const double*>(log_probs), targets,
                            input_lengths, target_lengths, static_cast<const double*>(nll), log_alpha,
                            static_cast<double*>(grad), T, N, C, S, blank, zero_infinity);
    default: unsupported_dtype("ctc_loss_backward", dtype);
  }
}

}  // namespace distml
