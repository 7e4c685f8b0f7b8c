#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace distml {

// The common case: a K x K window that always lies inside the input (no padding, no
// dilation, no ceil_mode overhang), with K known at compile time so the window loops unroll.
template <typename T, int K>
static void max_pool2d_inside(const T* x, T* out, int64_t* indices, const ConvGeometry& g) {
  const int64_t HW = g.H * g.W, L = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.N * g.OH * g.OW > kParallelWork)
  for (int64_t p = 0; p < g.N; ++p) {
    const T* plane = x + p * HW;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t first = oh * g.SH * g.W + ow * g.SW;
        T best = plane[first];
        int64_t best_index = first;
        for (int i = 0; i < K; ++i) {
          for (int j = 0; j < K; ++j) {
            const int64_t q = first + i * g.W + j;
            const T v = plane[q];
            const bool take = (v > best) | (v != v);
            best = take ? v : best;
            best_index = take ? q : best_index;
          }
        }
        out[p * L + oh * g.OW + ow] = best;
        indices[p * L + oh * g.OW + ow] = best_index;
      }
    }
  }
}

template <typename T>
static void max_pool2d_typed(const T* x, T* out, int64_t* indices, const ConvGeometry& geometry) {
  const ConvGeometry g = geometry;  // a local copy: the int64 index writes cannot alias it
  const bool inside = g.PH == 0 && g.PW == 0 && g.DH == 1 && g.DW == 1 && g.KH == g.KW &&
                      (g.OH - 1) * g.SH + g.KH <= g.H && (g.OW - 1) * g.SW + g.KW <= g.W;
  if (inside && g.KH == 2) return max_pool2d_inside<T, 2>(x, out, indices, g);
  if (inside && g.KH == 3) return max_pool2d_inside<T, 3>(x, out, indices, g);
  const int64_t HW = g.H * g.W, L = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.N * g.OH * g.OW > kParallelWork)
  for (int64_t p = 0; p < g.N; ++p) {
    const T* plane = x + p * HW;
    T* out_plane = out + p * L;
    int64_t* index_plane = indices + p * L;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      int64_t h0 = oh * g.SH - g.PH;
      const int64_t h1 = std::min(h0 + (g.KH - 1) * g.DH + 1, g.H);
      while (h0 < 0) h0 += g.DH;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        int64_t w0 = ow * g.SW - g.PW;
        const int64_t w1 = std::min(w0 + (g.KW - 1) * g.DW + 1, g.W);
        while (w0 < 0) w0 += g.DW;
        int64_t best_index = h0 * g.W + w0;
        T best = -std::numeric_limits<T>::infinity();
        for (int64_t h = h0; h < h1; h += g.DH) {
          for (int64_t w = w0; w < w1; w += g.DW) {
            const T v = plane[h * g.W + w];
            // branch-free select (random data mispredicts a branch half the time); NaN wins
            const bool take = (v > best) | (v != v);
            best = take ? v : best;
            best_index = take ? h * g.W + w : best_index;
          }
        }
        out_plane[oh * g.OW + ow] = best;
        index_plane[oh * g.OW + ow] = best_index;
      }
    }
  }
}

template <typename T>
static void max_pool2d_backward_typed(const T* grad_out, const int64_t* indices, T* grad_x, const ConvGeometry& g) {
  const int64_t L = g.OH * g.OW, HW = g.H * g.W;
#pragma omp parallel for schedule(static) if (g.N * g.OH * g.OW > kParallelWork)
  for (int64_t p = 0; p < g.N; ++p) {
    T* plane = grad_x + p * HW;
    std::memset(plane, 0, sizeof(T) * HW);
    for (int64_t o = 0; o < L; ++o) plane[indices[p * L + o]] += grad_out[p * L + o];
  }
}

// The window of output (oh, ow) clipped to the input, and the divisor PyTorch uses for it.
struct Window {
  int64_t h0, h1, w0, w1, divisor;
};

