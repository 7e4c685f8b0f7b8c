// Floating-point exceptions are never inspected here; without trapping math the compiler may
// vectorise take_max_masked's compares.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "kernels/pool.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/pool_math.h"
#include "kernels/vec_math.h"

namespace distml {

using pool_math::clip_start;
using pool_math::clipped_window_max;
using pool_math::take_max;

// take_max without a branch: the compare's outcome as a mask selects the value and the index (on
// random data a compare-and-branch mispredicts often), in a form the loops over outputs vectorise.
template <typename T>
static inline void take_max_masked(T v, int64_t q, T& best, int64_t& best_index) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const bool take = (v > best) | (v != v);
  const Bits mask = Bits(0) - Bits(take);
  const Bits value = (__builtin_bit_cast(Bits, v) & mask) | (__builtin_bit_cast(Bits, best) & ~mask);
  best = __builtin_bit_cast(T, value);
  const int64_t index_mask = -int64_t(take);
  best_index = (q & index_mask) | (best_index & ~index_mask);
}

// The maximum over window offsets [first, first + n) (offset o at row o / K, column o % K) of the
// window whose top-left element is plane[corner], as a pairwise tree: the same result as take_max's
// scan in offset order (the last NaN, else the first maximum; that choice is associative), with
// log2(n) compares in a row instead of n.
template <typename T, int K, int first, int n>
static inline void tree_max(const T* plane, int64_t width, int64_t corner, T& best, int64_t& best_index) {
  if constexpr (n == 1) {
    best_index = corner + (first / K) * width + first % K;
    best = plane[best_index];
  } else {
    T right;
    int64_t right_index;
    tree_max<T, K, first, n / 2>(plane, width, corner, best, best_index);
    tree_max<T, K, first + n / 2, n - n / 2>(plane, width, corner, right, right_index);
    take_max_masked(right, right_index, best, best_index);
  }
}

// One output row's maxima over the windows that lie inside the input, columns [ow0, ow1), resolving
// ties and NaNs as take_max's scan of a window row by row. A row of a vector's width or more takes
// one pass over the row per kernel offset, in that scan order: the outputs' updates are independent,
// so the passes vectorise (their loads strided by the horizontal stride, a constant for that).
// A shorter row takes a window at a time, as a tree.
template <typename T, int K, int stride>
DISTML_VECTOR_CLONES static void max_row_inside(const T* plane, int64_t width, int64_t start, int64_t ow0,
                                                int64_t ow1, T* __restrict out, int64_t* __restrict index) {
  if (ow1 - ow0 < 16) {
    for (int64_t ow = ow0; ow < ow1; ++ow)
      tree_max<T, K, 0, K * K>(plane, width, start + ow * stride, out[ow], index[ow]);
    return;
  }
#pragma omp simd
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    out[ow] = plane[start + ow * stride];
    index[ow] = start + ow * stride;
  }
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j) {
      const int64_t offset = start + i * width + j;
#pragma omp simd
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        T best = out[ow];
        int64_t best_index = index[ow];
        take_max_masked(plane[offset + ow * stride], offset + ow * stride, best, best_index);
        out[ow] = best;
        index[ow] = best_index;
      }
    }
}

// 2-D planes with a K x K window, horizontal stride S and no dilation (ResNet's 3x3 stride 2 and
// the common 2x2): the windows inside the input take max_row_inside, the border ones (padding,
// ceil_mode overhang) the clipped loop.
template <typename T, int K, int S>
static void max_pool2d_fixed(const T* x, T* out, int64_t* indices, const PoolGeometry& g) {
  const int64_t HW = g.H * g.W, L = g.OH * g.OW;
  // Columns [ow0, ow1) have their windows inside the input's width.
  const int64_t ow0 = std::min(g.OW, (g.PW + S - 1) / S);
  const int64_t ow1 = std::max(ow0, std::min(g.OW, g.W - K + g.PW >= 0 ? (g.W - K + g.PW) / S + 1 : 0));
#pragma omp parallel for schedule(static) if (g.P * L > kParallelWork)
  for (int64_t p = 0; p < g.P; ++p) {
    const T* plane = x + p * HW;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t top = oh * g.SH - g.PH;
      T* out_row = out + p * L + oh * g.OW;
      int64_t* index_row = indices + p * L + oh * g.OW;
      const bool rows_inside = top >= 0 && top + K <= g.H;
      if (rows_inside) max_row_inside<T, K, S>(plane, g.W, top * g.W - g.PW, ow0, ow1, out_row, index_row);
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        if (rows_inside && ow >= ow0 && ow < ow1) continue;
        int64_t h0 = top, h1, w0 = ow * S - g.PW, w1;
        clip_start(h0, h1, K, 1, g.H);
        clip_start(w0, w1, K, 1, g.W);
        T best;  // locals: references into out could alias plane, keeping every update in memory
        int64_t best_index;
        clipped_window_max(plane, g, 0, 1, h0, h1, w0, w1, best, best_index);
        out_row[ow] = best;
        index_row[ow] = best_index;
      }
    }
  }
}

template <typename T>
static void max_pool_typed(const T* x, T* out, int64_t* indices, const PoolGeometry& geometry) {
  const PoolGeometry g = geometry;  // a local copy: the int64 index writes cannot alias it
  const bool square = g.D == 1 && g.KD == 1 && g.DH == 1 && g.DW == 1 && g.KH == g.KW;
  if (square && g.KH == 2 && g.SW == 1) return max_pool2d_fixed<T, 2, 1>(x, out, indices, g);
  if (square && g.KH == 2 && g.SW == 2) return max_pool2d_fixed<T, 2, 2>(x, out, indices, g);
  if (square && g.KH == 3 && g.SW == 1) return max_pool2d_fixed<T, 3, 1>(x, out, indices, g);
  if (square && g.KH == 3 && g.SW == 2) return max_pool2d_fixed<T, 3, 2>(x, out, indices, g);
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
