#include "kernels/pool.h"

#include <cstring>

#include "kernels/pool_math.h"

namespace distml {

using pool_math::clip_start;
using pool_math::clipped_window_max;
using pool_math::take_max;

// 2-D planes with a K x K window and no dilation (ResNet's 3x3 stride 2 and the common 2x2):
// windows that lie inside the input take a loop unrolled at compile time, the border ones
// (padding, ceil_mode overhang) the clipped loop.
template <typename T, int K>
static void max_pool2d_fixed(const T* x, T* out, int64_t* indices, const PoolGeometry& g) {
  const int64_t HW = g.H * g.W, L = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.P * L > kParallelWork)
  for (int64_t p = 0; p < g.P; ++p) {
    const T* plane = x + p * HW;
    T* out_plane = out + p * L;
    int64_t* index_plane = indices + p * L;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t top = oh * g.SH - g.PH;
      const bool rows_inside = top >= 0 && top + K <= g.H;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t left = ow * g.SW - g.PW;
        T best;
        int64_t best_index;
        if (rows_inside && left >= 0 && left + K <= g.W) {
          const int64_t first = top * g.W + left;
          best = plane[first];
          best_index = first;
          for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) take_max(plane[first + i * g.W + j], first + i * g.W + j, best, best_index);
        } else {
          int64_t h0 = top, h1, w0 = left, w1;
          clip_start(h0, h1, K, 1, g.H);
          clip_start(w0, w1, K, 1, g.W);
          clipped_window_max(plane, g, 0, 1, h0, h1, w0, w1, best, best_index);
        }
        out_plane[oh * g.OW + ow] = best;
        index_plane[oh * g.OW + ow] = best_index;
      }
    }
  }
}

template <typename T>
static void max_pool_typed(const T* x, T* out, int64_t* indices, const PoolGeometry& geometry) {
  const PoolGeometry g = geometry;  // a local copy: the int64 index writes cannot alias it
  const bool square = g.D == 1 && g.KD == 1 && g.DH == 1 && g.DW == 1 && g.KH == g.KW;
  if (square && g.KH == 2) return max_pool2d_fixed<T, 2>(x, out, indices, g);
  if (square && g.KH == 3) return max_pool2d_fixed<T, 3>(x, out, indices, g);
  const int64_t plane_size = g.D * g.H * g.W, L = g.OD * g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.P * L > kParallelWork)
  for (int64_t p = 0; p < g.P; ++p) {
    const T* plane = x + p * plane_size;
    T* o = out + p * L;
    int64_t* index = indices + p * L;
    for (int64_t od = 0; od < g.OD; ++od) {  // pool_math::window_max with the clipping hoisted: 10-15% faster
      int64_t d0 = od * g.SD - g.PD, d1;
      clip_start(d0, d1, g.KD, g.DD, g.D);
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        int64_t h0 = oh * g.SH - g.PH, h1;
        clip_start(h0, h1, g.KH, g.DH, g.H);
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          int64_t w0 = ow * g.SW - g.PW, w1;
          clip_start(w0, w1, g.KW, g.DW, g.W);
          T best;  // locals: references into out could alias plane, keeping every update in memory
          int64_t best_index;
          clipped_window_max(plane, g, d0, d1, h0, h1, w0, w1, best, best_index);
          *o++ = best;
          *index++ = best_index;
        }
      }
    }
  }
}

template <typename T>
static void max_pool_backward_typed(const T* grad_out, const int64_t* indices, T* grad_x, int64_t P,
                                    int64_t in_size, int64_t out_size) {
#pragma omp parallel for schedule(static) if (P * out_size > kParallelWork)
  for (int64_t p = 0; p < P; ++p) {
    T* plane = grad_x + p * in_size;
    std::memset(plane, 0, sizeof(T) * in_size);
    for (int64_t o = 0; o < out_size; ++o) plane[indices[p * out_size + o]] += grad_out[p * out_size + o];
  }
}