static Window avg_window(const ConvGeometry& g, int64_t oh, int64_t ow, bool count_include_pad) {
  int64_t h0 = oh * g.SH - g.PH, w0 = ow * g.SW - g.PW;
  int64_t h1 = std::min(h0 + g.KH, g.H + g.PH), w1 = std::min(w0 + g.KW, g.W + g.PW);
  const int64_t padded_size = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.H);
  w1 = std::min(w1, g.W);
  return {h0, h1, w0, w1, count_include_pad ? padded_size : (h1 - h0) * (w1 - w0)};
}

template <typename T>
static void avg_pool2d_typed(const T* x, T* out, const ConvGeometry& g, bool count_include_pad) {
#pragma omp parallel for schedule(static) if (g.N * g.OH * g.OW > kParallelWork)
  for (int64_t p = 0; p < g.N; ++p) {
    const T* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const Window win = avg_window(g, oh, ow, count_include_pad);
        T sum = 0;
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) sum += plane[h * g.W + w];
        out[(p * g.OH + oh) * g.OW + ow] = win.divisor ? sum / static_cast<T>(win.divisor) : sum;
      }
    }
  }
}

template <typename T>
static void avg_pool2d_backward_typed(const T* grad_out, T* grad_x, const ConvGeometry& g, bool count_include_pad) {
#pragma omp parallel for schedule(static) if (g.N * g.OH * g.OW > kParallelWork)
  for (int64_t p = 0; p < g.N; ++p) {
    T* plane = grad_x + p * g.H * g.W;
    std::memset(plane, 0, sizeof(T) * g.H * g.W);
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const Window win = avg_window(g, oh, ow, count_include_pad);
        if (!win.divisor) continue;
        const T share = grad_out[(p * g.OH + oh) * g.OW + ow] / static_cast<T>(win.divisor);
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) plane[h * g.W + w] += share;
      }
    }
  }
}

void max_pool2d(const void* x, void* out, int64_t* indices, const ConvGeometry& g, DType dtype) {
  switch (dtype) {
    case DType::f32: return max_pool2d_typed(static_cast<const float*>(x), static_cast<float*>(out), indices, g);
    case DType::f64: return max_pool2d_typed(static_cast<const double*>(x), static_cast<double*>(out), indices, g);
    default: unsupported_dtype("max_pool2d", dtype);
  }
}

void max_pool2d_backward(const void* grad_out, const int64_t* indices, void* grad_x, const ConvGeometry& g,
                         DType dtype) {
  switch (dtype) {
    case DType::f32:
      return max_pool2d_backward_typed(static_cast<const float*>(grad_out), indices, static_cast<float*>(grad_x), g);
    case DType::f64:
      return max_pool2d_backward_typed(static_cast<const double*>(grad_out), indices, static_cast<double*>(grad_x), g);
    default: unsupported_dtype("max_pool2d_backward", dtype);
  }
}

void avg_pool2d(const void* x, void* out, const ConvGeometry& g, bool count_include_pad, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return avg_pool2d_typed(static_cast<const float*>(x), static_cast<float*>(out), g, count_include_pad);
    case DType::f64:
      return avg_pool2d_typed(static_cast<const double*>(x), static_cast<double*>(out), g, count_include_pad);
    default: unsupported_dtype("avg_pool2d", dtype);
  }
}

void avg_pool2d_backward(const void* grad_out, void* grad_x, const ConvGeometry& g, bool count_include_pad,
                         DType dtype) {
  switch (dtype) {
    case DType::f32:
      return avg_pool2d_backward_typed(static_cast<const float*>(grad_out), static_cast<float*>(grad_x), g,
                                       count_include_pad);
    case DType::f64:
      return avg_pool2d_backward_typed(static_cast<const double*>(grad_out), static_cast<double*>(grad_x), g,
                                       count_include_pad);
    default: unsupported_dtype("avg_pool2d_backward", dtype);
  }
}

}  // namespace distml
