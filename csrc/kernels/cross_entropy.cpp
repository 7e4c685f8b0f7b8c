#include "kernels/cross_entropy.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace distml {

template <typename T>
static void cross_entropy_typed(const T* logits, const int64_t* target, const T* weight, T* loss, T* target_weight,
                                T* grad, int64_t N, int64_t C, int64_t L, int64_t ignore_index, double eps) {
  for (int64_t i = 0; i < N * L; ++i) {
    const int64_t y = target[i];
    if (y != ignore_index && (y < 0 || y >= C))
      throw std::out_of_range("Target " + std::to_string(y) + " is out of bounds.");
  }
  double weight_total = static_cast<double>(C);
  if (weight) {
    weight_total = 0;
    for (int64_t c = 0; c < C; ++c) weight_total += weight[c];
  }
  const double smooth = eps / static_cast<double>(C);
#pragma omp parallel if (N * L * C > kParallelWork)
  {
    std::vector<double> logp(C);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t l = 0; l < L; ++l) {
        const T* x = logits + n * C * L + l;  // x[c * L] is class c
        T* g = grad ? grad + n * C * L + l : nullptr;
        const int64_t i = n * L + l, y = target[i];
        if (y == ignore_index) {
          loss[i] = 0;
          target_weight[i] = 0;
          if (g)
            for (int64_t c = 0; c < C; ++c) g[c * L] = 0;
          continue;
        }
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < C; ++c) max = std::max(max, static_cast<double>(x[c * L]));
        double sum = 0;
        for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(x[c * L]) - max);
        const double log_sum = max + std::log(sum);
        double smooth_sum = 0;
        for (int64_t c = 0; c < C; ++c) {
          logp[c] = static_cast<double>(x[c * L]) - log_sum;
          smooth_sum += (weight ? weight[c] : 1.0) * logp[c];
        }
        const double wy = weight ? weight[y] : 1.0;
        loss[i] = static_cast<T>(-(1 - eps) * wy * logp[y] - smooth * smooth_sum);
        target_weight[i] = static_cast<T>(wy);
        if (!g) continue;
        for (int64_t c = 0; c < C; ++c) {
          const double p = std::exp(logp[c]);
          const double wc = weight ? weight[c] : 1.0;
          g[c * L] = static_cast<T>((1 - eps) * wy * (p - (c == y)) + smooth * (p * weight_total - wc));
        }
      }
    }
  }
}

void cross_entropy(const void* logits, const int64_t* target, const void* weight, void* loss, void* target_weight,
                   void* grad, int64_t N, int64_t C, int64_t L, int64_t ignore_index, double label_smoothing,
                   DType dtype) {
  switch (dtype) {
    case DType::f32:
      return cross_entropy_typed(static_cast<const float*>(logits), target, static_cast<const float*>(weight),
                                 static_cast<float*>(loss), static_cast<float*>(target_weight),
                                 static_cast<float*>(grad), N, C, L, ignore_index, label_smoothing);
    case DType::f64:
      return cross_entropy_typed(static_cast<const double*>(logits), target, static_cast<const double*>(weight),
                                 static_cast<double*>(loss), static_cast<double*>(target_weight),
                                 static_cast<double*>(grad), N, C, L, ignore_index, label_smoothing);
    default: unsupported_dtype("cross_entropy", dtype);
  }
}

}  // namespace distml
