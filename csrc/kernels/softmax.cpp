#include "kernels/softmax.h"
// No FP traps are ever enabled, so comparisons may be evaluated speculatively: without this gcc
// keeps the branches of vec_math::exp's clamps (and of max) and does not vectorise the loops.
#pragma GCC optimize("no-trapping-math")

#include "kernels/softmax_math.h"
#include "kernels/vec_math.h"

namespace distml {

// float32 lines of contiguous elements (inner == 1, the common case: softmax over the last dim):
// the same steps as softmax_math::forward_line, in loops the compiler vectorises (vec_math::exp;
// 8 lanes on AVX2 machines). Sums still accumulate in double.
__attribute__((target_clones("avx2", "default")))
static void forward_lines_f32(const float* x, float* y, int64_t lines, int64_t n, bool log) {
#pragma omp parallel for schedule(static) if (lines * n > 32768)
  for (int64_t line = 0; line < lines; ++line) {
    const float* xl = x + line * n;
    float* yl = y + line * n;
    float max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : max)
    for (int64_t j = 0; j < n; ++j) max = xl[j] > max ? xl[j] : max;
    const float shift = softmax_math::shift_of(max);  // a NaN in the line makes every value NaN through sum
    double sum = 0;
    if (log) {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) sum += vec_math::exp(xl[j] - shift);
      const float log_sum = static_cast<float>(std::log(sum));
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) yl[j] = softmax_math::log_softmax_value(xl[j], shift, log_sum);
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) {
        float e = vec_math::exp(xl[j] - shift);
        yl[j] = e;
        sum += e;
      }
      const float scale = softmax_math::scale_of<float>(sum);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) yl[j] *= scale;
    }
  }
}

// Backward over contiguous float32 lines, vectorised as forward_lines_f32.
__attribute__((target_clones("avx2", "default")))
static void backward_lines_f32(const float* g, const float* y, float* gx, int64_t lines, int64_t n, bool log) {
#pragma omp parallel for schedule(static) if (lines * n > 32768)
  for (int64_t line = 0; line < lines; ++line) {
    const float *gl = g + line * n, *yl = y + line * n;
    float* gxl = gx + line * n;
    double dot = 0;
    if (log) {
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < n; ++j) dot += gl[j];
      const float total = static_cast<float>(dot);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) gxl[j] = gl[j] - vec_math::exp(yl[j]) * total;
    } else {
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(gl[j]) * yl[j];
      const float total = static_cast<float>(dot);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) gxl[j] = softmax_math::softmax_grad(gl[j], yl[j], total);
    }
  }
}

template <typename T>
static void forward_typed(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * n > 32768)
  for (int64_t line = 0; line < lines; ++line) {
    int64_t o = line / inner, i = line % inner;
    int64_t offset = o * n * inner + i;
    softmax_math::forward_line(x + offset, y + offset, n, inner, log);
  }
}

template <typename T>
static void backward_typed(const T* g, const T* y, T* gx, int64_t outer, int64_t n, int64_t inner, bool log) {
  int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * n > 32768)
  for (int64_t line = 0; line < lines; ++line) {
    int64_t o = line / inner, i = line % inner;
    int64_t offset = o * n * inner + i;
    softmax_math::backward_line(g + offset, y + offset, gx + offset, n, inner, log);
  }
}

void softmax_forward(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, bool log, DType dtype) {
  switch (dtype) {
    case DType::f32:
      if (inner == 1) return forward_lines_f32(static_cast<const float*>(x), static_cast<float*>(out), outer, n, log);
      return forward_typed(static_cast<const float*>(x), static_cast<float*>(out), outer, n, inner, log);
    case DType::f64:
      return forward_typed(static_cast<const double*>(x), static_cast<double*>(out), outer, n, inner, log);
    default:
      unsupported_dtype("softmax_forward", dtype);
  }
}

void softmax_backward(const void* grad, const void* y, void* grad_x, int64_t outer, int64_t n, int64_t inner,
                      bool log, DType dtype) {
  switch (dtype) {
    case DType::f32:
      if (inner == 1)
        return backward_lines_f32(static_cast<const float*>(grad), static_cast<const float*>(y),
                                  static_cast<float*>(grad_x), outer, n, log);
      return backward_typed(static_cast<const float*>(grad), static_cast<const float*>(y),
                            static_cast<float*>(grad_x), outer, n, inner, log);
    case DType::f64:
      return backward_typed(static_cast<const double*>(grad), static_cast<const double*>(y),
                            static_cast<double*>(grad_x), outer, n, inner, log);
    default:
      unsupported_dtype("softmax_backward", dtype);
  }
}

}  // namespace distml
