#include "kernels/im2col.h"

#include <cstring>

namespace distml {

namespace {

// The output columns [lo, hi) whose input column ow*S + offset lies inside [0, size).
struct Span {
  int64_t lo, hi;
};

Span inside(int64_t out, int64_t stride, int64_t offset, int64_t size) {
  int64_t lo = 0, hi = out;
  while (lo < out && lo * stride + offset < 0) ++lo;
  while (hi > lo && (hi - 1) * stride + offset >= size) --hi;
  return {lo, hi};
}

// Where row r of sample n starts in the columns.
inline int64_t row_start(const ConvGeometry3d& g, int64_t r, int64_t n, int64_t rows, bool batch_major) {
  const int64_t L = g.OD * g.OH * g.OW;
  return (batch_major ? n * rows + r : r * g.N + n) * L;
}

template <typename T>
void im2col_typed(const T* x, T* cols, const ConvGeometry3d& g, bool batch_major) {
  const int64_t K = g.KD * g.KH * g.KW, rows = g.C * K, plane = g.D * g.H * g.W;
#pragma omp parallel for schedule(static) if (rows * g.N * g.OD * g.OH * g.OW > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / K, a = r % K / (g.KH * g.KW), i = r % (g.KH * g.KW) / g.KW, j = r % g.KW;
    const int64_t w_offset = j * g.DW - g.PW;
    const Span span = inside(g.OW, g.SW, w_offset, g.W);
    for (int64_t n = 0; n < g.N; ++n) {
      const T* in_plane = x + (n * g.C + c) * plane;
      T* out = cols + row_start(g, r, n, rows, batch_major);
      for (int64_t od = 0; od < g.OD; ++od) {
        const int64_t id = od * g.SD - g.PD + a * g.DD;
        for (int64_t oh = 0; oh < g.OH; ++oh, out += g.OW) {
          const int64_t ih = oh * g.SH - g.PH + i * g.DH;
          if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) {
            std::memset(out, 0, sizeof(T) * g.OW);
            continue;
          }
          const T* in = in_plane + (id * g.H + ih) * g.W + w_offset;
          for (int64_t ow = 0; ow < span.lo; ++ow) out[ow] = 0;
          if (g.SW == 1) {
            std::memcpy(out + span.lo, in + span.lo, sizeof(T) * (span.hi - span.lo));
          } else {
            for (int64_t ow = span.lo; ow < span.hi; ++ow) out[ow] = in[ow * g.SW];
          }
          for (int64_t ow = span.hi; ow < g.OW; ++ow) out[ow] = 0;
        }
      }
    }
  }
}

template <typename T>
void col2im_typed(const T* cols, T* x, const ConvGeometry3d& g, bool batch_major) {
  const int64_t K = g.KD * g.KH * g.KW, rows = g.C * K, plane = g.D * g.H * g.W;
#pragma omp parallel for schedule(static) if (rows * g.N * g.OD * g.OH * g.OW > kParallelWork)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t n = nc / g.C, c = nc % g.C;
    T* out_plane = x + nc * plane;
    std::memset(out_plane, 0, sizeof(T) * plane);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t a = k / (g.KH * g.KW), i = k % (g.KH * g.KW) / g.KW, j = k % g.KW;
      const int64_t w_offset = j * g.DW - g.PW;
      const Span span = inside(g.OW, g.SW, w_offset, g.W);
      const T* in = cols + row_start(g, c * K + k, n, rows, batch_major);
      for (int64_t od = 0; od < g.OD; ++od) {
        const int64_t id = od * g.SD - g.PD + a * g.DD;
        for (int64_t oh = 0; oh < g.OH; ++oh, in += g.OW) {
          const int64_t ih = oh * g.SH - g.PH + i * g.DH;
          if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) continue;
          T* __restrict out = out_plane + (id * g.H + ih) * g.W + w_offset;
          const T* __restrict row = in;
          if (g.SW == 1) {
            for (int64_t ow = span.lo; ow < span.hi; ++ow) out[ow] += row[ow];
          } else {
            for (int64_t ow = span.lo; ow < span.hi; ++ow) out[ow * g.SW] += row[ow];
          }
        }
      }
    }
  }
}

}  // namespace

void im2col(const void* x, void* cols, const ConvGeometry3d& g, bool batch_major, DType dtype) {
  switch (dtype) {
    case DType::f32: return im2col_typed(static_cast<const float*>(x), static_cast<float*>(cols), g, batch_major);
    case DType::f64: return im2col_typed(static_cast<const double*>(x), static_cast<double*>(cols), g, batch_major);
    default: unsupported_dtype("im2col", dtype);
  }
}

void col2im(const void* cols, void* x, const ConvGeometry3d& g, bool batch_major, DType dtype) {
  switch (dtype) {
    case DType::f32: return col2im_typed(static_cast<const float*>(cols), static_cast<float*>(x), g, batch_major);
    case DType::f64: return col2im_typed(static_cast<const double*>(cols), static_cast<double*>(x), g, batch_major);
    default: unsupported_dtype("col2im", dtype);
  }
}

}  // namespace distml
