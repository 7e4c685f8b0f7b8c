#include "kernels/layernorm.h"
// No FP traps are ever enabled, so comparisons may be evaluated speculatively: without this gcc
// keeps the branches of vec_math::exp's clamps (and of max) and does not vectorise the loops.
#pragma GCC optimize("no-trapping-math")

#include <cmath>
#include <vector>

namespace distml {

template <typename T>
static void forward_typed(const T* x, const T* weight, const T* bias, T* out, T* mean, T* rstd, int64_t M,
                          int64_t N, double eps) {
#pragma omp parallel for schedule(static) if (M * N > 32768)
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * N;
    T* yr = out + m * N;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < N; ++j) sum += xr[j];
    const double mu = sum / N;
    double squares = 0;
#pragma omp simd reduction(+ : squares)
    for (int64_t j = 0; j < N; ++j) {
      const double d = xr[j] - mu;
      squares += d * d;
    }
    const T mean_t = static_cast<T>(mu), rstd_t = static_cast<T>(1.0 / std::sqrt(squares / N + eps));
    mean[m] = mean_t;
    rstd[m] = rstd_t;
    if (weight && bias) {
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean_t) * rstd_t * weight[j] + bias[j];
    } else if (weight) {
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean_t) * rstd_t * weight[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean_t) * rstd_t + (bias ? bias[j] : T(0));
    }
  }
}

template <typename T>
static void backward_typed(const T* grad, const T* x, const T* mean, const T* rstd, const T* weight, T* grad_x,
                           T* grad_weight, T* grad_bias, int64_t M, int64_t N) {
  if (grad_x) {
#pragma omp parallel for schedule(static) if (M * N > 32768)
    for (int64_t m = 0; m < M; ++m) {
      const T *gr = grad + m * N, *xr = x + m * N;
      T* gxr = grad_x + m * N;
      const T mu = mean[m], rs = rstd[m];
      double sum_g = 0, sum_gx = 0;  // sums of gxhat and gxhat * xhat
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t j = 0; j < N; ++j) {
        const T g = weight ? gr[j] * weight[j] : gr[j];
        sum_g += g;
        sum_gx += static_cast<double>(g) * ((xr[j] - mu) * rs);
      }
      const T mean_g = static_cast<T>(sum_g / N), mean_gx = static_cast<T>(sum_gx / N);
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) {
        const T g = weight ? gr[j] * weight[j] : gr[j];
        gxr[j] = rs * (g - mean_g - (xr[j] - mu) * rs * mean_gx);
      }
    }
  }
  if (!grad_weight && !grad_bias) return;
  std::vector<double> sum_w(grad_weight ? N : 0, 0.0), sum_b(grad_bias ? N : 0, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    const T *gr = grad + m * N, *xr = x + m * N;
    const T mu = mean[m], rs = rstd[m];
    if (grad_weight) {
      double* sw = sum_w.data();
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) sw[j] += static_cast<double>(gr[j]) * ((xr[j] - mu) * rs);
    }
    if (grad_bias) {
      double* sb = sum_b.data();
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) sb[j] += gr[j];
    }
  }
  for (int64_t j = 0; j < N; ++j) {
    if (grad_weight) grad_weight[j] = static_cast<T>(sum_w[j]);
    if (grad_bias) grad_bias[j] = static_cast<T>(sum_b[j]);
  }
}

void layer_norm_forward(const void* x, const void* weight, const void* bias, void* out, void* mean, void* rstd,
                        int64_t M, int64_t N, double eps, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return forward_typed(static_cast<const float*>(x), static_cast<const float*>(weight),
                           static_cast<const float*>(bias), static_cast<float*>(out), static_cast<float*>(mean),
                           static_cast<float*>(rstd), M, N, eps);
    case DType::f64:
      return forward_typed(static_cast<const double*>(x), static_cast<const double*>(weight),
                           static_cast<const double*>(bias), static_cast<double*>(out), static_cast<double*>(mean),
                           static_cast<double*>(rstd), M, N, eps);
    default:
      unsupported_dtype("layer_norm_forward", dtype);
  }
}

void layer_norm_backward(const void* grad, const void* x, const void* mean, const void* rstd, const void* weight,
                         void* grad_x, void* grad_weight, void* grad_bias, int64_t M, int64_t N, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return backward_typed(static_cast<const float*>(grad), static_cast<const float*>(x),
                            static_cast<const float*>(mean), static_cast<const float*>(rstd),
                            static_cast<const float*>(weight), static_cast<float*>(grad_x),
                            static_cast<float*>(grad_weight), static_cast<float*>(grad_bias), M, N);
    case DType::f64:
      return backward_typed(static_cast<const double*>(grad), static_cast<const double*>(x),
                            static_cast<const double*>(mean), static_cast<const double*>(rstd),
                            static_cast<const double*>(weight), static_cast<double*>(grad_x),
                            static_cast<double*>(grad_weight), static_cast<double*>(grad_bias), M, N);
    default:
      unsupported_dtype("layer_norm_backward", dtype);
  }
}

}  // namespace distml
