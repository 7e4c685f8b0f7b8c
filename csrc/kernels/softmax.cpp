#include "kernels/softmax.h"

#include "kernels/softmax_math.h"

namespace distml {

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