// Calls body(plane, output offset, window) for every average window.
template <typename Body>
static void for_each_avg_window(const PoolGeometry& g, bool count_include_pad, int64_t divisor_override, Body body) {
  const int64_t L = g.OD * g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.P * L > kParallelWork)
  for (int64_t p = 0; p < g.P; ++p) {
    int64_t o = p * L;
    for (int64_t od = 0; od < g.OD; ++od)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow, ++o)
          body(p, o, pool_math::avg_window(g, od, oh, ow, count_include_pad, divisor_override));
  }
}

template <typename T>
static void avg_pool_typed(const T* x, T* out, const PoolGeometry& g, bool count_include_pad,
                           int64_t divisor_override) {
  const int64_t plane_size = g.D * g.H * g.W;
  for_each_avg_window(g, count_include_pad, divisor_override,
                      [&](int64_t p, int64_t o, const pool_math::AvgWindow& w) {
                        out[o] = pool_math::window_average(x + p * plane_size, g, w.d, w.h, w.w, w.divisor);
                      });
}

template <typename T>
static void avg_pool_backward_typed(const T* grad_out, T* grad_x, const PoolGeometry& g, bool count_include_pad,
                                    int64_t divisor_override) {
  const int64_t plane_size = g.D * g.H * g.W;
  std::memset(grad_x, 0, sizeof(T) * g.P * plane_size);
  for_each_avg_window(g, count_include_pad, divisor_override,
                      [&](int64_t p, int64_t o, const pool_math::AvgWindow& w) {
                        T* plane = grad_x + p * plane_size;  // each thread owns whole planes
                        const T share = pool_math::window_share(grad_out[o], w.divisor);
                        pool_math::for_each_in_window(g, w.d, w.h, w.w, [&](int64_t q) { plane[q] += share; });
                      });
}

void max_pool(const void* x, void* out, int64_t* indices, const PoolGeometry& g, DType dtype) {
  switch (dtype) {
    case DType::f32: return max_pool_typed(static_cast<const float*>(x), static_cast<float*>(out), indices, g);
    case DType::f64: return max_pool_typed(static_cast<const double*>(x), static_cast<double*>(out), indices, g);
    default: unsupported_dtype("max_pool", dtype);
  }
}

void max_pool_backward(const void* grad_out, const int64_t* indices, void* grad_x, int64_t P, int64_t in_size,
                       int64_t out_size, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return max_pool_backward_typed(static_cast<const float*>(grad_out), indices, static_cast<float*>(grad_x), P,
                                     in_size, out_size);
    case DType::f64:
      return max_pool_backward_typed(static_cast<const double*>(grad_out), indices, static_cast<double*>(grad_x), P,
                                     in_size, out_size);
    default: unsupported_dtype("max_pool_backward", dtype);
  }
}

void avg_pool(const void* x, void* out, const PoolGeometry& g, bool count_include_pad, int64_t divisor_override,
              DType dtype) {
  switch (dtype) {
    case DType::f32:
      return avg_pool_typed(static_cast<const float*>(x), static_cast<float*>(out), g, count_include_pad,
                            divisor_override);
    case DType::f64:
      return avg_pool_typed(static_cast<const double*>(x), static_cast<double*>(out), g, count_include_pad,
                            divisor_override);
    default: unsupported_dtype("avg_pool", dtype);
  }
}

void avg_pool_backward(const void* grad_out, void* grad_x, const PoolGeometry& g, bool count_include_pad,
                       int64_t divisor_override, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return avg_pool_backward_typed(static_cast<const float*>(grad_out), static_cast<float*>(grad_x), g,
                                     count_include_pad, divisor_override);
    case DType::f64:
      return avg_pool_backward_typed(static_cast<const double*>(grad_out), static_cast<double*>(grad_x), g,
                                     count_include_pad, divisor_override);
    default: unsupported_dtype("avg_pool_backward", dtype);
  }
}

}  // namespace distml
