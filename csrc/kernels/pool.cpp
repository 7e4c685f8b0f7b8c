#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace distml {

// Keep v when it beats best (branch-free: random data mispredicts a branch half the time).
// NaN always wins, so the last NaN of a window is the maximum, as in PyTorch.
template <typename T>
static inline void take_max(T v, int64_t q, T& best, int64_t& best_index) {
  const bool take = (v > best) | (v != v);
  best = take ? v : best;
  best_index = take ? q : best_index;
}

// Max over the window rows [h0, h1) x columns [w0, w1) of one depth slice range, clipped to
// the input, with dilation; `best` starts at -inf so padding never wins.
template <typename T>
static inline void clipped_window_max(const T* plane, const PoolGeometry& g, int64_t d0, int64_t d1, int64_t h0,
                                      int64_t h1, int64_t w0, int64_t w1, T& best, int64_t& best_index) {
  best = -std::numeric_limits<T>::infinity();
  best_index = (d0 * g.H + h0) * g.W + w0;
  for (int64_t d = d0; d < d1; d += g.DD)
    for (int64_t h = h0; h < h1; h += g.DH)
      for (int64_t w = w0; w < w1; w += g.DW) {
        const int64_t q = (d * g.H + h) * g.W + w;
        take_max(plane[q], q, best, best_index);
      }
}

// The first in-range window position of a dimension: start, stepped past the padding by
// whole dilations, and the clipped end.
static inline void clip_start(int64_t& start, int64_t& end, int64_t k, int64_t dilation, int64_t size) {
  end = std::min(start + (k - 1) * dilation + 1, size);
  while (start < 0) start += dilation;
}

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
    for (int64_t od = 0; od < g.OD; ++od) {
      int64_t d0 = od * g.SD - g.PD, d1;
      clip_start(d0, d1, g.KD, g.DD, g.D);
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        int64_t h0 = oh * g.SH - g.PH, h1;
        clip_start(h0, h1, g.KH, g.DH, g.H);
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          int64_t w0 = ow * g.SW - g.PW, w1;
          clip_start(w0, w1, g.KW, g.DW, g.W);
          T best;
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

// One dimension of an average window: [begin, end) clipped to the input, and the length of
// the window clipped to the padded input (PyTorch's count_include_pad extent).
struct Extent {
  int64_t begin, end, padded;
};

static inline Extent avg_extent(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size) {
  const int64_t begin = o * stride - pad, end = std::min(begin + k, size + pad);
  return {std::max<int64_t>(begin, 0), std::min(end, size), end - begin};
}

static inline int64_t avg_divisor(const Extent& d, const Extent& h, const Extent& w, bool count_include_pad,
                                  int64_t divisor_override) {
  if (divisor_override) return divisor_override;
  if (count_include_pad) return d.padded * h.padded * w.padded;
  return (d.end - d.begin) * (h.end - h.begin) * (w.end - w.begin);
}

// Calls body(plane, output offset, d, h, w extents, divisor) for every window.
template <typename Body>
static void for_each_avg_window(const PoolGeometry& g, bool count_include_pad, int64_t divisor_override, Body body) {
  const int64_t L = g.OD * g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.P * L > kParallelWork)
  for (int64_t p = 0; p < g.P; ++p) {
    int64_t o = p * L;
    for (int64_t od = 0; od < g.OD; ++od) {
      const Extent d = avg_extent(od, g.SD, g.PD, g.KD, g.D);
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        const Extent h = avg_extent(oh, g.SH, g.PH, g.KH, g.H);
        for (int64_t ow = 0; ow < g.OW; ++ow, ++o) {
          const Extent w = avg_extent(ow, g.SW, g.PW, g.KW, g.W);
          body(p, o, d, h, w, avg_divisor(d, h, w, count_include_pad, divisor_override));
        }
      }
    }
  }
}

template <typename T>
static void avg_pool_typed(const T* x, T* out, const PoolGeometry& g, bool count_include_pad,
                           int64_t divisor_override) {
  const int64_t plane_size = g.D * g.H * g.W;
  for_each_avg_window(g, count_include_pad, divisor_override,
                      [&](int64_t p, int64_t o, const Extent& d, const Extent& h, const Extent& w, int64_t divisor) {
                        const T* plane = x + p * plane_size;
                        T sum = 0;
                        for (int64_t i = d.begin; i < d.end; ++i)
                          for (int64_t j = h.begin; j < h.end; ++j)
                            for (int64_t k = w.begin; k < w.end; ++k) sum += plane[(i * g.H + j) * g.W + k];
                        out[o] = divisor ? sum / static_cast<T>(divisor) : sum;
                      });
}

template <typename T>
static void avg_pool_backward_typed(const T* grad_out, T* grad_x, const PoolGeometry& g, bool count_include_pad,
                                    int64_t divisor_override) {
  const int64_t plane_size = g.D * g.H * g.W;
  std::memset(grad_x, 0, sizeof(T) * g.P * plane_size);
  for_each_avg_window(g, count_include_pad, divisor_override,
                      [&](int64_t p, int64_t o, const Extent& d, const Extent& h, const Extent& w, int64_t divisor) {
                        if (!divisor) return;
                        T* plane = grad_x + p * plane_size;  // each thread owns whole planes
                        const T share = grad_out[o] / static_cast<T>(divisor);
                        for (int64_t i = d.begin; i < d.end; ++i)
                          for (int64_t j = h.begin; j < h.end; ++j)
                            for (int64_t k = w.begin; k < w.end; ++k) plane[(i * g.H + j) * g.W + k] += share;
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
