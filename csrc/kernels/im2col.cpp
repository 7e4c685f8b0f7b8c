#include "kernels/im2col.h"

#include <cstring>

namespace distml {

template <typename T>
static void im2col_typed(const T* x, T* cols, const ConvGeometry& g) {
  const int64_t L = g.OH * g.OW, rows = g.C * g.KH * g.KW;
#pragma omp parallel for schedule(static) if (g.N * rows * L > kParallelWork)
  for (int64_t n = 0; n < g.N; ++n) {
    for (int64_t c = 0; c < g.C; ++c) {
      const T* plane = x + (n * g.C + c) * g.H * g.W;
      for (int64_t i = 0; i < g.KH; ++i) {
        for (int64_t j = 0; j < g.KW; ++j) {
          T* row = cols + (n * rows + (c * g.KH + i) * g.KW + j) * L;
          const int64_t w_offset = j * g.DW - g.PW;
          // the output columns ow whose input column lies inside [0, W)
          int64_t ow_lo = 0, ow_hi = g.OW;
          while (ow_lo < g.OW && ow_lo * g.SW + w_offset < 0) ++ow_lo;
          while (ow_hi > ow_lo && (ow_hi - 1) * g.SW + w_offset >= g.W) --ow_hi;
          for (int64_t oh = 0; oh < g.OH; ++oh) {
            T* out = row + oh * g.OW;
            const int64_t ih = oh * g.SH - g.PH + i * g.DH;
            if (ih < 0 || ih >= g.H) {
              std::memset(out, 0, sizeof(T) * g.OW);
              continue;
            }
            const T* in = plane + ih * g.W + w_offset;
            for (int64_t ow = 0; ow < ow_lo; ++ow) out[ow] = 0;
            if (g.SW == 1) {
              std::memcpy(out + ow_lo, in + ow_lo, sizeof(T) * (ow_hi - ow_lo));
            } else {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] = in[ow * g.SW];
            }
            for (int64_t ow = ow_hi; ow < g.OW; ++ow) out[ow] = 0;
          }
        }
      }
    }
  }
}

template <typename T>
static void col2im_typed(const T* cols, T* x, const ConvGeometry& g) {
  const int64_t L = g.OH * g.OW, rows = g.C * g.KH * g.KW;
#pragma omp parallel for schedule(static) if (g.N * g.C * g.KH * g.KW * g.OH * g.OW > kParallelWork)
  for (int64_t n = 0; n < g.N; ++n) {
    std::memset(x + n * g.C * g.H * g.W, 0, sizeof(T) * g.C * g.H * g.W);
    for (int64_t c = 0; c < g.C; ++c) {
      T* plane = x + (n * g.C + c) * g.H * g.W;
      for (int64_t i = 0; i < g.KH; ++i) {
        for (int64_t j = 0; j < g.KW; ++j) {
          const T* row = cols + (n * rows + (c * g.KH + i) * g.KW + j) * L;
          const int64_t w_offset = j * g.DW - g.PW;
          int64_t ow_lo = 0, ow_hi = g.OW;
          while (ow_lo < g.OW && ow_lo * g.SW + w_offset < 0) ++ow_lo;
          while (ow_hi > ow_lo && (ow_hi - 1) * g.SW + w_offset >= g.W) --ow_hi;
          for (int64_t oh = 0; oh < g.OH; ++oh) {
            const int64_t ih = oh * g.SH - g.PH + i * g.DH;
            if (ih < 0 || ih >= g.H) continue;
            const T* __restrict in = row + oh * g.OW;
            T* __restrict out = plane + ih * g.W + w_offset;
            if (g.SW == 1) {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] += in[ow];
            } else {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow * g.SW] += in[ow];
            }
          }
        }
      }
    }
  }
}

void im2col(const void* x, void* cols, const ConvGeometry& g, DType dtype) {
  switch (dtype) {
    case DType::f32: return im2col_typed(static_cast<const float*>(x), static_cast<float*>(cols), g);
    case DType::f64: return im2col_typed(static_cast<const double*>(x), static_cast<double*>(cols), g);
    default: unsupported_dtype("im2col", dtype);
  }
}

void col2im(const void* cols, void* x, const ConvGeometry& g, DType dtype) {
  switch (dtype) {
    case DType::f32: return col2im_typed(static_cast<const float*>(cols), static_cast<float*>(x), g);
    case DType::f64: return col2im_typed(static_cast<const double*>(cols), static_cast<double*>(x), g);
    default: unsupported_dtype("col2im", dtype);
  }
}

}  // namespace distml
