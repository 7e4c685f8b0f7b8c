#include "kernels/batchnorm.h"

#include <algorithm>
#include <vector>

#include "kernels/batchnorm_math.h"

namespace distml {

// The sum of channel c's values f(n, s) over its N planes of S values, in double.
template <typename F>
static double channel_sum(int64_t N, int64_t S, F f) {
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t s = 0; s < S; ++s) sum += f(n, s);
    total += sum;
  }
  return total;
}

// Channels per block in the (N, C) layout (S == 1), where a channel's values are C apart: a
// block's accumulators are updated row by row, reading each row's slice contiguously.
constexpr int64_t kChannelBlock = 256;

// add(n, c) for every value of the (N, C) layout, parallel over channel blocks; within a block,
// row by row, so that each row's slice of the block is read contiguously. add accumulates into
// per-channel sums (a channel's values stay in one thread).
template <typename F>
static void for_rows(int64_t N, int64_t C, F add) {
#pragma omp parallel for schedule(static) if (N * C > kParallelWork)
  for (int64_t c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int64_t c1 = std::min(C, c0 + kChannelBlock);
    for (int64_t n = 0; n < N; ++n) {
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) add(n, c);
    }
  }
}

template <typename T>
static void stats_typed(const T* x, T* mean, T* var, int64_t N, int64_t C, int64_t S) {
  const double count = static_cast<double>(N * S);
  if (S == 1) {
    std::vector<double> m(C), v(C);
    double* mu = m.data();  // the sums, then the means
    double* squares = v.data();
    for_rows(N, C, [&](int64_t n, int64_t c) { mu[c] += x[n * C + c]; });
    for (int64_t c = 0; c < C; ++c) mu[c] /= count;
    for_rows(N, C,
             [&](int64_t n, int64_t c) { squares[c] += batchnorm_math::squared_deviation(x[n * C + c], mu[c]); });
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = static_cast<T>(m[c]);
      var[c] = static_cast<T>(v[c] / count);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (N * C * S > kParallelWork)
  for (int64_t c = 0; c < C; ++c) {
    const T* xc = x + c * S;
    const int64_t stride = C * S;
    const double m = channel_sum(N, S, [&](int64_t n, int64_t s) { return double(xc[n * stride + s]); }) / count;
    const double v = channel_sum(N, S, [&](int64_t n, int64_t s) {
      return batchnorm_math::squared_deviation(xc[n * stride + s], m);
    }) / count;
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(v);
  }
}

template <typename T>
static void elemt_typed(const T* x, const T* mean, const T* invstd, const T* weight, const T* bias, T* out, int64_t N,
                        int64_t C, int64_t S) {
  std::vector<T> scale(C);
  for (int64_t c = 0; c < C; ++c) scale[c] = batchnorm_math::elemt_scale(invstd, weight, c);
  if (S == 1) {
    std::vector<T> shift(C);
    for (int64_t c = 0; c < C; ++c) shift[c] = batchnorm_math::elemt_shift(bias, c);
    const T* a = scale.data();
    const T* b = shift.data();
#pragma omp parallel for schedule(static) if (N * C > kParallelWork)
    for (int64_t n = 0; n < N; ++n) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[n * C + c] = batchnorm_math::elemt_value(x[n * C + c], mean[c], a[c], b[c]);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (N * C * S > kParallelWork)
  for (int64_t plane = 0; plane < N * C; ++plane) {
    const int64_t c = plane % C;
    const T m = mean[c], a = scale[c], b = batchnorm_math::elemt_shift(bias, c);
    const T* p = x + plane * S;
    T* q = out + plane * S;
#pragma omp simd
    for (int64_t s = 0; s < S; ++s) q[s] = batchnorm_math::elemt_value(p[s], m, a, b);
  }
}

template <typename T>
static void backward_reduce_typed(const T* grad, const T* x, const T* mean, T* sum_dy, T* sum_dy_xmu, int64_t N,
                                  int64_t C, int64_t S) {
  if (S == 1) {
    std::vector<double> dy(C), dy_xmu(C);
    double* a = dy.data();
    double* b = dy_xmu.data();
    for_rows(N, C, [&](int64_t n, int64_t c) {
      const double g = grad[n * C + c];
      a[c] += g;
      b[c] += batchnorm_math::grad_times_deviation(g, x[n * C + c], mean[c]);
    });
    for (int64_t c = 0; c < C; ++c) {
      sum_dy[c] = static_cast<T>(dy[c]);
      sum_dy_xmu[c] = static_cast<T>(dy_xmu[c]);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (N * C * S > kParallelWork)
  for (int64_t c = 0; c < C; ++c) {
    const int64_t first = c * S, stride = C * S;
    const double m = mean[c];
    double dy = 0, dy_xmu = 0;
    for (int64_t n = 0; n < N; ++n) {  // both sums in one pass over the channel
      const T* g = grad + first + n * stride;
      const T* xc = x + first + n * stride;
      double plane_dy = 0, plane_dy_xmu = 0;
#pragma omp simd reduction(+ : plane_dy, plane_dy_xmu)
      for (int64_t s = 0; s < S; ++s) {
        plane_dy += g[s];
        plane_dy_xmu += batchnorm_math::grad_times_deviation(g[s], xc[s], m);
      }
      dy += plane_dy;
      dy_xmu += plane_dy_xmu;
    }
    sum_dy[c] = static_cast<T>(dy);
    sum_dy_xmu[c] = static_cast<T>(dy_xmu);
  }
}

template <typename T>
static void backward_elemt_typed(const T* grad, const T* x, const T* mean, const T* invstd, const T* weight,
                                 const T* sum_dy, const T* sum_dy_xmu, int64_t count, T* grad_x, int64_t N, int64_t C,
                                 int64_t S) {
  std::vector<T> a(C), b(C), d(C);
  for (int64_t c = 0; c < C; ++c) {
    const auto k = batchnorm_math::backward_coefficients(invstd, weight, sum_dy, sum_dy_xmu, count, c);
    a[c] = k.a;
    b[c] = k.b;
    d[c] = k.d;
  }
  if (S == 1) {
    const T *ac = a.data(), *bc = b.data(), *dc = d.data();
#pragma omp parallel for schedule(static) if (N * C > kParallelWork)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t row = n * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c)
        grad_x[row + c] = batchnorm_math::backward_value(grad[row + c], x[row + c], mean[c], ac[c], bc[c], dc[c]);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (N * C * S > kParallelWork)
  for (int64_t plane = 0; plane < N * C; ++plane) {
    const int64_t c = plane % C;
    const T mc = mean[c], ac = a[c], bc = b[c], dc = d[c];
    const T* g = grad + plane * S;
    const T* p = x + plane * S;
    T* q = grad_x + plane * S;
#pragma omp simd
    for (int64_t s = 0; s < S; ++s) q[s] = batchnorm_math::backward_value(g[s], p[s], mc, ac, bc, dc);
  }
}

void batch_norm_stats(const void* x, void* mean, void* var, int64_t N, int64_t C, int64_t S, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return stats_typed(static_cast<const float*>(x), static_cast<float*>(mean), static_cast<float*>(var), N, C, S);
    case DType::f64:
      return stats_typed(static_cast<const double*>(x), static_cast<double*>(mean), static_cast<double*>(var), N, C,
                         S);
    default: unsupported_dtype("batch_norm_stats", dtype);
  }
}

void batch_norm_elemt(const void* x, const void* mean, const void* invstd, const void* weight, const void* bias,
                      void* out, int64_t N, int64_t C, int64_t S, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return elemt_typed(static_cast<const float*>(x), static_cast<const float*>(mean),
                         static_cast<const float*>(invstd), static_cast<const float*>(weight),
                         static_cast<const float*>(bias), static_cast<float*>(out), N, C, S);
    case DType::f64:
      return elemt_typed(static_cast<const double*>(x), static_cast<const double*>(mean),
                         static_cast<const double*>(invstd), static_cast<const double*>(weight),
                         static_cast<const double*>(bias), static_cast<double*>(out), N, C, S);
    default: unsupported_dtype("batch_norm_elemt", dtype);
  }
}

void batch_norm_backward_reduce(const void* grad, const void* x, const void* mean, void* sum_dy, void* sum_dy_xmu,
                                int64_t N, int64_t C, int64_t S, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return backward_reduce_typed(static_cast<const float*>(grad), static_cast<const float*>(x),
                                   static_cast<const float*>(mean), static_cast<float*>(sum_dy),
                                   static_cast<float*>(sum_dy_xmu), N, C, S);
    case DType::f64:
      return backward_reduce_typed(static_cast<const double*>(grad), static_cast<const double*>(x),
                                   static_cast<const double*>(mean), static_cast<double*>(sum_dy),
                                   static_cast<double*>(sum_dy_xmu), N, C, S);
    default: unsupported_dtype("batch_norm_backward_reduce", dtype);
  }
}

void batch_norm_backward_elemt(const void* grad, const void* x, const void* mean, const void* invstd,
                               const void* weight, const void* sum_dy, const void* sum_dy_xmu, int64_t count,
                               void* grad_x, int64_t N, int64_t C, int64_t S, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return backward_elemt_typed(static_cast<const float*>(grad), static_cast<const float*>(x),
                                  static_cast<const float*>(mean), static_cast<const float*>(invstd),
                                  static_cast<const float*>(weight), static_cast<const float*>(sum_dy),
                                  static_cast<const float*>(sum_dy_xmu), count, static_cast<float*>(grad_x), N, C, S);
    case DType::f64:
      return backward_elemt_typed(static_cast<const double*>(grad), static_cast<const double*>(x),
                                  static_cast<const double*>(mean), static_cast<const double*>(invstd),
                                  static_cast<const double*>(weight), static_cast<const double*>(sum_dy),
                                  static_cast<const double*>(sum_dy_xmu), count, static_cast<double*>(grad_x), N, C,
                                  S);
    default: unsupported_dtype("batch_norm_backward_elemt", dtype);
  }
}

}  // namespace distml
