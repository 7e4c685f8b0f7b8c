#include "kernels/cross_entropy.h"

#include <stdexcept>
#include <string>

#include "kernels/cross_entropy_math.h"

namespace distml {

template <typename T>
static void cross_entropy_typed(const T* logits, const int64_t* target, const T* weight, T* loss, T* target_weight,
                                T* grad, int64_t N, int64_t C, int64_t L, int64_t ignore_index, double eps) {
  for (int64_t i = 0; i < N * L; ++i) {
    const int64_t y = target[i];
    if (y != ignore_index && (y < 0 || y >= C))
      throw std::out_of_range("Target " + std::to_string(y) + " is out of bounds.");
  }
  const double weight_total = cross_entropy_math::weight_total_of(weight, C);
#pragma omp parallel for schedule(static) if (N * L * C > kParallelWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t l = 0; l < L; ++l) {
      const int64_t i = n * L + l;
      cross_entropy_math::line(logits + n * C * L + l, L, C, target[i], ignore_index, weight, weight_total, eps,
                               loss + i, target_weight + i, grad ? grad + n * C * L + l : nullptr);
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
