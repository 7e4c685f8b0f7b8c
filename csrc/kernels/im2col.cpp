#include "kernels/im2col.h"

#include <cstring>
#include <vector>

namespace distml {

namespace {

// Where row r of sample n starts in the columns.
inline int64_t row_start(const ConvGeometry3d& g, int64_t r, int64_t n, int64_t rows, bool batch_major) {
  const int64_t L = g.OD * g.OH * g.OW;
  return (batch_major ? n * rows + r : r * g.N + n) * L;
}

// Output planes up to this size are gathered through a table (below) instead of row by row.
constexpr int64_t kSmallPlane = 64;

// For each kernel offset k and output position l: the offset in an input plane that l reads, or -1
// in the padding. With small output planes the set-up of each row's copy costs more than the copy;
// the table is built once and serves every (channel, sample).
std::vector<int64_t> gather_table(const ConvGeometry3d& g) {
  const int64_t K = g.KD * g.KH * g.KW, L = g.OD * g.OH * g.OW;
  std::vector<int64_t> table(K * L);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t a = k / (g.KH * g.KW), i = k % (g.KH * g.KW) / g.KW, j = k % g.KW;
    int64_t* t = table.data() + k * L;
    for (int64_t od = 0; od < g.OD; ++od) {
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow, ++t) {
          const int64_t id = od * g.SD - g.PD + a * g.DD, ih = oh * g.SH - g.PH + i * g.DH,
                        iw = ow * g.SW - g.PW + j * g.DW;
          const bool in = id >= 0 && id < g.D && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          *t = in ? (id * g.H + ih) * g.W + iw : -1;
        }
      }
    }
  }
  return table;
}

template <typename T>
void im2col_small(const T* x, T* cols, const ConvGeometry3d& g, bool batch_major) {
  const int64_t K = g.KD * g.KH * g.KW, rows = g.C * K, plane = g.D * g.H * g.W, L = g.OD * g.OH * g.OW;
  const std::vector<int64_t> table = gather_table(g);
#pragma omp parallel for schedule(static) if (rows * g.N * L > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t* t = table.data() + r % K * L;
    for (int64_t n = 0; n < g.N; ++n) {
      const T* in = x + (n * g.C + r / K) * plane;
      T* out = cols + row_start(g, r, n, rows, batch_major);
      for (int64_t l = 0; l < L; ++l) out[l] = t[l] >= 0 ? in[t[l]] : T(0);
    }
  }
}

template <typename T>
void col2im_small(const T* cols, T* x, const ConvGeometry3d& g, bool batch_major) {
  const int64_t K = g.KD * g.KH * g.KW, rows = g.C * K, plane = g.D * g.H * g.W, L = g.OD * g.OH * g.OW;
  const std::vector<int64_t> table = gather_table(g);
#pragma omp parallel for schedule(static) if (rows * g.N * L > kParallelWork)
  for (int64_t cn = 0; cn < g.C * g.N; ++cn) {
    const int64_t c = cn / g.N, n = cn % g.N;
    T* out = x + (n * g.C + c) * plane;
    std::memset(out, 0, sizeof(T) * plane);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t* t = table.data() + k * L;
      const T* in = cols + row_start(g, c * K + k, n, rows, batch_major);
      for (int64_t l = 0; l < L; ++l) {
        if (t[l] >= 0) out[t[l]] += in[l];
      }
    }
  }
}

template <typename T>
void im2col_typed(const T* x, T* cols, const ConvGeometry3d& g, bool batch_major) {
  if (g.OD * g.OH * g.OW <= kSmallPlane) return im2col_small(x, cols, g, batch_major);
  const int64_t K = g.KD * g.KH * g.KW, rows = g.C * K, plane = g.D * g.H * g.W, area = g.OH * g.OW;
  // Output rows follow each other in x too (stride 1 and as wide as x, as in 'same' convolutions):
  // a kernel offset's whole (OH, OW) block is then one run of x.
  const bool contiguous = g.SW == 1 && g.SH == 1 && g.W == g.OW;
#pragma omp parallel for schedule(static) if (rows * g.N * g.OD * area > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / K, a = r % K / (g.KH * g.KW), i = r % (g.KH * g.KW) / g.KW, j = r % g.KW;
    const Spans s = spans(g, a, i, j);
    // x's element for output (od, oh, ow) is at start + od*SD*H*W + oh*SH*W + ow*SW
    const int64_t start = ((a * g.DD - g.PD) * g.H + i * g.DH - g.PH) * g.W + j * g.DW - g.PW;
    for (int64_t n = 0; n < g.N; ++n) {
      const T* in_plane = x + (n * g.C + c) * plane + start;
      T* out = cols + row_start(g, r, n, rows, batch_major);
      for (int64_t od = 0; od < g.OD; ++od, out += area) {
        if (od < s.d.lo || od >= s.d.hi) {
          std::memset(out, 0, sizeof(T) * area);
          continue;
        }
        std::memset(out, 0, sizeof(T) * s.h.lo * g.OW);
        std::memset(out + s.h.hi * g.OW, 0, sizeof(T) * (g.OH - s.h.hi) * g.OW);
        if (contiguous && s.h.lo < s.h.hi && s.w.lo < s.w.hi) {
          // one copy from the first valid entry to the last, then zeros over the row ends that lie in the padding
          const int64_t first = s.h.lo * g.OW + s.w.lo, last = (s.h.hi - 1) * g.OW + s.w.hi;
          std::memcpy(out + first, in_plane + od * g.SD * g.H * g.W + first, sizeof(T) * (last - first));
          for (int64_t oh = s.h.lo; oh < s.h.hi; ++oh) {
            for (int64_t ow = 0; ow < s.w.lo; ++ow) out[oh * g.OW + ow] = 0;
            for (int64_t ow = s.w.hi; ow < g.OW; ++ow) out[oh * g.OW + ow] = 0;
          }
          continue;
        }
        for (int64_t oh = s.h.lo; oh < s.h.hi; ++oh) {
          T* __restrict row = out + oh * g.OW;
          const T* __restrict in = in_plane + od * g.SD * g.H * g.W + oh * g.SH * g.W;
          for (int64_t ow = 0; ow < s.w.lo; ++ow) row[ow] = 0;
          if (g.SW == 1) {
            for (int64_t ow = s.w.lo; ow < s.w.hi; ++ow) row[ow] = in[ow];
          } else {
            for (int64_t ow = s.w.lo; ow < s.w.hi; ++ow) row[ow] = in[ow * g.SW];
          }
          for (int64_t ow = s.w.hi; ow < g.OW; ++ow) row[ow] = 0;
        }
      }
    }
  }
}

template <typename T>
void col2im_typed(const T* cols, T* x, const ConvGeometry3d& g, bool batch_major) {
  if (g.OD * g.OH * g.OW <= kSmallPlane) return col2im_small(cols, x, g, batch_major);
  const int64_t K = g.KD * g.KH * g.KW, rows = g.C * K, plane = g.D * g.H * g.W, area = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (rows * g.N * g.OD * area > kParallelWork)
  for (int64_t cn = 0; cn < g.C * g.N; ++cn) {  // c-major: consecutive n read consecutive column runs
    const int64_t c = cn / g.N, n = cn % g.N, nc = n * g.C + c;
    std::memset(x + nc * plane, 0, sizeof(T) * plane);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t a = k / (g.KH * g.KW), i = k % (g.KH * g.KW) / g.KW, j = k % g.KW;
      const Spans s = spans(g, a, i, j);
      const int64_t start = ((a * g.DD - g.PD) * g.H + i * g.DH - g.PH) * g.W + j * g.DW - g.PW;
      T* out_plane = x + nc * plane + start;
      const T* in = cols + row_start(g, c * K + k, n, rows, batch_major);
      for (int64_t od = s.d.lo; od < s.d.hi; ++od) {
        for (int64_t oh = s.h.lo; oh < s.h.hi; ++oh) {
          const T* __restrict row = in + od * area + oh * g.OW;
          T* __restrict out = out_plane + od * g.SD * g.H * g.W + oh * g.SH * g.W;
          if (g.SW == 1) {
            for (int64_t ow = s.w.lo; ow < s.w.hi; ++ow) out[ow] += row[ow];
          } else {
            for (int64_t ow = s.w.lo; ow < s.w.hi; ++ow) out[ow * g.SW] += row[ow];
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
